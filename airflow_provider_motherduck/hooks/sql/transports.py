"""The two ways to MotherDuck's SQL: DuckDB with the ``motherduck`` extension, or the Postgres endpoint.

Each transport runs :class:`~airflow_provider_motherduck.hooks.sql.statements.Statement` objects
and nothing else, and turns its client's failure into :class:`~airflow_provider_motherduck.exceptions.SQLDriverError` with the token
scrubbed from the text. Invariant: the token goes to the client only as a value (DuckDB's
``motherduck_token`` setting, libpq's ``password`` keyword), never into a connection string,
a log line or an error. Each client is an optional extra, imported on first use.
"""

from __future__ import annotations

import importlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias, cast

from airflow_provider_motherduck import __version__
from airflow_provider_motherduck.exceptions import MotherDuckConfigError, SQLDriverError
from airflow_provider_motherduck.hooks.sql.errors import scrub
from airflow_provider_motherduck.hooks.sql.statements import Statement, boot
from airflow_provider_motherduck.hooks.transport import is_loopback

TransportName: TypeAlias = Literal["duckdb", "postgres"]
SQL_TRANSPORTS: Final = ("duckdb", "postgres")
POSTGRES_PORT: Final = 5432
#: The Postgres endpoint's user; the token is the password (MotherDuck's docs).
POSTGRES_USER: Final = "postgres"
POSTGRES_DATABASE: Final = "md:"


@dataclass(frozen=True)
class Rows:
    """A statement's answer: lowercased column names and the rows as tuples."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Transport(Protocol):
    """An open MotherDuck SQL session of one token."""

    name: TransportName

    def execute(self, statement: Statement) -> Rows: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PostgresTarget:
    """Where the Postgres endpoint is and how to reach it: TLS verified, plain TCP only to loopback."""

    host: str
    port: int
    sslmode: str

    def kwargs(self) -> dict[str, Any]:
        """libpq keywords (no password: it is passed on its own)."""
        extra = {"sslrootcert": "system"} if self.sslmode == "verify-full" else {}
        return {
            "host": self.host,
            "port": self.port,
            "sslmode": self.sslmode,
            "gssencmode": "disable",
            **extra,
        }


def require(module: str, extra: str, feature: str) -> Any:
    """Import an optional client, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MotherDuckConfigError(
            f"{feature} needs {module}: pip install 'airflow-provider-motherduck[{extra}]'"
        ) from None


class DuckDBTransport:
    """One in-memory DuckDB per token, booted with ``SET motherduck_token`` and ``ATTACH 'md:'``.

    Opening ``md:`` directly admits one token per process; in-memory databases admit one each,
    so one worker can act as several accounts.
    """

    name: TransportName = "duckdb"

    def __init__(self, con: Any, token: str = "", *, owned: bool = True) -> None:
        import duckdb

        self._error: type[Exception] = duckdb.Error
        self._con = con
        self._token = token
        self._owned = owned

    @classmethod
    def open(cls, token: str, feature: str = "MotherDuck SQL") -> DuckDBTransport:
        """A new in-memory DuckDB, booted as ``token``'s account."""
        duckdb = require("duckdb", "duckdb", feature)
        agent = {"custom_user_agent": f"airflow-provider-motherduck/{__version__}"}
        transport = cls(duckdb.connect(":memory:", config=agent), token)
        try:
            for statement in boot(token):
                transport.execute(statement)
        except BaseException:
            transport.close()
            raise
        return transport

    def execute(self, statement: Statement) -> Rows:
        try:
            cursor = self._con.execute(statement.sql)
            columns = tuple(d[0].lower() for d in cursor.description or ())
            rows = [tuple(r) for r in cursor.fetchall()] if columns else []
        except self._error as err:
            raise SQLDriverError(scrub(str(err), [self._token]), statement) from None
        return Rows(columns, rows)

    def close(self) -> None:
        """Close the DuckDB, unless it was lent by the caller (:meth:`__init__` with ``owned=False``)."""
        if self._owned:
            self._con.close()


