"""Every fault of tests/hooks/fault_matrix.py against every endpoint of the hook, over real HTTP.

For each case: the exception class (or success), how often and how long it retried, that the
message says what to do, that the emulator's journal and state show no repeated POST, and that
no secret appears in the message, the ``repr`` or the logs. The docs' reliability page renders
the same cases.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import fingerprint
from tests.hooks.fault_matrix import FAULTS, POST_NOT_REPEATED, SECRET_IN_GARBAGE, Fault, expected, rst_table
from tests.support import CONN_ENV, FakeSleep, connection_json

USER = "etl_bot"
RETRY_DELAY = 0.01
JUMBO = {
    "read_write": {"instance_size": "jumbo", "cooldown_seconds": 600},
    "read_scaling": {"instance_size": "pulse", "flock_size": 2},
}


@dataclass(frozen=True)
class Seed:
    """What each case starts from: USER with one token."""

    token_id: str
    secret: str


@dataclass(frozen=True)
class Endpoint:
    """One hook method, the request it makes, and (for a write) how often its effect is there."""

    name: str
    method: str
    path: str
    call: Callable[[MotherDuckHook, Seed], object]
    done: Callable[[MotherDuckEmulator, Seed], int] | None = None
    if_maybe_done: str = ""


ENDPOINTS = (
    Endpoint(
        "create_user",
        "POST",
        "/v1/users",
        lambda hook, seed: hook.create_user("etl_new"),
        lambda emu, seed: emu.users().count("etl_new"),
        "the user 'etl_new' may have been created",
    ),
    Endpoint(
        "delete_user",
        "DELETE",
        f"/v1/users/{USER}",
        lambda hook, seed: hook.delete_user(USER),
        lambda emu, seed: int(USER not in emu.users()),
    ),
    Endpoint(
        "create_token",
        "POST",
        f"/v1/users/{USER}/tokens",
        lambda hook, seed: hook.create_token(USER, "nightly"),
        lambda emu, seed: [t["name"] for t in emu.tokens(USER)].count("nightly"),
        f"list the tokens of '{USER}' and look for one named 'nightly'",
    ),
    Endpoint("list_tokens", "GET", f"/v1/users/{USER}/tokens", lambda hook, seed: hook.list_tokens(USER)),
    Endpoint(
        "revoke_token",
        "DELETE",
        f"/v1/users/{USER}/tokens/{{token_id}}",
        lambda hook, seed: hook.revoke_token(USER, seed.token_id),
        lambda emu, seed: int(seed.token_id not in [t["id"] for t in emu.tokens(USER)]),
    ),
    Endpoint(
        "get_duckling_config",
        "GET",
        f"/v1/users/{USER}/instances",
        lambda hook, seed: hook.get_duckling_config(USER),
    ),
    Endpoint(
        "set_duckling_config",
        "PUT",
        f"/v1/users/{USER}/instances",
        lambda hook, seed: hook.set_duckling_config(USER, JUMBO),
        lambda emu, seed: int(emu.duckling_config(USER) == JUMBO),
    ),
    Endpoint(
        "list_active_accounts", "GET", "/v1/active_accounts", lambda hook, seed: hook.list_active_accounts()
    ),
    Endpoint("list_users", "GET", "/v1/users", lambda hook, seed: hook.list_users()),
    Endpoint(
        "create_dive_embed_session",
        "POST",
        "/v1/dives/dive-1/embed-session",
        lambda hook, seed: hook.create_dive_embed_session("dive-1", USER),
        lambda emu, seed: len(emu.embed_sessions()),
        "a session may have been issued",
    ),
)


def test_the_matrix_covers_every_method_and_the_docs_render_it() -> None:
    assert {e.method for e in ENDPOINTS} == {"GET", "PUT", "DELETE", "POST"}
    table = rst_table()
    assert table[0] == ".. list-table::"
    assert sum(line.startswith("   * - ") for line in table) == len(FAULTS) + 1  # header + one row each


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _retry_after(fault: Fault) -> str | None:
    if isinstance(fault.retry_after, timedelta):
        return format_datetime(datetime.now(timezone.utc) + fault.retry_after, usegmt=True)
    return fault.retry_after


def _wait_for_the_slow_answer(emulator: MotherDuckEmulator, method: str, path: str) -> None:
    """The emulator journals a slow request when it finally drops it: wait for that (bounded)."""
    deadline = time.monotonic() + 10
    while not any(
        e.fault and (e.method, e.path.partition("?")[0]) == (method, path) for e in emulator.journal
    ):
        assert time.monotonic() < deadline, "the emulator never finished the slow request"
        time.sleep(0.01)


def _check_waits(
    fault: Fault, waits: list[float], started: datetime, finished: datetime, header: str | None
) -> None:
    for attempt, wait in enumerate(waits, start=1):
        if fault.wait == "backoff":
            ceiling = RETRY_DELAY * 2 ** (attempt - 1)
            assert ceiling / 2 <= wait <= ceiling
        elif fault.wait == "date":
            assert header is not None
            target = datetime.strptime(header, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
            assert (target - finished).total_seconds() - 0.01 <= wait <= (target - started).total_seconds()
        else:
            assert wait == fault.wait


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.key)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_fault(
    endpoint: Endpoint,
    fault: Fault,
    emulator: MotherDuckEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.add_user(USER)
    created = emulator.add_token(USER, "old")
    seed = Seed(created["id"], created["token"])
    fingerprint(seed.secret)  # known to this process, as a delivered token is: an echo of it is blanked
    duty = expected(fault, endpoint.method)
    path = endpoint.path.format(token_id=seed.token_id)
    url = emulator.url if fault.inject is not None else f"http://127.0.0.1:{_unused_port()}"
    monkeypatch.setenv(CONN_ENV, connection_json(url, emulator.admin_token))
    header = _retry_after(fault)
    if fault.inject is not None:
        emulator.inject(endpoint.method, path, **fault.inject, **({"retry_after": header} if header else {}))
    emulator.clear_journal()
    sleep = FakeSleep()
    hook = MotherDuckHook(timeout=fault.timeout, retry_delay=RETRY_DELAY, sleep=sleep)

    error: MotherDuckAPIError | None = None
    result: object = None
    started = datetime.now(timezone.utc)
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_motherduck"):
        try:
            result = endpoint.call(hook, seed)
        except MotherDuckAPIError as err:
            error = err
    finished = datetime.now(timezone.utc)
    hook.close()
    if fault.slow:
        _wait_for_the_slow_answer(emulator, endpoint.method, path)

    # The outcome, and how often and how long it retried.
    assert type(error) is (duty.error or type(None)), error
    assert len(sleep.waits) == duty.retries
    _check_waits(fault, sleep.waits, started, finished, header)
    seen = [e for e in emulator.journal if (e.method, e.path.partition("?")[0]) == (endpoint.method, path)]
    assert len(seen) == (0 if fault.inject is None else 1 + duty.retries)  # no POST repeated

    # The state: the write done exactly as often as expected (a repeated POST would show).
    if endpoint.done is not None:
        assert endpoint.done(emulator, seed) == int(bool(duty.done))

    # What the message says.
    if error is not None:
        message = str(error)
        assert error.maybe_carried_out is duty.maybe_carried_out
        assert fault.says in message
        if duty.maybe_carried_out and endpoint.method == "POST":
            assert POST_NOT_REPEATED in message
            assert endpoint.if_maybe_done in message
        assert (error.method, error.path.partition("?")[0]) == (endpoint.method, path)

    # No secret anywhere (every one the emulator issued, lost answers included): message, repr,
    # logs; a secret the hook received is masked.
    secrets = [issued["secret"] for issued in emulator.issued_secrets()] + [SECRET_IN_GARBAGE]
    assert emulator.admin_token in secrets
    assert seed.secret in secrets
    for name in ("token", "session"):
        if isinstance(result, dict) and name in result:
            assert redact(result[name]) == "***"
    shown = "\n".join([str(error), repr(error), repr(hook), *(r.getMessage() for r in caplog.records)])
    assert not [s for s in secrets if s in shown]
