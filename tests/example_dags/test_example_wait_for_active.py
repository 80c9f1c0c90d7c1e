"""The wait-for-active example DAG, run for real with ``airflow dags test`` against the emulator."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.support import CONN_ENV, REPO_ROOT, connection_json

DAG_ID = "example_motherduck_wait_for_active"
DAG_FILE = REPO_ROOT / "example_dags" / f"{DAG_ID}.py"
PATH = "/v1/active_accounts"
RW_ACTIVE = {"id": "rw", "type": "read_write", "status": "active"}
RS_COOLDOWN = {"id": "rs.0", "type": "read_scaling", "status": "cooldown"}
RS_ACTIVE = {"id": "rs.0", "type": "read_scaling", "status": "active"}


def return_values(airflow_home: str, dag_id: str) -> dict[str, Any]:
    """Task id -> return value of the latest run of ``dag_id``, read from the metadata database."""
    with sqlite3.connect(Path(airflow_home) / "airflow.db") as db:
        run_id = db.execute(
            "SELECT run_id FROM xcom WHERE dag_id = ? ORDER BY timestamp DESC LIMIT 1", (dag_id,)
        ).fetchone()[0]
        rows = db.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
            (dag_id, run_id),
        ).fetchall()
    return {task_id: json.loads(value) for task_id, value in rows}


@pytest.mark.airflow_run
def test_waits_for_active_then_for_idle(
    emulator: MotherDuckEmulator,
    airflow_db: str,
    airflow_dag_runner: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    for name in ("etl_loader", "bi_dashboards", "ml_features"):
        emulator.add_user(name)
    emulator.set_ducklings("etl_loader", [RW_ACTIVE, RS_COOLDOWN])
    emulator.set_ducklings("bi_dashboards", [RS_ACTIVE])
    emulator.set_ducklings("ml_features", [RS_COOLDOWN])  # still cooling down: not idle yet

    # Polls 1-3: wait_for_active, list_active_accounts, wait_until_idle's first poke (which then
    # defers). Once the third is answered, ml_features goes idle, so the trigger's poll sees it.
    def stop_ml_features() -> None:
        deadline = time.monotonic() + 240
        while sum(e.path == PATH for e in emulator.journal) < 3 and time.monotonic() < deadline:
            time.sleep(0.002)
        emulator.set_ducklings("ml_features", [])

    flipper = threading.Thread(target=stop_ml_features, daemon=True)
    flipper.start()
    shutil.copy(DAG_FILE, tmp_path)  # a folder holding only this DAG
    result = airflow_dag_runner(
        DAG_ID, tmp_path, {CONN_ENV: connection_json(emulator.url, emulator.admin_token)}
    )
    flipper.join(timeout=1)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    values = return_values(airflow_db, DAG_ID)
    assert values["wait_for_active"] == [{"username": "etl_loader", "ducklings": [RW_ACTIVE]}]
    assert values["list_active_accounts"] == [
        {"username": "etl_loader", "ducklings": [RW_ACTIVE, RS_COOLDOWN]},
        {"username": "bi_dashboards", "ducklings": [RS_ACTIVE]},
        {"username": "ml_features", "ducklings": [RS_COOLDOWN]},
    ]
    assert values["wait_until_idle"] == []
    polls = [(e.method, e.status) for e in emulator.journal if e.path == PATH]
    assert len(polls) >= 4  # the idle sensor's poke saw ml_features busy; the trigger polled again
    assert set(polls) == {("GET", 200)}
    assert emulator.journal == [e for e in emulator.journal if e.path == PATH]  # read-only: no writes
