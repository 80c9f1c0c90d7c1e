"""issue_token and the delivery record: exactly once across lost answers, retries, crashes and
issuers of one destination overlapping (interleavings forced by pausing one issuer's Variable write
while the other runs, not by timing)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from airflow_provider_motherduck._compat import Context, redact, should_hide_value_for_key
from airflow_provider_motherduck.exceptions import MotherDuckAPIError, TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import (
    InMemoryVariableStore,
    Issuer,
    SecretDestination,
    default_record_key,
    fingerprint,
    task_identity,
    use_variable_store,
)
from airflow_provider_motherduck.workflows.issuing import issue_token
from tests.operators.helpers import run, writes_seen
from tests.support import PauseOnWrite, delivered_id, execute_off_the_main_thread, in_thread

USER = "etl_bot"
KEY = "motherduck_token_etl_bot"
RECORD = default_record_key(variable_key=KEY)
A = Issuer("md.issue scheduled__2026-12-07", 1)
B = Issuer("md.issue manual__2026-12-07", 1)


@pytest.fixture
def bot(emulator: MotherDuckEmulator, motherduck_conn: str) -> str:
    emulator.add_user(USER)
    return USER


def live_ids(emulator: MotherDuckEmulator) -> list[str]:
    return [t["id"] for t in emulator.tokens(USER)]


def test_a_retry_after_a_lost_create_answer_leaves_one_live_token(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    """The first try's token was created but its answer lost: nobody holds its secret, so the retry revokes it."""
    emulator.inject("POST", f"/v1/users/{USER}/tokens", status=500, after=True)
    create = MotherDuckCreateTokenOperator(
        task_id="t", username=USER, token_name="airflow", variable_key=KEY, hook_params={"retry_limit": 0}
    )
    with pytest.raises(MotherDuckAPIError):
        run(create)
    (lost,) = live_ids(emulator)  # MotherDuck made it; the task never saw it

    result = run(create)["token"]  # Airflow's task retry

    assert live_ids(emulator) == [result["id"]]
    assert writes_seen(emulator)[-1] == f"DELETE /v1/users/{USER}/tokens/{lost}"
    assert emulator.is_valid_token(motherduck_variables[KEY])
    assert delivered_id(motherduck_variables[RECORD]) == result["id"]


def test_tokens_of_that_name_made_by_others_are_never_revoked(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, hook: MotherDuckHook
) -> None:
    theirs = emulator.add_token(USER, "airflow")
    emulator.inject("POST", f"/v1/users/{USER}/tokens", drop=True, after=True)
    with pytest.raises(MotherDuckAPIError):
        issue_token(hook, USER, "airflow", destination=SecretDestination(KEY))
    issued = issue_token(hook, USER, "airflow", destination=SecretDestination(KEY))
    assert live_ids(emulator) == [theirs["id"], issued.token["id"]]
    assert len(issued.replaced) == 1
    assert issued.secret not in repr(issued)


def test_a_delivery_whose_record_failed_is_recognised_by_its_fingerprint(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, hook: MotherDuckHook
) -> None:
    motherduck_variables.refuse_write(RECORD, 3)
    destination = SecretDestination(KEY)
    with pytest.raises(TokenIssueError) as info:
        issue_token(hook, USER, "airflow", destination=destination)
    err = info.value
    assert (err.delivered, err.revoked) == (True, False)
    assert destination.delivered(emulator.tokens(USER), USER, "airflow", "read_write") is not None
    back = pickle.loads(pickle.dumps(err))
    assert (back.token_id, back.delivered, str(back)) == (err.token_id, True, str(err))
    assert motherduck_variables[KEY] not in str(err)


def test_the_record_is_readable_in_airflow_ui(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, hook: MotherDuckHook
) -> None:
    """Airflow masks Variables and JSON fields named like secrets: the record avoids those names."""
    issued = issue_token(hook, USER, "airflow", destination=SecretDestination(KEY))
    assert should_hide_value_for_key(KEY)  # the secret's own Variable is masked, as it should be
    assert not should_hide_value_for_key(RECORD)
    shown = redact(json.loads(motherduck_variables[RECORD]))
    assert shown["delivered"]["id"] == issued.token["id"]
    assert shown["delivered"]["fingerprint"] == fingerprint(issued.secret)
    assert shown["user"] == USER


def test_a_sink_without_record_key_gets_one_per_task(motherduck_variables: InMemoryVariableStore) -> None:
    class TI:
        dag_id, task_id, map_index = "rotate_dag", "rotate", 3

    task = task_identity(cast(Context, {"ti": TI()}))
    assert task == "rotate_dag.rotate[3]"
    destination = SecretDestination(secret_sink=print, task=task)
    assert destination.record == default_record_key(task=task)
    assert destination.record != default_record_key(task="rotate_dag.rotate[4]")
    with pytest.raises(ValueError, match="secret_sink needs record_key outside a task"):
        SecretDestination(secret_sink=print)


def overlap(
    motherduck_variables: InMemoryVariableStore,
    motherduck_conn: str,
    first: Callable[[MotherDuckHook], Any],
    second: Callable[[MotherDuckHook], Any],
    *,
    key: str,
    nth: int,
) -> tuple[Any, Any]:
    """Run ``first`` until its ``nth`` write of Variable ``key`` lands, all of ``second``, then the rest of ``first``."""
    pause = PauseOnWrite(motherduck_variables, key, nth)
    use_variable_store(pause)
    hook_a, hook_b = MotherDuckHook(motherduck_conn), MotherDuckHook(motherduck_conn)
    join = in_thread(lambda: first(hook_a))
    assert pause.reached.wait(10)
    second_result = second(hook_b)
    pause.resume()
    return join(), second_result


