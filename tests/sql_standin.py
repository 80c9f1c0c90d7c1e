"""A stand-in for DuckDB's MotherDuck client: MotherDuck cannot be reached from here.

The DuckDB transport boots each session with ``INSTALL motherduck``, ``LOAD motherduck``,
``SET motherduck_token`` and ``ATTACH 'md:'``, which need the network. :class:`StandIn`
patches ``duckdb.connect``: every connection records what it is sent, swallows the boot
statements, answers scripted statements (``answers``), raises scripted failures (``fail``),
and runs anything else on a real in-memory DuckDB (where a test may define macros).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

BOOT_PREFIXES = ("INSTALL motherduck", "LOAD motherduck", "SET motherduck_token", "ATTACH 'md:'")


def booted(token: str) -> list[str]:
    """What a DuckDB session of ``token`` is sent first, as MotherDuck's client needs it."""
    return ["INSTALL motherduck", "LOAD motherduck", f"SET motherduck_token = '{token}'", "ATTACH 'md:'"]


class _Cursor:
    def __init__(self, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self.description = [(c,) for c in columns] if columns else None
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)


class _Connection:
    def __init__(self, standin: StandIn, database: str, config: dict[str, Any]) -> None:
        self.standin = standin
        self.database = database
        self.config = config
        self.sent: list[str] = []
        self.closed = False
        self._real = StandIn.real_connect(":memory:")
        for setup in standin.setup:
            self._real.execute(setup)

    def execute(self, sql: str) -> Any:
        if self.closed:
            raise duckdb.ConnectionException("Connection already closed!")
        self.sent.append(sql)
        self.standin.sent.append(sql)
        failures = self.standin.failures.get(sql)
        if failures:
            raise failures.pop(0)
        if sql.startswith(BOOT_PREFIXES):
            return _Cursor((), [])
        if sql in self.standin.answers:
            return _Cursor(*self.standin.answers[sql])
        return self._real.execute(sql)

    def close(self) -> None:
        self.closed = True
        self._real.close()


class StandIn:
    """What the DuckDB transport opened and sent; scripted answers and failures."""

    real_connect = staticmethod(duckdb.connect)

    def __init__(self) -> None:
        self.connections: list[_Connection] = []
        self.sent: list[str] = []
        self.answers: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {}
        self.failures: dict[str, list[Exception]] = defaultdict(list)
        self.setup: list[str] = []

    def connect(
        self, database: str = ":memory:", *args: Any, config: dict[str, Any] | None = None
    ) -> _Connection:
        con = _Connection(self, database, dict(config or {}))
        self.connections.append(con)
        return con

    def answer(self, sql: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self.answers[sql] = (columns, rows)

    def fail(self, sql: str, *errors: Exception) -> None:
        self.failures[sql].extend(errors)

    def work(self) -> list[str]:
        """What was sent after the boot statements."""
        return [sql for sql in self.sent if not sql.startswith(BOOT_PREFIXES)]
