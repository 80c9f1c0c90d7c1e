"""LocalExecutor: every example DAG, a caught-up rotation and a deferred sensor, through the REST API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from e2e.checks import ACTIVE_RW, assert_live_secret, created_tokens, wait_deferred
from e2e.deployment import Deployment
from e2e.report import REPORT
from e2e.services import wait_for

ROTATION_DAG = "e2e_rotation"
ROTATION_USER = "e2e_rotation_bot"
ROTATION_KEY = f"motherduck_token_{ROTATION_USER}"
ROTATION_KEEP = 2
SENSOR_DAG = "e2e_deferred_sensor"
SENSOR_USER = "e2e_sensor_bot"
ONBOARDING = "example_motherduck_onboarding"
# After onboarding, these only need the accounts to exist (and etl_loader's Duckling to run).
EXAMPLES_NEXT = (
    "example_motherduck_bulk_onboarding",
    "example_motherduck_bulk_onboarding_one_task",
    "example_motherduck_sizing",
    "example_motherduck_token_rotation",
    "example_motherduck_temporary_account",
    "example_motherduck_wait_for_active",
)
OFFBOARDING = "example_motherduck_offboarding"
EXAMPLES = (ONBOARDING, *EXAMPLES_NEXT, OFFBOARDING)
RUN_TIMEOUT = 300


@dataclass
class LocalPhase:
    airflow: Deployment
    sensor_run: str


@pytest.fixture(scope="module")
def local(deployment: Deployment, emulator: MotherDuckEmulator) -> Iterator[LocalPhase]:
    """The components on LocalExecutor; the rotation's catch-up and a sensor run start at once."""
    started = time.monotonic()
    emulator.add_user(ROTATION_USER)
    emulator.add_user(SENSOR_USER)
    try:
        deployment.start("LocalExecutor")
        deployment.wait_dags([*EXAMPLES, ROTATION_DAG, SENSOR_DAG])
        deployment.set_paused(ROTATION_DAG, False)
        deployment.set_paused(SENSOR_DAG, False)
        sensor_run = deployment.trigger(SENSOR_DAG, {"username": SENSOR_USER})
        yield LocalPhase(deployment, sensor_run)
    finally:
        deployment.stop()
        REPORT.phase("LocalExecutor phase", started)


def _runs(airflow: Deployment, dag_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
    return runs


def _settle(airflow: Deployment, dag_ids: tuple[str, ...], timeout: float) -> None:
    """Pause the DAGs, wait until none of their runs is running, and require every started run to succeed.

    Unpausing a scheduled DAG starts its latest scheduled run beside the manual one; a run created
    after the pause stays queued and is not judged.
    """
    for dag_id in dag_ids:
        airflow.set_paused(dag_id, True)
    wait_for(
        f"the runs of {', '.join(dag_ids)} to finish",
        lambda: all(r["state"] != "running" for d in dag_ids for r in _runs(airflow, d)),
        timeout=timeout,
        services=airflow.components(),
    )
    failed = [(d, r["dag_run_id"]) for d in dag_ids for r in _runs(airflow, d) if r["state"] == "failed"]
    assert not failed, "\n".join(airflow.run_details(d, r) for d, r in failed)


def _run_examples(airflow: Deployment, dag_ids: tuple[str, ...]) -> None:
    runs = {}
    for dag_id in dag_ids:
        airflow.set_paused(dag_id, False)
        runs[dag_id] = airflow.trigger(dag_id)
    for dag_id, run_id in runs.items():
        airflow.wait_run(dag_id, run_id, RUN_TIMEOUT)
    _settle(airflow, dag_ids, RUN_TIMEOUT)


def test_deferrable_sensor_waits_in_the_triggerer(local: LocalPhase, emulator: MotherDuckEmulator) -> None:
    airflow = local.airflow
    wait_deferred(airflow, SENSOR_DAG, local.sensor_run, "wait_for_active")
    trigger_logs = airflow.task_log(SENSOR_DAG, local.sensor_run, "wait_for_active", -1, 1).parent
    wait_for(
        "the trigger's log in the triggerer",
        lambda: list(trigger_logs.glob("attempt=1.log.trigger.*.log")),
        timeout=120,
        services=airflow.components(),
    )
    emulator.set_ducklings(SENSOR_USER, ACTIVE_RW)
    airflow.wait_run(SENSOR_DAG, local.sensor_run, RUN_TIMEOUT)
    (ti,) = airflow.task_instances(SENSOR_DAG, local.sensor_run)
    assert ti["try_number"] == 1, "the sensor resumed on its first try"


def test_every_example_dag_succeeds(local: LocalPhase, emulator: MotherDuckEmulator) -> None:
    airflow = local.airflow
    _run_examples(airflow, (ONBOARDING,))
    assert {"etl_loader", "bi_dashboards", "ml_features"} <= set(emulator.users())
    emulator.set_ducklings("etl_loader", ACTIVE_RW)  # what example_motherduck_wait_for_active waits for
    _run_examples(airflow, EXAMPLES_NEXT)
    emulator.set_ducklings("etl_loader", [])  # offboarding waits until no Duckling runs
    _run_examples(airflow, (OFFBOARDING,))
    gone = {"etl_loader", "bi_dashboards", "ml_features", "backfill_bot"} & set(emulator.users())
    assert not gone, f"offboarded or temporary accounts still exist: {gone}"


def test_rotation_catches_up_and_keeps_keep_tokens(local: LocalPhase, emulator: MotherDuckEmulator) -> None:
    airflow = local.airflow

    def caught_up() -> list[dict[str, Any]] | None:
        dag = airflow.api("GET", f"/api/v2/dags/{ROTATION_DAG}")
        runs = _runs(airflow, ROTATION_DAG)
        done = runs and all(r["state"] in ("success", "failed") for r in runs)
        return runs if done and dag["next_dagrun_run_after"] is None else None

    runs = wait_for("the rotation to catch up", caught_up, timeout=RUN_TIMEOUT, services=airflow.components())
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    assert not failed, "\n".join(airflow.run_details(ROTATION_DAG, r) for r in failed)
    assert len(runs) >= 3, f"several scheduled intervals caught up, got {len(runs)} runs"
    assert all(r["run_type"] == "scheduled" for r in runs)
    tokens = emulator.tokens(ROTATION_USER)
    assert len(tokens) == ROTATION_KEEP, f"exactly keep={ROTATION_KEEP} live tokens, got {tokens}"
    assert_live_secret(emulator, airflow, ROTATION_KEY)
    assert created_tokens(emulator.journal)[ROTATION_USER] == len(runs), "one token per run, no more"
