"""A deadline per attempt: connecting and reading the whole answer end within the hook's ``timeout``.

``requests`` applies its timeout to each socket operation, so a server that trickles a byte now
and then holds a call for as long as it likes. Here every connection the session opens belongs
to a pool class whose connections register with one watchdog thread per process while an
attempt is under way; when the attempt's deadline passes, the watchdog shuts the connection's
socket down, which ends any read blocked on it at once. The attempt then reports a read timeout
(see :func:`~airflow_provider_motherduck.hooks.transport.send`).

Invariant: no attempt holds its thread longer than its ``timeout`` plus the watchdog's reaction
(a thread switch), whatever the server sends and however slowly.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import suppress
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

# requests and urllib3 are imported when the first session is made (see transport.py).


class Attempt:
    """One attempt's deadline and whether the watchdog had to cut it."""

    __slots__ = ("_connections", "_done", "deadline", "expired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._connections: list[Any] = []
        self._done = False


_local = threading.local()


class _Watchdog:
    """One daemon thread that cuts the connections of attempts still running at their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Attempt]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, attempt: Attempt, connection: Any) -> None:
        with self._cond:
            if attempt._done or connection in attempt._connections:
                return
            attempt._connections.append(connection)
            if len(attempt._connections) > 1:
                return  # already in the heap
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (attempt.deadline, next(self._order), attempt))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="motherduck-deadlines", daemon=True)
                self._thread.start()
            elif earliest is None or attempt.deadline < earliest:
                self._cond.notify()

    def release(self, attempt: Attempt) -> None:
        with self._cond:  # under the lock: a connection back in the pool is never cut for this attempt
            attempt._done = True

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2]._done or self._heap[0][0] <= now):
                    attempt = heapq.heappop(self._heap)[2]
                    if not attempt._done:
                        attempt.expired = True
                        for connection in attempt._connections:
                            _cut(connection)
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


def _cut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with suppress(OSError):
            # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop its TLS
            # state while the reading thread is still inside it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


_watchdog = _Watchdog()


def start(timeout: float) -> Attempt:
    """Begin an attempt on this thread: connections used until :func:`finish` are cut at the deadline."""
    attempt = Attempt(time.monotonic() + timeout)
    _local.attempt = attempt
    return attempt


def finish(attempt: Attempt) -> None:
    """End the attempt: its connections are no longer watched."""
    _local.attempt = None
    _watchdog.release(attempt)


def _watched(connection: Any) -> None:
    attempt = getattr(_local, "attempt", None)
    if attempt is not None:
        _watchdog.watch(attempt, connection)


@cache
def _pool_classes() -> dict[str, type]:
    """HTTP and HTTPS connection pools whose connections are watched while they connect or send."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(base: Any) -> type:
        def connect(self: Any) -> None:
            _watched(self)
            base.connect(self)

        def request(self: Any, *args: Any, **kwargs: Any) -> None:
            _watched(self)
            base.request(self, *args, **kwargs)

        return type(f"Watched{base.__name__}", (base,), {"connect": connect, "request": request})

    http = type(
        "WatchedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": watched(HTTPConnection)}
    )
    https = type(
        "WatchedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": watched(HTTPSConnection)}
    )
    return {"http": http, "https": https}


@cache
def _adapter_class() -> type:
    from requests.adapters import HTTPAdapter

    pools = _pool_classes()

    class DeadlineAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):
                manager.pool_classes_by_scheme = pools
            return manager

    return DeadlineAdapter


def mount(session: requests.Session) -> None:
    """Make every connection of ``session`` (through an HTTP(S) proxy too) obey the attempt's deadline.

    A SOCKS proxy's connections keep ``requests``' per-read timeout only.
    """
    adapter = _adapter_class()()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
