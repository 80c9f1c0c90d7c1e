"""Bring service accounts to a declared state, in bulk if need be: a reconcile of the accounts named.

The operators' flat arguments (``username``, ``token_name``, ``variable_key``, ...) become the
same :class:`~airflow_provider_motherduck.workflows.reconcile.DeclaredAccount` a declaration file
gives, through the same checks; each account is then read, planned and applied by the reconcile
engine (:mod:`~airflow_provider_motherduck.workflows.reconcile`) without prune and without an
ownership record, so onboarding never revokes or deletes anything but the tokens an earlier try
of its own left unheld. Idempotent: a re-run with the same accounts only reads (``GET``), and a
run that failed mid-way is finished by the next one.

Access (``roles``, ``shares``): roles are granted by the admin, each share's read grant by its
owner, and the share is attached as the account itself; what holds already is read first
(``roles_of``, ``share_grants`` as the admin; ``attached_databases`` as the account), so a re-run
makes no SQL write. Acting as an account (or an owner) takes one short-lived token per account
for the whole of its run, revoked when the run ends, succeeded or failed. Onboarding only adds:
a role, grant or attachment not declared is left as it is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.arguments import Check, check_count, check_variable_key, optional
from airflow_provider_motherduck.exceptions import MotherDuckNotFoundError, SkippedError, invalid
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import (
    check_duckling_half,
    check_new_username,
    check_token_name,
    check_token_type,
    parse_ttl,
)
from airflow_provider_motherduck.workflows.delivery import Issuer, SecretDestination
from airflow_provider_motherduck.workflows.naming import name_pattern
from airflow_provider_motherduck.workflows.pool import HookFactory, run_on_pool
from airflow_provider_motherduck.workflows.reconcile.apply import Run, apply_actions
from airflow_provider_motherduck.workflows.reconcile.declaration import (
    Declaration,
    DeclaredAccount,
    check_flat_accounts,
    check_roles,
    check_shares,
)
from airflow_provider_motherduck.workflows.reconcile.plan import (
    AttachShare,
    CreateUser,
    GrantRole,
    GrantShare,
    IssueToken,
    UpdateDucklingConfig,
    plan_reconcile,
)
from airflow_provider_motherduck.workflows.reconcile.state import (
    AccountState,
    ActingSessions,
    OrgState,
    read_account,
)
from airflow_provider_motherduck.workflows.tokens import token_metadata

log = logging.getLogger(__name__)


DEFAULT_MAX_WORKERS: Final = 16
MAX_WORKERS_LIMIT: Final = 128


def _half(value: Any, field: str) -> dict[str, Any]:
    return check_duckling_half(field, value, complete=False)


#: The checks of one account declaration; the keys are the onboarding operator's arguments.
ACCOUNT_CHECKS: dict[str, Check] = {
    "username": check_new_username,
    "token_name": check_token_name,
    "token_type": check_token_type,
    "ttl": parse_ttl,
    "variable_key": optional(check_variable_key),
    "record_key": optional(check_variable_key),
    "read_write": optional(_half),
    "read_scaling": optional(_half),
    "roles": optional(check_roles),
    "shares": optional(check_shares),
}


def check_account(
    value: Any, field: str = "account", *, destination: SecretDestination | None = None
) -> DeclaredAccount:
    """One account in the flat form (``username``, ``token_name`` and ``variable_key`` required;
    ``read_write``, ``read_scaling``, ``token_type``, ``ttl``, ``record_key``, ``roles`` and
    ``shares`` optional) as the
    declared account a reconcile declaration gives, through the same checks. ``destination``: the
    token's destination when the caller checked it (a secret sink)."""
    (account,) = check_flat_accounts([value], field, destination=destination)
    return account


def check_accounts(
    value: Any, field: str = "accounts", defaults: Mapping[str, Any] | None = None
) -> tuple[DeclaredAccount, ...]:
    """A list of flat accounts (or its JSON text) checked together, every problem at once; the
    declaration's "declared twice" rule (usernames ignoring case, Variable keys). ``defaults``
    fills the keys an account leaves out."""
    allowed = "a non-empty list of account mappings, or its JSON text"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid(field, value[:40], "not JSON", allowed) from None
    if isinstance(value, tuple) and value and all(isinstance(a, DeclaredAccount) for a in value):
        return value  # checked before (the operator checks again after rendering)
    if not isinstance(value, (list, tuple)) or not value:
        raise invalid(field, value, "expected a non-empty list", allowed)
    base = dict(defaults or {})
    return check_flat_accounts(
        [{**base, **item} if isinstance(item, Mapping) else item for item in value], field
    )


def check_defaults(value: Any, field: str) -> dict[str, Any]:
    """Declaration keys that fill what each account leaves out (never ``username``)."""
    allowed = "a mapping of account keys other than username: " + ", ".join(ACCOUNT_CHECKS)
    if not isinstance(value, Mapping):
        raise invalid(field, value, "expected a mapping", allowed)
    unknown = sorted(str(k) for k in value if k not in ACCOUNT_CHECKS or k == "username")
    if unknown:
        raise invalid(field, dict(value), f"unknown keys {unknown}", allowed)
    return dict(value)


