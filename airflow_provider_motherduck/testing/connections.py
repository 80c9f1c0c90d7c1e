"""What the emulator's two servers (HTTP and Postgres) share: tracked connections, a serving thread."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from typing import Any


class TrackedConnections(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threading TCP server that can cut its open connections and ignores clients hanging up.

    ``quiet_errors`` are the exceptions of a connection that are not worth a traceback.
    """

    daemon_threads = True
    quiet_errors: tuple[type[BaseException], ...] = (ConnectionError,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection so ``close_connections`` can end it."""
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (idle keep-alive ones included)."""
        with self._open_lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up; report anything else."""
        if not isinstance(sys.exc_info()[1], self.quiet_errors):
            super().handle_error(request, client_address)


def serve_in_thread(server: socketserver.BaseServer, name: str) -> threading.Thread:
    """Start ``server.serve_forever`` in a daemon thread."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=name, daemon=True
    )
    thread.start()
    return thread


def stop_serving(server: TrackedConnections, thread: threading.Thread) -> None:
    """Stop serving, cut open connections, release the port and wait for the thread."""
    server.shutdown()
    server.close_connections()
    server.server_close()
    thread.join()
