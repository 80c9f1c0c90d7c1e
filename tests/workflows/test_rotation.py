"""Token rotation against the emulator, with a fault at each step: create, deliver, record, each revoke.

The invariant is checked around every MotherDuck write of a run (and after it): the destination
holds the secret of a live token. Also: no secret in logs, exceptions or the XCom value; a re-run
converges to exactly ``keep`` tokens without a second new token for the same logical run.

Airflow Variables are an in-memory store here (on Airflow 3 they need a task runner); the real
Variable path runs in tests/example_dags/test_example_dags.py::test_token_rotation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, cast

import pytest

from airflow_provider_motherduck._compat import (
    AIRFLOW_V_3,
    AIRFLOW_V_3_1,
    Context,
    should_hide_value_for_key,
)
from airflow_provider_motherduck.exceptions import (
    MotherDuckAPIError,
    MotherDuckError,
    MotherDuckRotationError,
)
from airflow_provider_motherduck.operators import MotherDuckRotateTokenOperator
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.validation import TOKEN_NAME_MAX_LENGTH
from airflow_provider_motherduck.workflows.delivery import (
    Delivered,
    InMemoryVariableStore,
    default_record_key,
    fingerprint,
    use_variable_store,
)
from airflow_provider_motherduck.workflows.naming import (
    LOGICAL_NAME_MAX_LENGTH as TOKEN_NAME_MAX,
)
from airflow_provider_motherduck.workflows.naming import name_pattern, rotated_name, run_marker
from airflow_provider_motherduck.workflows.rotation import plan_rotation
from tests.operators.helpers import SECRET_RE, requests_seen, writes_seen
from tests.support import (
    CONN_ENV,
    PauseOnWrite,
    connection_json,
    delivered,
    delivered_id,
    execute_off_the_main_thread,
    in_thread,
)

pytestmark = pytest.mark.usefixtures("motherduck_conn")

USER = "etl_bot"
KEY = "motherduck_token_etl_bot"
RECORD = default_record_key(variable_key=KEY)
SINK_RECORD = "motherduck_vault_etl_bot__delivery"
MONDAY = datetime(2025, 1, 6, tzinfo=timezone.utc)
MARKER = "20250106T000000Z"
FAST = {"retry_limit": 2, "retry_delay": 0.001}  # three attempts, no real waiting
TOKENS_PATH = f"/v1/users/{USER}/tokens"


# -- a stand-in for a secrets manager ---------------------------------------------------------------


class Vault:
    """A secret_sink: keeps the last secret it was given; can be told to refuse."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.refuse = False
        self.calls = 0

    def __call__(self, secret: str) -> None:
        self.calls += 1
        if self.refuse:
            raise ConnectionError(f"vault is sealed, could not write {secret}")  # quotes its input
        self.secret = secret


