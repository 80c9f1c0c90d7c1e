"""The Postgres wire protocol (3.0) in front of the emulator's SQL, as MotherDuck's endpoint speaks it.

Plain TCP only: an SSLRequest or GSSENCRequest is answered ``N`` (a local server may refuse TLS,
and clients then continue in the clear when ``sslmode`` allows it). The StartupMessage names the
user ``postgres`` and a database (``md:``, ``md:<db>`` or ``<db>``); the password, sent in clear
text, is a MotherDuck token of the REST state. Both query protocols are served: simple (psql)
and extended (Parse/Bind/Describe/Execute/Sync/Close/Flush with text or binary parameters, as
psycopg sends them with parameters); results go out as text, or binary when asked.

Every statement is journaled (secrets blanked) and first passes the SQL faults (an error text,
a delay or a dropped connection for statements matching a pattern). Connections are bounded
(``max_connections``; one more is refused with SQLSTATE 53300) and an idle one is closed after
``idle_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_motherduck.testing.connections import TrackedConnections
from airflow_provider_motherduck.testing.sql.catalog import Catalog
from airflow_provider_motherduck.testing.sql.errors import (
    INTERNAL,
    INVALID_AUTHORIZATION,
    NOT_SUPPORTED,
    PROTOCOL_VIOLATION,
    SYNTAX,
    SqlError,
)
from airflow_provider_motherduck.testing.sql.lexer import PUNCT, bind_parameters, count_parameters, tokenize
from airflow_provider_motherduck.testing.sql.query import BOOL, INT8, TEXT, TEXT_ARRAY, TIMESTAMPTZ, Result
from airflow_provider_motherduck.testing.sql.session import (
    Session,
    open_session,
    redact_statement,
)
from airflow_provider_motherduck.testing.traffic import JournalEntry, Traffic

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE = 1 << 24
USER = "postgres"
PARAMETER_STATUS = {
    "server_version": "15.0 (MotherDuck emulator)",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "application_name": "",
}
TYPE_SIZES = {BOOL: 1, INT8: 8, TIMESTAMPTZ: 8}
INTEGER_PARAMS = {20: ">q", 21: ">h", 23: ">i"}
FLOAT_PARAMS = {700: ">f", 701: ">d"}
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
READS = ("SELECT", "FROM", "SHOW")


class _Closed(Exception):
    """The client went away, timed out or must be cut off (a dropped-connection fault)."""


def encode_text(value: Any) -> bytes:
    """A value in Postgres's text format."""
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").encode()
    if isinstance(value, list):
        return ("{" + ",".join(_array_item(v) for v in value) + "}").encode()
    return str(value).encode()


