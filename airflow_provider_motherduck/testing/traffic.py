"""What the emulator saw (the journal) and what it will do wrong on purpose (faults)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

REDACTED = "***"


@dataclass(frozen=True)
class JournalEntry:
    """One request received: ``status`` is None when the connection was dropped."""

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

    @property
    def answers(self) -> bool:
        """Whether the fault, not the normal handler, decides the answer."""
        return self.status is not None or self.drop

    def matches(self, method: str, path: str) -> bool:
        """Exact path or ``fnmatch`` glob; method ``*`` matches any."""
        return self.method in ("*", method) and (self.path == path or fnmatchcase(path, self.path))


def redact(value: Any) -> Any:
    """A copy of a JSON value with every ``token`` field replaced by ``***``."""
    if isinstance(value, dict):
        return {k: REDACTED if k == "token" else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class Traffic:
    """Pending faults and the journal, shared by the emulator and its HTTP handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._journal: list[JournalEntry] = []

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault (faults are tried in the order they were added)."""
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

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
