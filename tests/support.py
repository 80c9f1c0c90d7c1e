"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3, AIRFLOW_V_3_1, AIRFLOW_V_3_3
from airflow_provider_motherduck.workflows.delivery import Delivered, DeliveryRecord

if TYPE_CHECKING:
    from airflow_provider_motherduck.testing import MotherDuckEmulator

REPO_ROOT = Path(__file__).resolve().parent.parent
CONN_ENV = "AIRFLOW_CONN_MOTHERDUCK_DEFAULT"
ACTIVE_ACCOUNTS_PATH = "/v1/active_accounts"

#: For the DAG runs whose output is scanned for secrets. Airflow 3.0's ``mask_secret`` sends the
#: secret to the supervisor before masking it, and the in-process supervisor of ``airflow dags test``
#: logs that ``MaskSecret`` message at debug level, secret in clear (3.1+ masks first; a real
#: deployment's supervisor does not log the message).
scans_dags_test_output_for_secrets = pytest.mark.skipif(
    AIRFLOW_V_3 and not AIRFLOW_V_3_1,
    reason="Airflow 3.0's `airflow dags test` logs every MaskSecret message with the secret in clear",
)


#: For tests that reach into Airflow's masker (the fast path of ``_compat.mask_secrets``, log
#: masking outside a task): Airflow 3.0 to 3.2 keep their masker in other modules, and
#: ``mask_secrets`` falls back to plain ``mask_secret`` there (checked on 2.11 and 3.3).
masks_logs_outside_a_task = pytest.mark.skipif(
    AIRFLOW_V_3 and not AIRFLOW_V_3_3,
    reason="Airflow 3.0 to 3.2 keep the masker elsewhere (mask_secrets falls back to mask_secret there)",
)


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


def polls(emulator: MotherDuckEmulator) -> list[int | None]:
    """Statuses of the active-accounts requests the emulator has answered so far."""
    return [e.status for e in emulator.journal if e.method == "GET" and e.path == ACTIVE_ACCOUNTS_PATH]


def after_polls(emulator: MotherDuckEmulator, count: int, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in a thread once ``count`` polls have been answered (state flips between polls)."""

    def watch() -> None:
        deadline = time.monotonic() + 10
        while len(polls(emulator)) < count and time.monotonic() < deadline:
            time.sleep(0.002)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def delivered(text: str | None) -> Delivered | None:
    """The token a delivery record (its Variable's text) says was delivered."""
    record = DeliveryRecord.parse(text)
    return record.delivered if record is not None else None


def delivered_id(text: str | None) -> str | None:
    """The id of the token a delivery record (its Variable's text) says was delivered."""
    done = delivered(text)
    return done.id if done is not None else None
