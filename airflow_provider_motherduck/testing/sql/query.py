"""The SELECTs of the facts file, over rows the catalog lists: a small evaluator, not a database.

``SELECT <items> [FROM <source>] [WHERE <a AND b ...>] [ORDER BY ...] [LIMIT n] [OFFSET m]``
and ``FROM <source> ...``, where an item is ``*``, ``count(*)``, a column, a literal or a known
function, each with optional ``::TYPE`` casts and ``AS alias``; a condition compares two such
expressions with ``=``, ``<>``/``!=``. That covers every read the facts list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow_provider_motherduck.testing.sql.errors import SqlError, invalid, parser_error
from airflow_provider_motherduck.testing.sql.lexer import IDENT, NUMBER, PUNCT, STRING, WORD, Cursor

# Postgres type OIDs of the result columns.
BOOL, INT8, TEXT, TIMESTAMPTZ, TEXT_ARRAY = 16, 20, 25, 1184, 1009
CASTS = {"VARCHAR": TEXT, "TEXT": TEXT, "STRING": TEXT, "BIGINT": INT8, "INTEGER": INT8, "BOOLEAN": BOOL}
CLAUSES = ("FROM", "WHERE", "ORDER", "LIMIT", "OFFSET", "AS", "AND", "GROUP")

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """A result column: name and Postgres type OID."""

    name: str
    oid: int


@dataclass(frozen=True)
class Table:
    """Rows of a source, with its columns in order."""

    columns: list[Column]
    rows: list[Row]


@dataclass(frozen=True)
class Result:
    """A statement's answer: columns (empty for a command), rows, and the command tag."""

    columns: list[Column]
    rows: list[tuple[Any, ...]]
    tag: str


class Env(Protocol):
    """What a query may read: scalar functions and sources (table functions, views, tables)."""

    def scalar(self, name: str) -> tuple[Any, int]:
        """The value and type of a session function such as ``md_user()``."""

    def source(self, path: Sequence[str], args: Sequence[Any] | None) -> Table:
        """A dotted name (``args`` None) or a table function's rows."""


@dataclass(frozen=True)
class Expr:
    """A compiled expression: its value on a row, its type, its column name."""

    fn: Callable[[Row], Any]
    oid: int
    name: str
    aggregate: bool = False


