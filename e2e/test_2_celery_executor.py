"""CeleryExecutor with two workers: a 100-account onboarding under 429/503 bursts, and crashes.

Crashes: the triggerer is SIGKILLed while a sensor is deferred, and a worker while a rotation
and an onboarding are held half-way (their token creation delayed in the emulator); each time
the component is started again and the work must converge.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from e2e.checks import (
    ACTIVE_RW,
    assert_live_secret,
    created_tokens,
    created_users,
    fault_answers,
    hold_taken,
    single_live_token_stored,
    triggerer_of,
    wait_deferred,
)
from e2e.deployment import Deployment
from e2e.report import REPORT
from e2e.services import wait_for

WORKERS = ("worker1", "worker2")
BULK_DAG = "e2e_bulk_onboarding"
BULK_USERS = [f"e2e_bulk_{i:03d}" for i in range(100)]
SENSOR_DAG = "e2e_deferred_sensor"
SENSOR_USER = "e2e_triggerer_crash_bot"
ROTATION_DAG = "e2e_fault_rotation"
ROTATION_USER = "e2e_fault_rotation_bot"
ONBOARDING_DAG = "e2e_fault_onboarding"
ONBOARDING_USER = "e2e_fault_onboarding_bot"
HOLD = 10.0  # seconds the emulator holds a token creation; the worker dies in the meantime
BULK_TIMEOUT = 600
RUN_TIMEOUT = 300


@dataclass
class CeleryPhase:
    airflow: Deployment
    bulk_run: str
    sensor_run: str


def _burst(emulator: MotherDuckEmulator, size: int) -> None:
    """429s (Retry-After 1 s) and 503s on the bulk accounts' calls; a 503 on a POST fails the try."""
    emulator.inject("POST", "/v1/users", status=429, retry_after="1", times=size)
    emulator.inject("GET", "/v1/users/e2e_bulk_*/tokens", status=503, times=size)
    emulator.inject("PUT", "/v1/users/e2e_bulk_*/instances", status=429, times=size)
    emulator.inject("POST", "/v1/users/e2e_bulk_*/tokens", status=503, times=max(size // 3, 1))


@pytest.fixture(scope="module")
def celery(deployment: Deployment, emulator: MotherDuckEmulator) -> Iterator[CeleryPhase]:
    """The components on CeleryExecutor with two workers; the bulk onboarding starts at once."""
    started = time.monotonic()
    emulator.add_user(SENSOR_USER)
    emulator.add_user(ROTATION_USER)
    try:
        deployment.start("CeleryExecutor", WORKERS)
        deployment.wait_dags([BULK_DAG, SENSOR_DAG, ROTATION_DAG, ONBOARDING_DAG])
        _burst(emulator, 12)
        deployment.set_paused(BULK_DAG, False)
        deployment.set_paused(SENSOR_DAG, False)
        bulk_run = deployment.trigger(BULK_DAG)
        sensor_run = deployment.trigger(SENSOR_DAG, {"username": SENSOR_USER})
        yield CeleryPhase(deployment, bulk_run, sensor_run)
    finally:
        deployment.stop()
        REPORT.phase("CeleryExecutor phase", started)


def test_bulk_onboarding_spreads_over_both_workers_and_creates_each_once(
    celery: CeleryPhase, emulator: MotherDuckEmulator
) -> None:
    airflow = celery.airflow
    wait_for(
        "a third of the accounts to be onboarded",
        lambda: sum(1 for u in created_tokens(emulator.journal) if u.startswith("e2e_bulk_")) >= 33,
        timeout=BULK_TIMEOUT,
        services=airflow.components(),
        details=lambda: airflow.run_details(BULK_DAG, celery.bulk_run),
    )
    _burst(emulator, 8)  # a second burst in the middle of the run
    airflow.wait_run(BULK_DAG, celery.bulk_run, BULK_TIMEOUT)

    tis = airflow.task_instances(BULK_DAG, celery.bulk_run)
    assert len(tis) == len(BULK_USERS)
    assert all(ti["state"] == "success" for ti in tis)
    hosts = Counter(str(ti["hostname"]) for ti in tis)
    assert set(hosts) == set(WORKERS), f"the tasks ran on both workers, not only {dict(hosts)}"

    journal = emulator.journal
    users, tokens = created_users(journal), created_tokens(journal)
    assert {u: users[u] for u in BULK_USERS} == dict.fromkeys(BULK_USERS, 1), "each user created once"
    assert {u: tokens[u] for u in BULK_USERS} == dict.fromkeys(BULK_USERS, 1), "each token created once"
    faults = fault_answers(journal)
    assert faults[429] > 0
    assert faults[503] > 0
    secrets = airflow.variables("motherduck_token_e2e_bulk_")
    for user in BULK_USERS:
        assert len(emulator.tokens(user)) == 1, f"{user} has exactly one token"
        assert emulator.is_valid_token(secrets[f"motherduck_token_{user}"]), f"{user}'s Variable holds it"
    retried = sum(1 for ti in tis if ti["try_number"] > 1)
    REPORT.faults.append(
        f"{faults[429]} x 429 and {faults[503]} x 503 during the 100-account onboarding: every account "
        f"onboarded once ({retried} task(s) retried; {hosts[WORKERS[0]]} on {WORKERS[0]}, "
        f"{hosts[WORKERS[1]]} on {WORKERS[1]})"
    )


def test_deferred_sensor_survives_a_killed_triggerer(
    celery: CeleryPhase, emulator: MotherDuckEmulator
) -> None:
    airflow = celery.airflow
    trigger_id = wait_deferred(airflow, SENSOR_DAG, celery.sensor_run, "wait_for_active")
    logs = airflow.task_log(SENSOR_DAG, celery.sensor_run, "wait_for_active", -1, 1).parent
    old = triggerer_of(airflow, trigger_id)
    wait_for(
        "the trigger to run in the first triggerer",
        lambda: (logs / f"attempt=1.log.trigger.{old}.log").exists(),
        timeout=120,
        services=airflow.components(),
    )
    airflow.services["triggerer"].kill()
    airflow.restart("triggerer")
    new = wait_for(
        "the new triggerer to take the trigger over",
        lambda: (t := triggerer_of(airflow, trigger_id)) not in (None, old) and t,
        timeout=120,
        services=airflow.components(),
    )
    wait_for(
        "the trigger to run in the new triggerer",
        lambda: (logs / f"attempt=1.log.trigger.{new}.log").exists(),
        timeout=120,
        services=airflow.components(),
    )
    emulator.set_ducklings(SENSOR_USER, ACTIVE_RW)
    airflow.wait_run(SENSOR_DAG, celery.sensor_run, RUN_TIMEOUT)
    (ti,) = airflow.task_instances(SENSOR_DAG, celery.sensor_run)
    assert ti["try_number"] == 1, "the deferred sensor completed its first try, not a retry"
    REPORT.faults.append(
        f"triggerer SIGKILLed while a sensor was deferred: trigger moved from triggerer job {old} "
        f"to {new}; the sensor completed on its first try"
    )


@dataclass
class WorkerCrash:
    run_id: str
    killed: str


def _crash_mid_creation(
    airflow: Deployment, emulator: MotherDuckEmulator, dag_id: str, user: str
) -> WorkerCrash:
    """Run ``dag_id``; while the emulator holds its token creation for ``user``, SIGKILL its worker.

    The worker is started again at once; the run must then finish through the task's retry.
    """
    path = f"/v1/users/{user}/tokens"
    emulator.inject("POST", path, delay=HOLD)
    airflow.set_paused(dag_id, False)
    run_id = airflow.trigger(dag_id)
    wait_for(
        f"{dag_id} to reach its token creation",
        lambda: hold_taken(emulator, "POST", path) and created_tokens(emulator.journal)[user] == 0,
        timeout=RUN_TIMEOUT,
        interval=0.2,
        services=airflow.components(),
        details=lambda: airflow.run_details(dag_id, run_id),
    )
    (ti,) = airflow.task_instances(dag_id, run_id)
    worker = str(ti["hostname"])
    assert worker in WORKERS, f"{dag_id} runs on a Celery worker, not {worker!r}"
    airflow.services[worker].kill()
    airflow.restart(worker)
    airflow.wait_worker_ready(worker)
    airflow.wait_run(dag_id, run_id, RUN_TIMEOUT)
    return WorkerCrash(run_id, worker)


@pytest.fixture(scope="module")
def rotation_crash(celery: CeleryPhase, emulator: MotherDuckEmulator) -> WorkerCrash:
    return _crash_mid_creation(celery.airflow, emulator, ROTATION_DAG, ROTATION_USER)


@pytest.fixture(scope="module")
def onboarding_crash(celery: CeleryPhase, emulator: MotherDuckEmulator) -> WorkerCrash:
    return _crash_mid_creation(celery.airflow, emulator, ONBOARDING_DAG, ONBOARDING_USER)


def _retried_and_delivered(
    crash: WorkerCrash, emulator: MotherDuckEmulator, airflow: Deployment, dag_id: str, user: str
) -> None:
    (ti,) = airflow.task_instances(dag_id, crash.run_id)
    assert ti["try_number"] > 1, f"{dag_id}: the killed try was retried"
    created = created_tokens(emulator.journal)[user]
    assert created == 2, (
        f"{user}: the held creation completed after the kill and the retry made one, not {created}"
    )
    assert_live_secret(emulator, airflow, f"motherduck_token_{user}")


def test_worker_killed_mid_rotation_converges(
    celery: CeleryPhase, rotation_crash: WorkerCrash, emulator: MotherDuckEmulator
) -> None:
    airflow = celery.airflow
    _retried_and_delivered(rotation_crash, emulator, airflow, ROTATION_DAG, ROTATION_USER)
    single_live_token_stored(emulator, airflow, ROTATION_USER, f"motherduck_token_{ROTATION_USER}")
    REPORT.faults.append(
        f"Celery {rotation_crash.killed} SIGKILLed during a rotation's token creation: "
        "the retry revoked the orphan; one live token, its secret in the Variable"
    )


def test_worker_killed_mid_onboarding_retries_and_delivers(
    celery: CeleryPhase, onboarding_crash: WorkerCrash, emulator: MotherDuckEmulator
) -> None:
    _retried_and_delivered(onboarding_crash, emulator, celery.airflow, ONBOARDING_DAG, ONBOARDING_USER)
    REPORT.faults.append(
        f"Celery {onboarding_crash.killed} SIGKILLed during an onboarding's token creation: "
        "the retry delivered a live token to the Variable"
    )


def test_worker_killed_mid_onboarding_leaves_no_token_stored_nowhere(
    celery: CeleryPhase, onboarding_crash: WorkerCrash, emulator: MotherDuckEmulator
) -> None:
    user = ONBOARDING_USER
    single_live_token_stored(emulator, celery.airflow, user, f"motherduck_token_{user}")
