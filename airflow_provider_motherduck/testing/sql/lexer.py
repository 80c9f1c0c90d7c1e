"""DuckDB's lexical rules as MotherDuck's SQL uses them (facts, section 2), and a token cursor.

Identifiers are bare words or ``"..."`` with ``""`` for a quote; literals are ``'...'`` with
``''`` for a quote; keywords compare case-insensitively; one trailing ``;`` is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from airflow_provider_motherduck.testing.sql.errors import SqlError, parser_error

WORD, IDENT, STRING, NUMBER, PUNCT, PARAM = "word", "ident", "string", "number", "punct", "param"
_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*)
    |(?P<ident>"(?:[^"]|"")*")
    |(?P<string>'(?:[^']|'')*')
    |(?P<param>\$[0-9]+)
    |(?P<number>[0-9]+(?:\.[0-9]+)?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<punct>::|<>|!=|<=|>=|[(),.;*=<>?])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One token: ``value`` is unquoted (identifiers and literals) and ``start``/``end`` index the text."""

    kind: str
    value: str
    start: int
    end: int

    def is_word(self, *words: str) -> bool:
        """Whether this is a bare word equal (case-insensitively) to one of ``words``."""
        return self.kind == WORD and self.value.upper() in words


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; a Parser Error at the first character that starts none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise parser_error(text[pos : pos + 20])
        kind = match.lastgroup
        raw = match.group()
        if kind == IDENT:
            tokens.append(Token(IDENT, raw[1:-1].replace('""', '"'), pos, match.end()))
        elif kind == STRING:
            tokens.append(Token(STRING, raw[1:-1].replace("''", "'"), pos, match.end()))
        elif kind is not None and kind != "space":
            tokens.append(Token(kind, raw, pos, match.end()))
        pos = match.end()
    return tokens


def quote_literal(value: str) -> str:
    """``'...'`` with ``''`` escapes."""
    return "'" + value.replace("'", "''") + "'"


def render_value(value: str | int | float | bool | None) -> str:
    """A parameter's value as SQL: NULL, TRUE/FALSE, a number, or a quoted literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return quote_literal(value)


def bind_parameters(text: str, params: Sequence[str | int | float | bool | None]) -> str:
    """``text`` with each ``$n`` outside quotes replaced by its value (``render_value``).

    The emulator binds parameters by substitution: a string becomes a quoted literal, so a
    parameter can never be read as SQL.
    """
    out: list[str] = []
    pos = 0
    for token in tokenize(text):
        if token.kind != PARAM:
            continue
        index = int(token.value[1:]) - 1
        if not 0 <= index < len(params):
            raise SqlError("08P01", f"Binder Error: no value given for parameter {token.value}")
        value = params[index]
        out.append(text[pos : token.start])
        out.append(render_value(value))
        pos = token.end
    out.append(text[pos:])
    return "".join(out)


def count_parameters(text: str) -> int:
    """The highest ``$n`` in ``text`` (0 if none)."""
    return max((int(t.value[1:]) for t in tokenize(text) if t.kind == PARAM), default=0)


class Cursor:
    """Reads a statement's tokens left to right; every ``expect`` failure is a Parser Error."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        if self.tokens and self.tokens[-1].value == ";" and self.tokens[-1].kind == PUNCT:
            self.tokens.pop()
        self.pos = 0

    def peek(self, ahead: int = 0) -> Token | None:
        """The token ``ahead`` places on, or None past the end."""
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, *words: str) -> bool:
        """Whether the next tokens are these keywords (case-insensitive), without consuming them."""
        for ahead, word in enumerate(words):
            token = self.peek(ahead)
            if token is None or not token.is_word(word):
                return False
        return True

    def accept(self, *words: str) -> bool:
        """Consume these keywords if they come next."""
        if self.at(*words):
            self.pos += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        """Consume these keywords or raise a Parser Error."""
        if not self.accept(*words):
            self.fail()

    def punct(self, symbol: str) -> bool:
        """Consume ``symbol`` if it comes next."""
        token = self.peek()
        if token is not None and token.kind == PUNCT and token.value == symbol:
            self.pos += 1
            return True
        return False

    def expect_punct(self, symbol: str) -> None:
        """Consume ``symbol`` or raise a Parser Error."""
        if not self.punct(symbol):
            self.fail()

    def name(self) -> str:
        """An identifier: a bare word or a quoted one (quotes removed, ``""`` unescaped)."""
        token = self.peek()
        if token is None or token.kind not in (WORD, IDENT):
            self.fail()
        self.pos += 1
        return token.value

    def string(self) -> str:
        """A string literal's value."""
        token = self.peek()
        if token is None or token.kind != STRING:
            self.fail()
        self.pos += 1
        return token.value

    def number(self) -> int:
        """A whole number."""
        token = self.peek()
        if token is None or token.kind != NUMBER or not token.value.isdigit():
            self.fail()
        self.pos += 1
        return int(token.value)

    def done(self) -> bool:
        """Whether every token has been read."""
        return self.pos >= len(self.tokens)

    def end(self) -> None:
        """Require the end of the statement."""
        if not self.done():
            self.fail()

    def fail(self) -> NoReturn:
        """Raise the Parser Error DuckDB gives at the current token."""
        token = self.peek()
        raise parser_error("end of input" if token is None else self.text[token.start : token.end])
