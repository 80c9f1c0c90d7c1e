"""``MotherDuckEmulator``: an in-memory MotherDuck admin API on a local port."""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeVar

from airflow_provider_motherduck.testing.connections import serve_in_thread, stop_serving
from airflow_provider_motherduck.testing.control import ControlApi
from airflow_provider_motherduck.testing.pgwire import PostgresServer
from airflow_provider_motherduck.testing.server import IDLE_TIMEOUT, MAX_CONNECTIONS, EmulatorHTTPServer
from airflow_provider_motherduck.testing.sql.catalog import Catalog
from airflow_provider_motherduck.testing.sql.errors import SqlError
from airflow_provider_motherduck.testing.state import (
    FLOCK_MAX,
    FLOCK_MIN,
    MAX_PAGE_SIZE,
    ApiError,
    Json,
    State,
    User,
    check_config,
    check_create_token,
    check_roles,
    fold,
    new_secret,
    utc_now,
)
from airflow_provider_motherduck.testing.traffic import Fault, JournalEntry, Traffic

_Server = TypeVar("_Server", EmulatorHTTPServer, PostgresServer)
SEED_KEYS = ("users", "duckling_configs", "ducklings", "databases")
SEED_USER_KEYS = ("username", "admin", "roles", "human", "email", "first_name", "last_name", "deprovisioned")
ANSWERABLE = frozenset(s.value for s in HTTPStatus if s >= 200)


