"""Apply: carry out a plan, and only the plan.

The invariant: nothing is written unless :meth:`~.plan.ReconcilePlan.raise_if_unsafe` passed, and
the ownership record names every declared account and token name before the first write that
could create one (:func:`~.state.own`), so a crash part-way leaves nothing the record forgets.
Each account's actions run in order (:data:`~.plan.ACTION_ORDER`), accounts side by side on the
bounded pool; every step is safe to fail and to repeat, so after a failure the next run's plan
lists exactly what is left.

How each kind keeps it:

* ``create_user``: a conflict means the plan was made on a stale view (the account exists): its
  tokens are listed again, and a declared token its destination already holds is not issued again.
* ``adopt_user``: no MotherDuck write (the record already names it).
* ``update_duckling_config``: read-merge-write, no ``PUT`` when equal.
* ``issue_token``: :func:`~airflow_provider_motherduck.workflows.issuing.issue_token`, whose
  delivery record lets the next try find what this one left.
* ``grant_role``, ``grant_share``, ``attach_share``: the hook's methods read first and change
  nothing that holds already; a share is granted by its owner and attached as the account, each
  through one short-lived session per account acted as (:class:`~.state.ActingSessions`), whose
  tokens are revoked when the account's actions end, done or failed.
* ``revoke_token``, ``delete_user``: gone already is success; a user is deleted only after its
  tokens are revoked (:func:`~airflow_provider_motherduck.workflows.offboarding.offboard_account`);
  only then is it removed from the ownership record (:func:`~.state.disown`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import MotherDuckConflictError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import fold_username
from airflow_provider_motherduck.workflows.delivery import Issuer, VariableStore
from airflow_provider_motherduck.workflows.issuing import issue_token
from airflow_provider_motherduck.workflows.naming import name_pattern
from airflow_provider_motherduck.workflows.offboarding import offboard_account
from airflow_provider_motherduck.workflows.pool import HookFactory, run_on_pool
from airflow_provider_motherduck.workflows.reconcile.plan import (
    Action,
    AdoptUser,
    AttachShare,
    CreateUser,
    DeleteUser,
    GrantRole,
    GrantShare,
    IssueToken,
    ReconcilePlan,
    RevokeToken,
    UpdateDucklingConfig,
)
from airflow_provider_motherduck.workflows.reconcile.state import ActingSessions, disown, own
from airflow_provider_motherduck.workflows.tokens import token_metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileResult:
    """What an apply did: each action's XCom form with its ``outcome``, and what failed."""

    done: list[dict[str, Any]]
    failed: dict[str, str]
    """Username -> error, for accounts whose actions stopped (the rest of theirs not attempted)."""
    not_attempted: list[dict[str, Any]]


@dataclass
class AccountRun:
    """One account's run: its hook, its tokens as listed (listed again after a stale view), each
    action done with its outcome, and the SQL sessions it acts in (closed when its actions end)."""

    hook: MotherDuckHook
    listed: tuple[Mapping[str, Any], ...]
    stale: bool = False
    done: list[dict[str, Any]] = field(default_factory=list)
    sessions: ActingSessions | None = None
    issuer: Issuer | None = None
    """Who issues tokens (a task's run and try): a retry then revokes what its own earlier tries left."""

    def acting(self) -> ActingSessions:
        if self.sessions is None:
            self.sessions = ActingSessions(self.hook)
        return self.sessions


def _create_user(run: AccountRun, action: CreateUser) -> dict[str, Any]:
    try:
        run.hook.create_user(action.username)
    except MotherDuckConflictError:  # it exists: the plan's listing missed it
        run.stale = True
        run.listed = tuple(run.hook.list_tokens(action.username))
        log.warning("%s exists although the listing missed it: its tokens read again.", action.username)
        return {"created": False}
    return {"created": True}


def _adopt_user(run: AccountRun, action: AdoptUser) -> dict[str, Any]:
    return {"adopted": True}


def _update_duckling_config(run: AccountRun, action: UpdateDucklingConfig) -> dict[str, Any]:
    config = run.hook.update_duckling_config(
        action.username, read_write=action.read_write, read_scaling=action.read_scaling
    )
    return {"duckling_config": dict(config)}


def _issue_token(run: AccountRun, action: IssueToken) -> dict[str, Any]:
    token = action.token
    if run.stale:  # the plan did not see this account's tokens: its destination may hold one
        found, _ = token.destination.find(
            run.listed, action.username, name_pattern(token.name), token.token_type
        )
        if found is not None:
            log.info(
                "%s: %s holds token %s already.", action.username, token.destination.describe(), found["id"]
            )
            return {"token": token_metadata(found, action.username), "created": False, "revoked_ids": []}
    issued = issue_token(
        run.hook,
        action.username,
        token.name,
        ttl=token.ttl,
        token_type=token.token_type,
        destination=token.destination,
        listed=run.listed,
        issuer=run.issuer,
    )
    return {"token": issued.token, "created": True, "revoked_ids": issued.replaced}


def _grant_role(run: AccountRun, action: GrantRole) -> dict[str, Any]:
    granted = run.hook.grant_role(action.role, to_user=action.username)
    log.info("%s: role %s %s.", action.username, action.role, "granted" if granted else "held already")
    return {"granted": granted}


