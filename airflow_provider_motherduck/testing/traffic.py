"""What the emulator saw (the journal) and what it will do wrong on purpose (faults)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

REDACTED = "***"
SECRET_FIELDS = frozenset({"token", "session"})


@dataclass(frozen=True)
class JournalEntry:
    """One request received: ``status`` is None when the connection was dropped.

    A SQL statement (the Postgres endpoint) is an entry with ``method`` ``"SQL"``, the statement
    (secrets blanked) as ``path``, ``status`` 200 when it succeeded and 400 when it failed, and
    ``body`` ``{"username", "database", "error"}`` (``error`` is the message sent, or None).
    """

    method: str
    path: str
    status: int | None
    body: Any
    fault: bool


@dataclass
class Fault:
    """A planned misbehaviour for the next ``times`` requests matching ``method`` and ``path``."""

    method: str
    path: str
    status: int | None
    retry_after: str | None
    delay: float
    drop: bool
    times: int
    body: Any
    after: bool
    error: str | None = None  # SQL faults: the error message sent (SQLSTATE ``sqlstate``)
    sqlstate: str = "XX000"

    @property
    def answers(self) -> bool:
        """Whether the fault, not the normal handler, decides the answer."""
        return self.status is not None or self.drop or self.error is not None

    def matches(self, method: str, path: str) -> bool:
        """Exact path or ``fnmatch`` glob; method ``*`` matches any HTTP method. A SQL fault
        (method ``SQL``) matches statements case-insensitively and only statements."""
        if (method == "SQL") != (self.method == "SQL"):
            return False
        if method == "SQL":
            path, pattern = path.lower(), self.path.lower()
            return path == pattern or fnmatchcase(path, pattern)
        return self.method in ("*", method) and (self.path == path or fnmatchcase(path, self.path))


def redact(value: Any) -> Any:
    """A copy of a JSON value with every ``token`` or ``session`` field replaced by ``***``."""
    if isinstance(value, dict):
        return {k: REDACTED if k in SECRET_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class Traffic:
    """Pending faults (listing quirks included) and the journal, shared with the handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._journal: list[JournalEntry] = []
        self._repeat_cursors = 0
        self._during_listing: list[tuple[int, Callable[[], None]]] = []

    def repeat_cursor(self, times: int) -> None:
        """Make the next ``times`` list-users answers to a ``page_token`` give that token back."""
        with self._lock:
            self._repeat_cursors += times

    def take_repeat_cursor(self) -> bool:
        """Whether this list-users answer must repeat its cursor (using one up)."""
        with self._lock:
            if self._repeat_cursors == 0:
                return False
            self._repeat_cursors -= 1
            return True

    def after_listing_pages(self, pages: int, action: Callable[[], None]) -> None:
        """Run ``action`` once ``pages`` more list-users pages have been answered."""
        with self._lock:
            self._during_listing.append((pages, action))

    def listing_page_served(self) -> list[Callable[[], None]]:
        """Count one answered page; the actions now due, in the order they were planned."""
        with self._lock:
            counted = [(pages - 1, action) for pages, action in self._during_listing]
            self._during_listing = [(pages, action) for pages, action in counted if pages > 0]
            return [action for pages, action in counted if pages == 0]

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault (faults are tried in the order they were added)."""
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Forget every pending fault and listing quirk."""
        with self._lock:
            self._faults.clear()
            self._repeat_cursors = 0
            self._during_listing.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, using up one of its ``times``."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def record(self, entry: JournalEntry) -> None:
        """Append to the journal."""
        with self._lock:
            self._journal.append(entry)

    def journal(self) -> list[JournalEntry]:
        """A copy of the journal, oldest first."""
        with self._lock:
            return list(self._journal)

    def clear_journal(self) -> None:
        """Empty the journal."""
        with self._lock:
            self._journal.clear()
