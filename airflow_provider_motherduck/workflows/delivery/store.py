"""Where the provider's Airflow Variables live: one small interface, two implementations.

Every Variable the provider reads or writes (secret destinations, delivery records, the
reconcile ownership record) goes through :func:`variable_store`. By default that is
:class:`AirflowVariableStore` (Airflow's ``Variable``, 2.11 and 3.x); tests, and users' tests
through the pytest plugin's ``motherduck_variables`` fixture, install an
:class:`InMemoryVariableStore` with :func:`use_variable_store`, so an operator's ``execute``
runs with no metadata database and no task runner.

The invariant: Airflow I/O in one process takes turns (:data:`AIRFLOW_IO`): worker threads of a
bulk task share one Airflow client (a supervisor socket on 3.x, a SQLite file in tests). Only
the HTTP calls to MotherDuck run in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from typing import Protocol

from airflow_provider_motherduck._compat import Variable

#: The one lock for Airflow I/O (Variables, and secret sinks, which need not be thread-safe).
AIRFLOW_IO = threading.RLock()


class VariableStore(Protocol):
    """Get, set and delete Airflow Variables by key (text values, never deserialised)."""

    def get(self, key: str) -> str | None:
        """The value, or ``None`` when the key is absent."""

    def set(self, key: str, value: str, *, description: str | None = None) -> None:
        """Store ``value`` under ``key``; ``description`` shows in Airflow's UI."""

    def delete(self, key: str) -> None:
        """Remove ``key``; an absent key is fine."""


class AirflowVariableStore:
    """Airflow's own Variables (through the Task SDK on 3.x); one call at a time per process."""

    def get(self, key: str) -> str | None:
        with AIRFLOW_IO:
            # The default goes by position: Airflow 2 names it default_var, 3 default.
            value = Variable.get(key, None)
        return None if value is None else str(value)

    def set(self, key: str, value: str, *, description: str | None = None) -> None:
        with AIRFLOW_IO:
            Variable.set(key, value, description=description)

    def delete(self, key: str) -> None:
        with AIRFLOW_IO:
            if Variable.get(key, None) is not None:
                Variable.delete(key)

    def __repr__(self) -> str:
        return "AirflowVariableStore()"


class InMemoryVariableStore(MutableMapping[str, str]):
    """Variables kept in a dict: a mutable mapping of key to value that a test seeds and reads.

    Thread-safe. ``descriptions`` keeps what :meth:`set` was told; ``writes`` lists every write
    in order (``"set KEY"``, ``"delete KEY"``). :meth:`refuse_write` makes a later write fail
    the way a database would (its message quotes the value), to test the paths that follow a
    failed write. Its ``repr`` shows keys, never values.
    """

    def __init__(self, values: MutableMapping[str, str] | None = None) -> None:
        self._lock = threading.RLock()
        self._values: dict[str, str] = dict(values or {})
        self.descriptions: dict[str, str | None] = {}
        self.writes: list[str] = []
        self._refused: dict[str, int | None] = {}

    def refuse_write(self, key: str, nth: int | None = 1) -> None:
        """Make the ``nth`` write of ``key`` from now on fail (1: the next one), once; ``None``:
        every write until :meth:`allow_write`."""
        with self._lock:
            self._refused[key] = nth

    def allow_write(self, key: str) -> None:
        """Undo :meth:`refuse_write`."""
        with self._lock:
            self._refused.pop(key, None)

    def _write(self, key: str, what: str, value: str | None) -> None:
        if key in self._refused:
            left = self._refused[key]
            if left is not None and left > 1:
                self._refused[key] = left - 1
            else:
                if left is not None:
                    del self._refused[key]
                raise RuntimeError(f"the Variable backend refused {what.upper()} ({key!r}, {value!r})")
        self.writes.append(f"{what} {key}")

    def set(self, key: str, value: str, *, description: str | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Variable {key!r} takes text, got {type(value).__name__}")
        with self._lock:
            self._write(key, "set", value)
            self._values[key] = value
            self.descriptions[key] = description

    def delete(self, key: str) -> None:
        with self._lock:
            self._write(key, "delete", None)
            self._values.pop(key, None)
            self.descriptions.pop(key, None)

    def __getitem__(self, key: str) -> str:
        with self._lock:
            return self._values[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            if key not in self._values:
                raise KeyError(key)
            self.delete(key)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._values))

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def __repr__(self) -> str:
        return f"InMemoryVariableStore(keys={sorted(self)!r})"


_AIRFLOW = AirflowVariableStore()
_installed: VariableStore | None = None


def variable_store() -> VariableStore:
    """The installed store; Airflow's Variables unless :func:`use_variable_store` installed another."""
    return _AIRFLOW if _installed is None else _installed


def use_variable_store(store: VariableStore | None) -> None:
    """Install ``store`` for every Variable the provider reads or writes (``None``: Airflow's again)."""
    global _installed
    _installed = store
