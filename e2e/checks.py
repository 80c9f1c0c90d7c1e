"""What the tests read from the emulator's journal and state, and waits shared by both executors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import unquote

from airflow_provider_motherduck.testing import JournalEntry, MotherDuckEmulator
from e2e.deployment import Deployment
from e2e.services import wait_for

ACTIVE_RW = [{"id": "rw", "type": "read_write", "status": "active"}]


def created_users(journal: Iterable[JournalEntry]) -> Counter[str]:
    """How many times each user was really created (answered 200, not a fault)."""
    return Counter(
        str(e.body.get("username"))
        for e in journal
        if e.method == "POST" and e.path == "/v1/users" and e.status == 200 and not e.fault
    )


def created_tokens(journal: Iterable[JournalEntry]) -> Counter[str]:
    """How many tokens were really created for each user."""
    return Counter(
        e.path.split("/")[3]
        for e in journal
        if e.method == "POST"
        and e.path.startswith("/v1/users/")
        and e.path.endswith("/tokens")
        and e.status == 200
        and not e.fault
    )


def writes_to(journal: Iterable[JournalEntry], usernames: Collection[str]) -> list[str]:
    """Every request but a read that targets one of ``usernames`` (compared as MotherDuck does,
    case-insensitively): its creation, deletion, tokens or Duckling config, answered or not."""
    folded = {u.casefold() for u in usernames}
    found = []
    for e in journal:
        if e.method == "GET":
            continue
        parts = e.path.split("/")
        if e.path == "/v1/users" and isinstance(e.body, dict):
            target = str(e.body.get("username", ""))
        elif len(parts) > 3 and parts[1:3] == ["v1", "users"]:
            target = unquote(parts[3])
        else:
            continue
        if target.casefold() in folded:
            found.append(f"{e.method} {e.path} -> {e.status}")
    return found


def fault_answers(journal: Iterable[JournalEntry]) -> Counter[int]:
    """Injected answers by status."""
    return Counter(int(e.status) for e in journal if e.fault and e.status is not None)


def single_live_token_stored(
    emulator: MotherDuckEmulator, airflow: Deployment, username: str, key: str
) -> dict[str, Any]:
    """Assert the user has exactly one live token and the Variable ``key`` holds its secret."""
    tokens = emulator.tokens(username)
    assert len(tokens) == 1, f"{username} has {len(tokens)} live tokens, expected 1: {tokens}"
    assert_live_secret(emulator, airflow, key)
    return tokens[0]


def assert_live_secret(emulator: MotherDuckEmulator, airflow: Deployment, key: str) -> None:
    """Assert the Variable ``key`` holds the secret of a live token."""
    secret = airflow.variable(key)
    assert secret is not None, f"Variable {key} is missing"
    assert emulator.is_valid_token(secret), f"Variable {key} holds a secret that no longer works"


def wait_deferred(airflow: Deployment, dag_id: str, run_id: str, task_id: str, timeout: float = 180) -> int:
    """Wait until the task is deferred and its trigger is assigned to a triggerer; the trigger id.

    The trigger table is copied then, for the secret scan.
    """

    def assigned() -> int | None:
        rows = airflow.sql(
            "SELECT ti.state, t.id, t.triggerer_id FROM task_instance ti LEFT JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s",
            [dag_id, run_id, task_id],
        )
        if rows and rows[0][0] == "deferred" and rows[0][2] is not None:
            return int(rows[0][1])
        return None

    trigger_id = wait_for(
        f"{dag_id}.{task_id} to be deferred to a triggerer",
        assigned,
        timeout=timeout,
        services=airflow.components(),
        details=lambda: airflow.run_details(dag_id, run_id),
    )
    airflow.snapshot("trigger")  # its row is deleted once the trigger has fired
    return trigger_id


def hold_taken(emulator: MotherDuckEmulator, method: str, path: str) -> bool:
    """Whether a request has taken the fault injected for ``method path`` (it is no longer pending).

    The emulator's Python API has no list of pending faults: read its traffic's queue.
    """
    pending = emulator._traffic._faults
    return not any(f.method == method and f.path == path for f in list(pending))


def max_overlap(airflow: Deployment, runs: Collection[tuple[str, str]]) -> int:
    """The most of these (dag id, run id) runs that were running at one moment."""
    rows = airflow.sql(
        "SELECT dag_id, run_id, start_date, end_date FROM dag_run WHERE dag_id = ANY(%s)",
        [sorted({dag_id for dag_id, _ in runs})],
    )
    wanted = set(runs)
    edges = sorted(
        edge
        for dag_id, run_id, start, end in rows
        if (dag_id, run_id) in wanted and start is not None and end is not None
        for edge in ((start, 1), (end, -1))
    )
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def triggerer_of(airflow: Deployment, trigger_id: int) -> int | None:
    rows = airflow.sql("SELECT triggerer_id FROM trigger WHERE id = %s", [trigger_id])
    return None if not rows or rows[0][0] is None else int(rows[0][0])