def _grant_share(run: AccountRun, action: GrantShare) -> dict[str, Any]:
    share = action.share
    as_owner = run.acting().as_owner(share.owner)
    granted = run.hook.grant_share(share.share, to_user=action.username, as_user=as_owner)
    log.info(
        "%s: read on share %s %s by its owner %s.",
        action.username,
        share.share,
        "granted" if granted else "held already",
        share.owner,
    )
    return {"granted": granted}


def _attach_share(run: AccountRun, action: AttachShare) -> dict[str, Any]:
    share = action.share
    url = run.acting().share_url(share)  # a share URL is sensitive: never logged
    attached = run.hook.attach_share(url, share.alias, as_user=run.acting().hold(action.username))
    log.info(
        "%s: share %s of %s %s as %r.",
        action.username,
        share.share,
        share.owner,
        "attached" if attached.created else "attached already",
        attached.alias,
    )
    return {"alias": attached.alias, "created": attached.created}


def _revoke_token(run: AccountRun, action: RevokeToken) -> dict[str, Any]:
    revoked = run.hook.revoke_token(action.username, action.token_id, missing_ok=True)
    return {"revoked_ids": [action.token_id] if revoked else []}


def _delete_user(run: AccountRun, action: DeleteUser) -> dict[str, Any]:
    gone = offboard_account(run.hook, action.username, forget_variables=False)
    return {"revoked_ids": gone["revoked_ids"], "deleted": gone["deleted"]}


_DISPATCH: dict[type[Action], Callable[[AccountRun, Any], dict[str, Any]]] = {
    CreateUser: _create_user,
    AdoptUser: _adopt_user,
    UpdateDucklingConfig: _update_duckling_config,
    IssueToken: _issue_token,
    GrantRole: _grant_role,
    GrantShare: _grant_share,
    AttachShare: _attach_share,
    RevokeToken: _revoke_token,
    DeleteUser: _delete_user,
}


def apply_account(run: AccountRun, actions: Sequence[Action]) -> list[dict[str, Any]]:
    """One account's actions in order (an error stops there and is raised; ``run.done`` holds what
    was done); returns each action's XCom form with its ``outcome``. The run's SQL sessions are
    closed (their tokens revoked) at the end, however it ends."""
    try:
        for action in actions:
            outcome = _DISPATCH[type(action)](run, action)
            run.done.append({**action.as_dict(), "outcome": outcome})
            log.info("Done: %s %s %s", action.kind, action.username, action.detail)
    finally:
        if run.sessions is not None:
            run.sessions.close()
    return run.done


class _Stopped(Exception):
    """An account's actions stopped: those done, and why."""

    def __init__(self, done: list[dict[str, Any]], cause: Exception) -> None:
        super().__init__(str(cause))
        self.done = done
        self.cause = cause


def apply_plan(
    plan: ReconcilePlan,
    new_hook: HookFactory,
    store: VariableStore,
    *,
    max_workers: int,
    max_deletes: int | None,
    issuer: Issuer | None = None,
) -> ReconcileResult:
    """Carry out ``plan``: each account's actions in order, accounts on up to ``max_workers`` threads.

    First :meth:`~.plan.ReconcilePlan.raise_if_unsafe` (``max_deletes``: ``None``, no limit), then
    the ownership record in ``store``. An account whose action fails stops there; the others go
    on. A re-run (a new plan from a new read) finishes the job.
    """
    plan.raise_if_unsafe(max_deletes)
    own(plan.name, store, plan.owns)
    groups: dict[str, list[Action]] = {}
    for action in plan.actions:
        groups.setdefault(action.username, []).append(action)
    order = list(groups)

    def account(hook: MotherDuckHook, username: str) -> list[dict[str, Any]]:
        run = AccountRun(hook, tuple(plan.listed.get(fold_username(username), ())), issuer=issuer)
        try:
            return apply_account(run, groups[username])
        except Exception as err:
            raise _Stopped(run.done, err) from err  # the pool reads the cause

    results, errors = run_on_pool(order, account, new_hook, max_workers=max_workers, name="md-reconcile")
    done: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    not_attempted: list[dict[str, Any]] = []
    for i, username in enumerate(order):
        error = errors.get(i)
        if error is None:
            done += results[i] or []
            continue
        finished = error.done if isinstance(error, _Stopped) else []
        cause = error.cause if isinstance(error, _Stopped) else error
        done += finished
        not_attempted += [a.as_dict() for a in groups[username][len(finished) :]]
        failed[username] = f"{type(cause).__name__}: {redact(str(cause))}"
    _forget_pruned(plan, store, failed)
    return ReconcileResult(done, failed, not_attempted)


def _forget_pruned(plan: ReconcilePlan, store: VariableStore, failed: Mapping[str, str]) -> None:
    """Remove from the record what pruning deleted or revoked, for accounts that finished."""
    gone: dict[str, list[str] | None] = {}
    for action in plan.actions:
        if action.username in failed:
            continue
        if isinstance(action, DeleteUser):
            gone[action.username] = None
        elif isinstance(action, RevokeToken) and action.pruned is not None:
            names = gone.setdefault(action.username, [])
            if names is not None:
                names.append(action.pruned)
    if gone:
        disown(plan.name, store, gone)
