"""The resize-when-idle example (Airflow 3 asset watchers): its DAG run for real, its watcher's events.

``dag.test()`` runs the DAG as one asset event would; the watcher's own trigger, taken from
the DAG file, is run against the emulator and must fire once per transition into idle.
"""

from __future__ import annotations

import asyncio
import runpy
from typing import Any

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.testing.pytest_plugin import DagRunner
from tests.support import REPO_ROOT, example_dag, polls

DAG_ID = "example_motherduck_resize_when_idle"
DAG_FILE = REPO_ROOT / "example_dags" / f"{DAG_ID}.py"
RW_ACTIVE = {"id": "rw", "type": "read_write", "status": "active"}
JUMBO = {
    "read_write": {"instance_size": "jumbo", "cooldown_seconds": 60},
    "read_scaling": {"instance_size": "standard", "flock_size": 2, "cooldown_seconds": 60},
}

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3, reason="asset watchers exist from Airflow 3.0")


@pytest.mark.airflow_run
def test_the_dag_sizes_the_duckling_down(
    emulator: MotherDuckEmulator, motherduck_conn: str, motherduck_dag_run: DagRunner
) -> None:
    emulator.add_user("notebook_runner")
    emulator.set_duckling_config("notebook_runner", JUMBO)

    run = motherduck_dag_run(example_dag(DAG_ID))

    assert set(run.states.values()) == {"success"}, run
    resized = {"read_write": {"instance_size": "standard"}, "read_scaling": JUMBO["read_scaling"]}
    assert run.xcoms["resize_down"]["read_write"]["instance_size"] == "standard"
    assert emulator.duckling_config("notebook_runner")["read_write"]["instance_size"] == "standard"
    assert [e.body for e in emulator.journal if e.method == "PUT"] == [{"config": resized}]


def test_the_dags_watcher_fires_once_each_time_notebook_runner_goes_idle(
    emulator: MotherDuckEmulator, motherduck_conn: str
) -> None:
    [watcher] = runpy.run_path(str(DAG_FILE))["notebook_runner_idle"].watchers
    classpath, kwargs = watcher.trigger.serialize()
    # The DAG's own trigger, rebuilt as the triggerer does, looking every 20 ms instead of a minute.
    fast = type(watcher.trigger)(**{**kwargs, "poke_interval": 0.02})
    emulator.add_user("notebook_runner")
    emulator.set_ducklings("notebook_runner", [RW_ACTIVE])
    events: list[Any] = []

    async def settle() -> None:  # let two more polls see the current state
        seen = len(polls(emulator))
        while len(polls(emulator)) < seen + 2:
            await asyncio.sleep(0.002)

    async def main() -> None:
        async def collect() -> None:
            async for event in fast.run():
                events.append(event.payload)

        task = asyncio.ensure_future(collect())
        await settle()  # busy at the start: no event
        for _ in range(2):  # two transitions into idle, with idle polls after each
            emulator.set_ducklings("notebook_runner", [])
            await settle()
            await settle()
            emulator.set_ducklings("notebook_runner", [RW_ACTIVE])
            await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(main(), 20))
    assert classpath.endswith("MotherDuckActiveAccountsEventTrigger")
    assert events == [{"status": "success", "accounts": []}] * 2
