"""Reconcile: bring the organisation's service accounts, custom roles, shares and grants to a
declaration, and show the drift.

The invariant: planning only reads, and applying writes only what the plan lists, so re-running a
converged declaration makes no write; every step is safe to fail and to repeat, so after a failure
part-way the next run's plan lists exactly what is left. A declaration manages only what it owns
(its ownership record, :mod:`.state`): an account, role, share or grant it neither declares nor
owns is never touched, and a share it does not own is never replaced.
Nothing is ever pruned that is a human user, holds the Admin role, is deprovisioned, matches
``protect`` or is listed malformed; no write is made from a partial view of the users.

The package, one job per module:

* :mod:`.declaration`: the schema check (:func:`check_declaration`), every problem at once.
* :mod:`.state`: reading (:func:`read_state`) and the ownership record.
* :mod:`.plan`: the pure planner (:func:`plan_reconcile`), typed actions, the guards
  (:meth:`ReconcilePlan.raise_if_unsafe`) and the table the log shows.
* :mod:`.apply`: :func:`apply_plan`, which only executes a plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.workflows.delivery import Issuer, VariableStore
from airflow_provider_motherduck.workflows.loading import (
    declaration_path,
    load_declaration,
    read_declaration_file,
)
from airflow_provider_motherduck.workflows.pool import HookFactory
from airflow_provider_motherduck.workflows.reconcile.apply import ReconcileResult, apply_plan
from airflow_provider_motherduck.workflows.reconcile.declaration import (
    DEFAULT_MAX_DELETES,
    Declaration,
    DeclaredAccount,
    DeclaredOrgShare,
    DeclaredRole,
    DeclaredShare,
    DeclaredToken,
    check_declaration,
    check_max_deletes,
    check_mode,
    check_protect,
)
from airflow_provider_motherduck.workflows.reconcile.plan import (
    ACTION_ORDER,
    PHASES,
    AccountAction,
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
    FieldChange,
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
    RoleAction,
    SetShareInclude,
    ShareAction,
    UpdateDucklingConfig,
    plan_reconcile,
)
from airflow_provider_motherduck.workflows.reconcile.state import (
    OWNED_PREFIX,
    AccountAccess,
    AccountState,
    ActingSessions,
    OrgState,
    OwnedPath,
    Ownership,
    ShareState,
    read_ownership,
    read_state,
)

log = logging.getLogger(__name__)

__all__ = [
    "ACTION_ORDER",
    "DEFAULT_MAX_DELETES",
    "OWNED_PREFIX",
    "PHASES",
    "AccountAccess",
    "AccountAction",
    "AccountState",
    "ActingSessions",
    "Action",
    "AdoptRole",
    "AdoptShare",
    "AdoptUser",
    "AttachShare",
    "CreateRole",
    "CreateShare",
    "CreateUser",
    "Declaration",
    "DeclaredAccount",
    "DeclaredOrgShare",
    "DeclaredRole",
    "DeclaredShare",
    "DeclaredToken",
    "DeleteUser",
    "DropRole",
    "DropShare",
    "ExcludeRole",
    "FieldChange",
    "GrantRole",
    "GrantShare",
    "GrantShareToRole",
    "IncludeRole",
    "IssueToken",
    "MotherDuckReconcileError",
    "OrgState",
    "OwnedPath",
    "Ownership",
    "ReconcilePlan",
    "ReconcileResult",
    "ReplaceShare",
    "RevokeRole",
    "RevokeShare",
    "RevokeToken",
    "RoleAction",
    "SetShareInclude",
    "ShareAction",
    "ShareState",
    "UpdateDucklingConfig",
    "apply_plan",
    "check_declaration",
    "check_max_deletes",
    "check_mode",
    "check_protect",
    "declaration_path",
    "load_declaration",
    "plan_reconcile",
    "read_declaration_file",
    "read_ownership",
    "read_state",
    "reconcile_accounts",
]


def reconcile_accounts(
    declaration: Declaration,
    new_hook: HookFactory,
    store: VariableStore,
    *,
    mode: str = "apply",
    prune: bool = False,
    protect: Sequence[str] = (),
    max_deletes: int | None = DEFAULT_MAX_DELETES,
    max_workers: int = 8,
    issuer: Issuer | None = None,
) -> dict[str, Any]:
    """Read, plan, log the plan as a table, then act as ``mode`` says; returns the summary (XCom).

    ``store`` holds the Variables (the ownership record; secrets go to each token's destination).
    ``plan`` makes no write and warns of what would make applying refuse. ``check`` makes no
    write and raises :class:`MotherDuckReconcileError` when the plan is not empty (drift) or
    unsafe. ``apply`` carries the plan out (see :func:`apply_plan`) and raises, after finishing
    what it could, if an account's actions failed. The summary: ``name``, ``mode``, ``prune``,
    ``plan`` (the actions), ``deletes``, ``spared``, ``unsafe``, ``adopted_usernames`` (the
    accounts the plan adopts), and for ``apply`` also ``done`` (each action with its outcome),
    ``failed`` and ``not_attempted``. Never a secret.
    """
    check_mode(mode)
    state = read_state(declaration, new_hook, max_workers=max_workers, store=store)
    plan = plan_reconcile(declaration, state, prune=prune, protect=protect)
    unsafe = plan.unsafe(max_deletes)
    summary: dict[str, Any] = {
        "name": declaration.name,
        "mode": mode,
        "prune": prune,
        "plan": plan.as_list(),
        "deletes": plan.deletes,
        "spared": [{"username": u, "reason": r} for u, r in plan.spared],
        "unsafe": unsafe,
        "adopted_usernames": [a.username for a in plan.actions if isinstance(a, AdoptUser)],
    }
    log.info(
        "Plan of declaration %r for %d service account(s) (%s, prune=%s):\n%s",
        declaration.name,
        len(declaration.accounts),
        mode,
        prune,
        plan.table(),
    )
    for username, reason in plan.spared:
        log.info("Not pruned: %s (%s).", username, reason)
    if mode == "plan":
        for reason in unsafe:
            log.warning("Applying this plan would be refused: %s.", reason)
        return summary
    if mode == "check":
        plan.raise_if_unsafe(max_deletes, summary)
        if plan.actions:
            raise MotherDuckReconcileError(
                f"Drift: MotherDuck differs from the declaration by {len(plan.actions)} action(s):\n"
                + plan.table(),
                summary,
            )
        return summary
    plan.raise_if_unsafe(max_deletes, summary)
    result = apply_plan(
        plan, new_hook, store, max_workers=max_workers, max_deletes=max_deletes, issuer=issuer
    )
    summary.update(done=result.done, failed=result.failed, not_attempted=result.not_attempted)
    log.info("Applied %d of %d action(s).", len(result.done), len(plan.actions))
    if result.failed:
        lines = "\n".join(f"  - {name}: {error}" for name, error in result.failed.items())
        raise MotherDuckReconcileError(
            f"{len(result.failed)} account(s) not reconciled; {len(result.done)} action(s) done, "
            f"{len(result.not_attempted)} not attempted. A re-run finishes them:\n{lines}",
            summary,
        )
    return summary
