"""One SQL session: the account behind a token, its current database, and the statements it runs.

A session is opened with a live read/write or read-scaling token (``open_session``) and runs as
that token's user: every statement re-reads the user, so one deleted over REST ends its sessions.
A token revoked later does not end a session already open (assumed: the endpoint checks the
password when the connection starts). Statements run one at a time under the REST state's lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_motherduck.testing.sql.catalog import DEFAULT_DATABASE, Catalog
from airflow_provider_motherduck.testing.sql.errors import (
    INVALID_AUTHORIZATION,
    INVALID_CATALOG,
    INVALID_PASSWORD,
    SqlError,
    invalid,
    no_database,
    not_supported,
    permission,
)
from airflow_provider_motherduck.testing.sql.lexer import Cursor
from airflow_provider_motherduck.testing.sql.query import (
    BOOL,
    TEXT,
    TEXT_ARRAY,
    TIMESTAMPTZ,
    Column,
    Result,
    Row,
    Table,
    run_select,
)
from airflow_provider_motherduck.testing.state import User

VERSION = "v1.4.2"
FUNCTIONS = (
    ("md_list_share_grantees", "table"),
    ("md_describe_database_share", "table"),
    ("md_list_database_shares", "table"),
    ("md_all_databases", "table"),
    ("md_attached_databases", "table"),
    ("md_user_info", "table"),
    ("md_user", "scalar"),
    ("md_version", "scalar"),
    ("current_database", "scalar"),
)
# Read-scaling tokens read; these statements write (assumed: the facts only say such a token
# "cannot create or update your warehouse, or attach a share for the first time").
WRITES = ("CREATE", "DROP", "ALTER", "GRANT", "REVOKE", "ATTACH", "DETACH", "UPDATE")
_SECRET_IN_TEXT = re.compile(r"(motherduck_token\s*=\s*)('(?:[^']|'')*'|[^&'\s;]+)", re.IGNORECASE)
_LITERAL = re.compile(r"'(?:[^']|'')*'")


def redact_statement(text: str) -> str:
    """The statement as the journal keeps it: a ``motherduck_token`` value (in a SET or a
    connection string) and every literal of a ``CREATE ... SECRET`` become ``'***'``."""
    text = _SECRET_IN_TEXT.sub(
        lambda m: m.group(1) + ("'***'" if m.group(2).startswith("'") else "***"), text
    )
    if re.match(r"\s*CREATE\s+(OR\s+REPLACE\s+)?(PERSISTENT\s+|TEMPORARY\s+)?SECRET\b", text, re.IGNORECASE):
        text = _LITERAL.sub("'***'", text)
    return text


def _cols(*spec: tuple[str, int]) -> list[Column]:
    return [Column(name, oid) for name, oid in spec]


OWNED_SHARES = _cols(
    ("name", TEXT),
    ("url", TEXT),
    ("source_db_name", TEXT),
    ("source_db_uuid", TEXT),
    ("access", TEXT),
    ("visibility", TEXT),
    ("update", TEXT),
    ("include_pattern", TEXT_ARRAY),
    ("created_ts", TIMESTAMPTZ),
)
DESCRIBED_SHARE = [c for c in OWNED_SHARES if c.name != "include_pattern"]
LISTED_SHARES = [c for c in OWNED_SHARES if c.name in ("name", "url", "source_db_name")]
SHARED_WITH_ME = _cols(
    ("name", TEXT), ("source_db_name", TEXT), ("owner", TEXT), ("url", TEXT), ("created_ts", TIMESTAMPTZ)
)
DATABASES = _cols(
    ("name", TEXT),
    ("uuid", TEXT),
    ("created_ts", TIMESTAMPTZ),
    ("type", TEXT),
    ("transient", BOOL),
    ("historical_snapshot_retention", TEXT),
)
GRANTEES = _cols(
    ("share_owner", TEXT),
    ("grantee_name", TEXT),
    ("grantee_type", TEXT),
    ("privilege", TEXT),
    ("granted_at", TIMESTAMPTZ),
)
ALL_DATABASES = _cols(
    ("alias", TEXT), ("name", TEXT), ("is_attached", BOOL), ("type", TEXT), ("fully_qualified_name", TEXT)
)
ALL_ROLES = _cols(
    ("role_name", TEXT), ("role_type", TEXT), ("included_roles", TEXT_ARRAY), ("created_at", TIMESTAMPTZ)
)
ROLES_TO = _cols(("role_name", TEXT), ("role_type", TEXT), ("is_direct", BOOL), ("granted_at", TIMESTAMPTZ))
USERS_OF = _cols(
    ("username", TEXT), ("email", TEXT), ("is_service_account", BOOL), ("granted_at", TIMESTAMPTZ)
)
ROLES_OF = _cols(("role_name", TEXT), ("granted_at", TIMESTAMPTZ))
USER_INFO = _cols(
    *((name, TEXT) for name in ("user_id", "username", "org_id", "org_name", "org_type", "region"))
)
FUNCTION_LIST = _cols(("schema_name", TEXT), ("function_name", TEXT), ("function_type", TEXT))


def rows_result(columns: list[Column], rows: list[Row]) -> Result:
    """A Result of dict rows in ``columns`` order."""
    return Result(columns, [tuple(r.get(c.name) for c in columns) for r in rows], f"SELECT {len(rows)}")


def _command(cur: Cursor, tag: str) -> Result:
    """A statement without arguments and without rows."""
    cur.end()
    return Result([], [], tag)


def open_session(catalog: Catalog, password: str, database: str) -> Session:
    """A session for the token ``password`` on ``database`` (``md:``, ``md:<db>`` or ``<db>``), or
    a FATAL error: unknown, revoked or expired tokens, deprovisioned users, unknown databases."""
    state = catalog.state
    with state.lock:
        token = state.live_token(password.strip()) if password.strip() else None
        if token is None:
            raise SqlError(
                INVALID_PASSWORD,
                "Invalid MotherDuck token: the password must be a live MotherDuck access token"
                " (unknown, revoked or expired tokens are refused)",
                severity="FATAL",
            )
        user = state.user(token.username)
        if user.deprovisioned:
            raise SqlError(INVALID_AUTHORIZATION, f"User {user.username} is deprovisioned", severity="FATAL")
        session = Session(catalog, user, token.token_type)
        name = database.removeprefix("md:") or DEFAULT_DATABASE
        databases = catalog.open(user).databases
        if name.lower() not in databases:
            error = no_database(name, "connect to")
            raise SqlError(error.sqlstate, error.message, severity="FATAL")
        session.database = databases[name.lower()].name
        return session


class Session:
    """One account's SQL session on the shared catalog."""

    def __init__(self, catalog: Catalog, user: User, token_type: str) -> None:
        self.catalog = catalog
        self.user_id = user.id
        self.username = user.username
        self.token_type = token_type
        self.database = DEFAULT_DATABASE
        self.in_transaction = False

    def user(self) -> User:
        """The session's user, re-read (FATAL once deleted over REST)."""
        found = self.catalog.user_by_id(self.user_id)
        if found is None or found.deprovisioned:
            raise SqlError(
                INVALID_AUTHORIZATION,
                f"User {self.username} no longer exists or is deprovisioned",
                severity="FATAL",
            )
        return found

    def execute(self, text: str) -> Result:
        """Run one statement; SqlError for anything MotherDuck would refuse."""
        cur = Cursor(text)
        if cur.done():
            return Result([], [], "EMPTY")
        with self.catalog.state.lock:
            user = self.user()
            first = cur.peek()
            assert first is not None
            if self.token_type != "read_write" and first.is_word(*WRITES):
                raise permission(f"a read-scaling token cannot run {first.value.upper()} statements")
            return self._dispatch(cur, user)

    def _dispatch(self, cur: Cursor, user: User) -> Result:
        if cur.at("SELECT") or cur.at("FROM"):
            return run_select(cur, _Env(self, user))
        for words, handler in self._handlers():
            if cur.accept(*words):
                return handler(cur, user)
        raise not_supported(cur.text)

    def _handlers(self) -> list[tuple[tuple[str, ...], Callable[[Cursor, User], Result]]]:
        return [
            (("BEGIN",), self._begin),
            (("START", "TRANSACTION"), self._begin),
            (("COMMIT",), self._end),
            (("END",), self._end),
            (("ROLLBACK",), self._end),
            (("ABORT",), self._end),
            (("SET",), self._set),
            (("RESET",), lambda cur, u: Result([], [], "RESET")),
            (("USE",), self._use),
            (("CREATE", "ROLE"), self._create_role),
            (("DROP", "ROLE"), lambda cur, u: self._drop(cur, u, self.catalog.drop_role, "DROP ROLE")),
            (("SHOW", "ALL", "ROLES"), lambda cur, u: self._rows(cur, ALL_ROLES, self.catalog.all_roles())),
            (("GRANT", "ROLE"), self._grant_role),
            (("REVOKE", "ROLE"), self._revoke_role),
            (("SHOW", "ROLES", "TO"), self._roles_to),
            (
                ("SHOW", "USERS", "OF", "ROLE"),
                lambda cur, u: self._rows_of(cur, USERS_OF, self.catalog.users_of, u),
            ),
            (
                ("SHOW", "ROLES", "OF", "ROLE"),
                lambda cur, u: self._rows_of(cur, ROLES_OF, self.catalog.roles_of, u),
            ),
            (("CREATE", "OR", "REPLACE", "SHARE"), lambda cur, u: self._create_share(cur, u, replace=True)),
            (("CREATE", "SHARE"), lambda cur, u: self._create_share(cur, u, replace=False)),
            (("ALTER", "SHARE"), self._alter_share),
            (("DROP", "SHARE"), lambda cur, u: self._drop(cur, u, self.catalog.drop_share, "DROP SHARE")),
            (("UPDATE", "SHARE"), self._update_share),
            (("LIST", "SHARES"), lambda cur, u: self._rows(cur, OWNED_SHARES, self.catalog.owned_shares(u))),
            (("DESCRIBE", "SHARE"), self._describe_share),
            (
                ("SHOW", "GRANTS", "ON", "SHARE"),
                lambda cur, u: self._rows_of(cur, GRANTEES, self.catalog.share_grantees, u),
            ),
            (("REFRESH", "DATABASES"), lambda cur, u: _command(cur, "REFRESH")),
            (("GRANT", "READ", "ON", "SHARE"), lambda cur, u: self._share_grant(cur, u, grant=True)),
            (("REVOKE", "READ", "ON", "SHARE"), lambda cur, u: self._share_grant(cur, u, grant=False)),
            (("ATTACH",), self._attach),
            (("DETACH",), self._detach),
            (("CREATE", "DATABASE"), self._create_database),
            (("DROP", "DATABASE"), self._drop_database),
            (("ALTER", "DATABASE"), self._alter_database),
            (("SHOW", "ALL", "DATABASES"), self._show_databases),
            (("SHOW", "DATABASES"), self._show_databases),
        ]

    # transactions and settings: accepted, without transactional effect (statements apply at once)

    def _begin(self, cur: Cursor, user: User) -> Result:
        cur.accept("TRANSACTION")
        cur.end()
        self.in_transaction = True
        return Result([], [], "BEGIN")

    def _end(self, cur: Cursor, user: User) -> Result:
        word = cur.tokens[0].value.upper()
        cur.accept("TRANSACTION")
        cur.end()
        self.in_transaction = False
        return Result([], [], "ROLLBACK" if word in ("ROLLBACK", "ABORT") else "COMMIT")

    def _set(self, cur: Cursor, user: User) -> Result:
        if cur.at("MOTHERDUCK_TOKEN"):
            raise not_supported("SET motherduck_token (the session's token is its password)")
        return Result([], [], "SET")

    def _use(self, cur: Cursor, user: User) -> Result:
        name = cur.name()
        cur.end()
        if name.lower() != "memory" and not any(
            r["alias"].lower() == name.lower() for r in self.catalog.all_databases(user, attached_only=True)
        ):
            raise SqlError(INVALID_CATALOG, f'Catalog Error: Database "{name}" does not exist!')
        self.database = name
        return Result([], [], "USE")

    # roles

    def _rows(self, cur: Cursor, columns: list[Column], rows: list[Row]) -> Result:
        cur.end()
        return rows_result(columns, rows)

    def _create_role(self, cur: Cursor, user: User) -> Result:
        name = cur.name()
        cur.end()
        self.catalog.create_role(user, name)
        return Result([], [], "CREATE ROLE")

    def _drop(self, cur: Cursor, user: User, drop: Callable[[User, str, bool], None], tag: str) -> Result:
        """DROP ROLE|SHARE [IF EXISTS] name."""
        if_exists = cur.accept("IF", "EXISTS")
        name = cur.name()
        cur.end()
        drop(user, name, if_exists)
        return Result([], [], tag)

    def _grantee(self, cur: Cursor) -> dict[str, str]:
        kind = "role" if cur.accept("ROLE") else "user"
        if kind == "user":
            cur.expect("USER")
        name = cur.name()
        cur.end()
        return {kind: name}

    def _grant_role(self, cur: Cursor, user: User) -> Result:
        role = cur.name()
        cur.expect("TO")
        self.catalog.grant_role(user, role, **self._grantee(cur))
        return Result([], [], "GRANT")

    def _revoke_role(self, cur: Cursor, user: User) -> Result:
        role = cur.name()
        cur.expect("FROM")
        self.catalog.revoke_role(user, role, **self._grantee(cur))
        return Result([], [], "REVOKE")

    def _roles_to(self, cur: Cursor, user: User) -> Result:
        return rows_result(ROLES_TO, self.catalog.roles_to(user, **self._grantee(cur)))

    def _rows_of(
        self, cur: Cursor, columns: list[Column], read: Callable[[User, str], list[Row]], user: User
    ) -> Result:
        name = cur.name()
        cur.end()
        return rows_result(columns, read(user, name))

    # shares

    def _create_share(self, cur: Cursor, user: User, *, replace: bool) -> Result:
        if_not_exists = cur.accept("IF", "NOT", "EXISTS")
        name = cur.name()
        database = cur.name() if cur.accept("FROM") else self.database
        options: dict[str, str | None] = {}
        if cur.punct("("):
            while True:
                option = cur.name().lower()
                if option == "include_pattern":
                    options[option] = cur.string()
                elif option in ("access", "visibility", "update"):
                    value = cur.name().lower()
                    allowed = {
                        "access": ("organization", "restricted", "unrestricted"),
                        "visibility": ("discoverable", "hidden"),
                        "update": ("automatic", "manual"),
                    }[option]
                    if value not in allowed:
                        raise invalid(
                            f"{option.upper()} must be one of {', '.join(a.upper() for a in allowed)}, not {value.upper()}"
                        )
                    options[option] = value
                else:
                    raise invalid(f"unknown share option {option.upper()}")
                if cur.punct(")"):
                    break
                cur.expect_punct(",")
        cur.end()
        self.catalog.create_share(user, name, database, options, if_not_exists=if_not_exists, replace=replace)
        return Result([], [], "CREATE SHARE")

    def _alter_share(self, cur: Cursor, user: User) -> Result:
        name = cur.name()
        pattern: str | None = None
        if cur.accept("SET", "INCLUDE_PATTERN"):
            cur.punct("=")
            pattern = cur.string()
        else:
            cur.expect("RESET", "INCLUDE_PATTERN")
        cur.end()
        self.catalog.alter_share(user, name, pattern)
        return Result([], [], "ALTER SHARE")

    def _update_share(self, cur: Cursor, user: User) -> Result:
        name = cur.name()
        cur.end()
        self.catalog.owned_share(user, name)  # a manual share's snapshot: nothing else to do here
        return Result([], [], "UPDATE SHARE")

    def _describe_share(self, cur: Cursor, user: User) -> Result:
        token = cur.peek()
        ref = cur.string() if token is not None and token.kind == "string" else cur.name()
        cur.end()
        return rows_result(DESCRIBED_SHARE, [self.catalog.describe_share(user, ref)])

    def _share_grant(self, cur: Cursor, user: User, *, grant: bool) -> Result:
        share = cur.name()
        cur.expect("TO" if grant else "FROM")
        kind = "role" if cur.accept("ROLE") else "user"
        if kind == "user":
            cur.accept("USER")  # the bare form names a user (facts, section 5)
        names = [cur.name()]
        while cur.punct(","):
            names.append(cur.name())
        cur.end()
        act = self.catalog.grant_share if grant else self.catalog.revoke_share
        for name in names:
            act(user, share, **{kind: name})
        return Result([], [], "GRANT" if grant else "REVOKE")

    # attachments and databases

    def _attach(self, cur: Cursor, user: User) -> Result:
        if_not_exists = cur.accept("IF", "NOT", "EXISTS")
        cur.accept("DATABASE")
        target = cur.string()
        alias = cur.name() if cur.accept("AS") else None
        cur.end()
        self.catalog.attach(user, target, alias, if_not_exists=if_not_exists)
        return Result([], [], "ATTACH")

    def _detach(self, cur: Cursor, user: User) -> Result:
        cur.accept("DATABASE")
        if_exists = cur.accept("IF", "EXISTS")
        alias = cur.name()
        cur.end()
        self.catalog.detach(user, alias, if_exists=if_exists)
        if alias.lower() == self.database.lower():
            self.database = "memory"
        return Result([], [], "DETACH")

    def _create_database(self, cur: Cursor, user: User) -> Result:
        if_not_exists = cur.accept("IF", "NOT", "EXISTS")
        name = cur.name()
        transient, kind, retention = False, "default", 7
        if cur.punct("("):
            while True:
                option = cur.name().upper()
                if option == "TRANSIENT":
                    transient = True
                elif option == "TYPE":
                    kind = cur.name().lower()
                    if kind not in ("default", "ducklake"):
                        raise invalid(f"database TYPE must be DUCKLAKE (or left out), not {kind.upper()}")
                elif option == "SNAPSHOT_RETENTION_DAYS":
                    retention = cur.number()
                elif option == "DATA_PATH":
                    cur.string()
                elif option != "ENCRYPTED":
                    raise invalid(f"unknown database option {option}")
                if cur.punct(")"):
                    break
                cur.expect_punct(",")
        cur.end()
        self.catalog.create_database(
            user, name, if_not_exists=if_not_exists, transient=transient, kind=kind, retention=retention
        )
        return Result([], [], "CREATE DATABASE")

    def _drop_database(self, cur: Cursor, user: User) -> Result:
        if_exists = cur.accept("IF", "EXISTS")
        name = cur.name()
        cascade = cur.accept("CASCADE")
        cur.end()
        self.catalog.drop_database(user, name, if_exists=if_exists, cascade=cascade, current=self.database)
        return Result([], [], "DROP DATABASE")

    def _alter_database(self, cur: Cursor, user: User) -> Result:
        name = cur.name()
        cur.expect("SET", "SNAPSHOT_RETENTION_DAYS")
        cur.punct("=")
        days = cur.number()
        cur.end()
        self.catalog.database(user, name).retention_days = days
        return Result([], [], "ALTER DATABASE")

    def _show_databases(self, cur: Cursor, user: User) -> Result:
        cur.end()
        return rows_result(ALL_DATABASES, self.catalog.all_databases(user, attached_only=False))


