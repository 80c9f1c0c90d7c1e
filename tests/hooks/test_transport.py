"""One exchange (hooks/transport.py): redirects never followed, request bodies strict JSON.

Over real HTTP: a small raw server answers with a redirect to a second one, which counts what
reaches it (nothing may).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.transport import encode
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.hooks.raw_server import RawServer
from tests.support import CONN_ENV, FakeSleep, connection_json

ADMIN = "mdt_transport_admin_0123456789"
NEVER_CALLED: list[bytes] = []


def redirect(status: int, location: str) -> Callable[[socket.socket], None]:
    def reply(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())

    return reply


CALLS: dict[str, Callable[[MotherDuckHook], object]] = {
    "GET": lambda hook: hook.list_tokens("etl_bot"),
    "PUT": lambda hook: hook.set_duckling_config(
        "etl_bot",
        {
            "read_write": {"instance_size": "jumbo"},
            "read_scaling": {"instance_size": "pulse", "flock_size": 1},
        },
    ),
    "DELETE": lambda hook: hook.delete_user("etl_bot"),
    "POST": lambda hook: hook.create_token("etl_bot", "nightly"),
}


@pytest.mark.parametrize("status", [301, 307, 308])
@pytest.mark.parametrize("method", list(CALLS))
def test_a_redirect_is_an_error_never_followed_nor_retried(
    method: str, status: int, monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    with RawServer(lambda conn: None) as elsewhere:
        target = f"{elsewhere.url}/v1/users/someone_else/tokens?token=x"
        with RawServer(redirect(status, target)) as server:
            monkeypatch.setenv(CONN_ENV, connection_json(server.url, ADMIN))
            hook = MotherDuckHook(sleep=fake_sleep)
            with pytest.raises(MotherDuckAPIError) as info:
                CALLS[method](hook)
            hook.close()
            assert len(server.requests) == 1
        assert elsewhere.requests == []  # nothing replayed anywhere
    message = str(info.value)
    assert f"(HTTP {status})" in message
    assert "redirected to the host '127.0.0.1'" in message
    assert "redirects are never followed" in message
    assert "connection 'motherduck_default'" in message
    assert "someone_else" not in message  # only the host is named
    assert "token=x" not in message
    assert fake_sleep.waits == []
    assert info.value.maybe_carried_out is False


def test_a_redirect_to_another_origin_names_its_host(
    monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    with RawServer(redirect(302, "https://login.example.net/sso?next=/v1")) as server:
        monkeypatch.setenv(CONN_ENV, connection_json(server.url, ADMIN))
        with pytest.raises(MotherDuckAPIError, match=r"redirected to the host 'login\.example\.net'"):
            MotherDuckHook(sleep=fake_sleep).list_active_accounts()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_in_a_body_is_refused_before_sending(
    value: float, hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    emulator.add_user("etl_bot")
    emulator.clear_journal()
    with pytest.raises(
        ValueError, match=r"^initial_state \(a dict.* is invalid: not JSON \(Out of range float"
    ):
        hook.create_dive_embed_session("dive-1", "etl_bot", initial_state={"filters": {"low": value}})
    assert emulator.journal == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"config": {"low": math.nan}}, r"^config\.low=nan is invalid: NaN and infinity are not JSON"),
        ({"rows": [1, {2}]}, r"^rows\[1\] \(a set, not shown.*\) is invalid: a set is not JSON"),
        ({"a": {("x",): 1}}, r"^a key \(a tuple"),
    ],
)
def test_encode_names_the_part_json_cannot_carry(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode(body)


def test_encode_is_strict_compact_json() -> None:
    assert encode({"name": "nightly", "ttl": 300}) == b'{"name":"nightly","ttl":300}'