class MotherDuckEmulator:
    """MotherDuck's admin endpoints (the ten of the API notes), served from memory with faults.

    Use it as a context manager (or ``start()``/``stop()``); ``url`` and ``admin_token``
    then point a client at an organisation whose Admin is ``admin_username`` (a human).

    ``max_page_size`` is the largest ``limit`` that ``GET /v1/users`` accepts;
    ``user_listing=False`` plays an older API without that route (plain-text 404);
    ``business_plan=False`` makes embed sessions a 403. The three are also settable
    attributes. ``control_key`` protects the control API under ``/_emulator/`` (generated if
    left out; see :class:`~airflow_provider_motherduck.testing.EmulatorControl`). An idle
    connection is closed after ``idle_timeout`` seconds; at most ``max_connections`` are served at
    once (more are answered 503). ``host`` may be an IPv6 address (``::1``).

    Beside the REST API it serves MotherDuck's Postgres endpoint on ``postgres_port`` (user
    ``postgres``, a token as the password, plain TCP), playing the SQL of roles, shares, share
    grants, attachments and databases on the same organisation. ``pg_port`` picks its port (0:
    any free one), ``pg_max_connections`` bounds its connections and ``pg_idle_timeout`` closes
    idle ones. ``business_plan=False`` also refuses custom roles and filtered shares.
    """

    def __init__(
        self,
        *,
        admin_username: str = "admin",
        admin_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_flock_size: int = 64,
        duplicate_user_status: int = 400,
        clock: Callable[[], datetime] | None = None,
        max_page_size: int = MAX_PAGE_SIZE,
        user_listing: bool = True,
        business_plan: bool = True,
        control_key: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        pg_port: int = 0,
        pg_max_connections: int = 32,
        pg_idle_timeout: float = 300.0,
    ) -> None:
        if not FLOCK_MIN <= max_flock_size <= FLOCK_MAX:
            raise ValueError(f"max_flock_size must be between {FLOCK_MIN} and {FLOCK_MAX}")
        if duplicate_user_status not in (400, 409):
            raise ValueError("duplicate_user_status must be 400 or 409")
        for name, key in (("admin_token", admin_token), ("control_key", control_key)):
            if key is not None and (not key or key != key.strip()):
                raise ValueError(f"{name} must be non-empty, without surrounding whitespace")
        self.admin_username = admin_username
        self.admin_token = admin_token or new_secret()
        self.control_key = control_key or "ctl_" + secrets.token_hex(16)
        self._host = host
        self._port = port
        if not idle_timeout > 0:
            raise ValueError("idle_timeout must be a positive number of seconds")
        self._idle_timeout = float(idle_timeout)
        self._max_connections = _check_times(max_connections, "max_connections")
        self._state = State(
            max_flock_size=max_flock_size,
            duplicate_user_status=duplicate_user_status,
            clock=clock or utc_now,
            max_page_size=_check_times(max_page_size, "max_page_size"),
            user_listing=_check_switch(user_listing, "user_listing"),
            business_plan=_check_switch(business_plan, "business_plan"),
        )
        self._traffic = Traffic()
        self._catalog = Catalog(self._state)
        self._pg_options = (pg_port, _check_times(pg_max_connections, "pg_max_connections"), pg_idle_timeout)
        if pg_idle_timeout <= 0:
            raise ValueError("pg_idle_timeout must be positive")
        self._pg: PostgresServer | None = None
        self._pg_thread: threading.Thread | None = None
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_user(admin_username, admin=True)
        self._state.add_token(admin_username, "emulator-admin", None, "read_write", self.admin_token)

    # lifecycle

    @property
    def url(self) -> str:
        """Base URL of the running server, without a trailing slash."""
        server = self._running(self._server)
        host = server.server_name
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        return f"http://{host}:{server.server_port}"

    @property
    def postgres_host(self) -> str:
        """Host of the Postgres endpoint (the REST side's address)."""
        return str(self._running(self._pg).server_address[0])

    @property
    def postgres_port(self) -> int:
        """Port of the Postgres endpoint (user ``postgres``, a token as the password, no TLS)."""
        return self._running(self._pg).port

    def postgres_conninfo(self, database: str = "md:") -> str:
        """A libpq connection string for the endpoint, without the password (give the token
        as ``password=`` to ``psycopg.connect`` or in ``PGPASSWORD``)."""
        return f"host={self.postgres_host} port={self.postgres_port} user=postgres dbname={database} sslmode=disable"

    def airflow_connection(self, **extra: Any) -> dict[str, Any]:
        """A ``motherduck`` Airflow connection (its JSON form) reaching both sides with the admin
        token: the REST API at ``url`` and the Postgres endpoint (extra ``sql_transport=postgres``
        with ``postgres_host`` and ``postgres_port``); ``extra`` adds to its extras."""
        return {
            "conn_type": "motherduck",
            "host": self.url,
            "password": self.admin_token,
            "extra": {
                "sql_transport": "postgres",
                "postgres_host": self.postgres_host,
                "postgres_port": self.postgres_port,
                **extra,
            },
        }

    def start(self) -> None:
        """Bind, listen and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._server = EmulatorHTTPServer(
            self._host,
            self._port,
            self._state,
            self._traffic,
            ControlApi(self, self.control_key),
            idle_timeout=self._idle_timeout,
            max_connections=self._max_connections,
        )
        self._thread = serve_in_thread(self._server, "motherduck-emulator")
        port, max_connections, idle_timeout = self._pg_options
        try:
            self._pg = PostgresServer(
                self._host,
                port,
                self._catalog,
                self._traffic,
                max_connections=max_connections,
                idle_timeout=idle_timeout,
            )
        except OSError:
            self.stop()
            raise
        self._pg_thread = serve_in_thread(self._pg, "motherduck-emulator-postgres")

    def stop(self) -> None:
        """Stop serving, cut open connections and release the port (state is kept)."""
        if self._pg is not None and self._pg_thread is not None:
            stop_serving(self._pg, self._pg_thread)
            self._pg = self._pg_thread = None
        if self._server is not None and self._thread is not None:
            stop_serving(self._server, self._thread)
            self._server = self._thread = None

    def __enter__(self) -> MotherDuckEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # seeding

    def add_user(
        self,
        username: str,
        *,
        admin: bool = False,
        roles: Sequence[str] | None = None,
        human: bool | None = None,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        deprovisioned: bool = False,
    ) -> None:
        """Add a user; ValueError if the name is taken or an argument is wrong.

        - ``add_user("etl_bot")``: a service account with the member role, as
          ``POST /v1/users`` creates one.
        - ``add_user("jane", admin=True)``: a human Admin (``admin=True`` is ``roles=["admin"]``).
        - ``roles``: any of ``admin``, ``builder``, ``explorer``, ``member``.
        - ``human``: defaults to True unless the roles are ``["member"]`` alone; pass
          ``human=False`` for a service account with other roles, ``human=True`` for a human
          member.
        - ``email`` (humans default to ``<username>@example.com``; service accounts to None),
          ``first_name``, ``last_name``: what ``GET /v1/users`` shows.
        - ``deprovisioned=True``: listed as such; its tokens no longer authenticate (401).

        Names are not checked, so tests can seed names a client must percent-encode.
        """
        if not self._state.add_user(
            _new_user(username, admin, roles, human, email, first_name, last_name, deprovisioned)
        ):
            raise ValueError(f"user {username!r} already exists")

    def add_token(
        self, username: str, name: str, *, ttl: int | None = None, token_type: str = "read_write"
    ) -> dict[str, Any]:
        """Create a token for any existing user; the answer includes the ``token`` secret."""
        body: Json = {"name": name, "token_type": token_type}
        if ttl is not None:
            body["ttl"] = ttl
        with self._state.lock, _seeding():
            self._user(username)
            name, ttl_s, kind = check_create_token(body)
            token = self._state.add_token(username, name, ttl_s, kind, new_secret())
            return {"token": token.secret, **token.metadata()}

    def add_database(self, username: str, name: str, *, tables: dict[str, int] | None = None) -> None:
        """Give a user a database (``CREATE DATABASE`` as that user) with tables and their row
        counts (``{"orders": 3}`` is ``main.orders``), so a share of it can be read by count."""
        if tables is not None and not isinstance(tables, dict):
            raise ValueError("tables maps table names to row counts")
        with self._state.lock, _seeding():
            user = self._user(username)
            self._catalog.create_database(
                user, name, if_not_exists=True, transient=False, kind="default", retention=7
            )
            for table, rows in (tables or {}).items():
                if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
                    raise ValueError(f"the row count of {table!r} must be a whole number, not {rows!r}")
                self._catalog.add_table(user, name, table, rows)

    def set_duckling_config(self, username: str, config: dict[str, Any]) -> None:
        """Replace a user's Duckling config (validated like a PUT; defaults filled in)."""
        with _seeding():
            checked = check_config(config, [], self._state.max_flock_size)
        with self._state.lock:
            self._user(username).config = checked

    def set_ducklings(self, username: str, ducklings: list[dict[str, str]]) -> None:
        """Set the running Ducklings shown by active_accounts; ``[]`` clears them."""
        if not isinstance(ducklings, list) or not all(
            isinstance(d, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in d.items())
            for d in ducklings
        ):
            raise ValueError("ducklings must be a list of objects with string values")
        with self._state.lock:
            self._user(username).ducklings = copy.deepcopy(ducklings)

    def load_seed(self, seed: dict[str, Any]) -> None:
        """Apply ``{"users": [...], "duckling_configs": {user: cfg}, "ducklings": {user: [...]},
        "databases": {user: {database: {table: rows}}}}``.

        A user is a name (a service account) or an object with ``username`` and any of the
        other ``add_user`` arguments: ``admin``, ``roles``, ``human``, ``email``,
        ``first_name``, ``last_name``, ``deprovisioned``. ``databases`` are ``add_database``'s.
        """
        if not isinstance(seed, dict):
            raise ValueError("a seed is a JSON object")
        unknown = sorted(set(seed) - set(SEED_KEYS))
        if unknown:
            raise ValueError(f"unknown seed keys: {unknown}; expected {list(SEED_KEYS)}")
        users = seed.get("users", [])
        configs = seed.get("duckling_configs", {})
        ducklings = seed.get("ducklings", {})
        databases = seed.get("databases", {})
        if not isinstance(users, list) or not all(
            isinstance(v, dict) for v in (configs, ducklings, databases)
        ):
            raise ValueError(
                "seed users is a list; duckling_configs, ducklings and databases map users to values"
            )
        for user in users:
            if isinstance(user, str):
                self.add_user(user)
            elif isinstance(user, dict) and isinstance(user.get("username"), str):
                unknown_keys = sorted(set(user) - set(SEED_USER_KEYS))
                if unknown_keys:
                    raise ValueError(
                        f"unknown seed user keys {unknown_keys}; expected {list(SEED_USER_KEYS)}"
                    )
                self.add_user(**user)
            else:
                raise ValueError(f"a seed user is a name or an object with a username, not {user!r}")
        for username, config in configs.items():
            self.set_duckling_config(username, config)
        for username, running in ducklings.items():
            self.set_ducklings(username, running)
        for username, owned in databases.items():
            if not isinstance(owned, dict):
                raise ValueError(f"the databases of {username!r} map names to tables")
            for name, tables in owned.items():
                self.add_database(username, name, tables=tables)

    # reading state

    def users(self) -> list[str]:
        """Every username, the Admin first."""
        return self._state.usernames()

    def describe_users(self) -> list[dict[str, Any]]:
        """Every user in creation order: the ``GET /v1/users`` fields plus ``tokens`` (metadata),
        ``duckling_config`` and ``ducklings``."""
        with self._state.lock:
            return [
                {
                    **user.listing(),
                    "tokens": [t.metadata() for t in user.tokens.values()],
                    "duckling_config": copy.deepcopy(user.config),
                    "ducklings": copy.deepcopy(user.ducklings),
                }
                for user in map(self._state.user, self._state.usernames())
            ]

    def describe_access(self) -> dict[str, Any]:
        """The SQL side: ``{"roles": {custom role: [roles it includes]}, "users": {username:
        {"roles", "databases", "shares", "attached"}}}``; ``roles`` are the user's direct roles
        (presets and custom), each share is its ``OWNED_SHARES`` row (no times) with the
        ``users`` and ``roles`` granted read, each attachment ``{"alias", "url"}``."""
        with self._state.lock:
            return self._catalog.describe()

    def tokens(self, username: str) -> list[dict[str, Any]]:
        """A user's tokens as the list endpoint shows them (no secrets)."""
        with self._state.lock:
            return [t.metadata() for t in self._user(username).tokens.values()]

    def duckling_config(self, username: str) -> dict[str, Any]:
        """A copy of a user's Duckling config."""
        with self._state.lock:
            return copy.deepcopy(self._user(username).config)

    def is_valid_token(self, secret: str) -> bool:
        """Whether this secret authenticates now (exists, not deleted, not expired)."""
        return self._state.live_token(secret) is not None

    def embed_sessions(self) -> list[dict[str, Any]]:
        """Every embed session issued, oldest first: ``dive_id``, ``username``, ``session_name``
        (``session_hint`` folded in), ``version``, ``required_resources``, ``initial_state``,
        ``created_ts``, ``expire_at`` and the ``secret`` itself."""
        return [s for s in self._state.issued() if s["kind"] == "embed_session"]

    def issued_secrets(self) -> list[dict[str, Any]]:
        """Every secret this emulator ever issued, oldest first, revoked and expired ones included
        (for a scan of logs and databases): ``{"kind": "token", "username", "id", "name",
        "secret"}`` for the admin token and every token created (by the API or ``add_token``),
        and the ``embed_sessions()`` records with ``"kind": "embed_session"``."""
        return self._state.issued()

    # switches

    @property
    def max_page_size(self) -> int:
        """The largest ``limit`` that ``GET /v1/users`` accepts (a larger one is a 400 naming it)."""
        return self._state.max_page_size

    @max_page_size.setter
    def max_page_size(self, value: int) -> None:
        self._state.max_page_size = _check_times(value, "max_page_size")

    @property
    def user_listing(self) -> bool:
        """False plays an older API: ``GET /v1/users`` answers the plain-text 404 of no route."""
        return self._state.user_listing

    @user_listing.setter
    def user_listing(self, value: bool) -> None:
        self._state.user_listing = _check_switch(value, "user_listing")

    @property
    def business_plan(self) -> bool:
        """False plays an organisation without the Business plan: embed sessions get 403."""
        return self._state.business_plan

    @business_plan.setter
    def business_plan(self, value: bool) -> None:
        self._state.business_plan = _check_switch(value, "business_plan")

    @property
    def journal(self) -> list[JournalEntry]:
        """Every request received, oldest first (no headers, token fields redacted)."""
        return self._traffic.journal()

    def clear_journal(self) -> None:
        """Forget the requests received so far."""
        self._traffic.clear_journal()

    # faults

    def inject(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        retry_after: str | None = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
        body: Any = None,
        after: bool = False,
        echo: bool = False,
        headers: dict[str, str] | None = None,
        trickle: float = 0.0,
    ) -> None:
        """Misbehave on the next ``times`` requests matching ``method`` and ``path``.

        ``method`` is case-insensitive, ``*`` matches any; ``path`` is compared with the raw
        request path (query string removed), exactly or as an ``fnmatch`` glob.

        ``status`` answers that status (a MotherDuck-shaped JSON error, or ``body``: a ``str`` is
        sent as text, anything else as JSON) without touching state; ``retry_after`` adds that
        header; ``delay`` sleeps first (alone, it only adds latency); ``drop`` closes the
        connection unanswered; ``after=True`` applies the request to state before the status
        or drop, as if the answer were lost on the way back. ``echo=True`` makes the status's
        error answer quote the request's bearer token and every secret issued so far (a server
        that echoes what it should not); ``headers`` adds headers to the answer (``Location``
        for a redirect). ``trickle`` sends the real answer (the request applied to state) with its
        body one byte every ``trickle`` seconds, each byte well within any per-read timeout.
        """
        if method.upper() == "SQL":
            raise ValueError("SQL statements take their faults from inject_sql")
        if status is not None and status not in ANSWERABLE:
            raise ValueError(f"status must be a known HTTP status of 200 or more, not {status}")
        if status is not None and drop:
            raise ValueError("a fault either answers a status or drops the connection, not both")
        if (retry_after is not None or body is not None or echo or headers) and status is None:
            raise ValueError("retry_after, body, echo and headers need a status")
        if echo and body is not None:
            raise ValueError("a fault either echoes secrets or sends body, not both")
        if headers is not None and not all(isinstance(v, str) for v in [*headers, *headers.values()]):
            raise ValueError("headers must map strings to strings")
        if after and status is None and not drop:
            raise ValueError("after=True needs a status or drop")
        if trickle < 0 or (trickle and (status is not None or drop)):
            raise ValueError(
                "trickle is a positive number of seconds, and sends the real answer (no status or drop)"
            )
        if status is None and not drop and delay <= 0 and not trickle:
            raise ValueError("a fault needs a status, drop=True, a positive delay or a trickle")
        _check_times(times)
        if delay < 0:
            raise ValueError("delay must not be negative")
        self._traffic.add_fault(
            Fault(
                method.upper(),
                path,
                status,
                retry_after,
                delay,
                drop,
                times,
                body,
                after,
                echo=echo,
                headers=tuple((headers or {}).items()),
                trickle=float(trickle),
            )
        )

    def inject_sql(
        self,
        pattern: str,
        *,
        error: str | None = None,
        sqlstate: str = "XX000",
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Misbehave on the next ``times`` SQL statements matching ``pattern`` (the statement as
        sent, stripped, compared case-insensitively, exactly or as an ``fnmatch`` glob).

        ``error`` answers an ErrorResponse with that message and ``sqlstate`` (e.g.
        ``"IO Error: UNAVAILABLE: failed to connect to all addresses"``, a transient text)
        without running the statement; ``delay`` sleeps first (alone, it only adds latency);
        ``drop`` closes the connection unanswered; ``after=True`` runs the statement before the
        error or drop, as if the answer were lost.
        """
        if error is not None and drop:
            raise ValueError("a SQL fault either answers an error or drops the connection, not both")
        if error is None and not drop and delay <= 0:
            raise ValueError("a SQL fault needs an error, drop=True or a positive delay")
        if after and error is None and not drop:
            raise ValueError("after=True needs an error or drop")
        if not isinstance(sqlstate, str) or len(sqlstate) != 5:
            raise ValueError(f"sqlstate must be a five-character SQLSTATE, not {sqlstate!r}")
        if delay < 0:
            raise ValueError("delay must not be negative")
        _check_times(times)
        self._traffic.add_fault(
            Fault("SQL", pattern, None, None, delay, drop, times, None, after, error=error, sqlstate=sqlstate)
        )

    def repeat_listing_cursor(self, times: int = 1) -> None:
        """Make the next ``times`` ``GET /v1/users`` answers to a request carrying a ``page_token``
        give that same token back as ``next_page_token`` (a server caught in a loop)."""
        _check_times(times)
        self._traffic.repeat_cursor(times)

    def add_user_during_listing(self, username: str, *, after_pages: int = 1, **user: Any) -> None:
        """Add a user (``add_user`` arguments) right after the next ``after_pages`` list-users
        pages have been answered: a user inserted mid-walk.

        Pages are offset-based, so a name that sorts before the page boundary shifts the rest:
        the next page then repeats the last user of the previous one.
        """
        _check_times(after_pages, "after_pages")
        if fold(username) in map(fold, self._state.usernames()):
            raise ValueError(f"user {username!r} already exists")
        new = _new_user(username, **user)

        def insert() -> None:
            self._state.add_user(new)  # a name taken meanwhile: the walk simply sees no insertion

        self._traffic.after_listing_pages(after_pages, insert)

    def clear_faults(self) -> None:
        """Forget every pending fault, repeated cursor and mid-walk user."""
        self._traffic.clear_faults()

    @staticmethod
    def _running(server: _Server | None) -> _Server:
        if server is None:
            raise RuntimeError("the emulator is not running: call start() or use it in a with block")
        return server

    def _user(self, username: str) -> User:
        try:
            return self._state.user(username)
        except ApiError:
            raise KeyError(f"no user {username!r}") from None


def _new_user(
    username: str,
    admin: bool = False,
    roles: Sequence[str] | None = None,
    human: bool | None = None,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    deprovisioned: bool = False,
) -> User:
    """A ``User`` from ``add_user``'s arguments (see there), checked."""
    if not isinstance(username, str) or not username:
        raise ValueError("username must be a non-empty string")
    if roles is None:
        roles = ["admin"] if admin else ["member"]
    elif admin:
        raise ValueError("give admin=True or roles, not both")
    checked = check_roles(roles)
    for name, value in (("email", email), ("first_name", first_name), ("last_name", last_name)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string or None, not {value!r}")
    if human is None:
        human = checked != ("member",)
    human = _check_switch(human, "human")
    if email is None and human:
        email = f"{username.lower()}@example.com"
    return User(
        username,
        checked,
        service_account=not human,
        email=email,
        first_name=first_name,
        last_name=last_name,
        deprovisioned=_check_switch(deprovisioned, "deprovisioned"),
    )


def _check_switch(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def _check_times(value: Any, name: str = "times") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer of at least 1, not {value!r}")
    return value


@contextmanager
def _seeding() -> Iterator[None]:
    """Turn a server-side 400 or SQL error into the ValueError a seeding method raises."""
    try:
        yield
    except (ApiError, SqlError) as err:
        raise ValueError(err.message) from None
