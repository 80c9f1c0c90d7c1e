"""A tiny TCP server for the few faults the emulator cannot play: a TCP reset, a chunked answer,
an answer trickled a byte at a time.

Each connection's request is read (head and body), counted, and handed to ``reply``, which
writes whatever bytes it likes (or resets the connection); the connection is then closed.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType

Reply = Callable[[socket.socket], None]


def reset(conn: socket.socket) -> None:
    """Abort the connection with a TCP reset (RST), not an orderly close."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def chunked(total: int, chunk: int = 2**20) -> Reply:
    """A 200 JSON answer of ``total`` bytes in chunks, with no Content-Length: only streaming can cap it."""

    def reply(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        with contextlib.suppress(OSError):  # the client may hang up once it has read enough
            while sent < total:
                size = min(chunk, total - sent)
                conn.sendall(b"%x\r\n" % size + b" " * size + b"\r\n")
                sent += size
            conn.sendall(b"0\r\n\r\n")

    return reply


class Trickle:
    """A whole HTTP answer (``data``: status line, headers, body), sent one byte every ``interval`` s.

    Each byte arrives well within any per-read timeout; ``cut`` counts the answers the client hung
    up on before their last byte.
    """

    def __init__(self, data: bytes, interval: float) -> None:
        self.data = data
        self.interval = interval
        self.cut = 0

    @classmethod
    def json(cls, body: bytes, interval: float, status: str = "200 OK") -> Trickle:
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return cls(head.encode() + body, interval)

    def __call__(self, conn: socket.socket) -> None:
        try:
            for i in range(len(self.data)):
                conn.sendall(self.data[i : i + 1])
                time.sleep(self.interval)
        except OSError:
            self.cut += 1


class RawServer:
    """Listens on 127.0.0.1 while in a ``with`` block; ``requests`` counts the requests read."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.requests: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                self.requests.append(_read_request(conn))
                self._reply(conn)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head
