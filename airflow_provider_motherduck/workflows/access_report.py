"""The access report: who holds which roles, reads which shares through which grant, has attached what.

:func:`judge_access` is pure: given what was read (:class:`AccessFacts`) and the shares the
caller declares restricted, the same facts give the same report. :func:`read_access` reads the
facts through the hook's SQL methods as the connection's account (an Admin): the accounts over
REST, each account's roles (``SHOW ROLES TO USER``, transitive), the grants of each share (its
owner's ``MD_LIST_SHARE_GRANTEES``). Attachments are read only when asked, as each service
account through ``as_user``: that mints (and revokes) one short-lived token per account.

Which shares: the connection's own, plus those named (``shares``, ``restricted``). MotherDuck
lists another account's shares only to that account, but an Admin reads any share's grants by
name (what it answers for a name two owners both use is not documented: keep share names unique).

The rules, each a violation row with its ``rule``:

``service_account_admin``
    a service account holds Admin, directly or through another role.
``restricted_share_open``
    a share the caller declares restricted is open to the whole organisation (access
    ``organization``) or to every MotherDuck user (``unrestricted``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from airflow_provider_motherduck.exceptions import MotherDuckSQLNotFoundError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql.answers import Attachment, RoleGrant, ShareGrant
from airflow_provider_motherduck.validation import SHARE_URL_PREFIX, fold_username, share_url_database
from airflow_provider_motherduck.workflows.audit import text_table

log = logging.getLogger(__name__)

ACCESS_RULES: Final = ("service_account_admin", "restricted_share_open")
#: ``grantee_type`` of a share's grants -> how an account reads it (facts, section 5).
_OPEN_TO: Final = {"organization": "organization", "domain": "unrestricted"}


@dataclass(frozen=True)
class AccessFacts:
    """What was read: the accounts (username -> is a service account), their roles, each share's
    grants (name -> rows; a share named but missing is in ``missing_shares``), and what each
    account attached (``None``: not read)."""

    accounts: Mapping[str, bool]
    roles: Mapping[str, Sequence[RoleGrant]]
    grants: Mapping[str, Sequence[ShareGrant]]
    attachments: Mapping[str, Sequence[Attachment]] | None = None
    missing_shares: Sequence[str] = field(default_factory=tuple)


def share_access(grants: Iterable[ShareGrant]) -> str:
    """A share's access as its grants show it: ``organization``, ``unrestricted`` or ``restricted``."""
    for grant in grants:
        if grant.grantee_type in _OPEN_TO:
            return _OPEN_TO[grant.grantee_type]
    return "restricted"


def _owner(grants: Iterable[ShareGrant]) -> str:
    return next((g.share_owner for g in grants if g.share_owner), "")


def readable_shares(
    username: str, roles: Sequence[RoleGrant], grants: Mapping[str, Sequence[ShareGrant]]
) -> list[dict[str, Any]]:
    """Every way ``username`` reads a share: ``{"share", "owner", "via", "role"}`` with ``via``
    ``owner``, ``user``, ``role`` (``role`` names it: held directly or through another role),
    ``organization`` or ``unrestricted``. Sorted by share, then ``via``."""
    me = fold_username(username)
    held = {grant.role.casefold() for grant in roles}
    out = []
    for share, rows in grants.items():
        owner = _owner(rows)
        ways: list[tuple[str, str | None]] = [("owner", None)] if owner and fold_username(owner) == me else []
        for grant in rows:
            if grant.privilege != "read":
                continue
            if grant.grantee_type in _OPEN_TO:
                ways.append((_OPEN_TO[grant.grantee_type], None))
            elif grant.grantee_type == "user" and fold_username(grant.grantee) == me:
                ways.append(("user", None))
            elif grant.grantee_type == "role" and grant.grantee.casefold() in held:
                ways.append(("role", grant.grantee))
        out += [{"share": share, "owner": owner, "via": via, "role": role} for via, role in ways]
    return sorted(out, key=lambda r: (r["share"], r["via"], r["role"] or ""))