class PostgresTransport:
    """MotherDuck's Postgres endpoint through psycopg: user ``postgres``, the token as password, database ``md:``."""

    name: TransportName = "postgres"

    def __init__(
        self, token: str, target: PostgresTarget, timeout: float, feature: str = "MotherDuck SQL"
    ) -> None:
        psycopg = require("psycopg", "postgres", feature)
        self._error: type[Exception] = psycopg.Error
        self._token = token
        try:
            self._con = psycopg.connect(
                **target.kwargs(),
                user=POSTGRES_USER,
                password=token,
                dbname=POSTGRES_DATABASE,
                connect_timeout=max(1, round(timeout)),
                application_name=f"airflow-provider-motherduck/{__version__}",
                autocommit=True,
                # No server-side prepared statements: each statement runs once, and psycopg would
                # follow a DROP with DEALLOCATE ALL, which the endpoint need not support.
                prepare_threshold=None,
            )
        except psycopg.Error as err:
            opening = Statement(f"connect to {target.host}:{target.port}", boot(token)[0].kind, "connect")
            raise SQLDriverError(scrub(_text(err), [token]), opening) from None

    def execute(self, statement: Statement) -> Rows:
        try:
            cursor = self._con.execute(statement.sql)
            columns = tuple(d.name.lower() for d in cursor.description or ())
            rows = [tuple(r) for r in cursor.fetchall()] if columns else []
        except self._error as err:
            raise SQLDriverError(scrub(_text(err), [self._token]), statement) from None
        return Rows(columns, rows)

    def close(self) -> None:
        self._con.close()


def _text(err: Exception) -> str:
    diag = getattr(err, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return str(primary or err).strip()


@dataclass(frozen=True)
class SQLSettings:
    """The SQL side of a connection: which transport, and where the Postgres endpoint is."""

    transport: TransportName = "duckdb"
    postgres_host: str | None = None
    postgres_port: int = POSTGRES_PORT
    region: str | None = None
    conn_label: str = field(default="the connection", compare=False)

    def postgres_target(self) -> PostgresTarget:
        """The endpoint: the extra ``postgres_host``, else ``pg.<region>.motherduck.com`` from ``region``."""
        host = self.postgres_host or (
            f"pg.{_cloud_region(self.region)}.motherduck.com" if self.region else None
        )
        if host is None:
            raise MotherDuckConfigError(
                f"The postgres transport of {self.conn_label} needs the endpoint: set the extra "
                "postgres_host (e.g. pg.us-east-1-aws.motherduck.com) or region (e.g. us-east-1-aws; "
                "FROM md_user_info() tells it)."
            )
        return PostgresTarget(host, self.postgres_port, "prefer" if is_loopback(host) else "verify-full")


def _cloud_region(region: str) -> str:
    """``us-east-1`` (as ``md_user_info()`` gives it) -> ``us-east-1-aws``; a cloud suffix is kept.

    MotherDuck's docs name the hosts ``pg.<region>-aws.motherduck.com`` (or ``-azure``).
    """
    return region if region.endswith(("-aws", "-azure")) else f"{region}-aws"


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def sql_settings(extra: dict[str, Any], conn_label: str) -> SQLSettings:
    """The SQL extras of a connection, checked: ``sql_transport``, ``postgres_host``, ``postgres_port``, ``region``.

    Plain TCP goes only to a loopback host; any other host gets TLS with ``sslmode=verify-full``
    against the system's CA store (``allow_insecure_http`` does not lift this: it concerns http).
    """
    transport = extra.get("sql_transport") or "duckdb"
    if transport not in SQL_TRANSPORTS:
        raise MotherDuckConfigError(
            f"Connection extra sql_transport={transport!r} of {conn_label} is invalid. Allowed: "
            f"{' or '.join(SQL_TRANSPORTS)}."
        )
    host = extra.get("postgres_host") or None
    region = extra.get("region") or None
    for key, value in (("postgres_host", host), ("region", region)):
        if value is not None and (
            not isinstance(value, str)
            or not value.isprintable()
            or any(c.isspace() or c in "/@?#=" for c in value)
            or (":" in value and not _is_address(value))
        ):
            raise MotherDuckConfigError(
                f"Connection extra {key}={value!r} of {conn_label} is invalid. Allowed: a host name "
                "or address (the port goes in postgres_port)."
                if key == "postgres_host"
                else f"Connection extra region={value!r} of {conn_label} is invalid. Allowed: a "
                "MotherDuck region such as us-east-1-aws."
            )
    port = extra.get("postgres_port") or POSTGRES_PORT
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = -1
    if isinstance(extra.get("postgres_port"), bool) or not 0 < port < 65536:
        raise MotherDuckConfigError(
            f"Connection extra postgres_port={extra.get('postgres_port')!r} of {conn_label} is invalid. "
            "Allowed: a port number from 1 to 65535."
        )
    return SQLSettings(cast(TransportName, transport), host, port, region, conn_label)
