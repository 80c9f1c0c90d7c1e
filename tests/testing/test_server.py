"""The emulator's HTTP side (testing/server.py) on a hostile network, over raw sockets.

Every malformed request gets an answer in MotherDuck's error shape (400, or 413, 431, 501) and a
closed connection, never a silent drop or a server-side traceback; idle connections are closed;
connections past the limit get a 503 without a thread; an IPv6 loopback address serves.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.testing.server import REQUEST_LIMIT
from tests.support import CONN_ENV, connection_json
from tests.testing.support import serve, wait_for_info


def _address(md: MotherDuckEmulator) -> tuple[str, int]:
    host, _, port = md.url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


def _exchange(md: MotherDuckEmulator, data: bytes) -> bytes:
    """Send raw bytes; everything the server sends until it closes (bounded by a socket timeout)."""
    received = b""
    with socket.create_connection(_address(md), timeout=5) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _error(received: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert b"Content-Type: application/json" in head
    payload: dict[str, Any] = json.loads(body)
    assert set(payload) >= {"code", "message", "data"}
    return int(head.split(b" ", 2)[1]), payload


REQUEST = b"POST /v1/users HTTP/1.1\r\nHost: md\r\nContent-Type: application/json\r\n"
MALFORMED = [
    pytest.param(REQUEST + b"Content-Length: abc\r\n\r\nzz", 400, "BAD_REQUEST", id="length-not-a-number"),
    pytest.param(REQUEST + b"Content-Length: -5\r\n\r\nzz", 400, "BAD_REQUEST", id="length-negative"),
    pytest.param(
        REQUEST + b"Content-Length: 1125899906842624\r\n\r\n{}", 413, "PAYLOAD_TOO_LARGE", id="length-2**50"
    ),
    pytest.param(
        REQUEST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "BAD_REQUEST", id="chunk-not-hex"
    ),
    pytest.param(
        REQUEST + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (REQUEST_LIMIT + 1),
        413,
        "PAYLOAD_TOO_LARGE",
        id="chunk-too-large",
    ),
    pytest.param(
        REQUEST + b"X-Big: " + b"h" * 70_000 + b"\r\n\r\n",
        431,
        "REQUEST_HEADER_FIELDS_TOO_LARGE",
        id="header-line",
    ),
    pytest.param(
        REQUEST + b"X-H: h\r\n" * 101 + b"\r\n", 431, "REQUEST_HEADER_FIELDS_TOO_LARGE", id="headers-many"
    ),
    pytest.param(b"GARBAGE\r\n\r\n", 400, "BAD_REQUEST", id="request-line"),
    pytest.param(
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "REQUEST_URI_TOO_LONG", id="uri-too-long"
    ),
    pytest.param(b"BREW /v1/users HTTP/1.1\r\nHost: md\r\n\r\n", 501, "NOT_IMPLEMENTED", id="method"),
    pytest.param(
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 400, "BAD_REQUEST", id="tls-hello"
    ),
]


@pytest.mark.parametrize(("data", "status", "code"), MALFORMED)
def test_a_malformed_request_gets_motherducks_error_shape_and_a_close(
    md: MotherDuckEmulator, data: bytes, status: int, code: str
) -> None:
    got, payload = _error(_exchange(md, data))
    assert (got, payload["code"], payload["data"]["httpStatus"]) == (status, code, status)
    assert md.users() == ["admin", "etl_bot"]


def test_a_deeply_nested_body_is_a_400_without_a_traceback(
    md: MotherDuckEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    auth = f"Authorization: Bearer {md.admin_token}\r\n".encode()
    received = _exchange(
        md, REQUEST + auth + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    assert received.startswith(b"HTTP/1.1 400 ")
    assert json.loads(received.partition(b"\r\n\r\n")[2])["message"] == "The request body is not valid JSON"
    assert "Traceback" not in capfd.readouterr().err


def test_an_idle_connection_is_closed_after_the_idle_timeout(
    start: Callable[..., MotherDuckEmulator],
) -> None:
    md = start(idle_timeout=0.2)
    with socket.create_connection(_address(md), timeout=5) as sock:
        assert sock.recv(1) == b""  # closed by the server, well before the socket's own timeout


def test_connections_past_the_limit_get_a_503_and_the_server_recovers(
    start: Callable[..., MotherDuckEmulator],
) -> None:
    md = start(max_connections=3)
    idle = [socket.create_connection(_address(md), timeout=5) for _ in range(3)]
    try:
        for sock in idle:  # each has its thread: one exchange proves it is served
            sock.sendall(b"GET /v1/nowhere HTTP/1.1\r\nHost: md\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 404 ")
        status, payload = _error(_exchange(md, b"GET /v1/active_accounts HTTP/1.1\r\nHost: md\r\n\r\n"))
        assert (status, payload["code"]) == (503, "SERVICE_UNAVAILABLE")
    finally:
        for sock in idle:
            sock.close()
    # The closed connections' threads notice the close on their own: a bounded wait for a free slot.
    deadline = time.monotonic() + 10
    request = b"GET /v1/nowhere HTTP/1.1\r\nHost: md\r\nConnection: close\r\n\r\n"
    while (received := _exchange(md, request)).startswith(b"HTTP/1.1 503 "):
        assert time.monotonic() < deadline, "the server never freed a slot"
        time.sleep(0.02)
    assert received.startswith(b"HTTP/1.1 404 ")


def test_an_ipv6_loopback_emulator_serves_the_hook(
    start: Callable[..., MotherDuckEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    md = start(host="::1")
    assert md.url.startswith("http://[::1]:")
    monkeypatch.setenv(CONN_ENV, connection_json(md.url, md.admin_token))
    assert MotherDuckHook().list_active_accounts() == []


def test_serve_binds_the_ipv6_loopback(tmp_path: Path) -> None:
    info_file = tmp_path / "emulator.json"
    process = serve("--host", "::1", "--info-file", str(info_file))
    try:
        info = wait_for_info(process, info_file)
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert info["url"].startswith("http://[::1]:")
    assert process.returncode == 0