def as_varchar(value: Any) -> str | None:
    """DuckDB's ``::VARCHAR`` of a value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):  # DuckDB's TIMESTAMPTZ text in UTC: no trailing zeros, "+00"
        text = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
        return text + "+00"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return json.dumps(value.isoformat(sep=" "))
    return json.dumps(value, separators=(",", ":"))


ROW_FUNCTIONS: dict[str, tuple[Callable[[Any], Any], int]] = {
    "LOWER": (lambda v: None if v is None else str(v).lower(), TEXT),
    "UPPER": (lambda v: None if v is None else str(v).upper(), TEXT),
    "TO_JSON": (_to_json, TEXT),
}
SESSION_FUNCTIONS = ("MD_USER", "CURRENT_DATABASE", "CURRENT_USER", "MD_VERSION", "CURRENT_SCHEMA", "VERSION")


def run_select(cur: Cursor, env: Env) -> Result:
    """Run the SELECT (or ``FROM ...``) at the cursor."""
    items: list[Expr | None] = []  # None is ``*``
    pending: list[tuple[int, int]] = []  # token ranges of the items, compiled once the source is known
    if cur.accept("SELECT"):
        pending = _item_ranges(cur)
    table = Table([Column("", TEXT)], [{}])
    if cur.accept("FROM"):
        table = _source(cur, env)
    elif not pending:
        cur.fail()
    types = {c.name: c.oid for c in table.columns}
    for start, end in pending or [(-1, -1)]:
        items.append(None if start < 0 else _compile_item(cur, start, end, types, env))
    rows = table.rows
    if cur.accept("WHERE"):
        conditions = [_condition(cur, types, env)]
        while cur.accept("AND"):
            conditions.append(_condition(cur, types, env))
        rows = [r for r in rows if all(c(r) for c in conditions)]
    if cur.accept("ORDER", "BY"):
        keys: list[tuple[Expr, bool]] = []
        while True:
            key = _operand(cur, types, env)
            descending = cur.accept("DESC")
            if not descending:
                cur.accept("ASC")
            keys.append((key, descending))
            if not cur.punct(","):
                break
        for key, descending in reversed(keys):
            rows = sorted(rows, key=_apply(_sort_key, key), reverse=descending)
    limit = cur.number() if cur.accept("LIMIT") else None
    offset = cur.number() if cur.accept("OFFSET") else 0
    cur.end()
    columns: list[Column] = []
    getters: list[Callable[[Row], Any]] = []
    for item in items:
        if item is None:
            if not table.columns:
                raise SqlError(
                    "0A000",
                    "Not implemented Error: the MotherDuck emulator keeps only the row count of a"
                    " table: select count(*) from it",
                )
            if table.columns[0].name == "":
                raise parser_error("*")
            columns += table.columns
            getters += [_column(c.name) for c in table.columns]
        else:
            columns.append(Column(item.name, item.oid))
            getters.append(item.fn)
    if any(i is not None and i.aggregate for i in items):
        if not all(i is not None and i.aggregate for i in items):
            raise invalid("count(*) cannot be mixed with other columns without GROUP BY")
        return Result(columns, [tuple(len(rows) for _ in items)], "SELECT 1")
    rows = rows[offset:] if limit is None else rows[offset : offset + limit]
    out = [tuple(g(r) for g in getters) for r in rows]
    return Result(columns, out, f"SELECT {len(out)}")


def _const(value: Any) -> Callable[[Row], Any]:
    return lambda row: value


def _column(name: str) -> Callable[[Row], Any]:
    return lambda row: row.get(name)


def _apply(fn: Callable[[Any], Any], arg: Expr) -> Callable[[Row], Any]:
    return lambda row: fn(arg.fn(row))


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, "" if value is None else (value.lower() if isinstance(value, str) else value))


def _item_ranges(cur: Cursor) -> list[tuple[int, int]]:
    """The token ranges of the select items, up to FROM or the end (compiled later)."""
    ranges = []
    depth = 0
    start = cur.pos
    while not cur.done():
        token = cur.peek()
        assert token is not None
        if depth == 0 and token.kind == WORD and token.value.upper() in CLAUSES[:5]:
            break
        if token.kind == PUNCT and token.value == "(":
            depth += 1
        elif token.kind == PUNCT and token.value == ")":
            depth -= 1
        elif depth == 0 and token.kind == PUNCT and token.value == ",":
            ranges.append((start, cur.pos))
            start = cur.pos + 1
        cur.pos += 1
    ranges.append((start, cur.pos))
    if any(s == e for s, e in ranges):
        cur.fail()
    return ranges


def _compile_item(cur: Cursor, start: int, end: int, types: dict[str, int], env: Env) -> Expr | None:
    saved = cur.pos
    cur.pos = start
    try:
        if cur.punct("*") and cur.pos == end:
            return None
        cur.pos = start
        expr = _operand(cur, types, env)
        alias = cur.peek()
        if cur.accept("AS") or (cur.pos < end and alias is not None and alias.kind in (WORD, IDENT)):
            expr = Expr(expr.fn, expr.oid, cur.name(), expr.aggregate)
        if cur.pos != end:
            cur.fail()
        return expr
    finally:
        cur.pos = saved


def _condition(cur: Cursor, types: dict[str, int], env: Env) -> Callable[[Row], bool]:
    left = _operand(cur, types, env)
    token = cur.peek()
    if token is None or token.kind != PUNCT or token.value not in ("=", "<>", "!="):
        cur.fail()
    cur.pos += 1
    right = _operand(cur, types, env)
    equal = token.value == "="

    def check(row: Row) -> bool:
        a, b = left.fn(row), right.fn(row)
        if a is None or b is None:
            return False
        if (
            isinstance(a, bool) != isinstance(b, bool)
            and isinstance(b, str | bool)
            and isinstance(a, str | bool)
        ):
            a, b = as_varchar(a), as_varchar(b)
        return bool((a == b) == equal)

    return check


def _operand(cur: Cursor, types: dict[str, int], env: Env) -> Expr:
    expr = _primary(cur, types, env)
    while cur.punct("::"):
        type_name = cur.name().upper()
        if type_name not in CASTS:
            raise SqlError("42704", f"Catalog Error: Type with name {type_name} does not exist!")
        inner, oid = expr, CASTS[type_name]
        fn = _caster(inner.fn, oid)
        expr = Expr(fn, oid, inner.name, inner.aggregate)
    return expr


def _caster(inner: Callable[[Row], Any], oid: int) -> Callable[[Row], Any]:
    if oid == TEXT:
        return lambda r: as_varchar(inner(r))
    if oid == INT8:
        return lambda r: None if inner(r) is None else int(inner(r))
    return lambda r: None if inner(r) is None else str(inner(r)).lower() in ("true", "t", "1")


def _primary(cur: Cursor, types: dict[str, int], env: Env) -> Expr:
    token = cur.peek()
    if token is None:
        cur.fail()
    start = cur.pos
    if token.kind == STRING:
        cur.pos += 1
        return Expr(_const(token.value), TEXT, token.value)
    if token.kind == NUMBER:
        cur.pos += 1
        number = int(token.value) if token.value.isdigit() else float(token.value)
        return Expr(_const(number), INT8, token.value)
    if token.kind == PUNCT and token.value == "(":
        cur.pos += 1
        inner = _operand(cur, types, env)
        cur.expect_punct(")")
        return inner
    if token.kind == WORD and token.value.upper() in ("TRUE", "FALSE", "NULL"):
        cur.pos += 1
        constant = {"TRUE": True, "FALSE": False, "NULL": None}[token.value.upper()]
        return Expr(_const(constant), TEXT if constant is None else BOOL, token.value.lower())
    name = cur.name()
    if cur.punct("("):
        upper = name.upper()
        if upper == "COUNT" and cur.punct("*"):
            cur.expect_punct(")")
            return Expr(_const(None), INT8, "count_star()", aggregate=True)
        if upper in SESSION_FUNCTIONS:
            cur.expect_punct(")")
            value, oid = env.scalar(upper)
            return Expr(_const(value), oid, f"{name.lower()}()")
        if upper in ROW_FUNCTIONS:
            arg = _operand(cur, types, env)
            cur.expect_punct(")")
            fn, oid = ROW_FUNCTIONS[upper]
            return Expr(
                _apply(fn, arg),
                oid,
                cur.text[cur.tokens[start].start : cur.tokens[cur.pos - 1].end],
            )
        raise SqlError("42883", f"Catalog Error: Scalar Function with name {name.lower()} does not exist!")
    if name.upper() in ("CURRENT_USER", "CURRENT_DATABASE") and token.kind == WORD:
        value, oid = env.scalar(name.upper())
        return Expr(_const(value), oid, name.lower())
    column = name.lower()
    while cur.punct("."):  # a qualified column: the last part names it
        column = cur.name().lower()
    if column not in types:
        raise SqlError("42703", f'Binder Error: Referenced column "{column}" not found in FROM clause!')
    return Expr(_column(column), types[column], column)


def _source(cur: Cursor, env: Env) -> Table:
    path = [cur.name()]
    while cur.punct("."):
        path.append(cur.name())
    args: list[Any] | None = None
    if cur.punct("("):
        args = []
        if not cur.punct(")"):
            while True:
                args.append(_primary(cur, {}, env).fn({}))
                if cur.punct(")"):
                    break
                cur.expect_punct(",")
    table = env.source(path, args)
    token = cur.peek()
    if token is not None and token.kind in (WORD, IDENT) and token.value.upper() not in CLAUSES:
        cur.pos += 1  # a table alias: columns are matched by their last name anyway
    return table