def _attached(attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """The shares attached, by alias and source database (never the share's URL: its token part
    lets anyone in the organisation read a hidden share open to it)."""
    return [
        {
            "alias": a.alias,
            "database": share_url_database(a.name) if a.name.startswith(SHARE_URL_PREFIX) else "",
        }
        for a in attachments
        if a.is_share
    ]


def judge_access(facts: AccessFacts, restricted: Iterable[str] = ()) -> dict[str, Any]:
    """The report: ``{"accounts": [...], "shares": [...], "violations": [...], "missing_shares": [...]}``.

    Account rows: ``{"username", "is_service_account", "roles": [{"role", "direct"}], "shares":
    [readable_shares rows], "attached": [{"alias", "database"}] or None (not read), "breaks"}``.
    Share rows: ``{"share", "owner", "access", "grantees": [{"grantee", "grantee_type"}],
    "breaks"}``. Violations: ``{"rule", "username", "share"}`` (the one that does not apply is
    ``None``). Share names compare case-insensitively, as usernames and role names do.
    """
    declared = {name.casefold() for name in restricted}
    shares: list[dict[str, Any]] = []
    for name, rows in sorted(facts.grants.items()):
        access = share_access(rows)
        breaks = ["restricted_share_open"] if access != "restricted" and name.casefold() in declared else []
        shares.append(
            {
                "share": name,
                "owner": _owner(rows),
                "access": access,
                "grantees": [
                    {"grantee": g.grantee, "grantee_type": g.grantee_type}
                    for g in rows
                    if g.grantee_type not in _OPEN_TO
                ],
                "breaks": breaks,
            }
        )
    accounts: list[dict[str, Any]] = []
    for username, service in sorted(facts.accounts.items(), key=lambda item: fold_username(item[0])):
        roles = facts.roles.get(username, ())
        admin = any(g.role.casefold() == "admin" for g in roles)
        attached = None if facts.attachments is None else facts.attachments.get(username)
        accounts.append(
            {
                "username": username,
                "is_service_account": service,
                "roles": [{"role": g.role, "direct": g.direct} for g in sorted(roles, key=lambda g: g.role)],
                "shares": readable_shares(username, roles, facts.grants),
                "attached": None if attached is None else _attached(attached),
                "breaks": ["service_account_admin"] if service and admin else [],
            }
        )
    violations = [
        {"rule": rule, "username": row["username"], "share": None}
        for row in accounts
        for rule in row["breaks"]
    ] + [{"rule": rule, "username": None, "share": row["share"]} for row in shares for rule in row["breaks"]]
    return {
        "accounts": accounts,
        "shares": shares,
        "violations": violations,
        "missing_shares": sorted(facts.missing_shares),
    }


def read_access(
    hook: MotherDuckHook,
    *,
    usernames: Sequence[str] | None = None,
    shares: Iterable[str] = (),
    attachments: bool = False,
) -> AccessFacts:
    """Read the facts as the connection's account (an Admin).

    ``usernames``: the accounts (default: every active user); ``shares``: share names to read
    beside the connection's own. ``attachments``: also read what each service account attached,
    as that account (one short-lived token each; humans cannot be acted as, so theirs stay
    unread). A share named but missing is in ``missing_shares``; a user named but missing fails.
    """
    listed = {fold_username(u["username"]): u for u in hook.list_users()}
    chosen = (
        listed.values()
        if usernames is None
        else (listed.get(fold_username(n), {"username": n}) for n in usernames)
    )
    accounts = {str(u["username"]): bool(u.get("is_service_account")) for u in chosen}
    log.info("Reading the roles of %d account(s).", len(accounts))
    roles = {username: hook.roles_of(username) for username in accounts}
    names = {share.name.casefold(): share.name for share in hook.list_shares()}
    for name in shares:
        names.setdefault(name.casefold(), name)
    grants: dict[str, list[ShareGrant]] = {}
    missing = []
    for name in names.values():
        try:
            grants[name] = hook.share_grants(name)
        except MotherDuckSQLNotFoundError:
            missing.append(name)
    log.info("Read the grants of %d share(s); %d named share(s) not found.", len(grants), len(missing))
    attached: dict[str, list[Attachment]] | None = None
    if attachments:
        service = [username for username, is_service in accounts.items() if is_service]
        log.info("Reading the attachments of %d service account(s), each as itself.", len(service))
        attached = {username: hook.attached_databases(as_user=username) for username in service}
    return AccessFacts(accounts, roles, grants, attached, tuple(missing))


def access_table(report: Mapping[str, Any]) -> str:
    """The report's accounts as a fixed-width table for a task log: user, kind, roles (``*``:
    through another role), shares (``share via``), attached aliases (``?``: not read), breaks."""
    header = ("username", "kind", "roles", "shares", "attached", "breaks")
    lines = [
        (
            row["username"],
            "service" if row["is_service_account"] else "human",
            ", ".join(r["role"] + ("" if r["direct"] else "*") for r in row["roles"]) or "-",
            ", ".join(
                f"{s['share']} via {s['via']}" + (f" {s['role']}" if s["role"] else "") for s in row["shares"]
            )
            or "-",
            "?" if row["attached"] is None else ", ".join(a["alias"] for a in row["attached"]) or "-",
            ", ".join(row["breaks"]) or "-",
        )
        for row in report["accounts"]
    ]
    return text_table(header, lines)
