"""Every SQL statement the provider sends to MotherDuck, built here and nowhere else.

Invariant: user input reaches SQL text only through :func:`ident` (``"`` doubled inside double
quotes) or :func:`literal` (``'`` doubled inside single quotes), after the checks of
:mod:`~airflow_provider_motherduck.validation`; keywords come from validated lowercase enums,
uppercased. Each :class:`Statement` knows its :class:`Kind`, which decides whether a transient
failure may be retried: reads, drops and revokes yes (repeating them changes nothing), creates
and grants no (MotherDuck's own Terraform provider draws the same line), nor ``ALTER SHARE``,
a write like them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.validation import (
    check_alias,
    check_grantee,
    check_include_pattern,
    check_object_name,
    check_role_name,
    check_share_access,
    check_share_update,
    check_share_url,
    check_share_visibility,
    check_table_path,
)

GranteeKind: TypeAlias = Literal["user", "role"]


class Kind(enum.Enum):
    """What a statement does, for the retry rule."""

    READ = "read"
    WRITE = "write"
    DROP = "drop"
    REVOKE = "revoke"

    @property
    def retried(self) -> bool:
        """Whether a transient failure may be retried: repeating it cannot do something twice."""
        return self is not Kind.WRITE


@dataclass(frozen=True)
class Statement:
    """One SQL statement: its text, its kind and how errors name it (``label``, e.g. ``CREATE SHARE``).

    A ``secret`` statement (the one that sets the token) is never shown: not in ``repr``, an
    error or a log line; :attr:`shown` gives its label instead.
    """

    sql: str = field(repr=False)
    kind: Kind
    label: str
    secret: bool = False

    @property
    def shown(self) -> str:
        """The text to show in logs and errors."""
        return self.label if self.secret else self.sql

    def __repr__(self) -> str:
        return f"Statement({self.shown!r}, {self.kind.value})"


def ident(name: str) -> str:
    """A quoted identifier: ``"`` + the name with ``"`` doubled + ``"``."""
    return '"' + _no_nul(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted string literal: ``'`` + the value with ``'`` doubled + ``'``."""
    return "'" + _no_nul(value).replace("'", "''") + "'"


def _no_nul(text: str) -> str:
    if "\x00" in text:  # a NUL ends the text in C clients: what follows would be lost or misread
        raise invalid("sql", "(not shown)", "it contains a NUL character", "text without NUL", show=False)
    return text


def _grantee(kind: GranteeKind, name: str, field_prefix: str) -> str:
    if kind == "role":
        return f"ROLE {ident(check_role_name(name, f'{field_prefix}_role'))}"
    return f"USER {ident(check_grantee(name, f'{field_prefix}_user'))}"


def pick_grantee(user: str | None, role: str | None, prefix: str) -> tuple[GranteeKind, str]:
    """Exactly one of ``<prefix>_user`` and ``<prefix>_role``, as ``(kind, name)``."""
    if (user is None) == (role is None):
        raise invalid(
            f"{prefix}_user/{prefix}_role",
            (user, role),
            "exactly one must be given",
            f"{prefix}_user='name' or {prefix}_role='name'",
        )
    return ("user", user) if user is not None else ("role", role)  # type: ignore[return-value]


# -- session set-up (the DuckDB transport) -------------------------------------------------------


def boot(token: str) -> list[Statement]:
    """What opens a MotherDuck session in a fresh in-memory DuckDB: one DuckDB per token.

    Opening ``md:`` directly admits one token per process; ``SET motherduck_token`` and
    ``ATTACH 'md:'`` in an in-memory database admit any number, one per DuckDB.
    """
    return [
        Statement("INSTALL motherduck", Kind.READ, "INSTALL motherduck"),
        Statement("LOAD motherduck", Kind.READ, "LOAD motherduck"),
        Statement(f"SET motherduck_token = {literal(token)}", Kind.READ, "SET motherduck_token", secret=True),
        Statement("ATTACH 'md:'", Kind.READ, "ATTACH 'md:'"),
    ]


def user_info() -> Statement:
    """The session's user: ``user_id, username, org_id, org_name, org_type, region``."""
    return Statement("FROM md_user_info()", Kind.READ, "md_user_info()")


def local_user() -> Statement:
    """DuckDB's own ``current_user``: a local default user outside MotherDuck (named in errors)."""
    return Statement("SELECT current_user", Kind.READ, "current_user")


# -- roles (facts, section 3) ----------------------------------------------------------------------


def show_all_roles() -> Statement:
    """Every role: ``role_name, role_type, included_roles, created_at``."""
    return Statement("SHOW ALL ROLES", Kind.READ, "SHOW ALL ROLES")


def create_role(name: str) -> Statement:
    return Statement(
        f"CREATE ROLE {ident(check_role_name(name, 'name', new=True))}", Kind.WRITE, "CREATE ROLE"
    )


def drop_role(name: str) -> Statement:
    return Statement(
        f"DROP ROLE IF EXISTS {ident(check_role_name(name, 'name', new=True))}", Kind.DROP, "DROP ROLE"
    )


def grant_role(role: str, kind: GranteeKind, grantee: str) -> Statement:
    sql = f"GRANT ROLE {ident(check_role_name(role))} TO {_grantee(kind, grantee, 'to')}"
    return Statement(sql, Kind.WRITE, "GRANT ROLE")


def revoke_role(role: str, kind: GranteeKind, grantee: str) -> Statement:
    sql = f"REVOKE ROLE {ident(check_role_name(role))} FROM {_grantee(kind, grantee, 'from')}"
    return Statement(sql, Kind.REVOKE, "REVOKE ROLE")


def show_roles_to(kind: GranteeKind, grantee: str) -> Statement:
    """The roles of a user or role, transitively: ``role_name, role_type, is_direct, granted_at``."""
    return Statement(f"SHOW ROLES TO {_grantee(kind, grantee, 'of')}", Kind.READ, "SHOW ROLES TO")


# -- shares (facts, sections 4 and 5) -------------------------------------------------------------


def owned_shares(name: str | None = None) -> Statement:
    """The shares the session's account owns (one, if ``name``), ordered by name."""
    where = "" if name is None else f" WHERE name = {literal(check_object_name(name, 'name'))}"
    sql = f"SELECT * FROM MD_INFORMATION_SCHEMA.OWNED_SHARES{where} ORDER BY name"
    return Statement(sql, Kind.READ, "MD_INFORMATION_SCHEMA.OWNED_SHARES")


def create_share(
    name: str,
    database: str,
    *,
    access: str,
    visibility: str,
    update: str,
    include: Sequence[str] | None = None,
) -> Statement:
    """``CREATE SHARE "name" FROM "database" (ACCESS ..., VISIBILITY ..., UPDATE ...[, INCLUDE_PATTERN '...'])``.

    ``include=None`` shares the whole database; an empty list shares nothing.
    """
    options = [
        f"ACCESS {check_share_access(access).upper()}",
        f"VISIBILITY {check_share_visibility(visibility).upper()}",
        f"UPDATE {check_share_update(update).upper()}",
    ]
    if include is not None:
        options.append(_include_pattern(include))
    sql = (
        f"CREATE SHARE {ident(check_object_name(name, 'name'))} "
        f"FROM {ident(check_object_name(database, 'database'))} ({', '.join(options)})"
    )
    return Statement(sql, Kind.WRITE, "CREATE SHARE")


def set_share_include(name: str, include: Sequence[str] | None) -> Statement:
    """``ALTER SHARE "name" SET INCLUDE_PATTERN '...'``, or ``RESET INCLUDE_PATTERN`` for ``None``.

    The one option changed in place (its URL stays); ``None`` shares the whole database again,
    an empty list nothing.
    """
    change = "RESET INCLUDE_PATTERN" if include is None else f"SET {_include_pattern(include)}"
    return Statement(
        f"ALTER SHARE {ident(check_object_name(name, 'name'))} {change}", Kind.WRITE, "ALTER SHARE"
    )


def _include_pattern(include: Sequence[str]) -> str:
    """``INCLUDE_PATTERN '<patterns joined with ,>'``."""
    return f"INCLUDE_PATTERN {literal(','.join(check_include_pattern(include)))}"


def drop_share(name: str) -> Statement:
    return Statement(
        f"DROP SHARE IF EXISTS {ident(check_object_name(name, 'name'))}", Kind.DROP, "DROP SHARE"
    )


def share_grantees(share: str) -> Statement:
    """Who may read a share: ``share_owner, grantee_name, grantee_type, privilege, granted_at``."""
    sql = (
        f"SELECT * FROM MD_LIST_SHARE_GRANTEES({literal(check_object_name(share, 'share'))}) "
        "ORDER BY grantee_type, grantee_name"
    )
    return Statement(sql, Kind.READ, "MD_LIST_SHARE_GRANTEES")


def grant_share(share: str, kind: GranteeKind, grantee: str) -> Statement:
    sql = f"GRANT READ ON SHARE {ident(check_object_name(share, 'share'))} TO {_grantee(kind, grantee, 'to')}"
    return Statement(sql, Kind.WRITE, "GRANT READ ON SHARE")


def revoke_share(share: str, kind: GranteeKind, grantee: str) -> Statement:
    sql = (
        f"REVOKE READ ON SHARE {ident(check_object_name(share, 'share'))} "
        f"FROM {_grantee(kind, grantee, 'from')}"
    )
    return Statement(sql, Kind.REVOKE, "REVOKE READ ON SHARE")


# -- attachments (facts, section 6) --------------------------------------------------------------


def attach_share(url: str, alias: str) -> Statement:
    sql = f"ATTACH {literal(check_share_url(url))} AS {ident(check_alias(alias))}"
    return Statement(sql, Kind.WRITE, "ATTACH")


def detach(alias: str) -> Statement:
    return Statement(f"DETACH {ident(check_alias(alias))}", Kind.DROP, "DETACH")


def attached_databases() -> Statement:
    """What the session's account has attached: ``alias, is_attached, type, fully_qualified_name``."""
    sql = (
        "SELECT alias, is_attached, type, fully_qualified_name FROM MD_ALL_DATABASES() "
        "WHERE is_attached = true ORDER BY alias"
    )
    return Statement(sql, Kind.READ, "MD_ALL_DATABASES()")


def count_rows(table: str) -> Statement:
    """``SELECT count(*) AS row_count FROM "alias"."schema"."table"`` (``alias.table``: schema ``main``)."""
    path = ".".join(ident(part) for part in check_table_path(table))
    return Statement(f"SELECT count(*) AS row_count FROM {path}", Kind.READ, "SELECT count(*)")


# -- databases (facts, section 7) ----------------------------------------------------------------


def databases(name: str | None = None) -> Statement:
    """The account's databases (one, if ``name``): ``name, uuid, created_ts, type, transient, ...``."""
    where = "" if name is None else f" WHERE name = {literal(check_object_name(name, 'name'))}"
    sql = f"SELECT * FROM MD_INFORMATION_SCHEMA.DATABASES{where} ORDER BY name"
    return Statement(sql, Kind.READ, "MD_INFORMATION_SCHEMA.DATABASES")


def create_database(name: str) -> Statement:
    return Statement(
        f"CREATE DATABASE {ident(check_object_name(name, 'name'))}", Kind.WRITE, "CREATE DATABASE"
    )


def drop_database(name: str) -> Statement:
    sql = f"DROP DATABASE IF EXISTS {ident(check_object_name(name, 'name'))}"
    return Statement(sql, Kind.DROP, "DROP DATABASE")