class _Env:
    """What a SELECT of this session reads."""

    def __init__(self, session: Session, user: User) -> None:
        self.session = session
        self.user = user

    def scalar(self, name: str) -> tuple[Any, int]:
        values = {
            "MD_USER": self.user.username,
            "CURRENT_USER": self.user.username,
            "CURRENT_DATABASE": self.session.database,
            "CURRENT_SCHEMA": "main",
            "MD_VERSION": VERSION,
            "VERSION": VERSION,
        }
        return values[name], TEXT

    def source(self, path: Sequence[str], args: Sequence[Any] | None) -> Table:
        c, user = self.session.catalog, self.user
        key = ".".join(p.upper() for p in path)
        if args is None:
            views: dict[str, Callable[[], Table]] = {
                "MD_INFORMATION_SCHEMA.OWNED_SHARES": lambda: Table(OWNED_SHARES, c.owned_shares(user)),
                "MD_INFORMATION_SCHEMA.SHARED_WITH_ME": lambda: Table(SHARED_WITH_ME, c.shared_with_me(user)),
                "MD_INFORMATION_SCHEMA.DATABASES": lambda: Table(DATABASES, c.databases(user)),
            }
            if key in views:
                return views[key]()
            return self._table(path)
        functions: dict[str, tuple[int, Callable[..., Table]]] = {
            "MD_LIST_SHARE_GRANTEES": (1, lambda name: Table(GRANTEES, c.share_grantees(user, str(name)))),
            "MD_DESCRIBE_DATABASE_SHARE": (
                1,
                lambda ref: Table(DESCRIBED_SHARE, [c.describe_share(user, str(ref))]),
            ),
            "MD_LIST_DATABASE_SHARES": (0, lambda: Table(LISTED_SHARES, c.owned_shares(user))),
            "DUCKDB_FUNCTIONS": (0, lambda: Table(FUNCTION_LIST, self._functions())),
            "MD_ALL_DATABASES": (0, lambda: Table(ALL_DATABASES, c.all_databases(user, attached_only=False))),
            "MD_ATTACHED_DATABASES": (
                0,
                lambda: Table(ALL_DATABASES, c.all_databases(user, attached_only=True)),
            ),
            "MD_USER_INFO": (0, lambda: Table(USER_INFO, [self._user_info()])),
        }
        if key not in functions:
            raise SqlError(
                "42883", f"Catalog Error: Table Function with name {'.'.join(path).lower()} does not exist!"
            )
        arity, build = functions[key]
        if len(args) != arity:
            raise SqlError("42883", f"Binder Error: {key.lower()} takes {arity} argument(s), not {len(args)}")
        return build(*args)

    def _functions(self) -> list[Row]:
        return [{"schema_name": "main", "function_name": n, "function_type": t} for n, t in FUNCTIONS]

    def _user_info(self) -> Row:
        c = self.session.catalog
        return {
            "user_id": self.user.id,
            "username": self.user.username,
            "org_id": c.org_id,
            "org_name": c.org_name,
            "org_type": "business" if c.state.business_plan else "lite",
            "region": c.region,
        }

    def _table(self, path: Sequence[str]) -> Table:
        """A table: only its row count is kept, so only ``count(*)`` can read it."""
        if len(path) == 3:
            alias, table = path[0], f"{path[1]}.{path[2]}"
        elif len(path) == 2:
            alias, table = path[0], f"main.{path[1]}"
        else:
            alias, table = self.session.database, f"main.{path[0]}"
        count = self.session.catalog.count_rows(self.user, alias, table)
        return Table([], [{} for _ in range(count)])
