"""Offboarding: revoke every token of a user, then delete the user; re-runnable.

The invariant: a user is deleted only after all its tokens are revoked, so a failure part-way
leaves a user whose remaining tokens a re-run revokes, never a deleted user's live token.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_motherduck.exceptions import MotherDuckNotFoundError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.workflows.delivery import forget
from airflow_provider_motherduck.workflows.issuing import revoke_tokens

log = logging.getLogger(__name__)


def offboard_account(
    hook: MotherDuckHook,
    username: str,
    *,
    variable_key: str | None = None,
    record_key: str | None = None,
    forget_variables: bool = True,
) -> dict[str, Any]:
    """Revoke every token of ``username``, then delete the user (irreversible); re-runnable.

    With ``variable_key`` (or ``record_key``) and ``forget_variables``, the secret Variable and its
    delivery record (both layouts) are deleted too, so no revoked secret lingers. If a revoke
    fails the user is not deleted, and a re-run finishes.
    """
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
    return {"username": username, "revoked_ids": revoked, "deleted": deleted, "variables_deleted": removed}