@pytest.mark.parametrize(
    ("key", "nth", "moment"),
    [
        (RECORD, 1, "A wrote its intent, about to create its token"),
        (RECORD, 2, "A created its token and noted it, about to deliver"),
        (KEY, 1, "A delivered, about to judge and revoke leftovers"),
    ],
)
def test_two_issuers_of_one_destination_overlapping(
    emulator: MotherDuckEmulator,
    bot: str,
    motherduck_conn: str,
    motherduck_variables: InMemoryVariableStore,
    key: str,
    nth: int,
    moment: str,
) -> None:
    """B lists, issues, delivers and revokes while A is paused at ``moment``: B never revokes A's
    token, both succeed, the Variable holds a live token's secret, and the token whose secret was
    overwritten is revoked by A or by the next issuance."""
    destination = SecretDestination(KEY)

    def issue(issuer: Issuer) -> Callable[[MotherDuckHook], Any]:
        return lambda hook: issue_token(hook, USER, "airflow", destination=destination, issuer=issuer)

    a, b = overlap(motherduck_variables, motherduck_conn, issue(A), issue(B), key=key, nth=nth)

    held = motherduck_variables[KEY]
    assert emulator.is_valid_token(held)
    assert held in (a.secret, b.secret)
    assert a.token["id"] not in b.replaced  # B never revoked A's token
    # One more issuance (a later run) leaves no live token whose secret is stored nowhere.
    hook = MotherDuckHook(motherduck_conn)
    later = issue_token(hook, USER, "airflow", destination=destination, issuer=Issuer("md.issue later", 1))
    assert motherduck_variables[KEY] == later.secret
    overwritten = [t for t in (a, b) if t.secret != held]
    assert {t.token["id"] for t in overwritten} <= set(a.replaced) | set(later.replaced)
    live = {t["id"] for t in emulator.tokens(USER)}
    assert live - {later.token["id"]} <= {t.token["id"] for t in (a, b) if t.secret == held}


def test_two_create_token_tasks_overlapping(
    emulator: MotherDuckEmulator, bot: str, motherduck_conn: str, motherduck_variables: InMemoryVariableStore
) -> None:
    """Two runs of a create-token task: the second runs whole while the first has just noted its token."""

    def task(run_id: str) -> Callable[[MotherDuckHook], Any]:
        op = MotherDuckCreateTokenOperator(
            task_id="token", username=USER, token_name="airflow", variable_key=KEY
        )
        ti = SimpleNamespace(dag_id="md", task_id="token", map_index=-1, run_id=run_id, try_number=1)
        return lambda _hook: execute_off_the_main_thread(
            op, cast(Context, {"params": {}, "ti": ti, "run_id": run_id})
        )

    a, b = (
        result["token"]
        for result in overlap(
            motherduck_variables, motherduck_conn, task("scheduled__1"), task("manual__2"), key=RECORD, nth=2
        )
    )

    # A delivered last; B's token (overwritten while A ran) was revoked by A.
    assert [t["id"] for t in emulator.tokens(USER)] == [a["id"]]
    assert emulator.is_valid_token(motherduck_variables[KEY])
    assert b["id"] != a["id"]


class Crash(BaseException):
    """The worker dies: no ``except Exception`` and no record write after it."""


class CrashOnWrite(PauseOnWrite):
    def set(self, key: str, value: str, *, description: str | None = None) -> None:
        if key == self.key:
            self._count += 1
            if self._count == self.nth:
                raise Crash
        self.store.set(key, value, description=description)


def test_a_crash_after_delivery_then_the_retry_issues_nothing_new(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    """The secret is in the Variable, the record never said so: the retry finishes the record."""
    op = MotherDuckCreateTokenOperator(task_id="token", username=USER, token_name="airflow", variable_key=KEY)

    def context(try_number: int) -> Context:
        ti = SimpleNamespace(dag_id="md", task_id="token", map_index=-1, run_id="r1", try_number=try_number)
        return cast(Context, {"ti": ti, "run_id": "r1"})

    use_variable_store(CrashOnWrite(motherduck_variables, RECORD, nth=3))  # the final record
    with pytest.raises(Crash):
        op.execute(context(1))
    (token,) = emulator.tokens(USER)
    assert delivered_id(motherduck_variables[RECORD]) is None
    use_variable_store(motherduck_variables)

    result = op.execute(context(2))["token"]  # Airflow's retry

    assert result["id"] == token["id"]
    assert [t["id"] for t in emulator.tokens(USER)] == [token["id"]]
    assert [e.method for e in emulator.journal].count("POST") == 1
    assert delivered_id(motherduck_variables[RECORD]) == token["id"]
    assert emulator.is_valid_token(motherduck_variables[KEY])


def test_a_token_revoked_by_another_writer_right_after_delivery_is_issued_again(
    emulator: MotherDuckEmulator, bot: str, motherduck_conn: str, motherduck_variables: InMemoryVariableStore
) -> None:
    """Someone revokes the token right after its delivery, before the check: the issuer issues once more."""
    destination = SecretDestination(KEY)

    def revoke_the_new_token(hook: MotherDuckHook) -> None:
        (first,) = emulator.tokens(USER)
        hook.revoke_token(USER, first["id"])

    first, _ = overlap(
        motherduck_variables,
        motherduck_conn,
        lambda hook: issue_token(hook, USER, "airflow", destination=destination, issuer=A),
        revoke_the_new_token,
        key=KEY,
        nth=1,
    )
    assert emulator.is_valid_token(motherduck_variables[KEY])
    assert motherduck_variables[KEY] == first.secret
    assert [t["id"] for t in emulator.tokens(USER)] == [first.token["id"]]