class Clock:
    """The emulator's clock: real time plus an offset, to seed tokens made in the past."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


@pytest.fixture
def vault(motherduck_variables: InMemoryVariableStore) -> Vault:
    return Vault()


@pytest.fixture
def bot(emulator: MotherDuckEmulator) -> str:
    emulator.add_user(USER)
    return USER


@pytest.fixture
def clocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MotherDuckEmulator, Clock]]:
    """An emulator whose clock can be moved, with the connection pointing at it."""
    clock = Clock()
    with MotherDuckEmulator(clock=clock) as emu:
        monkeypatch.setenv(CONN_ENV, connection_json(emu.url, emu.admin_token))
        emu.add_user(USER)
        yield emu, clock


# -- helpers -------------------------------------------------------------------------------------------


def context(logical_date: datetime | None = MONDAY, run_id: str | None = None) -> Context:
    run_id = run_id or f"scheduled__{(logical_date or MONDAY).isoformat()}"
    return cast(Context, {"params": {}, "run_id": run_id, "logical_date": logical_date})


def rotate(sink: Vault | None = None, **kwargs: Any) -> MotherDuckRotateTokenOperator:
    args: dict[str, Any] = {"username": USER, "token_name": "airflow", "ttl": "35 days", "hook_params": FAST}
    if sink is not None:
        args.update(secret_sink=sink, record_key=SINK_RECORD)
    elif "variable_key" not in kwargs:
        args["variable_key"] = KEY
    return MotherDuckRotateTokenOperator(task_id="rotate", **{**args, **kwargs})


def at_destination(motherduck_variables: InMemoryVariableStore, sink: Vault | None) -> str | None:
    return sink.secret if sink is not None else motherduck_variables.get(KEY)


def execute(
    op: MotherDuckRotateTokenOperator,
    emulator: MotherDuckEmulator,
    check: Callable[[], None] | None = None,
    ctx: Context | None = None,
) -> Any:
    """Render and execute ``op``; run ``check`` before and after every MotherDuck write it makes.

    A failed check is collected, not raised where the operator could catch it, and fails the test
    after the run.
    """
    ctx = ctx or context()
    op.render_template_fields(ctx)
    broken: list[str] = []

    def guarded() -> None:
        assert check is not None
        try:
            check()
        except AssertionError as err:
            broken.append(str(err) or "invariant broken")

    if check is not None:
        hook = op.hook
        for name in ("create_token", "revoke_token"):
            real = getattr(hook, name)

            def watched(*args: Any, _real: Callable[..., Any] = real, **kwargs: Any) -> Any:
                guarded()
                try:
                    return _real(*args, **kwargs)
                finally:
                    guarded()

            setattr(hook, name, watched)
    try:
        return op.execute(ctx)
    finally:
        assert not broken, broken


def invariant(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, sink: Vault | None
) -> Callable[[], None]:
    """The destination holds the secret of a live token."""

    def check() -> None:
        secret = at_destination(motherduck_variables, sink)
        assert secret is not None, "the destination holds no secret"
        assert emulator.is_valid_token(secret), "the destination holds a dead secret"

    return check


def family(emulator: MotherDuckEmulator) -> list[dict[str, Any]]:
    pattern = name_pattern("airflow")
    return [t for t in emulator.tokens(USER) if pattern.fullmatch(t["name"])]


def posts(emulator: MotherDuckEmulator) -> int:
    return sum(1 for e in emulator.journal if e.method == "POST")


def seed(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, sink: Vault | None, n: int = 2
) -> list[dict[str, Any]]:
    """``n`` tokens named ``airflow`` (made before rotation), the newest one's secret at the destination."""
    old = [emulator.add_token(USER, "airflow") for _ in range(n)]
    if sink is not None:
        sink.secret = old[-1]["token"]
    else:
        motherduck_variables[KEY] = old[-1]["token"]
    return old


