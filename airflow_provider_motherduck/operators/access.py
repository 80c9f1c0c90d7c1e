"""Operators for access over MotherDuck SQL: roles, role grants, shares, share grants, attachments, databases.

Each is thin: check the arguments (literals at parse time, everything again after rendering),
call one SQL hook method, shape the XCom. ``as_user`` (templated) runs the statement as that
service account through a short-lived token the hook mints and revokes. The XCom never holds a
token; a share's ``url`` is in it (downstream tasks attach by it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool, is_literal, optional
from airflow_provider_motherduck.hooks.sql.answers import Share, as_xcom
from airflow_provider_motherduck.hooks.sql.statements import pick_grantee
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
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
    check_username,
)

_as_user = optional(check_username)


def _new_role(value: Any, field: str) -> str:
    return check_role_name(value, field, new=True)


class _AccessOperator(MotherDuckBaseOperator):
    """Checks at parse time, and a log line for what was done or found done."""

    def _said(self, changed: bool, done: str, already: str) -> None:
        self.log.info("%s", done if changed else f"{already}: nothing to do.")


# -- roles -------------------------------------------------------------------------------------


class MotherDuckCreateRoleOperator(_AccessOperator):
    """Create a custom role (needs an Admin and MotherDuck's Business plan).

    :param role: the role's name (templated): 3 to 255 lowercase characters, a letter first,
        then letters, digits, ``-`` or ``_``; not ``admin``, ``builder`` or ``explorer``.
    :param exists_ok: succeed without change when it exists (default ``True``).

    XCom: ``{"role": ..., "created": bool}``.
    """

    template_fields: Sequence[str] = ("role",)

    def __init__(self, *, role: str, exists_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.role = role
        self.exists_ok = exists_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"role": _new_role, "exists_ok": check_bool}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        role = self.hook.create_role(self.role, exists_ok=self.exists_ok)
        self._said(role.created, f"Created the role {role.name}.", f"The role {role.name} exists")
        return {"role": role.name, "created": role.created}


class MotherDuckDropRoleOperator(_AccessOperator):
    """Drop a custom role (needs an Admin).

    :param role: the role's name (templated).
    :param missing_ok: succeed without change when it is missing (default ``True``).

    XCom: ``{"role": ..., "deleted": bool}``.
    """

    template_fields: Sequence[str] = ("role",)

    def __init__(self, *, role: str, missing_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.role = role
        self.missing_ok = missing_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"role": _new_role, "missing_ok": check_bool}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        deleted = self.hook.drop_role(self.role, missing_ok=self.missing_ok)
        self._said(deleted, f"Dropped the role {self.role}.", f"The role {self.role} does not exist")
        return {"role": self.role, "deleted": deleted}


class _GrantOperator(_AccessOperator):
    """A grant (``revoke=False``) or revoke of a role or a share to (from) exactly one user or role."""

    revoke = False

    def __init__(self, *, grantee_user: str | None, grantee_role: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.grantee_user = grantee_user
        self.grantee_role = grantee_role

    @property
    def _prefix(self) -> str:
        return "from" if self.revoke else "to"

    def check_args(self, *, rendered: bool) -> None:
        super().check_args(rendered=rendered)
        if rendered or (is_literal(self.grantee_user) and is_literal(self.grantee_role)):
            try:
                pick_grantee(self.grantee_user, self.grantee_role, self._prefix)
            except ValueError as err:
                raise ValueError(f"{type(self).__name__} {self.task_id!r}: {err}") from None

    def arg_checks(self) -> dict[str, Check]:
        return {"grantee_user": optional(check_grantee), "grantee_role": optional(check_role_name)}

    def _changed(self, what: str, changed: bool) -> dict[str, Any]:
        """Log what changed; the XCom's grantee part and ``granted``/``revoked``."""
        kind, name = pick_grantee(self.grantee_user, self.grantee_role, self._prefix)
        verb = "revoked" if self.revoke else "granted"
        if changed:
            self.log.info("%s %s %s the %s %s.", verb.capitalize(), what, self._prefix, kind, name)
        else:
            self.log.info(
                "The %s %s %s %s already: nothing to do.", kind, name, "lacks" if self.revoke else "has", what
            )
        return {"grantee": name, "grantee_type": kind, verb: changed}


class _RoleGrantOperator(_GrantOperator):
    template_fields: Sequence[str] = ("role", "grantee_user", "grantee_role")

    def __init__(
        self, *, role: str, grantee_user: str | None, grantee_role: str | None, **kwargs: Any
    ) -> None:
        super().__init__(grantee_user=grantee_user, grantee_role=grantee_role, **kwargs)
        self.role = role
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"role": check_role_name, **super().arg_checks()}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        change = self.hook.revoke_role if self.revoke else self.hook.grant_role
        grantee = {f"{self._prefix}_user": self.grantee_user, f"{self._prefix}_role": self.grantee_role}
        return {"role": self.role, **self._changed(f"the role {self.role}", change(self.role, **grantee))}


