"""The sizing example DAG, run for real with ``dag.test()`` against the emulator."""

from __future__ import annotations

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.testing.pytest_plugin import DagRunner
from tests.support import example_dag

DAG_ID = "example_motherduck_sizing"


@pytest.mark.airflow_run
def test_sizing_scales_up_then_restores(
    emulator: MotherDuckEmulator, motherduck_conn: str, motherduck_dag_run: DagRunner
) -> None:
    emulator.add_user("nightly_batch")
    before = {
        "read_write": {"instance_size": "standard", "cooldown_seconds": 120},
        "read_scaling": {"instance_size": "pulse", "flock_size": 2},
    }
    emulator.set_duckling_config("nightly_batch", before)
    before = emulator.duckling_config("nightly_batch")  # as the server holds it

    run = motherduck_dag_run(example_dag(DAG_ID))

    assert set(run.states.values()) == {"success"}, run
    assert run.xcoms["current_config"] == before
    scaled = {"read_write": {"instance_size": "jumbo"}, "read_scaling": before["read_scaling"]}
    assert run.xcoms["scale_up"]["read_write"]["instance_size"] == "jumbo"
    assert run.xcoms["restore"] == before
    assert emulator.duckling_config("nightly_batch") == before

    puts = [entry.body for entry in emulator.journal if entry.method == "PUT"]
    assert puts == [{"config": scaled}, {"config": before}]