def no_secret_in(text: str, *secrets: str | None) -> None:
    assert not SECRET_RE.search(text), SECRET_RE.findall(text)
    for secret in secrets:
        assert not secret or secret not in text


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged so far (Airflow 2 logs through logging, Airflow 3's task logger prints)."""
    caplog.set_level(logging.DEBUG)
    return lambda: caplog.text + "".join(capfd.readouterr())


# -- the happy paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["variable", "sink"])
def test_first_rotation_replaces_the_old_tokens(
    emulator: MotherDuckEmulator,
    bot: str,
    motherduck_variables: InMemoryVariableStore,
    destination: str,
    logged: Callable[[], str],
) -> None:
    sink = Vault() if destination == "sink" else None
    old = seed(emulator, motherduck_variables, sink)
    dbt = emulator.add_token(USER, "dbt")  # another logical name
    prod = emulator.add_token(USER, "airflow@prod")  # not a run marker: another logical name too
    check = invariant(emulator, motherduck_variables, sink)

    result = execute(rotate(sink), emulator, check)
    check()

    new = result["token"]
    assert new["name"] == f"airflow@{MARKER}"
    assert result["created"] is True
    assert result["revoked_ids"] == [old[0]["id"], old[1]["id"]]  # oldest first
    assert result["kept_ids"] == [new["id"]]
    assert (result["in_grace_ids"], result["still_live_ids"], result["dry_run"]) == ([], [], False)
    assert result["destination"] == (f"Airflow Variable {KEY}" if sink is None else "secret_sink Vault")
    assert new["expire_at"] is not None
    assert [t["id"] for t in emulator.tokens(USER) if t["name"] != "emulator-admin"] == [
        dbt["id"],
        prod["id"],
        new["id"],
    ]
    assert requests_seen(emulator) == [
        f"GET {TOKENS_PATH}",
        f"POST {TOKENS_PATH}",
        f"DELETE {TOKENS_PATH}/{old[0]['id']}",
        f"DELETE {TOKENS_PATH}/{old[1]['id']}",
        f"GET {TOKENS_PATH}",  # the delivered token is still live after the revokes
    ]
    secret = at_destination(motherduck_variables, sink)
    assert secret not in (old[0]["token"], old[1]["token"])
    # The record names the delivered token, with no secret in it.
    text = motherduck_variables[RECORD if sink is None else SINK_RECORD]
    assert delivered(text) == Delivered(
        new["id"], new["name"], fingerprint(str(secret)) if sink is None else None
    )
    assert not should_hide_value_for_key(RECORD if sink is None else SINK_RECORD)
    record = json.loads(text)
    # Never a secret in the XCom value (JSON-able) or the logs.
    no_secret_in(json.dumps(result), secret)
    no_secret_in(json.dumps(record), secret)
    no_secret_in(logged(), secret, *(t["token"] for t in old), emulator.admin_token)


def test_keep_two_keeps_the_newest_previous_token(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    old = seed(emulator, motherduck_variables, None, n=3)
    result = execute(rotate(keep=2), emulator, invariant(emulator, motherduck_variables, None))
    new_id = result["token"]["id"]
    assert result["kept_ids"] == [new_id, old[2]["id"]]
    assert result["revoked_ids"] == [old[0]["id"], old[1]["id"]]
    assert [t["id"] for t in family(emulator)] == [old[2]["id"], new_id]
    assert emulator.is_valid_token(old[2]["token"])  # the previous secret still works


def test_rerun_of_a_finished_run_changes_nothing(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    seed(emulator, motherduck_variables, vault)
    first = execute(rotate(vault), emulator)
    emulator.clear_journal()
    writes = list(motherduck_variables.writes)

    again = execute(rotate(vault), emulator)
    assert again["token"] == first["token"]
    assert (again["created"], again["revoked_ids"], again["kept_ids"]) == (False, [], [first["token"]["id"]])
    assert writes_seen(emulator) == []
    assert motherduck_variables.writes == writes
    assert vault.calls == 1


def test_next_run_rotates_again_and_keep_counts_marked_tokens(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    seed(emulator, motherduck_variables, None)
    first = execute(rotate(keep=2), emulator)
    check = invariant(emulator, motherduck_variables, None)
    second = execute(rotate(keep=2), emulator, check, context(MONDAY + timedelta(days=7)))
    third = execute(rotate(keep=2), emulator, check, context(MONDAY + timedelta(days=14)))

    assert second["token"]["name"] == "airflow@20250113T000000Z"
    assert third["kept_ids"] == [third["token"]["id"], second["token"]["id"]]
    assert third["revoked_ids"] == [first["token"]["id"]]
    assert [t["id"] for t in family(emulator)] == [second["token"]["id"], third["token"]["id"]]
    assert posts(emulator) == 3


# -- faults while creating ----------------------------------------------------------------------------


def test_throttled_create_is_retried(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    old = seed(emulator, motherduck_variables, vault)
    emulator.inject("POST", TOKENS_PATH, status=429)
    result = execute(rotate(vault), emulator, invariant(emulator, motherduck_variables, vault))
    assert posts(emulator) == 2  # refused once (429: not processed), then created
    assert [t["id"] for t in family(emulator)] == [result["token"]["id"]]
    assert result["revoked_ids"] == [t["id"] for t in old]


def test_lost_create_answer_then_rerun_converges(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    """The token is made but the answer is lost (500): its secret is nowhere; a re-run replaces it."""
    old = seed(emulator, motherduck_variables, vault)
    check = invariant(emulator, motherduck_variables, vault)
    emulator.inject("POST", TOKENS_PATH, status=500, after=True)
    with pytest.raises(MotherDuckAPIError, match="500"):
        execute(rotate(vault), emulator, check)
    check()
    assert posts(emulator) == 1  # a POST is not repeated after a 5xx
    (lost,) = [t for t in family(emulator) if t["name"] == f"airflow@{MARKER}"]
    assert all(emulator.is_valid_token(t["token"]) for t in old)  # nothing old touched

    result = execute(rotate(vault), emulator, check)
    check()
    assert result["created"] is True
    assert result["revoked_ids"] == [lost["id"], old[0]["id"], old[1]["id"]]  # the orphan first
    assert [t["id"] for t in family(emulator)] == [result["token"]["id"]]
    assert posts(emulator) == 2


# -- faults while delivering ---------------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["variable", "sink"])
def test_failed_delivery_revokes_the_new_token(
    emulator: MotherDuckEmulator,
    bot: str,
    motherduck_variables: InMemoryVariableStore,
    destination: str,
    logged: Callable[[], str],
) -> None:
    sink = Vault() if destination == "sink" else None
    old = seed(emulator, motherduck_variables, sink)
    before = at_destination(motherduck_variables, sink)
    check = invariant(emulator, motherduck_variables, sink)
    if sink is not None:
        sink.refuse = True
    else:
        motherduck_variables.refuse_write(KEY, None)

    with pytest.raises(MotherDuckRotationError, match="Could not deliver") as info:
        execute(rotate(sink), emulator, check)
    check()
    err = info.value
    assert "the new token was revoked again" in str(err)
    assert "No old token was touched" in str(err)
    assert at_destination(motherduck_variables, sink) == before  # the previous secret, still valid
    assert [t["id"] for t in family(emulator)] == [t["id"] for t in old]
    new_id = err.summary["token"]["id"]
    assert writes_seen(emulator) == [f"POST {TOKENS_PATH}", f"DELETE {TOKENS_PATH}/{new_id}"]
    assert sorted(err.still_live) == sorted(t["id"] for t in old)
    assert err.__cause__ is None
    assert err.__suppress_context__  # the original error (which quoted the secret) is not chained
    assert delivered_id(motherduck_variables.get(RECORD)) is None
    assert delivered_id(motherduck_variables.get(SINK_RECORD)) is None
    no_secret_in(str(err) + repr(err.summary) + logged())

    # Fixed destination: the re-run rotates normally.
    if sink is not None:
        sink.refuse = False
    motherduck_variables.allow_write(KEY)
    result = execute(rotate(sink), emulator, check)
    assert [t["id"] for t in family(emulator)] == [result["token"]["id"]]


def test_failed_delivery_and_failed_revoke_of_the_new_token(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    old = seed(emulator, motherduck_variables, vault)
    check = invariant(emulator, motherduck_variables, vault)
    vault.refuse = True
    emulator.inject("DELETE", f"{TOKENS_PATH}/*", status=503, times=3)
    with pytest.raises(MotherDuckRotationError, match="revoking it failed too") as info:
        execute(rotate(vault), emulator, check)
    new_id = info.value.summary["token"]["id"]
    assert info.value.still_live[0] == new_id
    assert f"token {new_id} is still live" in str(info.value)

    # The re-run sees an undelivered token of this run: delivers a fresh one, then revokes it.
    vault.refuse = False
    result = execute(rotate(vault), emulator, check)
    assert result["revoked_ids"] == [new_id, old[0]["id"], old[1]["id"]]
    assert [t["id"] for t in family(emulator)] == [result["token"]["id"]]


def test_failed_record_write_keeps_the_delivered_secret(
    emulator: MotherDuckEmulator,
    bot: str,
    motherduck_variables: InMemoryVariableStore,
    logged: Callable[[], str],
) -> None:
    """The secret is out: revoking its token would leave a dead secret at the destination."""
    old = seed(emulator, motherduck_variables, None)
    check = invariant(emulator, motherduck_variables, None)
    motherduck_variables.refuse_write(
        RECORD, 3
    )  # the intent and the delivering note pass, the final record fails
    with pytest.raises(MotherDuckRotationError, match="could not write its delivery record") as info:
        execute(rotate(), emulator, check)
    check()
    first = info.value.summary["token"]
    assert emulator.is_valid_token(motherduck_variables[KEY])
    assert motherduck_variables[KEY] != old[1]["token"]
    assert writes_seen(emulator) == [f"POST {TOKENS_PATH}"]  # nothing revoked
    assert info.value.still_live == [old[0]["id"], old[1]["id"]]  # the new one is in use: not listed
    no_secret_in(str(info.value) + logged())

    # The Variable holds the fingerprint noted before delivery: the re-run adopts the token.
    result = execute(rotate(), emulator, check)
    assert result["created"] is False
    assert result["token"]["id"] == first["id"]
    assert result["revoked_ids"] == [old[0]["id"], old[1]["id"]]
    assert [t["id"] for t in family(emulator)] == [first["id"]]


def test_a_sink_token_whose_record_failed_gets_the_grace(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    """Its secret may have reached the sink (only the record failed): consumers may have read it,
    so the retry leaves it alive until ``revoke_after`` has passed, like any older token."""
    old = seed(emulator, motherduck_variables, vault)
    motherduck_variables.refuse_write(SINK_RECORD, 3)
    with pytest.raises(MotherDuckRotationError, match="could not write its delivery record") as info:
        execute(rotate(vault, keep=2, revoke_after="1 day"), emulator)
    first = info.value.summary["token"]
    handed_out = vault.secret

    result = execute(rotate(vault, keep=2, revoke_after="1 day"), emulator)

    assert result["created"] is True
    assert result["in_grace_ids"] == [first["id"], old[0]["id"]]
    assert result["kept_ids"] == [result["token"]["id"], old[1]["id"]]
    assert result["revoked_ids"] == []
    assert emulator.is_valid_token(handed_out)


def test_a_lost_create_answer_is_revoked_without_grace(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    """Nobody holds the secret of a token whose create answer was lost: no keep slot, no grace."""
    old = seed(emulator, motherduck_variables, None)
    emulator.inject("POST", TOKENS_PATH, drop=True, after=True)
    with pytest.raises(MotherDuckAPIError, match="not repeated"):
        execute(rotate(keep=2, revoke_after="1 day"), emulator)
    lost = family(emulator)[-1]

    result = execute(rotate(keep=2, revoke_after="1 day"), emulator)

    assert result["revoked_ids"] == [lost["id"]]
    assert result["kept_ids"] == [result["token"]["id"], old[1]["id"]]
    assert [t["id"] for t in family(emulator)] == [old[0]["id"], old[1]["id"], result["token"]["id"]]


def test_destination_overwritten_by_someone_else_is_not_trusted(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    seed(emulator, motherduck_variables, None)
    first = execute(rotate(), emulator)
    motherduck_variables[KEY] = "mdt_" + "0" * 48  # not the secret the record fingerprinted
    result = execute(rotate(), emulator)
    assert result["created"] is True
    assert result["revoked_ids"] == [first["token"]["id"]]
    assert emulator.is_valid_token(motherduck_variables[KEY])


# -- faults while revoking -----------------------------------------------------------------------------


@pytest.mark.parametrize("failing", [0, 1])
@pytest.mark.parametrize("destination", ["variable", "sink"])
def test_failed_revoke_then_rerun_converges_without_a_second_token(
    emulator: MotherDuckEmulator,
    bot: str,
    motherduck_variables: InMemoryVariableStore,
    failing: int,
    destination: str,
    logged: Callable[[], str],
) -> None:
    sink = Vault() if destination == "sink" else None
    old = seed(emulator, motherduck_variables, sink)
    check = invariant(emulator, motherduck_variables, sink)
    stuck = old[failing]["id"]
    emulator.inject("DELETE", f"{TOKENS_PATH}/{stuck}", status=503, times=3)  # every retry too

    with pytest.raises(MotherDuckRotationError, match=f"still live: {stuck}") as info:
        execute(rotate(sink), emulator, check)
    check()
    err = info.value
    assert err.still_live == [stuck]
    assert err.summary["revoked_ids"] == [old[1 - failing]["id"]]  # the other one was still revoked
    assert "Re-run the task to finish" in str(err)
    new_id = err.summary["token"]["id"]
    assert sorted(t["id"] for t in family(emulator)) == sorted([stuck, new_id])
    secret = at_destination(motherduck_variables, sink)
    no_secret_in(str(err) + json.dumps(err.summary) + logged(), secret)

    # The retry of the same logical run finds its delivered token: no second token, just the revoke.
    result = execute(rotate(sink), emulator, check)
    check()
    assert result["created"] is False
    assert result["token"]["id"] == new_id
    assert (result["revoked_ids"], result["kept_ids"], result["still_live_ids"]) == ([stuck], [new_id], [])
    assert [t["id"] for t in family(emulator)] == [new_id]
    assert posts(emulator) == 1
    assert at_destination(motherduck_variables, sink) == secret


def test_a_token_revoked_meanwhile_by_someone_else_is_fine(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    old = seed(emulator, motherduck_variables, vault)
    # The DELETE reaches MotherDuck but its answer is lost; the retry then gets 404: gone already.
    emulator.inject("DELETE", f"{TOKENS_PATH}/{old[0]['id']}", status=503, after=True)
    result = execute(rotate(vault), emulator)
    assert result["revoked_ids"] == [old[0]["id"], old[1]["id"]]
    assert [t["id"] for t in family(emulator)] == [result["token"]["id"]]


# -- grace, expiry, dry run ------------------------------------------------------------------------------


def test_revoke_after_leaves_young_tokens_for_a_later_run(
    clocked: tuple[MotherDuckEmulator, Clock], motherduck_variables: InMemoryVariableStore
) -> None:
    emulator, clock = clocked
    clock.offset = -timedelta(days=10)
    ancient = emulator.add_token(USER, "airflow")
    clock.offset = -timedelta(hours=1)
    recent = emulator.add_token(USER, "airflow")
    clock.offset = timedelta()
    motherduck_variables[KEY] = recent["token"]

    result = execute(rotate(revoke_after="2 days"), emulator, invariant(emulator, motherduck_variables, None))
    assert result["revoked_ids"] == [ancient["id"]]
    assert result["in_grace_ids"] == [recent["id"]]
    assert result["kept_ids"] == [result["token"]["id"]]
    assert emulator.is_valid_token(recent["token"])

    # The next run, with a grace shorter than the recent token's age, revokes it; the grace now
    # protects the token made a moment ago by the first run.
    later = execute(
        rotate(revoke_after=timedelta(minutes=30)), emulator, ctx=context(MONDAY + timedelta(days=7))
    )
    assert later["revoked_ids"] == [recent["id"]]
    assert later["in_grace_ids"] == [result["token"]["id"]]


def test_expired_tokens_hold_no_keep_slot(
    clocked: tuple[MotherDuckEmulator, Clock], motherduck_variables: InMemoryVariableStore
) -> None:
    emulator, clock = clocked
    clock.offset = -timedelta(hours=1)
    live = emulator.add_token(USER, "airflow")
    dead = emulator.add_token(USER, "airflow", ttl=300)  # newer, but expired 55 minutes ago
    clock.offset = timedelta()
    motherduck_variables[KEY] = live["token"]

    result = execute(rotate(keep=2, revoke_after="1 day"), emulator)
    assert result["kept_ids"] == [result["token"]["id"], live["id"]]
    assert result["revoked_ids"] == [dead["id"]]  # grace or not: it works no more


def test_dry_run_reports_and_writes_nothing(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    old = seed(emulator, motherduck_variables, vault, n=3)
    before = emulator.tokens(USER)
    result = execute(rotate(vault, keep=2, dry_run=True), emulator)
    assert result == {
        "username": USER,
        "token_name": "airflow",
        "destination": "secret_sink Vault",
        "dry_run": True,
        "token": None,
        "created": True,
        "revoked_ids": [old[0]["id"], old[1]["id"]],
        "kept_ids": [old[2]["id"]],
        "in_grace_ids": [],
        "spared_ids": [],
        "still_live_ids": [],
    }
    assert {e.method for e in emulator.journal} == {"GET"}
    assert emulator.tokens(USER) == before
    assert (vault.calls, motherduck_variables.writes) == (0, [])

    # After a run that could not revoke, the dry run shows that the re-run would only revoke.
    emulator.inject("DELETE", f"{TOKENS_PATH}/{old[1]['id']}", status=503, times=3)
    with pytest.raises(MotherDuckRotationError):
        execute(rotate(vault, keep=2), emulator)
    emulator.clear_journal()
    plan = execute(rotate(vault, keep=2, dry_run=True), emulator)
    assert (plan["created"], plan["revoked_ids"]) == (False, [old[1]["id"]])
    assert plan["token"]["name"] == f"airflow@{MARKER}"
    assert {e.method for e in emulator.journal} == {"GET"}


def test_plan_with_unreadable_creation_times() -> None:
    """An unreadable created_ts sorts as the oldest, and never counts as older than the grace."""
    now = datetime.now(timezone.utc)
    tokens = [
        {"id": "a", "name": "airflow", "created_ts": "yesterday-ish"},
        {"id": "b", "name": "airflow", "created_ts": (now - timedelta(days=3)).isoformat()},
        {"id": "c", "name": "airflow", "created_ts": (now - timedelta(days=9)).isoformat()},
        {"id": "d", "name": "airflow@20250106T000000Z", "created_ts": now.isoformat()},  # this run's orphan
    ]
    ids = lambda found: [t["id"] for t in found]  # noqa: E731
    graced = plan_rotation(tokens, None, "airflow@20250106T000000Z", keep=2, revoke_after=86400.0, now=now)
    assert (ids(graced.kept), ids(graced.in_grace), ids(graced.revoke)) == (["b"], ["d", "a"], ["c"])
    plain = plan_rotation(tokens, None, "airflow@20250106T000000Z", keep=2, revoke_after=None, now=now)
    assert (ids(plain.kept), ids(plain.revoke)) == (["b"], ["d", "a", "c"])


# -- run marker ------------------------------------------------------------------------------------------


def test_run_marker_forms() -> None:
    assert run_marker({"logical_date": MONDAY}) == MARKER
    with_micro = datetime(2025, 1, 6, 12, 30, 1, 5, tzinfo=timezone(timedelta(hours=2)))
    assert run_marker({"logical_date": with_micro}) == "20250106T103001.000005Z"  # in UTC
    by_run_id = run_marker({"logical_date": None, "run_id": "manual__2025-01-06T10:00:00+00:00_a1B2c3D4"})
    assert by_run_id.startswith("run-")
    assert len(by_run_id) == 20
    assert by_run_id == run_marker({"run_id": "manual__2025-01-06T10:00:00+00:00_a1B2c3D4"})
    assert by_run_id != run_marker({"run_id": "manual__2025-01-06T10:00:00+00:00_zzzzzzzz"})
    with pytest.raises(MotherDuckError, match="neither a logical date nor a run_id"):
        run_marker({"params": {}})


def test_longest_names_fit_motherduck() -> None:
    longest = rotated_name("n" * TOKEN_NAME_MAX, "20250106T103001.000005Z")
    assert len(longest) == TOKEN_NAME_MAX_LENGTH
    pattern = name_pattern("air.flow")
    assert pattern.fullmatch("air.flow")
    assert pattern.fullmatch("air.flow@20250106T000000Z")
    assert pattern.fullmatch("air.flow@run-0123456789abcdef")
    for other in ("airXflow", "air.flow@prod", "air.flow@20250106", "air.flow@run-xyz", "air.flow2"):
        assert not pattern.fullmatch(other), other


def test_runs_without_a_logical_date_use_the_run_id(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, vault: Vault
) -> None:
    ctx = context(None, run_id="manual__2025-01-06T10:00:00+00:00_a1B2c3D4")
    first = execute(rotate(vault), emulator, ctx=ctx)
    assert first["token"]["name"].startswith("airflow@run-")
    again = execute(rotate(vault), emulator, ctx=ctx)
    assert again["created"] is False
    assert posts(emulator) == 1


def test_no_run_identity_fails_before_any_request(
    emulator: MotherDuckEmulator, bot: str, vault: Vault
) -> None:
    op = rotate(vault)
    with pytest.raises(MotherDuckError, match="neither a logical date nor a run_id"):
        op.execute(cast(Context, {"params": {}}))
    assert emulator.journal == []


# -- arguments ---------------------------------------------------------------------------------------------


def _sink(secret: str) -> None:
    pass


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"variable_key": KEY, "secret_sink": _sink, "record_key": "r"}, "exactly one destination"),
        ({}, "exactly one destination"),
        ({"secret_sink": "vault"}, "secret_sink='vault' is invalid: expected a callable"),
        ({"variable_key": KEY, "keep": 0}, "keep=0 is invalid"),
        ({"variable_key": KEY, "keep": True}, "keep=True is invalid"),
        ({"variable_key": KEY, "keep": "2"}, "keep='2' is invalid"),
        ({"variable_key": KEY, "revoke_after": "soon"}, "revoke_after='soon' is invalid"),
        ({"variable_key": KEY, "revoke_after": -60}, "revoke_after=-60 is invalid"),
        ({"variable_key": KEY, "revoke_after": "never"}, "revoke_after='never' is invalid"),
        (
            {"variable_key": KEY, "token_name": "n" * (TOKEN_NAME_MAX + 1)},
            "leaving no room for the run marker",
        ),
        ({"variable_key": KEY, "token_name": ""}, "token_name=''"),
        ({"variable_key": " padded"}, "variable_key=' padded'"),
        ({"variable_key": KEY, "record_key": KEY}, "the record would overwrite the secret"),
        ({"variable_key": KEY, "dry_run": "no"}, "dry_run='no' is invalid"),
        ({"variable_key": KEY, "ttl": "1 minute"}, "ttl='1 minute'"),
        ({"variable_key": KEY, "token_type": "admin"}, "token_type='admin'"),
        ({"variable_key": KEY, "username": "etl_bot "}, "username='etl_bot '"),
    ],
)
def test_bad_literal_fails_at_parse_time(kwargs: dict[str, Any], named: str) -> None:
    args = {"username": USER, "token_name": "airflow", "ttl": "35 days", **kwargs}
    with pytest.raises(ValueError, match="MotherDuckRotateTokenOperator 'rotate'") as info:
        MotherDuckRotateTokenOperator(task_id="rotate", **args)
    assert named in str(info.value)


def test_good_literals_are_accepted() -> None:
    op = MotherDuckRotateTokenOperator(
        task_id="rotate",
        username=USER,
        token_name="n" * TOKEN_NAME_MAX,
        ttl=timedelta(days=35),
        variable_key="k" * 240,
        keep=3,
        revoke_after=3600,
    )
    assert op.plan_only is False
    if AIRFLOW_V_3_1 or not AIRFLOW_V_3:  # Airflow 3.0's BaseOperator has no dry_run()
        assert callable(op.dry_run)  # BaseOperator.dry_run() is not shadowed


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("username", "etl_bot\t"),
        ("token_name", "n" * 300),
        ("ttl", "1 minute"),
        ("revoke_after", "soon"),
        ("variable_key", " padded"),
        ("record_key", KEY),
    ],
)
def test_templated_values_are_checked_after_rendering(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore, field: str, bad: str
) -> None:
    op = rotate(**{field: "{{ params.value }}"})  # accepted at parse time
    ctx = context()
    ctx["params"] = {"value": bad}
    op.render_template_fields(ctx)
    with pytest.raises(ValueError, match=f"{field}="):
        op.execute(ctx)
    assert emulator.journal == []
    assert motherduck_variables.writes == []


def test_templated_fields_render(
    emulator: MotherDuckEmulator, bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    op = rotate(
        username="{{ params.user }}",
        token_name="airflow-{{ params.env }}",
        ttl="{{ params.days }} days",
        variable_key="md_{{ params.user }}",
        revoke_after="{{ params.grace }}",
    )
    ctx = context()
    ctx["params"] = {"user": USER, "env": "prod", "days": 35, "grace": "PT1H"}
    result = execute(op, emulator, ctx=ctx)
    assert result["token"]["name"] == f"airflow-prod@{MARKER}"
    assert emulator.journal[1].body["ttl"] == 35 * 86400
    assert "md_etl_bot" in motherduck_variables
    assert default_record_key(variable_key="md_etl_bot") in motherduck_variables


def test_error_survives_pickling() -> None:
    import pickle

    err = MotherDuckRotationError("boom", {"still_live_ids": ["a"], "revoked_ids": []})
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.still_live, back.summary) == ("boom", ["a"], err.summary)


@pytest.mark.skipif(not AIRFLOW_V_3, reason="outside a task, Variables need the metadata database on 2.11")
def test_real_variable_store_failing_outside_a_task(emulator: MotherDuckEmulator, bot: str) -> None:
    """Airflow 3's real Variables need the task runner: outside it, the rotation stops before any write."""
    old = [emulator.add_token(USER, "airflow") for _ in range(2)]
    with pytest.raises(ImportError, match="SUPERVISOR_COMMS"):
        execute(rotate(), emulator)
    assert writes_seen(emulator) == []
    assert [t["id"] for t in family(emulator)] == [t["id"] for t in old]
    assert all(emulator.is_valid_token(t["token"]) for t in old)


@pytest.mark.parametrize(
    ("key", "nth"),
    [(RECORD, 2), (KEY, 1)],
    ids=["A noted its token, about to deliver", "A delivered, about to revoke"],
)
def test_rotation_beside_rotation_never_stores_a_revoked_secret(
    emulator: MotherDuckEmulator,
    bot: str,
    motherduck_variables: InMemoryVariableStore,
    key: str,
    nth: int,
) -> None:
    """Two runs of one rotation overlap (a scheduled run and a manual one): B runs whole while A
    is paused. Neither revokes the other's new token, the Variable holds a live secret after
    each, and the next run leaves exactly one token, the one in the Variable."""

    def run_of(day: int) -> Context:
        ctx = context(MONDAY + timedelta(days=day))
        ti = SimpleNamespace(dag_id="md", task_id="rotate", map_index=-1, run_id=ctx["run_id"], try_number=1)
        return cast(Context, {**ctx, "ti": ti})

    seed(emulator, motherduck_variables, None)
    pause = PauseOnWrite(motherduck_variables, key, nth)
    use_variable_store(pause)
    check = invariant(emulator, motherduck_variables, None)
    run_a = in_thread(lambda: execute_off_the_main_thread(rotate(), run_of(0)))
    assert pause.reached.wait(10)
    b = execute(rotate(), emulator, check, run_of(1))
    pause.resume()
    a = run_a()
    check()

    a_id, b_id = a["token"]["id"], b["token"]["id"]
    assert a_id in b["spared_ids"]  # B left A's token alone while A was delivering it
    assert {a_id, b_id} <= {t["id"] for t in family(emulator)}
    assert b_id not in a["revoked_ids"]

    later = execute(rotate(), emulator, check, run_of(2))
    assert [t["id"] for t in family(emulator)] == [later["token"]["id"]]
    assert emulator.is_valid_token(motherduck_variables[KEY])
    assert sorted(later["revoked_ids"]) == sorted([a_id, b_id])