def check_max_workers(value: Any, field: str) -> int:
    """How many accounts a bulk task onboards at once: 1 to :data:`MAX_WORKERS_LIMIT`."""
    return check_count(value, field, 1, MAX_WORKERS_LIMIT)


def onboard_account(
    hook: MotherDuckHook, account: DeclaredAccount, *, issuer: Issuer | None = None
) -> dict[str, Any]:
    """Bring one account to its declared state: a reconcile of that account alone, without prune.

    Reads first (its tokens, its Duckling config if sized) and writes only what the plan lists:
    creates the user if missing, merges the partial Duckling config (no ``PUT`` when equal),
    issues a token unless its destination holds a live one, and revokes the tokens an earlier try
    left that nobody holds; grants the declared roles and share reads that are missing and
    attaches the shares not attached (see the module's docstring). Each change is logged (a
    Duckling field as ``from -> to``, each grant and attachment). Other tokens of that name are
    reported, never revoked. Returns the XCom of
    :class:`~airflow_provider_motherduck.operators.onboarding.MotherDuckOnboardAccountOperator`.
    """
    with ActingSessions(hook) as sessions:
        return _onboard(hook, account, sessions, issuer)


def _onboard(
    hook: MotherDuckHook, account: DeclaredAccount, sessions: ActingSessions, issuer: Issuer | None
) -> dict[str, Any]:
    (token,) = account.tokens or ()
    try:
        current: AccountState | None = read_account(hook, account, sessions)
    except MotherDuckNotFoundError:
        current = None
    users = (
        ()
        if current is None
        else (
            {
                "username": account.username,
                "is_service_account": True,
                "is_deprovisioned": False,
                "roles": [],
            },
        )
    )
    state = OrgState(users, {} if current is None else {account.key: current})
    plan = plan_reconcile(Declaration("", (account,)), state)
    run = Run(hook, current.tokens if current is not None else (), sessions=sessions, issuer=issuer)
    applied = apply_actions(run, plan.actions)
    outcomes = {done["action"]: done["outcome"] for done in applied}
    issued = outcomes.get(IssueToken.kind)
    if issued is not None:
        metadata, created, replaced = issued["token"], issued["created"], issued["revoked_ids"]
    else:
        assert current is not None  # nothing to issue: the listed account's destination holds it
        held = next(t for t in current.tokens if str(t.get("id")) == current.delivered[token.name])
        metadata, created, replaced = token_metadata(held, account.username), False, []
    replaced = [
        *replaced,
        *(
            o["revoked_ids"][0]
            for d in run.done
            if d["action"] == "revoke_token"
            for o in [d["outcome"]]
            if o["revoked_ids"]
        ),
    ]
    family = name_pattern(token.name)
    others = [
        str(t.get("id"))
        for t in run.listed
        if family.fullmatch(str(t.get("name", "")))
        and str(t.get("id")) != metadata["id"]
        and str(t.get("id")) not in replaced
    ]
    if others:
        log.warning(
            "%s has %d other token(s) named %r whose secret is not in %s: %s. Revoke them if unused "
            "(MotherDuckRevokeTokenOperator by id).",
            account.username,
            len(others),
            token.name,
            token.destination.describe(),
            ", ".join(others),
        )
    config = outcomes.get(UpdateDucklingConfig.kind, {}).get("duckling_config")
    if config is None and account.sizes_declared and current is not None and current.config is not None:
        config = dict(current.config)
    return {
        "username": account.username,
        "created": outcomes.get(CreateUser.kind, {}).get("created", False),
        "duckling_config": config,
        "token": metadata,
        "token_created": created,
        "other_token_ids": others,
        **_access_changes(applied),
    }


def _access_changes(applied: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The XCom's access keys: what this run granted and attached (empty lists: nothing changed)."""

    def changed(kind: str, key: str, flag: str) -> list[str]:
        return [str(d[key]) for d in applied if d["action"] == kind and d["outcome"][flag]]

    return {
        "granted_roles": changed(GrantRole.kind, "role", "granted"),
        "granted_shares": changed(GrantShare.kind, "share", "granted"),
        "attached_aliases": changed(AttachShare.kind, "alias", "created"),
    }


def onboard_accounts(
    accounts: Sequence[DeclaredAccount],
    new_hook: HookFactory,
    *,
    max_workers: int,
    issuer: Issuer | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Onboard checked accounts on up to ``max_workers`` threads, one hook per thread.

    Only the MotherDuck calls overlap; Variable reads and writes take turns. An account that
    fails does not stop the others, except for errors that would hit every account (401: the
    admin token is rejected; an unusable connection): then the accounts not yet started are
    skipped. Returns the results of the accounts onboarded, in input order, and
    ``{username: error}`` for the others.
    """
    results, errors = run_on_pool(
        accounts,
        partial(onboard_account, issuer=issuer),
        new_hook,
        max_workers=max_workers,
        name="md-onboard",
    )
    failed = {
        accounts[i].username: str(err)
        if isinstance(err, SkippedError)
        else f"{type(err).__name__}: {redact(str(err))}"
        for i, err in errors.items()
    }
    return [r for r in results if r is not None], failed
