"""The sizing example DAG, run for real with ``airflow dags test`` against the emulator."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import DagRunRecord, everything_printed, failure_excerpt
from tests.support import CONN_ENV, REPO_ROOT, connection_json

DAG_ID = "example_motherduck_sizing"

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.airflow_run
def test_sizing_scales_up_then_restores(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str
) -> None:
    emulator.add_user("nightly_batch")
    before = {
        "read_write": {"instance_size": "standard", "cooldown_seconds": 120},
        "read_scaling": {"instance_size": "pulse", "flock_size": 2},
    }
    emulator.set_duckling_config("nightly_batch", before)
    before = emulator.duckling_config("nightly_batch")  # as the server holds it

    result = airflow_dag_runner(
        DAG_ID, REPO_ROOT / "example_dags", {CONN_ENV: connection_json(emulator.url, emulator.admin_token)}
    )
    printed = everything_printed(result, airflow_db, DAG_ID)
    record = DagRunRecord(airflow_db, DAG_ID)
    assert set(record.states().values()) == {"success"}, failure_excerpt(printed)
    assert result.returncode == 0, failure_excerpt(printed)

    xcom = record.xcom()
    assert xcom[("current_config", -1)] == before
    scaled = {"read_write": {"instance_size": "jumbo"}, "read_scaling": before["read_scaling"]}
    assert xcom[("scale_up", -1)]["read_write"]["instance_size"] == "jumbo"
    assert xcom[("restore", -1)] == before
    assert emulator.duckling_config("nightly_batch") == before

    puts = [entry.body for entry in emulator.journal if entry.method == "PUT"]
    assert puts == [{"config": scaled}, {"config": before}]
