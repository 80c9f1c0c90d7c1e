"""LocalExecutor: every example DAG, a caught-up rotation and a deferred sensor, through the REST API.

The examples run twice: first in the order a platform team lives them, then all at once, side by
side, in an organisation that also holds another team's service accounts, which no example names
and none may write to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from e2e.checks import (
    ACTIVE_RW,
    assert_live_secret,
    created_tokens,
    max_overlap,
    wait_deferred,
    writes_to,
)
from e2e.deployment import EXAMPLE_DAGS, FINISHED, Deployment
from e2e.report import REPORT
from e2e.services import wait_for

ROTATION_DAG = "e2e_rotation"
ROTATION_USER = "e2e_rotation_bot"
ROTATION_KEY = f"motherduck_token_{ROTATION_USER}"
ROTATION_KEEP = 2
SENSOR_DAG = "e2e_deferred_sensor"
SENSOR_USER = "e2e_sensor_bot"
# The accounts the examples expect to exist already (each example creates only its own).
EXAMPLE_SEED = json.loads((EXAMPLE_DAGS / "demo_seed.json").read_text())
ONBOARDING = "example_motherduck_onboarding"
# After onboarding, these need the seeded accounts and onboarding's (and etl_loader's Duckling to run).
EXAMPLES_NEXT = (
    "example_motherduck_data_access",
    "example_motherduck_bulk_onboarding",
    "example_motherduck_bulk_onboarding_one_task",
    "example_motherduck_sizing",
    "example_motherduck_token_rotation",
    "example_motherduck_temporary_account",
    "example_motherduck_wait_for_active",
)
OFFBOARDING = "example_motherduck_offboarding"
DATA_OWNER, DATA_READER = "warehouse_owner", "report_builder"  # example_motherduck_data_access's
RETIRED = ("legacy_etl", "tableau_extracts", "churn_model_v1")  # what the offboarding example removes
EXAMPLES = (ONBOARDING, *EXAMPLES_NEXT, OFFBOARDING)
ALL_EXAMPLES = tuple(sorted(path.stem for path in EXAMPLE_DAGS.glob("example_motherduck_*.py")))
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
    emulator.load_seed(EXAMPLE_SEED)
    try:
        deployment.start("LocalExecutor")
        deployment.wait_dags([*ALL_EXAMPLES, ROTATION_DAG, SENSOR_DAG])
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
    # example_motherduck_data_access: the owner's share granted to the account it onboarded, and
    # attached by that account itself (over the Postgres endpoint, through short-lived tokens).
    access = emulator.describe_access()["users"]
    [share] = access[DATA_OWNER]["shares"]
    assert share["users"] == [DATA_READER], f"the share's read grants: {share['users']}"
    assert {"alias": share["name"], "url": share["url"]} in access[DATA_READER]["attached"]
    _run_examples(airflow, (OFFBOARDING,))
    gone = {*RETIRED, "backfill_bot"} & set(emulator.users())
    assert not gone, f"offboarded or temporary accounts still exist: {gone}"
    assert {"etl_loader", "bi_dashboards", "ml_features"} <= set(emulator.users()), (
        "offboarding kept to its own"
    )


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


# Side by side: another team's service accounts, which no example names, each with live tokens and
# a Duckling config of its own. The e2e accounts (and the Admin) are named by no example either.
OTHER_TEAM = ("payments_ingest", "payments_api", "growth_experiments")
OTHER_TEAM_CONFIG = {
    "read_write": {"instance_size": "mega", "cooldown_seconds": 300},
    "read_scaling": {"instance_size": "standard", "flock_size": 3},
}
ROTATION_EXAMPLE_KEY = "motherduck_token_dbt_prod"  # example_motherduck_token_rotation's Variable
SIDE_BY_SIDE_TIMEOUT = 240
# A check mode's verdict side by side depends on whether org-as-code applied first: not judged.
UNJUDGED = ("example_motherduck_drift_check",)


JUDGED = [d for d in ALL_EXAMPLES if d not in UNJUDGED]


@dataclass
class SideBySide:
    airflow: Deployment
    #: Every run of each example that this phase started and finished (the manual one, and a
    #: scheduled one that unpausing started), by DAG: (run id, state).
    runs: dict[str, list[tuple[str, str]]]
    #: The untouched accounts as they were before the examples ran (listing, tokens, configs).
    before: dict[str, dict[str, Any]]
    journal_from: int


def _snapshot(emulator: MotherDuckEmulator, usernames: set[str]) -> dict[str, dict[str, Any]]:
    return {u["username"]: u for u in emulator.describe_users() if u["username"] in usernames}


@pytest.fixture(scope="module")
def side_by_side(local: LocalPhase, emulator: MotherDuckEmulator) -> SideBySide:
    """Every example DAG triggered at once (queued while paused, then unpaused together)."""
    airflow = local.airflow
    started = time.monotonic()
    for user in OTHER_TEAM:
        emulator.add_user(user)
        emulator.set_duckling_config(user, OTHER_TEAM_CONFIG)
        for name in ("prod", "ci"):
            emulator.add_token(user, name, ttl=30 * 86_400)
    emulator.load_seed({"users": [u for u in EXAMPLE_SEED["users"] if u not in emulator.users()]})
    emulator.set_ducklings("etl_loader", ACTIVE_RW)  # what example_motherduck_wait_for_active waits for
    untouched = {*OTHER_TEAM, "admin", *(u for u in emulator.users() if u.startswith("e2e_"))}
    before = _snapshot(emulator, untouched)
    journal_from = len(emulator.journal)
    earlier = {d: {r["dag_run_id"] for r in _runs(airflow, d)} for d in ALL_EXAMPLES}

    for dag_id in ALL_EXAMPLES:
        airflow.set_paused(dag_id, True)
    manual = {dag_id: airflow.trigger(dag_id) for dag_id in ALL_EXAMPLES}
    for dag_id in ALL_EXAMPLES:
        airflow.set_paused(dag_id, False)
    wait_for(
        "every example's run to finish",
        lambda: all(airflow.run_state(d, r) in FINISHED for d, r in manual.items()),
        timeout=SIDE_BY_SIDE_TIMEOUT,
        interval=2,
        services=airflow.components(),
    )
    for dag_id in ALL_EXAMPLES:
        airflow.set_paused(dag_id, True)
    wait_for(
        "the scheduled runs that unpausing started to finish",
        lambda: all(r["state"] != "running" for d in ALL_EXAMPLES for r in _runs(airflow, d)),
        timeout=SIDE_BY_SIDE_TIMEOUT,
        interval=2,
        services=airflow.components(),
    )
    # A scheduled run queued behind the manual one (max_active_runs=1) stays queued once paused.
    runs = {
        d: [
            (r["dag_run_id"], r["state"])
            for r in _runs(airflow, d)
            if r["dag_run_id"] not in earlier[d] and r["state"] in FINISHED
        ]
        for d in ALL_EXAMPLES
    }
    REPORT.phase("examples side by side (LocalExecutor)", started)
    return SideBySide(airflow, runs, before, journal_from)


def test_side_by_side_examples_overlap(side_by_side: SideBySide) -> None:
    airflow = side_by_side.airflow
    ids = [(d, r) for d, runs in side_by_side.runs.items() for r, _ in runs]
    overlap = max_overlap(airflow, ids)
    assert overlap >= len(ALL_EXAMPLES) // 2, f"only {overlap} example runs ran at the same moment"
    REPORT.faults.append(
        f"{len(ALL_EXAMPLES)} example DAGs triggered side by side ({len(ids)} runs, up to {overlap} at once) "
        f"beside {len(side_by_side.before)} accounts no example names"
    )


def _failed_logs(airflow: Deployment, dag_id: str, run_id: str) -> str:
    """The whole logs of every try of the run's failed tasks."""
    return "\n".join(
        airflow.task_log(dag_id, run_id, ti["task_id"], ti["map_index"], attempt).read_text(errors="replace")
        for ti in airflow.task_instances(dag_id, run_id)
        if ti["state"] == "failed"
        for attempt in range(1, int(ti["try_number"] or 1) + 1)
    )