class MotherDuckGrantRoleOperator(_RoleGrantOperator):
    """Grant a role to a user or to another role (needs an Admin).

    :param role: the role to grant (templated), preset or custom.
    :param to_user: the user who gets it (templated), or
    :param to_role: the role that gets it (templated): exactly one of the two.

    XCom: ``{"role", "grantee", "grantee_type": "user"|"role", "granted": bool}``
    (``granted`` is ``False`` when it was held directly already).
    """

    def __init__(
        self, *, role: str, to_user: str | None = None, to_role: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(role=role, grantee_user=to_user, grantee_role=to_role, **kwargs)


class MotherDuckRevokeRoleOperator(_RoleGrantOperator):
    """Revoke a role from a user or a role (needs an Admin).

    :param role: the role to revoke (templated).
    :param from_user: the user who loses it (templated), or
    :param from_role: the role that loses it (templated): exactly one of the two.

    XCom: ``{"role", "grantee", "grantee_type", "revoked": bool}`` (``False``: it was not held directly).
    """

    revoke = True

    def __init__(
        self, *, role: str, from_user: str | None = None, from_role: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(role=role, grantee_user=from_user, grantee_role=from_role, **kwargs)


# -- shares ------------------------------------------------------------------------------------


class MotherDuckCreateShareOperator(_AccessOperator):
    """Create a share of a database, owned by the connection's account or by ``as_user``.

    :param share: the share's name (templated); :param database: the database shared (templated).
    :param access: ``organization``, ``restricted`` (only those granted) or ``unrestricted``.
    :param visibility: ``discoverable`` or ``hidden``. :param update: ``automatic`` or ``manual``.
    :param include: table patterns of a filtered share (Business plan); ``None`` shares all.
    :param as_user: the service account that owns the share (templated; ``None``: the connection's).
    :param exists_ok: an existing share with these options is a success (default ``True``).

    XCom: ``{"share": name, "database", "access", "visibility", "update", "url", "include",
    "created_at", "username": as_user, "created": bool}`` (``share`` is the name, as in every
    share operator's XCom).
    """

    template_fields: Sequence[str] = ("share", "database", "as_user", "include")

    def __init__(
        self,
        *,
        share: str,
        database: str,
        access: str = "restricted",
        visibility: str = "hidden",
        update: str = "automatic",
        include: Sequence[str] | None = None,
        as_user: str | None = None,
        exists_ok: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.share = share
        self.database = database
        self.access = access
        self.visibility = visibility
        self.update = update
        self.include = include
        self.as_user = as_user
        self.exists_ok = exists_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "share": check_object_name,
            "database": check_object_name,
            "access": check_share_access,
            "visibility": check_share_visibility,
            "update": check_share_update,
            "include": optional(check_include_pattern),
            "as_user": _as_user,
            "exists_ok": check_bool,
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        share = self.hook.create_share(
            self.share,
            self.database,
            access=self.access,
            visibility=self.visibility,
            update=self.update,
            include=self.include,
            as_user=self.as_user,
            exists_ok=self.exists_ok,
        )
        self._said(
            share.created,
            f"Created the share {share.name} of {share.database}.",
            f"The share {share.name} exists",
        )
        return _share_xcom(share, self.as_user, created=share.created)


class MotherDuckSetShareIncludeOperator(_AccessOperator):
    """Change which tables a share shows, in place, as its owner: its URL and grants stay.

    The include pattern is the one option MotherDuck changes in place (``ALTER SHARE``); any
    other option means a new share, with a new URL that every reader must attach again.

    :param share: the share's name (templated).
    :param include: table patterns (templated; a filtered share, Business plan); ``None`` shares
        the whole database again, ``[]`` nothing.
    :param as_user: the share's owner (templated; ``None``: the connection's account).

    XCom: the create-share XCom's keys with ``changed`` (``False``: it showed these already)
    for ``created``: ``{"share": name, "database", "access", "visibility", "update", "url",
    "include", "created_at", "username": as_user, "changed": bool}``.
    """

    template_fields: Sequence[str] = ("share", "include", "as_user")

    def __init__(
        self, *, share: str, include: Sequence[str] | None, as_user: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.share = share
        self.include = include
        self.as_user = as_user
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"share": check_object_name, "include": optional(check_include_pattern), "as_user": _as_user}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        share = self.hook.set_share_include(self.share, self.include, as_user=self.as_user)
        self._said(
            share.changed,
            f"The share {share.name} now shows {_shown(share.include)}.",
            f"The share {share.name} shows {_shown(share.include)} already",
        )
        return _share_xcom(share, self.as_user, changed=share.changed)


def _shown(include: Sequence[str] | None) -> str:
    if include is None:
        return "the whole database"
    return ", ".join(include) if include else "nothing"


def _share_xcom(share: Share, as_user: str | None, **flag: bool) -> dict[str, Any]:
    """A share's XCom: ``share`` (its name), its options and URL, ``username`` and the operator's flag."""
    out = as_xcom(share)
    del out["created"], out["changed"]
    return {"share": out.pop("name"), **out, "username": as_user, **flag}


class MotherDuckDropShareOperator(_AccessOperator):
    """Drop a share owned by the connection's account or by ``as_user``; attachments of it break.

    :param share: the share's name (templated). :param as_user: its owner (templated).
    :param missing_ok: succeed without change when the owner has no such share (default ``True``).

    XCom: ``{"share": name, "username": as_user, "deleted": bool}``.
    """

    template_fields: Sequence[str] = ("share", "as_user")

    def __init__(
        self, *, share: str, as_user: str | None = None, missing_ok: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.share = share
        self.as_user = as_user
        self.missing_ok = missing_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"share": check_object_name, "as_user": _as_user, "missing_ok": check_bool}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        deleted = self.hook.drop_share(self.share, as_user=self.as_user, missing_ok=self.missing_ok)
        self._said(deleted, f"Dropped the share {self.share}.", f"The share {self.share} does not exist")
        return {"share": self.share, "username": self.as_user, "deleted": deleted}


class _ShareGrantOperator(_GrantOperator):
    template_fields: Sequence[str] = ("share", "as_user", "grantee_user", "grantee_role")

    def __init__(
        self,
        *,
        share: str,
        grantee_user: str | None,
        grantee_role: str | None,
        as_user: str | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(grantee_user=grantee_user, grantee_role=grantee_role, **kwargs)
        self.share = share
        self.as_user = as_user
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"share": check_object_name, "as_user": _as_user, **super().arg_checks()}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        change = self.hook.revoke_share if self.revoke else self.hook.grant_share
        grantee = {f"{self._prefix}_user": self.grantee_user, f"{self._prefix}_role": self.grantee_role}
        changed = change(self.share, **grantee, as_user=self.as_user)
        return {
            "share": self.share,
            "username": self.as_user,
            **self._changed(f"read on {self.share}", changed),
        }


class MotherDuckGrantShareOperator(_ShareGrantOperator):
    """Let a user or a role read a restricted share; runs as the share's owner (``as_user``).

    :param share: the share's name (templated). :param to_user: or :param to_role: who may read it
        (templated; exactly one). :param as_user: the share's owner (templated; ``None``: the connection's account).

    XCom: ``{"share", "username": as_user, "grantee", "grantee_type", "granted": bool}``.
    """

    def __init__(
        self,
        *,
        share: str,
        to_user: str | None = None,
        to_role: str | None = None,
        as_user: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(share=share, grantee_user=to_user, grantee_role=to_role, as_user=as_user, **kwargs)


class MotherDuckRevokeShareOperator(_ShareGrantOperator):
    """Take back a user's or role's read grant on a share; runs as the share's owner (``as_user``).

    :param share: the share (templated). :param from_user: or :param from_role: (templated; exactly one).
    :param as_user: the share's owner (templated).

    XCom: ``{"share", "username": as_user, "grantee", "grantee_type", "revoked": bool}``.
    """

    revoke = True

    def __init__(
        self,
        *,
        share: str,
        from_user: str | None = None,
        from_role: str | None = None,
        as_user: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            share=share, grantee_user=from_user, grantee_role=from_role, as_user=as_user, **kwargs
        )


# -- attachments -------------------------------------------------------------------------------


class MotherDuckAttachShareOperator(_AccessOperator):
    """Attach a share for an account, as that account (its attachments are its own).

    :param url: the share's URL, ``md:_share/<database>/<token>`` (templated; e.g. from
        :class:`MotherDuckCreateShareOperator`'s XCom).
    :param alias: the name to attach it as (templated; default: the shared database's name).
    :param as_user: the service account that attaches it (templated; ``None``: the connection's account).

    XCom: ``{"username": as_user, "alias", "created": bool}`` (``False``: attached already).
    """

    template_fields: Sequence[str] = ("url", "alias", "as_user")

    def __init__(self, *, url: str, alias: str | None = None, as_user: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.alias = alias
        self.as_user = as_user
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"url": check_share_url, "alias": optional(check_alias), "as_user": _as_user}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        attached = self.hook.attach_share(self.url, self.alias, as_user=self.as_user)
        self._said(
            attached.created, f"Attached a share as {attached.alias}.", f"{attached.alias} is attached"
        )
        return {"username": self.as_user, "alias": attached.alias, "created": attached.created}


class MotherDuckDetachShareOperator(_AccessOperator):
    """Detach what an account attached under ``alias``, as that account.

    :param alias: the attachment's alias (templated). :param as_user: the account (templated).

    XCom: ``{"username": as_user, "alias", "deleted": bool}`` (``False``: nothing was attached so).
    """

    template_fields: Sequence[str] = ("alias", "as_user")

    def __init__(self, *, alias: str, as_user: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alias = alias
        self.as_user = as_user
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"alias": check_alias, "as_user": _as_user}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        deleted = self.hook.detach_share(self.alias, as_user=self.as_user)
        self._said(deleted, f"Detached {self.alias}.", f"Nothing is attached as {self.alias}")
        return {"username": self.as_user, "alias": self.alias, "deleted": deleted}


# -- databases ---------------------------------------------------------------------------------


class MotherDuckCreateDatabaseOperator(_AccessOperator):
    """Create an empty database owned by the connection's account or by ``as_user``.

    :param database: its name (templated). :param as_user: the owner (templated).
    :param exists_ok: succeed without change when it exists (default ``True``).

    XCom: ``{"database", "username": as_user, "created": bool}``.
    """

    template_fields: Sequence[str] = ("database", "as_user")

    def __init__(
        self, *, database: str, as_user: str | None = None, exists_ok: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.database = database
        self.as_user = as_user
        self.exists_ok = exists_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"database": check_object_name, "as_user": _as_user, "exists_ok": check_bool}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        db = self.hook.create_database(self.database, as_user=self.as_user, exists_ok=self.exists_ok)
        self._said(db.created, f"Created the database {db.name}.", f"The database {db.name} exists")
        return {"database": db.name, "username": self.as_user, "created": db.created}


class MotherDuckDropDatabaseOperator(_AccessOperator):
    """Drop a database and everything in it (irreversible), as its owner.

    :param database: its name (templated). :param as_user: the owner (templated).
    :param missing_ok: succeed without change when it is missing (default ``True``).

    XCom: ``{"database", "username": as_user, "deleted": bool}``.
    """

    template_fields: Sequence[str] = ("database", "as_user")

    def __init__(
        self, *, database: str, as_user: str | None = None, missing_ok: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.database = database
        self.as_user = as_user
        self.missing_ok = missing_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"database": check_object_name, "as_user": _as_user, "missing_ok": check_bool}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        deleted = self.hook.drop_database(self.database, as_user=self.as_user, missing_ok=self.missing_ok)
        self._said(
            deleted, f"Dropped the database {self.database}.", f"The database {self.database} does not exist"
        )
        return {"database": self.database, "username": self.as_user, "deleted": deleted}