def _array_item(value: Any) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    if text == "" or text.upper() == "NULL" or any(c in text for c in ',{}"\\ \t\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def encode_binary(value: Any, oid: int) -> bytes:
    """A value in Postgres's binary format for the column types the emulator sends."""
    if oid == BOOL:
        return b"\x01" if value else b"\x00"
    if oid == INT8:
        return struct.pack(">q", int(value))
    if oid == TIMESTAMPTZ:
        delta = value - POSTGRES_EPOCH
        return struct.pack(">q", (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if oid == TEXT_ARRAY:
        items = [None if v is None else str(v).encode() for v in value]
        if not items:
            return struct.pack(">iii", 0, 0, TEXT)
        head = struct.pack(">iiiii", 1, int(None in items), TEXT, len(items), 1)
        return head + b"".join(
            struct.pack(">i", -1) if v is None else struct.pack(">i", len(v)) + v for v in items
        )
    return str(value).encode()


def decode_parameter(raw: bytes | None, oid: int, binary: bool) -> str | int | float | bool | None:
    """A Bind parameter as a Python value (text, or binary for the common scalar types)."""
    if raw is None:
        return None
    if not binary:
        text = raw.decode()
        if oid in INTEGER_PARAMS:
            return int(text)
        if oid == BOOL:
            return text.lower() in ("t", "true", "1", "on", "yes")
        return text
    if oid in INTEGER_PARAMS:
        return int(struct.unpack(INTEGER_PARAMS[oid], raw)[0])
    if oid in FLOAT_PARAMS:
        return float(struct.unpack(FLOAT_PARAMS[oid], raw)[0])
    if oid == BOOL:
        return raw != b"\x00"
    if oid in (0, TEXT, 1043, 705, 19, 25):
        return raw.decode()
    raise SqlError(NOT_SUPPORTED, f"binary parameters of type {oid} are not supported; send them as text")


def split_statements(text: str) -> list[str]:
    """The statements of a simple Query, split at ``;`` outside quotes."""
    parts: list[str] = []
    start = 0
    for token in tokenize(text):
        if token.kind == PUNCT and token.value == ";":
            parts.append(text[start : token.start])
            start = token.end
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


@dataclass
class _Portal:
    text: str
    formats: list[int]
    result: Result | None = None
    sent: int = 0


@dataclass
class _Prepared:
    text: str
    oids: list[int] = field(default_factory=list)


class _Connection(socketserver.BaseRequestHandler):
    """One client connection: startup, authentication, then messages until Terminate."""

    server: PostgresServer

    def setup(self) -> None:
        self.sock: socket.socket = self.request
        self.out = bytearray()
        self.session: Session | None = None
        self.prepared: dict[str, _Prepared] = {}
        self.portals: dict[str, _Portal] = {}
        self.failed = False  # an error in the extended protocol: skip to Sync
        self.aborted = False  # an error inside BEGIN ... : the transaction status is E

    def handle(self) -> None:
        srv = self.server
        self.sock.settimeout(srv.idle_timeout)
        if not srv.slots.acquire(blocking=False):
            with contextlib.suppress(_Closed, OSError):
                self._startup_packet()
                self._fatal(SqlError("53300", "sorry, too many clients already", severity="FATAL"))
            return
        try:
            if self._start():
                while self._message():
                    pass
        except _Closed:
            pass
        except TimeoutError:
            with contextlib.suppress(OSError):
                self._fatal(
                    SqlError("57P05", "terminating connection due to idle-session timeout", severity="FATAL")
                )
        finally:
            srv.slots.release()

    # framing

    def _recv(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            try:
                chunk = self.sock.recv(size - len(data))
            except TimeoutError:
                raise
            except OSError:
                raise _Closed from None
            if not chunk:
                raise _Closed
            data += chunk
        return bytes(data)

    def _send(self, kind: bytes, payload: bytes = b"") -> None:
        self.out += kind + struct.pack(">i", len(payload) + 4) + payload

    def _flush(self) -> None:
        if self.out:
            try:
                self.sock.sendall(self.out)
            except OSError:
                raise _Closed from None
            self.out.clear()

    def _error(self, err: SqlError) -> None:
        fields = [b"S" + err.severity.encode(), b"V" + err.severity.encode(), b"C" + err.sqlstate.encode()]
        fields.append(b"M" + err.message.encode())
        self._send(b"E", b"\0".join(fields) + b"\0\0")

    def _fatal(self, err: SqlError) -> None:
        self._error(err)
        self._flush()

    # startup

    def _startup_packet(self) -> tuple[int, bytes]:
        (length,) = struct.unpack(">i", self._recv(4))
        if not 8 <= length <= 10_000:
            raise _Closed
        body = self._recv(length - 4)
        return struct.unpack(">i", body[:4])[0], body[4:]

    def _start(self) -> bool:
        code, body = self._startup_packet()
        while code in (SSL_REQUEST, GSSENC_REQUEST):
            self.sock.sendall(b"N")
            code, body = self._startup_packet()
        if code == CANCEL_REQUEST:
            return False
        if code != PROTOCOL_3:
            self._fatal(
                SqlError(
                    NOT_SUPPORTED,
                    f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}",
                    severity="FATAL",
                )
            )
            return False
        items = body.split(b"\0")
        params = {items[i].decode(): items[i + 1].decode() for i in range(0, len(items) - 1, 2) if items[i]}
        user = params.get("user", "")
        database = params.get("database", user)
        # Assumed: MotherDuck's endpoint documents the user postgres; others are refused here so
        # a client sending something else is caught.
        if user != USER:
            self._fatal(
                SqlError(
                    INVALID_AUTHORIZATION,
                    f'user "{user}" is not accepted: connect as user "{USER}" with a MotherDuck token as the password',
                    severity="FATAL",
                )
            )
            return False
        self._send(b"R", struct.pack(">i", 3))
        self._flush()
        kind = self._recv(1)
        (length,) = struct.unpack(">i", self._recv(4))
        if kind != b"p" or not 4 <= length <= MAX_MESSAGE:
            self._fatal(SqlError(PROTOCOL_VIOLATION, "expected a password message", severity="FATAL"))
            return False
        password = self._recv(length - 4).rstrip(b"\0").decode(errors="replace")
        try:
            self.session = open_session(self.server.catalog, password, database)
        except SqlError as err:
            self._fatal(err)
            return False
        self._send(b"R", struct.pack(">i", 0))
        for name, value in PARAMETER_STATUS.items():
            self._send(b"S", name.encode() + b"\0" + value.encode() + b"\0")
        self._send(b"K", struct.pack(">ii", *new_backend_key()))
        self._ready()
        return True

    def _ready(self) -> None:
        assert self.session is not None
        status = b"E" if self.aborted else (b"T" if self.session.in_transaction else b"I")
        self._send(b"Z", status)
        self._flush()

    # messages

    def _message(self) -> bool:
        kind = self._recv(1)
        (length,) = struct.unpack(">i", self._recv(4))
        if not 4 <= length <= MAX_MESSAGE:
            self._fatal(SqlError(PROTOCOL_VIOLATION, "invalid message length", severity="FATAL"))
            return False
        body = self._recv(length - 4)
        if kind == b"X":
            return False
        if kind == b"S":
            self.failed = False
            self._ready()
            return True
        if kind == b"H":
            self._flush()
            return True
        try:
            return self._dispatch(kind, body)
        except (struct.error, ValueError, IndexError):  # a malformed message (ValueError: bad UTF-8 too)
            self._fatal(SqlError(PROTOCOL_VIOLATION, f"invalid {kind!r} message", severity="FATAL"))
            return False

    def _dispatch(self, kind: bytes, body: bytes) -> bool:
        if kind == b"Q":
            self._simple(body.rstrip(b"\0").decode())
            return True
        handlers = {
            b"P": self._parse,
            b"B": self._bind,
            b"D": self._describe,
            b"E": self._execute,
            b"C": self._close,
        }
        if kind not in handlers:
            self._fatal(SqlError(PROTOCOL_VIOLATION, f"unsupported message type {kind!r}", severity="FATAL"))
            return False
        if not self.failed:
            try:
                handlers[kind](body)
            except SqlError as err:
                self._fail(err)
        return True

    def _fail(self, err: SqlError) -> None:
        if err.severity == "FATAL":
            self._fatal(err)
            raise _Closed
        self._error(err)
        self.failed = True
        assert self.session is not None
        self.aborted = self.session.in_transaction

    def _simple(self, text: str) -> None:
        try:
            statements = split_statements(text)
        except SqlError as err:
            statements = []
            self._fail(err)
        if not statements and not self.failed:
            self._send(b"I")
        for statement in statements:
            try:
                result = self._run(statement)
            except SqlError as err:
                self._fail(err)
                break
            self._row_description(result, [])
            self._rows(result, [], 0)
            self._send(b"C", result.tag.encode() + b"\0")
        self.failed = False
        self._ready()

    def _parse(self, body: bytes) -> None:
        name, rest = _cstring(body)
        text, rest = _cstring(rest)
        (count,) = struct.unpack(">h", rest[:2])
        oids = list(struct.unpack(f">{count}i", rest[2 : 2 + 4 * count]))
        if len(split_statements(text)) > 1:
            raise SqlError(SYNTAX, "cannot insert multiple commands into a prepared statement")
        self.prepared[name] = _Prepared(text, oids)
        self._send(b"1")

    def _bind(self, body: bytes) -> None:
        portal, rest = _cstring(body)
        name, rest = _cstring(rest)
        if name not in self.prepared:
            raise SqlError("26000", f'prepared statement "{name}" does not exist')
        prepared = self.prepared[name]
        (nformats,) = struct.unpack(">h", rest[:2])
        formats = list(struct.unpack(f">{nformats}h", rest[2 : 2 + 2 * nformats]))
        rest = rest[2 + 2 * nformats :]
        (nparams,) = struct.unpack(">h", rest[:2])
        rest = rest[2:]
        values: list[str | int | float | bool | None] = []
        for i in range(nparams):
            (size,) = struct.unpack(">i", rest[:4])
            raw = None if size < 0 else rest[4 : 4 + size]
            rest = rest[4 + max(size, 0) :]
            binary = bool(formats[i] if len(formats) > 1 else (formats[0] if formats else 0))
            oid = prepared.oids[i] if i < len(prepared.oids) else 0
            values.append(decode_parameter(raw, oid, binary))
        (nresults,) = struct.unpack(">h", rest[:2])
        result_formats = list(struct.unpack(f">{nresults}h", rest[2 : 2 + 2 * nresults]))
        self.portals[portal] = _Portal(bind_parameters(prepared.text, values), result_formats)
        self._send(b"2")

    def _describe(self, body: bytes) -> None:
        kind, name = body[:1], _cstring(body[1:])[0]
        if kind == b"S":
            if name not in self.prepared:
                raise SqlError("26000", f'prepared statement "{name}" does not exist')
            prepared = self.prepared[name]
            count = max(len(prepared.oids), count_parameters(prepared.text))
            oids = [
                prepared.oids[i] if i < len(prepared.oids) and prepared.oids[i] else TEXT
                for i in range(count)
            ]
            self._send(b"t", struct.pack(f">h{count}i", count, *oids))
            # Columns are known by running the statement, which only a read may do early.
            result = Result([], [], "")
            if prepared.text.split()[:1] and prepared.text.split()[0].upper() in READS:
                assert self.session is not None
                with contextlib.suppress(SqlError):
                    result = self.session.execute(bind_parameters(prepared.text, [None] * count))
            self._row_description(result, [], describe=True)
            return
        portal = self._portal(name)
        self._row_description(self._result(portal), portal.formats, describe=True)

    def _execute(self, body: bytes) -> None:
        name, rest = _cstring(body)
        (limit,) = struct.unpack(">i", rest[:4])
        portal = self._portal(name)
        result = self._result(portal)
        if not result.tag or result.tag == "EMPTY":
            self._send(b"I")
            return
        if self._rows(result, portal.formats, limit, portal):
            self._send(b"s")
            return
        self._send(b"C", result.tag.encode() + b"\0")

    def _close(self, body: bytes) -> None:
        kind, name = body[:1], _cstring(body[1:])[0]
        if kind == b"S":
            self.prepared.pop(name, None)
        else:
            self.portals.pop(name, None)
        self._send(b"3")

    def _portal(self, name: str) -> _Portal:
        if name not in self.portals:
            raise SqlError("34000", f'portal "{name}" does not exist')
        return self.portals[name]

    def _result(self, portal: _Portal) -> Result:
        if portal.result is None:
            portal.result = self._run(portal.text)
        return portal.result

    # statements

    def _run(self, text: str) -> Result:
        """Faults, then the statement, then the journal."""
        assert self.session is not None
        srv = self.server
        statement = text.strip()
        body: dict[str, Any] = {"username": self.session.username, "database": self.session.database}
        journal = JournalEntry("SQL", redact_statement(statement), None, body, fault=False)
        if self.aborted and not statement.upper().startswith(("ROLLBACK", "ABORT", "COMMIT", "END")):
            raise SqlError(
                "25P02", "current transaction is aborted, commands ignored until end of transaction block"
            )
        fault = srv.traffic.take_fault("SQL", statement)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is not None and fault.answers:
            if fault.after:
                with contextlib.suppress(SqlError):
                    self.session.execute(statement)
            if fault.drop:
                srv.traffic.record(JournalEntry("SQL", journal.path, None, body, fault=True))
                raise _Closed
            srv.traffic.record(
                JournalEntry("SQL", journal.path, 400, {**body, "error": fault.error}, fault=True)
            )
            raise SqlError(fault.sqlstate, fault.error or "injected error")
        try:
            result = self.session.execute(statement)
        except SqlError as err:
            # An error text may quote the statement: it is blanked like the statement.
            err.message = redact_statement(err.message)
            srv.traffic.record(
                JournalEntry("SQL", journal.path, 400, {**body, "error": err.message}, fault=False)
            )
            raise
        except Exception as err:  # a bug of the emulator: say so rather than hang the client
            srv.traffic.record(
                JournalEntry("SQL", journal.path, 500, {**body, "error": repr(err)}, fault=False)
            )
            raise SqlError(
                INTERNAL, f"INTERNAL Error: the emulator failed on this statement: {err!r}"
            ) from err
        if statement.upper().startswith(("ROLLBACK", "ABORT", "COMMIT", "END")):
            self.aborted = False
        srv.traffic.record(JournalEntry("SQL", journal.path, 200, {**body, "error": None}, fault=False))
        return result

    def _row_description(self, result: Result, formats: Sequence[int], *, describe: bool = False) -> None:
        """RowDescription; for a Describe of a statement without columns, NoData."""
        if not result.columns:
            if describe:
                self._send(b"n")
            return
        fields = b""
        for i, column in enumerate(result.columns):
            fmt = _format(formats, i)
            fields += column.name.encode() + b"\0"
            fields += struct.pack(">ihihih", 0, 0, column.oid, TYPE_SIZES.get(column.oid, -1), -1, fmt)
        self._send(b"T", struct.pack(">h", len(result.columns)) + fields)

    def _rows(
        self, result: Result, formats: Sequence[int], limit: int, portal: _Portal | None = None
    ) -> bool:
        """Send DataRows (from where the portal stopped); True if ``limit`` left some unsent."""
        start = portal.sent if portal else 0
        end = len(result.rows) if limit <= 0 else min(len(result.rows), start + limit)
        for row in result.rows[start:end]:
            payload = struct.pack(">h", len(row))
            for i, value in enumerate(row):
                if value is None:
                    payload += struct.pack(">i", -1)
                    continue
                data = (
                    encode_binary(value, result.columns[i].oid) if _format(formats, i) else encode_text(value)
                )
                payload += struct.pack(">i", len(data)) + data
            self._send(b"D", payload)
        if portal is not None:
            portal.sent = end
        return end < len(result.rows)


def new_backend_key() -> tuple[int, int]:
    """A process id and secret key for BackendKeyData (cancelling is not supported)."""
    value = uuid.uuid4().int
    return value & 0x7FFFFFFF, (value >> 32) & 0x7FFFFFFF


def _format(formats: Sequence[int], index: int) -> int:
    if not formats:
        return 0
    return formats[index] if len(formats) > 1 else formats[0]


def _cstring(data: bytes) -> tuple[str, bytes]:
    end = data.index(b"\0")
    return data[:end].decode(), data[end + 1 :]


class PostgresServer(TrackedConnections):
    """The Postgres endpoint of one emulator: a thread per connection, at most ``max_connections``."""

    allow_reuse_address = True
    block_on_close = False
    quiet_errors = (ConnectionError, _Closed)

    def __init__(
        self,
        host: str,
        port: int,
        catalog: Catalog,
        traffic: Traffic,
        *,
        max_connections: int = 32,
        idle_timeout: float = 300.0,
    ) -> None:
        self.catalog = catalog
        self.traffic = traffic
        self.idle_timeout = idle_timeout
        self.slots = threading.BoundedSemaphore(max_connections)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Connection)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])
