"""The deadline of one attempt (hooks/deadline.py, through the hook): over real HTTP to a server that
trickles its answer a byte at a time, each byte well within any per-read timeout.

Nothing here asserts how long anything took: a trickled answer that would arrive whole (and be a
valid answer) must instead end in a timeout, with the server seeing the client hang up.
"""

from __future__ import annotations

import time

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from tests.hooks.raw_server import RawServer, Trickle
from tests.support import CONN_ENV, FakeSleep, connection_json

ADMIN = "mdt_deadline_admin_0123456789"
BODY = b'{"accounts": []}' + b" " * 150  # valid JSON: taken whole, the call would succeed
TIMEOUT = 0.3  # far below the trickle's length (about 4 s), far above each byte's 0.02 s
INTERVAL = 0.02


@pytest.fixture
def trickle() -> Trickle:
    return Trickle.json(BODY, INTERVAL)


def _hook(
    server: RawServer, monkeypatch: pytest.MonkeyPatch, sleep: FakeSleep, **params: float
) -> MotherDuckHook:
    monkeypatch.setenv(CONN_ENV, connection_json(server.url, ADMIN))
    return MotherDuckHook(timeout=TIMEOUT, retry_delay=0.01, sleep=sleep, **params)  # type: ignore[arg-type]


def test_a_trickled_answer_ends_at_the_deadline(
    trickle: Trickle, monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    with RawServer(trickle) as server:
        hook = _hook(server, monkeypatch, fake_sleep, retry_limit=0)
        with pytest.raises(MotherDuckAPIError) as info:
            hook.list_active_accounts()
        hook.close()
    assert f"no answer within the timeout of {TIMEOUT:g} s (ReadTimeout)" in str(info.value)
    assert trickle.cut == 1
    assert info.value.maybe_carried_out is False


def test_trickled_headers_end_at_the_deadline_too(
    monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    slow_head = Trickle(b"HTTP/1.1 200 OK\r\n" + b"X-Padding: x\r\n" * 20 + b"\r\n", INTERVAL)
    with RawServer(slow_head) as server:
        hook = _hook(server, monkeypatch, fake_sleep, retry_limit=0)
        with pytest.raises(MotherDuckAPIError, match="no answer within the timeout"):
            hook.list_active_accounts()
        hook.close()
    assert slow_head.cut == 1


def test_every_attempt_has_its_own_deadline_and_the_call_a_bound(
    trickle: Trickle, monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    with RawServer(trickle) as server:
        hook = _hook(server, monkeypatch, fake_sleep, retry_limit=2, max_retry_wait=0.05)
        with pytest.raises(MotherDuckAPIError, match="ReadTimeout, 3 attempts"):
            hook.list_active_accounts()
        hook.close()
        assert len(server.requests) == 3
    assert trickle.cut == 3
    assert hook.longest_call == 3 * TIMEOUT + 2 * 0.05
    assert sum(fake_sleep.waits) <= 2 * hook.max_retry_wait


def test_a_trickled_post_is_not_repeated(
    trickle: Trickle, monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    with RawServer(trickle) as server:
        hook = _hook(server, monkeypatch, fake_sleep)
        with pytest.raises(MotherDuckAPIError) as info:
            hook.create_user("etl_new")
        hook.close()
        assert len(server.requests) == 1
    assert info.value.maybe_carried_out is True
    assert fake_sleep.waits == []


def test_a_connection_is_reused_after_a_call_that_met_its_deadline(
    monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    """An attempt that ended in time leaves its keep-alive connection for the next one, uncut (a cut
    one would fail the next call, and the retry would show as a wait)."""
    from airflow_provider_motherduck.testing import MotherDuckEmulator

    with MotherDuckEmulator() as emulator:
        monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, emulator.admin_token))
        hook = MotherDuckHook(timeout=TIMEOUT, sleep=fake_sleep)
        for _ in range(2):
            assert hook.list_active_accounts() == []
            time.sleep(TIMEOUT * 1.2)  # past the deadline of the attempt that is over
        hook.close()
    assert fake_sleep.waits == []
