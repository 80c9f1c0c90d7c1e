"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONN_ENV = "AIRFLOW_CONN_MOTHERDUCK_DEFAULT"


def connection_json(url: str, token: str, **extra: object) -> str:
    """The JSON form of a motherduck connection, as an AIRFLOW_CONN_* variable holds it."""
    conn: dict[str, object] = {"conn_type": "motherduck", "host": url, "password": token}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


class FakeSleep:
    """Records the waits the hook asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run_airflow_dag(
    dag_id: str,
    dags_folder: Path,
    env: dict[str, str],
    *,
    logical_date: str | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG_ID`` in a subprocess (real Airflow, real task runner); output captured."""
    cmd = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if logical_date:
        cmd.append(logical_date)
    full_env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
