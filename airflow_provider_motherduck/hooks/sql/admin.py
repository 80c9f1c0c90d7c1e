"""The SQL hook methods: roles, role grants, shares, share grants, attachments (and reading through one), databases.

Each method builds its statements in :mod:`~airflow_provider_motherduck.hooks.sql.statements`
and runs them through :meth:`SQLAdminMixin.sql_session`, the one SQL choke point (the hook
implements it). ``as_user`` runs them as that service account through a short-lived token.

Idempotence: the ``create_*``/``grant_*``/``attach_*`` methods read first and do nothing when
what they would make exists (``exists_ok``); ``drop_*``/``revoke_*``/``detach_*`` do nothing
when it is missing (``missing_ok``). MotherDuck offers no ``IF NOT EXISTS`` for roles, shares or
grants, so a concurrent writer can come between the read and the write: a create that then
fails with "already exists" reads again and answers what is there (with ``exists_ok``), and a
drop or revoke of what vanished meanwhile is a no-op (``IF EXISTS``; REVOKE ignores the missing).
The answer's ``created`` says whether this call created it; ``set_share_include`` reads first
too, and its answer's ``changed`` says whether it changed the share. Usernames and role names
compare case-insensitively, as MotherDuck compares them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import partial
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
    SHARE_URL_PREFIX,
    check_alias,
    check_include_pattern,
    check_object_name,
    check_share_access,
    check_share_update,
    check_share_url,
    check_share_visibility,
    share_url_database,
)

T = TypeVar("T")
#: What a create answers: it carries ``created``.
Made = TypeVar("Made", Role, Share, Database, Attachment)


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
        statement = st.create_role(name)
        with self.sql_session() as s:
            return _create(s, statement, partial(_role, s, name), exists_ok, f"the role {name!r}")

    def drop_role(self, name: str, missing_ok: bool = True) -> bool:
        """Drop a custom role; ``False`` if it was missing (and ``missing_ok``)."""
        statement = st.drop_role(name)
        with self.sql_session() as s:
            return _drop(
                s,
                statement,
                _role(s, name) is not None,
                missing_ok,
                f"the role {name!r}",
            )

    def grant_role(self, role: str, *, to_user: str | None = None, to_role: str | None = None) -> bool:
        """Grant ``role`` to a user or a role; ``False`` if it held it directly already."""
        kind, grantee = st.pick_grantee(to_user, to_role, "to")
        statement = st.grant_role(role, kind, grantee)
        with self.sql_session() as s:
            return _change(s, statement, unless=_direct(s.run(st.show_roles_to(kind, grantee)), role))

    def revoke_role(self, role: str, *, from_user: str | None = None, from_role: str | None = None) -> bool:
        """Revoke ``role`` from a user or a role; ``False`` if it did not hold it directly."""
        kind, grantee = st.pick_grantee(from_user, from_role, "from")
        statement = st.revoke_role(role, kind, grantee)
        with self.sql_session() as s:
            return _change(s, statement, unless=not _direct(s.run(st.show_roles_to(kind, grantee)), role))

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
            found = _create(s, statement, partial(_share, s, name), exists_ok, f"the share {name!r}")
        if found.created:
            return found
        differs = {k: getattr(found, k) for k, v in wanted.items() if getattr(found, k) != v}
        if differs:
            raise MotherDuckSQLExistsError(
                f"the share {name!r} exists with other options {differs}",
                "CREATE SHARE",
                advice="Drop it first (its URL changes and attachments break), or declare what it holds.",
            )
        return found

    def set_share_include(
        self, name: str, include: Sequence[str] | None, *, as_user: str | None = None
    ) -> Share:
        """Change which tables a share the account owns shows, in place: its URL and grants stay.

        ``include``: table patterns (a filtered share, Business plan); ``None`` resets it to the
        whole database, ``[]`` shares nothing. The answer is the share as it then is; ``changed``
        is ``False`` when it showed these already (nothing is run).
        """
        statement = st.set_share_include(name, include)
        wanted = None if include is None else check_include_pattern(include)
        what = _owned_share(name, as_user)
        with self.sql_session(as_user=as_user) as s:
            found = _share(s, name)
            if found is None:
                raise MotherDuckSQLNotFoundError(f"{what} does not exist", statement.label)
            if found.include == wanted:
                return found
            s.run(statement)
            return replace(_read_back(_share(s, name), what, statement.label), changed=True)

    def drop_share(self, name: str, *, as_user: str | None = None, missing_ok: bool = True) -> bool:
        """Drop a share the account owns; ``False`` if it owns none of that name (and ``missing_ok``)."""
        statement = st.drop_share(name)
        with self.sql_session(as_user=as_user) as s:
            found = bool(s.run(st.owned_shares(name)))
            return _drop(s, statement, found, missing_ok, _owned_share(name, as_user))

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
            return _change(s, statement, unless=_granted(s.run(st.share_grantees(share)), kind, grantee))

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
            return _change(s, statement, unless=not _granted(s.run(st.share_grantees(share)), kind, grantee))

    # -- attachments -----------------------------------------------------------------------------

    def attach_share(self, url: str, alias: str | None = None, *, as_user: str | None) -> Attachment:
        """Attach a share (by URL) for the account ``as_user`` under ``alias`` (default: its database's name).

        The account keeps the attachment across sessions. The same share attached already under
        ``alias`` is answered as it is (``created=False``); an alias taken by a database of the
        account, or by another share, raises ``MotherDuckSQLExistsError``.
        """
        name = check_alias(alias if alias is not None else share_url_database(check_share_url(url)))
        statement = st.attach_share(url, name)
        with self.sql_session(as_user=as_user) as s:
            attached = _create(s, statement, partial(_attachment, s, name), True, f"the attachment {name!r}")
        # Assumed: a share's fully_qualified_name is its URL (MotherDuck does not document it);
        # an attachment of another form is taken as the same share.
        taken = not attached.is_share or (attached.name.startswith(SHARE_URL_PREFIX) and attached.name != url)
        if taken and not attached.created:
            raise MotherDuckSQLExistsError(
                f"the alias {name!r} is taken by {attached.type} {attached.name!r}",
                "ATTACH",
                advice="Pass another alias.",
            )
        return attached

    def detach_share(self, alias: str, *, as_user: str | None) -> bool:
        """Detach the share the account ``as_user`` attached as ``alias``; ``False`` if nothing is.

        An alias that names one of the account's own databases is refused, never detached.
        """
        statement = st.detach(alias)
        with self.sql_session(as_user=as_user) as s:
            found = _attachment(s, alias)
            if found is not None and not found.is_share:
                raise MotherDuckSQLError(
                    f"{alias!r} is the account's {found.type} {found.name!r}, not an attached share: not detached",
                    statement.sql,
                )
            return _change(s, statement, unless=found is None)

    def attached_databases(self, *, as_user: str | None) -> list[Attachment]:
        """What the account ``as_user`` has attached (``None``: the connection's account)."""
        return [Attachment.from_row(row) for row in self._run(st.attached_databases(), as_user)]

    def count_rows(self, table: str, *, as_user: str | None = None) -> int:
        """How many rows ``table`` (``alias.schema.table`` or ``alias.table``) holds, read as ``as_user``.

        Through an attachment, this is a read as the account that attached the share; a table
        it cannot reach (not attached, no grant, not in the share) raises ``MotherDuckSQLNotFoundError``.
        """
        [row] = self._run(st.count_rows(table), as_user)
        return int(row["row_count"])

    # -- databases -------------------------------------------------------------------------------

    def list_databases(self, *, as_user: str | None = None) -> list[Database]:
        """The account's databases (``MD_INFORMATION_SCHEMA.DATABASES``)."""
        return [Database.from_row(row) for row in self._run(st.databases(), as_user)]

    def create_database(self, name: str, *, as_user: str | None = None, exists_ok: bool = True) -> Database:
        """Create an empty database owned by the account; an existing one is answered if ``exists_ok``."""
        statement = st.create_database(name)
        with self.sql_session(as_user=as_user) as s:
            return _create(s, statement, partial(_database, s, name), exists_ok, f"the database {name!r}")

    def drop_database(self, name: str, *, as_user: str | None = None, missing_ok: bool = True) -> bool:
        """Drop a database of the account and all it holds; ``False`` if missing (and ``missing_ok``)."""
        statement = st.drop_database(name)
        with self.sql_session(as_user=as_user) as s:
            return _drop(s, statement, bool(s.run(st.databases(name))), missing_ok, f"the database {name!r}")


# -- reading back --------------------------------------------------------------------------------


def _roles(s: SQLSession) -> list[Role]:
    return [Role.from_row(row) for row in s.run(st.show_all_roles())]


def _attachments(s: SQLSession) -> list[Attachment]:
    return [Attachment.from_row(row) for row in s.run(st.attached_databases())]


def _role(s: SQLSession, name: str) -> Role | None:
    return _first(_roles(s), lambda r: r.name, name)


def _attachment(s: SQLSession, alias: str) -> Attachment | None:
    return _first(_attachments(s), lambda a: a.alias, alias)


def _share(s: SQLSession, name: str) -> Share | None:
    rows = s.run(st.owned_shares(name))
    return Share.from_row(rows[0]) if rows else None


def _owned_share(name: str, as_user: str | None) -> str:
    """How errors name a share: with its owner, the only account that finds it by name."""
    owner = as_user if as_user is not None else "the connection's account"
    return f"the share {name!r} of {owner}"


def _database(s: SQLSession, name: str) -> Database | None:
    rows = s.run(st.databases(name))
    return Database.from_row(rows[0]) if rows else None


def _create(
    s: SQLSession, statement: st.Statement, read: Callable[[], Made | None], exists_ok: bool, what: str
) -> Made:
    """Read; create what is missing; answer it with ``created=True``, or what exists (``exists_ok``).

    A create that loses a race to another writer ("already exists") reads again and answers
    what the other made, as if it had been there first.
    """
    found = read()
    if found is None:
        try:
            s.run(statement)
        except MotherDuckSQLExistsError:
            if not exists_ok:
                raise
        else:
            return replace(_read_back(read(), what, statement.label), created=True)
        return _read_back(read(), what, statement.label)
    if not exists_ok:
        raise MotherDuckSQLExistsError(f"{what} exists already", statement.label)
    return found


def _read_back(found: T | None, what: str, label: str) -> T:
    """What a write made, read again; its absence is an error (MotherDuck answered without doing it)."""
    if found is None:
        raise MotherDuckSQLError(f"{label} succeeded but {what} cannot be read back", label)
    return found


def _drop(s: SQLSession, statement: st.Statement, exists: bool, missing_ok: bool, what: str) -> bool:
    """Run a drop of what ``exists``; what is missing is ``False`` (``missing_ok``) or not found."""
    if not exists and not missing_ok:
        raise MotherDuckSQLNotFoundError(f"{what} does not exist", statement.label)
    return _change(s, statement, unless=not exists)


def _change(s: SQLSession, statement: st.Statement, *, unless: bool) -> bool:
    """Run ``statement`` unless it would change nothing; whether it ran."""
    if unless:
        return False
    s.run(statement)
    return True


def _direct(rows: list[dict[str, Any]], role: str) -> bool:
    """Whether ``role`` is among the rows of ``SHOW ROLES TO`` as a direct grant (``is_direct``)."""
    return any(g.direct and g.role.casefold() == role.casefold() for g in map(RoleGrant.from_row, rows))


def _granted(rows: list[dict[str, Any]], kind: str, grantee: str) -> bool:
    folded = grantee.casefold()
    return any(
        g.grantee_type == kind and g.grantee.casefold() == folded and g.privilege == "read"
        for g in map(ShareGrant.from_row, rows)
    )
