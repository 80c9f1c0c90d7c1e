"""Apply: carry out a plan, and only the plan.

The invariant: nothing is written unless :meth:`~.plan.ReconcilePlan.raise_if_unsafe` passed, and
the ownership record names every declared account, token name, role grant, role and share before
the first write that could create one (:func:`~.state.own`), so a crash part-way leaves nothing the
record forgets. The plan's actions run phase by phase (:data:`~.plan.PHASES`); within a phase,
each group's actions (an account's, a share owner's, the roles') run in order, groups side by side
on the bounded pool. A group that fails stops there, and its later phases are not attempted; after
any failure nothing is pruned. Every step is safe to fail and to repeat, so after a failure the
next run's plan lists exactly what is left.

How each kind keeps it:

* ``create_user``: a conflict means the plan was made on a stale view (the account exists): its
  tokens are listed again, and a declared token its destination already holds is not issued again.
* ``adopt_user``, ``adopt_role``, ``adopt_share``: no MotherDuck write (the record already names it).
* ``update_duckling_config``: read-merge-write, no ``PUT`` when equal.
* ``issue_token``: :func:`~airflow_provider_motherduck.workflows.issuing.issue_token`, whose
  delivery record lets the next try find what this one left.
* ``create_role``, ``create_share``, the grants, ``include_role``, ``set_share_include``,
  ``attach_share``: the hook's methods read first and change nothing that holds already (a create
  that loses a race to another writer answers what the other made); a share's actions run as its
  owner and an attachment as the account, each through one short-lived session per account acted
  as (:class:`~.state.ActingSessions`), whose tokens are revoked when the group's actions end.
* ``replace_share``: drop, then create (a re-run after a crash between the two creates it).
* ``revoke_*``, ``exclude_role``, ``drop_*``, ``delete_user``: gone already is success; a user is
  deleted only after its tokens are revoked
  (:func:`~airflow_provider_motherduck.workflows.offboarding.offboard_account`); only then is it
  removed from the ownership record (:func:`~.state.disown`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import MotherDuckConflictError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import fold_username
from airflow_provider_motherduck.workflows.delivery import Issuer, VariableStore
from airflow_provider_motherduck.workflows.issuing import issue_token
from airflow_provider_motherduck.workflows.naming import name_pattern
from airflow_provider_motherduck.workflows.offboarding import offboard_account
from airflow_provider_motherduck.workflows.pool import HookFactory, run_on_pool, stops_all
from airflow_provider_motherduck.workflows.reconcile.plan import (
    PHASES,
    PRUNE_GRANTS,
    Action,
    AdoptRole,
    AdoptShare,
    AdoptUser,
    AttachShare,
    CreateRole,
    CreateShare,
    CreateUser,
    DeleteUser,
    DropRole,
    DropShare,
    ExcludeRole,
    GrantRole,
    GrantShare,
    GrantShareToRole,
    IncludeRole,
    IssueToken,
    ReconcilePlan,
    ReplaceShare,
    RevokeRole,
    RevokeShare,
    RevokeToken,
    SetShareInclude,
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
    """Group (a username, ``roles``, ``shares of <owner>``) -> error, for groups whose actions stopped."""
    not_attempted: list[dict[str, Any]]


@dataclass
class Run:
    """One group's run: its hook, its tokens as listed (listed again after a stale view), each
    action done with its outcome, and the SQL sessions it acts in (closed when its actions end)."""

    hook: MotherDuckHook
    listed: tuple[Mapping[str, Any], ...] = ()
    stale: bool = False
    finished: list[tuple[Action, dict[str, Any]]] = field(default_factory=list)
    """Each action done, with its outcome."""
    sessions: ActingSessions | None = None
    issuer: Issuer | None = None
    """Who issues tokens (a task's run and try): a retry then revokes what its own earlier tries left."""

    @property
    def done(self) -> list[dict[str, Any]]:
        """Each action done, in its XCom form with its ``outcome``."""
        return _as_done(self.finished)

    def acting(self) -> ActingSessions:
        if self.sessions is None:
            self.sessions = ActingSessions(self.hook)
        return self.sessions

    def as_owner(self, owner: str) -> str | None:
        return self.acting().as_owner(owner)


def _create_user(run: Run, action: CreateUser) -> dict[str, Any]:
    try:
        run.hook.create_user(action.username)
    except MotherDuckConflictError:  # it exists: the plan's listing missed it
        run.stale = True
        run.listed = tuple(run.hook.list_tokens(action.username))
        log.warning("%s exists although the listing missed it: its tokens read again.", action.username)
        return {"created": False}
    return {"created": True}


def _adopt(run: Run, action: Action) -> dict[str, Any]:
    return {"adopted": True}


def _update_duckling_config(run: Run, action: UpdateDucklingConfig) -> dict[str, Any]:
    config = run.hook.update_duckling_config(
        action.username, read_write=action.read_write, read_scaling=action.read_scaling
    )
    return {"duckling_config": dict(config)}


def _issue_token(run: Run, action: IssueToken) -> dict[str, Any]:
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


def _grant_role(run: Run, action: GrantRole) -> dict[str, Any]:
    granted = run.hook.grant_role(action.role, to_user=action.username)
    log.info("%s: role %s %s.", action.username, action.role, "granted" if granted else "held already")
    return {"granted": granted}


def _revoke_role(run: Run, action: RevokeRole) -> dict[str, Any]:
    return {"revoked": run.hook.revoke_role(action.role, from_user=action.username)}


def _grant_share(run: Run, action: GrantShare) -> dict[str, Any]:
    share = action.share
    granted = run.hook.grant_share(share.share, to_user=action.username, as_user=run.as_owner(share.owner))
    log.info(
        "%s: read on share %s %s by its owner %s.",
        action.username,
        share.share,
        "granted" if granted else "held already",
        share.owner,
    )
    return {"granted": granted}


def _attach_share(run: Run, action: AttachShare) -> dict[str, Any]:
    share = action.share
    url = run.acting().share_url(share)  # a share URL is sensitive: never logged
    as_user = run.acting().hold(action.username)
    if action.again:  # the share was made again: the alias holds its old URL
        run.hook.detach_share(share.alias, as_user=as_user)
    attached = run.hook.attach_share(url, share.alias, as_user=as_user)
    log.info(
        "%s: share %s of %s %s as %r.",
        action.username,
        share.share,
        share.owner,
        "attached" if attached.created else "attached already",
        attached.alias,
    )
    return {"alias": attached.alias, "created": attached.created}


def _revoke_token(run: Run, action: RevokeToken) -> dict[str, Any]:
    revoked = run.hook.revoke_token(action.username, action.token_id, missing_ok=True)
    return {"revoked_ids": [action.token_id] if revoked else []}


def _delete_user(run: Run, action: DeleteUser) -> dict[str, Any]:
    gone = offboard_account(run.hook, action.username, forget_variables=False)
    return {"revoked_ids": gone["revoked_ids"], "deleted": gone["deleted"]}


def _create_role(run: Run, action: CreateRole) -> dict[str, Any]:
    return {"created": run.hook.create_role(action.role).created}


def _include_role(run: Run, action: IncludeRole) -> dict[str, Any]:
    return {"granted": run.hook.grant_role(action.included, to_role=action.role)}


def _exclude_role(run: Run, action: ExcludeRole) -> dict[str, Any]:
    return {"revoked": run.hook.revoke_role(action.included, from_role=action.role)}


def _drop_role(run: Run, action: DropRole) -> dict[str, Any]:
    return {"deleted": run.hook.drop_role(action.role)}


def _create_share(run: Run, action: CreateShare) -> dict[str, Any]:
    d = action.declared
    made = run.hook.create_share(
        d.name,
        d.database,
        access=d.access,
        visibility=d.visibility,
        update=d.update,
        include=d.include,
        as_user=run.as_owner(action.owner),
    )
    return {"created": made.created}


def _replace_share(run: Run, action: ReplaceShare) -> dict[str, Any]:
    dropped = run.hook.drop_share(action.share, as_user=run.as_owner(action.owner))
    return {**_create_share(run, action), "dropped": dropped}


def _set_share_include(run: Run, action: SetShareInclude) -> dict[str, Any]:
    share = run.hook.set_share_include(action.share, action.include, as_user=run.as_owner(action.owner))
    return {"changed": share.changed}


def _grant_share_to_role(run: Run, action: GrantShareToRole) -> dict[str, Any]:
    as_user = run.as_owner(action.owner)
    return {"granted": run.hook.grant_share(action.share, to_role=action.role, as_user=as_user)}


def _revoke_share(run: Run, action: RevokeShare) -> dict[str, Any]:
    grantee = {"from_user" if action.grantee_type == "user" else "from_role": action.grantee}
    as_user = run.as_owner(action.owner)
    return {"revoked": run.hook.revoke_share(action.share, **grantee, as_user=as_user)}


def _drop_share(run: Run, action: DropShare) -> dict[str, Any]:
    return {"deleted": run.hook.drop_share(action.share, as_user=run.as_owner(action.owner))}


_DISPATCH: dict[type[Action], Callable[[Run, Any], dict[str, Any]]] = {
    CreateUser: _create_user,
    AdoptUser: _adopt,
    UpdateDucklingConfig: _update_duckling_config,
    IssueToken: _issue_token,
    GrantRole: _grant_role,
    RevokeRole: _revoke_role,
    GrantShare: _grant_share,
    AttachShare: _attach_share,
    RevokeToken: _revoke_token,
    DeleteUser: _delete_user,
    CreateRole: _create_role,
    AdoptRole: _adopt,
    IncludeRole: _include_role,
    ExcludeRole: _exclude_role,
    DropRole: _drop_role,
    CreateShare: _create_share,
    ReplaceShare: _replace_share,
    AdoptShare: _adopt,
    SetShareInclude: _set_share_include,
    GrantShareToRole: _grant_share_to_role,
    RevokeShare: _revoke_share,
    DropShare: _drop_share,
}


def apply_actions(run: Run, actions: Sequence[Action]) -> list[dict[str, Any]]:
    """One group's actions in order (an error stops there and is raised; ``run.done`` holds what
    was done); returns each action's XCom form with its ``outcome``. The run's SQL sessions are
    closed (their tokens revoked) at the end, however it ends."""
    try:
        for action in actions:
            outcome = _DISPATCH[type(action)](run, action)
            run.finished.append((action, outcome))
            log.info("Done: %s %s %s", action.kind, action.subject, action.detail)
    finally:
        if run.sessions is not None:
            run.sessions.close()
    return run.done


class _Stopped(Exception):
    """A group's actions stopped: the run (what it did), and why."""

    def __init__(self, run: Run, cause: Exception) -> None:
        super().__init__(str(cause))
        self.run = run
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
    """Carry out ``plan``: phase by phase, each group's actions in order, groups on up to
    ``max_workers`` threads.

    First :meth:`~.plan.ReconcilePlan.raise_if_unsafe` (``max_deletes``: ``None``, no limit), then
    the ownership record in ``store``. A group whose action fails stops there, and its actions in
    later phases are not attempted; the other groups go on, but once anything failed nothing is
    pruned, and after an error every call would hit (a rejected admin token) no later phase runs.
    A re-run (a new plan from a new read) finishes the job.
    """
    plan.raise_if_unsafe(max_deletes)
    own(plan.name, store, plan.owns)
    failed: dict[str, str] = {}
    not_attempted: list[dict[str, Any]] = []
    finished: list[tuple[Action, dict[str, Any]]] = []
    hopeless = False  # an error every call would hit (a rejected admin token): no later phase runs
    for phase in PHASES:
        groups: dict[str, list[Action]] = {}
        for action in plan.actions:
            if action.phase == phase:
                groups.setdefault(action.group, []).append(action)
        stopped = [g for g in groups if g in failed or (failed and (phase >= PRUNE_GRANTS or hopeless))]
        not_attempted += [a.as_dict() for g in stopped for a in groups.pop(g)]
        order = list(groups)
        results, errors = run_on_pool(
            order,
            partial(_run_group, plan, groups, issuer),
            new_hook,
            max_workers=max_workers,
            name="md-reconcile",
        )
        for i, group in enumerate(order):
            error = errors.get(i)
            run = results[i] if error is None else error.run if isinstance(error, _Stopped) else None
            finished += run.finished if run is not None else []
            if error is not None:
                cause = error.cause if isinstance(error, _Stopped) else error
                not_attempted += [a.as_dict() for a in groups[group][len(run.finished) if run else 0 :]]
                failed[group] = f"{type(cause).__name__}: {redact(str(cause))}"
                hopeless = hopeless or stops_all(cause)
    gone = [path for action, _ in finished for path in action.forgets()]
    if gone:
        disown(plan.name, store, gone)
    return ReconcileResult(_as_done(finished), failed, not_attempted)


def _as_done(finished: Sequence[tuple[Action, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    return [{**action.as_dict(), "outcome": outcome} for action, outcome in finished]


def _run_group(
    plan: ReconcilePlan,
    groups: Mapping[str, Sequence[Action]],
    issuer: Issuer | None,
    hook: MotherDuckHook,
    group: str,
) -> Run:
    run = Run(hook, tuple(plan.listed.get(fold_username(group), ())), issuer=issuer)
    try:
        apply_actions(run, groups[group])
    except Exception as err:
        raise _Stopped(run, err) from err  # the pool reads the cause
    return run