@pytest.mark.parametrize("dag_id", JUDGED)
def test_side_by_side_example_succeeds(side_by_side: SideBySide, dag_id: str) -> None:
    runs = side_by_side.runs[dag_id]
    assert runs, f"{dag_id} ran in the side-by-side phase"
    airflow = side_by_side.airflow
    failed = [r for r, state in runs if state != "success"]
    details = "\n".join(
        airflow.run_details(dag_id, r) + "\n" + _failed_logs(airflow, dag_id, r)[-4000:] for r in failed
    )
    assert not failed, details


def test_side_by_side_no_example_writes_to_an_account_it_does_not_name(
    side_by_side: SideBySide, emulator: MotherDuckEmulator
) -> None:
    untouched = set(side_by_side.before)
    writes = writes_to(emulator.journal[side_by_side.journal_from :], untouched)
    assert writes == [], f"writes to accounts no example names: {writes}"
    after = _snapshot(emulator, untouched)
    assert sorted(after) == sorted(side_by_side.before), "no account that no example names was deleted"
    for user, state in side_by_side.before.items():
        assert after[user] == state, f"{user}: tokens, Duckling config or listing changed"
    assert all(emulator.tokens(u) for u in OTHER_TEAM), "the other team's tokens are all still live"


def test_side_by_side_rotation_variable_holds_a_live_secret(
    side_by_side: SideBySide, emulator: MotherDuckEmulator
) -> None:
    assert_live_secret(emulator, side_by_side.airflow, ROTATION_EXAMPLE_KEY)


def test_side_by_side_every_destination_variable_holds_a_live_secret(
    side_by_side: SideBySide, emulator: MotherDuckEmulator
) -> None:
    """Every token Variable left (the examples' and the e2e DAGs'; records have their own prefix)."""
    stored = side_by_side.airflow.variables("motherduck_token_")
    assert len(stored) >= 10, f"the examples delivered their secrets: {sorted(stored)}"
    dead = sorted(key for key, secret in stored.items() if not emulator.is_valid_token(secret))
    assert dead == [], f"Variables holding a secret that no longer works: {dead}"
