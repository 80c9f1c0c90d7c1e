"""Offboarding: revoke every token of a user, then delete the user; re-runnable.

The invariant: a user is deleted only after all its tokens are revoked, so a failure part-way
leaves a user whose remaining tokens a re-run revokes, never a deleted user's live token.

With ``report_access``, before anything is revoked it says what access the account had (:func:`read_access`): its roles
(as the admin) and what it had attached (through one short-lived session as the account, revoked
before its tokens are listed, so it is never among them). The shares granted to it are not read:
MotherDuck lists a share's grantees per share (as its owner), with no listing per grantee; the
shares it attached are the ones it reached. A part that cannot be read is named, never guessed.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_motherduck.exceptions import (
    MotherDuckConfigError,
    MotherDuckError,
    MotherDuckNotFoundError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.workflows.delivery import forget
from airflow_provider_motherduck.workflows.issuing import revoke_tokens

log = logging.getLogger(__name__)

#: Why the shares granted to an account are not read (see the module's docstring).
SHARE_GRANTS_NOT_READ = "MotherDuck lists a share's grantees per share, not the shares granted to a user"


def read_access(hook: MotherDuckHook, username: str) -> dict[str, Any]:
    """What access ``username`` has: ``roles`` (``[{role, direct}]``, through other roles too),
    ``attached`` (``[{alias, type}]``) and ``not_read`` (``{part: why}``); ``None`` for a part
    not read. Reading only (the session token it mints is revoked at once)."""
    access: dict[str, Any] = {"roles": None, "attached": None, "not_read": {"shares": SHARE_GRANTS_NOT_READ}}
    try:
        access["roles"] = [{"role": g.role, "direct": g.direct} for g in hook.roles_of(username)]
    except MotherDuckConfigError as err:  # no usable SQL path: the session would fail the same way
        access["not_read"].update(roles=str(err), attached=str(err))
        return access
    except MotherDuckError as err:
        access["not_read"]["roles"] = str(err)
    try:
        attached = hook.attached_databases(as_user=username)
        access["attached"] = [{"alias": a.alias, "type": a.type} for a in attached]
    except MotherDuckError as err:
        access["not_read"]["attached"] = str(err)
    return access


def offboard_account(
    hook: MotherDuckHook,
    username: str,
    *,
    variable_key: str | None = None,
    record_key: str | None = None,
    forget_variables: bool = True,
    report_access: bool = False,
) -> dict[str, Any]:
    """Revoke every token of ``username``, then delete the user (irreversible); re-runnable.

    With ``variable_key`` (or ``record_key``) and ``forget_variables``, the secret Variable and its
    delivery record are deleted too, so no revoked secret lingers. If a revoke
    fails the user is not deleted, and a re-run finishes. With ``report_access`` it first reads
    and logs the account's access (:func:`read_access`; the XCom's ``access``).
    """
    access = read_access(hook, username) if report_access else None
    if access is not None:
        log.info(
            "%s had roles %s; attached %s; not read: %s.",
            username,
            "?" if access["roles"] is None else [g["role"] for g in access["roles"]] or "none",
            "?" if access["attached"] is None else [a["alias"] for a in access["attached"]] or "nothing",
            "; ".join(f"{part} ({why})" for part, why in access["not_read"].items()),
        )
    try:
        ids = [str(t["id"]) for t in hook.list_tokens(username)]
    except MotherDuckNotFoundError:
        ids = []
    revoked = revoke_tokens(hook, username, ids)
    deleted = hook.delete_user(username, missing_ok=True)
    log.info("%s: revoked %d token(s); %s.", username, len(revoked), "deleted" if deleted else "no such user")
    removed: list[str] = []
    if forget_variables and (variable_key is not None or record_key is not None):
        removed = forget(variable_key, record_key)
        if removed:
            log.info("Deleted Variable(s) %s.", ", ".join(removed))
    result = {"username": username, "revoked_ids": revoked, "deleted": deleted, "variables_deleted": removed}
    return result if access is None else {**result, "access": access}
