"""The SQL hook methods: roles, role grants, shares, share grants, attachments, databases, the current user.

Each method builds its statements in :mod:`~airflow_provider_motherduck.hooks.sql.statements`
and runs them through :meth:`SQLAdminMixin.sql_session`, the one SQL choke point (the hook
implements it). ``as_user`` runs them as that service account through a short-lived token.

Idempotence: the ``create_*``/``grant_*``/``attach_*`` methods read first and do nothing when
what they would make exists (``exists_ok``); ``drop_*``/``revoke_*``/``detach_*`` do nothing
when it is missing (``missing_ok``). MotherDuck offers no ``IF NOT EXISTS`` for roles, shares or
grants, so a concurrent writer can come between the read and the write: a create that then
fails with "already exists" reads again and answers what is there (with ``exists_ok``), and a
drop or revoke of what vanished meanwhile is a no-op (``IF EXISTS``; REVOKE ignores the missing).
The answer's ``created`` says whether this call created it. Usernames and role names compare
case-insensitively, as MotherDuck compares them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, TypeVar

from airflow_provider_motherduck.exceptions import (
    MotherDuckSQLError,
    MotherDuckSQLExistsError,
    MotherDuckSQLNotFoundError,
)
from airflow_provider_motherduck.hooks.sql import statements as st
from airflow_provider_motherduck.hooks.sql.answers import (
    Attachment,
    Database,
    Role,
    RoleGrant,
    Share,
    ShareGrant,
)
from airflow_provider_motherduck.hooks.sql.session import SQLSession
from airflow_provider_motherduck.validation import (
    check_alias,
    check_include_pattern,
    check_object_name,
    check_role_name,
    check_share_access,
    check_share_update,
    check_share_url,
    check_share_visibility,
    share_url_database,
)

T = TypeVar("T")


def _first(items: Iterable[T], key: Callable[[T], str], name: str) -> T | None:
    folded = name.casefold()
    return next((item for item in items if key(item).casefold() == folded), None)


class SQLAdminMixin:
    """MotherDuck's SQL administration as hook methods (mixed into :class:`MotherDuckHook`)."""

    def sql_session(self, *, as_user: str | None = None) -> AbstractContextManager[SQLSession]:
        """A SQL session as the connection's account, or as the service account ``as_user``."""
        raise NotImplementedError

    def _run(self, statement: st.Statement, as_user: str | None = None) -> list[dict[str, Any]]:
        with self.sql_session(as_user=as_user) as session:
            return session.run(statement)

    # -- roles -----------------------------------------------------------------------------------

    def list_roles(self) -> list[Role]:
        """Every role of the organisation, preset and custom (``SHOW ALL ROLES``)."""
        return [Role.from_row(row) for row in self._run(st.show_all_roles())]

    def create_role(self, name: str, exists_ok: bool = True) -> Role:
        """Create a custom role (Business plan); an existing one is answered as it is if ``exists_ok``."""
        role = check_role_name(name, "name", new=True)
        with self.sql_session() as s:
            found = _first(_roles(s), lambda r: r.name, role)
            if found is None:
                try:
                    s.run(st.create_role(role))
                except MotherDuckSQLExistsError:
                    if not exists_ok:
                        raise
                else:
                    return replace(_read_back(_roles(s), lambda r: r.name, role, "CREATE ROLE"), created=True)
                found = _read_back(_roles(s), lambda r: r.name, role, "CREATE ROLE")
            elif not exists_ok:
                raise MotherDuckSQLExistsError(f"the role {found.name!r} exists already", "CREATE ROLE")
            return found

    def drop_role(self, name: str, missing_ok: bool = True) -> bool:
        """Drop a custom role; ``False`` if it was missing (and ``missing_ok``)."""
        role = check_role_name(name, "name", new=True)
        with self.sql_session() as s:
            if _first(_roles(s), lambda r: r.name, role) is None:
                return _missing(missing_ok, f"the role {role!r} does not exist", "DROP ROLE")
            s.run(st.drop_role(role))
        return True

    def grant_role(self, role: str, *, to_user: str | None = None, to_role: str | None = None) -> bool:
        """Grant ``role`` to a user or a role; ``False`` if it held it directly already."""
        kind, grantee = st.pick_grantee(to_user, to_role, "to")
        statement = st.grant_role(role, kind, grantee)
        with self.sql_session() as s:
            if _direct(s.run(st.show_roles_to(kind, grantee)), role):
                return False
            s.run(statement)
        return True

    def revoke_role(self, role: str, *, from_user: str | None = None, from_role: str | None = None) -> bool:
        """Revoke ``role`` from a user or a role; ``False`` if it did not hold it directly."""
        kind, grantee = st.pick_grantee(from_user, from_role, "from")
        statement = st.revoke_role(role, kind, grantee)
        with self.sql_session() as s:
            if not _direct(s.run(st.show_roles_to(kind, grantee)), role):
                return False
            s.run(statement)
        return True

    def roles_of(self, username: str) -> list[RoleGrant]:
        """The roles a user holds, directly or through another role (``SHOW ROLES TO USER``)."""
        return [RoleGrant.from_row(row) for row in self._run(st.show_roles_to("user", username))]

    # -- shares ----------------------------------------------------------------------------------

    def list_shares(self, *, as_user: str | None = None) -> list[Share]:
        """The shares the account owns, with their URLs (``MD_INFORMATION_SCHEMA.OWNED_SHARES``)."""
        return [Share.from_row(row) for row in self._run(st.owned_shares(), as_user)]

    def create_share(
        self,
        name: str,
        database: str,
        *,
        access: str,
        visibility: str,
        update: str,
        include: Sequence[str] | None = None,
        as_user: str | None = None,
        exists_ok: bool = True,
    ) -> Share:
        """Create a share of ``database`` owned by the account; the answer carries its URL.

        ``include``: table patterns of a filtered share (Business plan); ``None`` shares the
        whole database. An existing share of that name is answered if ``exists_ok`` and it has
        the same options; other options raise ``MotherDuckSQLExistsError`` (nothing is replaced:
        replacing a share changes its URL and breaks every attachment).
        """
        statement = st.create_share(
            name, database, access=access, visibility=visibility, update=update, include=include
        )
        wanted = {
            "database": check_object_name(database, "database"),
            "access": check_share_access(access),
            "visibility": check_share_visibility(visibility),
            "update": check_share_update(update),
            "include": None if include is None else check_include_pattern(include),
        }
        with self.sql_session(as_user=as_user) as s:
            found = _one(s.run(st.owned_shares(name)), Share.from_row)
            if found is None:
                try:
                    s.run(statement)
                except MotherDuckSQLExistsError:
                    if not exists_ok:
                        raise
                else:
                    return replace(_read_share(s, name), created=True)
                found = _read_share(s, name)
            elif not exists_ok:
                raise MotherDuckSQLExistsError(f"the share {name!r} exists already", "CREATE SHARE")
        differs = {k: getattr(found, k) for k, v in wanted.items() if getattr(found, k) != v}
        if differs:
            raise MotherDuckSQLExistsError(
                f"the share {name!r} exists with other options {differs}",
                "CREATE SHARE",
                advice="Drop it first (its URL changes and attachments break), or declare what it holds.",
            )
        return found

    def drop_share(self, name: str, *, as_user: str | None = None, missing_ok: bool = True) -> bool:
        """Drop a share the account owns; ``False`` if it owns none of that name (and ``missing_ok``)."""
        statement = st.drop_share(name)
        with self.sql_session(as_user=as_user) as s:
            if not s.run(st.owned_shares(name)):
                return _missing(missing_ok, f"the account owns no share {name!r}", "DROP SHARE")
            s.run(statement)
        return True

    def share_grants(self, name: str, *, as_user: str | None = None) -> list[ShareGrant]:
        """Who may read a share (``MD_LIST_SHARE_GRANTEES``); run as its owner or an admin."""
        return [ShareGrant.from_row(row) for row in self._run(st.share_grantees(name), as_user)]

    def grant_share(
        self,
        share: str,
        *,
        to_user: str | None = None,
        to_role: str | None = None,
        as_user: str | None = None,
    ) -> bool:
        """Let a user or role read ``share`` (run as its owner); ``False`` if granted already."""
        kind, grantee = st.pick_grantee(to_user, to_role, "to")
        statement = st.grant_share(share, kind, grantee)
        with self.sql_session(as_user=as_user) as s:
            if _granted(s.run(st.share_grantees(share)), kind, grantee):
                return False
            s.run(statement)
        return True

    def revoke_share(
        self,
        share: str,
        *,
        from_user: str | None = None,
        from_role: str | None = None,
        as_user: str | None = None,
    ) -> bool:
        """Take back a user's or role's read grant on ``share``; ``False`` if there was none."""
        kind, grantee = st.pick_grantee(from_user, from_role, "from")
        statement = st.revoke_share(share, kind, grantee)
        with self.sql_session(as_user=as_user) as s:
            if not _granted(s.run(st.share_grantees(share)), kind, grantee):
                return False
            s.run(statement)
        return True

    # -- attachments -----------------------------------------------------------------------------

    def attach_share(self, url: str, alias: str | None = None, *, as_user: str | None) -> Attachment:
        """Attach a share (by URL) for the account ``as_user`` under ``alias`` (default: its database's name).

        The account keeps the attachment across sessions. An alias attached already is answered
        as it is (``created=False``).
        """
        name = check_alias(alias if alias is not None else share_url_database(check_share_url(url)))
        statement = st.attach_share(url, name)
        with self.sql_session(as_user=as_user) as s:
            found = _first(_attachments(s), lambda a: a.alias, name)
            if found is not None:
                return found
            s.run(statement)
            return replace(_read_back(_attachments(s), lambda a: a.alias, name, "ATTACH"), created=True)

    def detach_share(self, alias: str, *, as_user: str | None) -> bool:
        """Detach what the account ``as_user`` attached as ``alias``; ``False`` if nothing is."""
        statement = st.detach(alias)
        with self.sql_session(as_user=as_user) as s:
            if _first(_attachments(s), lambda a: a.alias, alias) is None:
                return False
            s.run(statement)
        return True

    def attached_databases(self, *, as_user: str | None) -> list[Attachment]:
        """What the account ``as_user`` has attached (``None``: the connection's account)."""
        return [Attachment.from_row(row) for row in self._run(st.attached_databases(), as_user)]

    # -- databases -------------------------------------------------------------------------------

    def list_databases(self, *, as_user: str | None = None) -> list[Database]:
        """The account's databases (``MD_INFORMATION_SCHEMA.DATABASES``)."""
        return [Database.from_row(row) for row in self._run(st.databases(), as_user)]

    def create_database(self, name: str, *, as_user: str | None = None, exists_ok: bool = True) -> Database:
        """Create an empty database owned by the account; an existing one is answered if ``exists_ok``."""
        statement = st.create_database(name)
        with self.sql_session(as_user=as_user) as s:
            found = _one(s.run(st.databases(name)), Database.from_row)
            if found is None:
                try:
                    s.run(statement)
                except MotherDuckSQLExistsError:
                    if not exists_ok:
                        raise
                else:
                    return replace(_read_database(s, name), created=True)
                found = _read_database(s, name)
            elif not exists_ok:
                raise MotherDuckSQLExistsError(f"the database {name!r} exists already", "CREATE DATABASE")
            return found

    def drop_database(self, name: str, *, as_user: str | None = None, missing_ok: bool = True) -> bool:
        """Drop a database of the account and all it holds; ``False`` if missing (and ``missing_ok``)."""
        statement = st.drop_database(name)
        with self.sql_session(as_user=as_user) as s:
            if not s.run(st.databases(name)):
                return _missing(missing_ok, f"the account has no database {name!r}", "DROP DATABASE")
            s.run(statement)
        return True


# -- reading back --------------------------------------------------------------------------------


def _roles(s: SQLSession) -> list[Role]:
    return [Role.from_row(row) for row in s.run(st.show_all_roles())]


def _attachments(s: SQLSession) -> list[Attachment]:
    return [Attachment.from_row(row) for row in s.run(st.attached_databases())]


def _one(rows: list[dict[str, Any]], parse: Callable[[dict[str, Any]], T]) -> T | None:
    return parse(rows[0]) if rows else None


def _read_share(s: SQLSession, name: str) -> Share:
    return _read_back(
        [Share.from_row(r) for r in s.run(st.owned_shares(name))], lambda x: x.name, name, "CREATE SHARE"
    )


def _read_database(s: SQLSession, name: str) -> Database:
    rows = [Database.from_row(r) for r in s.run(st.databases(name))]
    return _read_back(rows, lambda x: x.name, name, "CREATE DATABASE")


def _read_back(items: Iterable[T], key: Callable[[T], str], name: str, label: str) -> T:
    """What a write made, read again; its absence is an error (MotherDuck answered without doing it)."""
    found = _first(items, key, name)
    if found is None:
        raise MotherDuckSQLError(f"{label} succeeded but {name!r} cannot be read back", label)
    return found


def _missing(missing_ok: bool, message: str, label: str) -> bool:
    if missing_ok:
        return False
    raise MotherDuckSQLNotFoundError(message, label)


def _direct(rows: list[dict[str, Any]], role: str) -> bool:
    """Whether ``role`` is among the rows of ``SHOW ROLES TO`` as a direct grant (``is_direct``)."""
    return any(g.direct and g.role.casefold() == role.casefold() for g in map(RoleGrant.from_row, rows))


def _granted(rows: list[dict[str, Any]], kind: str, grantee: str) -> bool:
    folded = grantee.casefold()
    return any(
        g.grantee_type == kind and g.grantee.casefold() == folded and g.privilege == "read"
        for g in map(ShareGrant.from_row, rows)
    )
