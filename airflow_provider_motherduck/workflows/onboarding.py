"""Bring service accounts to a declared state, in bulk if need be, and take them away again.

Onboarding is idempotent: a re-run with the same declaration only reads (``GET``), and a run
that failed mid-way is finished by the next one. The delivered token is recognised through the
delivery record (:mod:`~airflow_provider_motherduck.workflows.delivery`); a new one is issued
by :func:`~airflow_provider_motherduck.workflows.issuing.issue_token`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.arguments import Check, check_count, check_variable_key, optional
from airflow_provider_motherduck.exceptions import (
    MotherDuckConflictError,
    MotherDuckNotFoundError,
    SkippedError,
    invalid,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import (
    check_duckling_half,
    check_new_username,
    check_token_name,
    check_token_type,
    parse_ttl,
)
from airflow_provider_motherduck.workflows.delivery import SecretDestination, forget
from airflow_provider_motherduck.workflows.issuing import issue_token, revoke_tokens
from airflow_provider_motherduck.workflows.naming import name_pattern
from airflow_provider_motherduck.workflows.pool import HookFactory, run_on_pool
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
}
_ACCOUNT_DEFAULTS: dict[str, Any] = {
    "token_type": "read_write",
    "ttl": None,
    "record_key": None,
    "read_write": None,
    "read_scaling": None,
}


def check_account(value: Any, field: str = "account") -> dict[str, Any]:
    """One declaration as a checked dict: ``username``, ``token_name`` and ``variable_key``
    required; ``read_write``, ``read_scaling``, ``token_type``, ``ttl`` and ``record_key``
    optional. ``ttl`` comes back in seconds (``None``: never expires)."""
    allowed = ", ".join(ACCOUNT_CHECKS)
    if not isinstance(value, Mapping):
        raise invalid(field, value, "expected a mapping", allowed)
    unknown = sorted(str(k) for k in value if k not in ACCOUNT_CHECKS)
    missing = [k for k in ("username", "token_name", "variable_key") if value.get(k) is None]
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"missing {', '.join(missing)}"
        raise invalid(field, dict(value), problem, allowed)
    merged = {**_ACCOUNT_DEFAULTS, **value}
    try:
        account = {key: check(merged[key], key) for key, check in ACCOUNT_CHECKS.items()}
        account_destination(account)
        return account
    except ValueError as err:
        raise ValueError(f"{field} ({merged['username']!r}): {err}") from None


def account_destination(account: Mapping[str, Any]) -> SecretDestination:
    """Where a declaration's secret goes: its ``variable_key`` (and ``record_key``)."""
    return SecretDestination(account["variable_key"], record_key=account["record_key"])


def check_accounts(
    value: Any, field: str = "accounts", defaults: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A list of declarations (or its JSON text) checked one by one; usernames and keys unique.

    ``defaults`` fills the keys an account leaves out.
    """
    allowed = "a non-empty list of account mappings, or its JSON text"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid(field, value[:40], "not JSON", allowed) from None
    if not isinstance(value, (list, tuple)) or not value:
        raise invalid(field, value, "expected a non-empty list", allowed)
    base = dict(defaults or {})
    accounts = [
        check_account({**base, **item} if isinstance(item, Mapping) else item, f"{field}[{i}]")
        for i, item in enumerate(value)
    ]
    # A Variable shared by two accounts, as a secret or a delivery record, would hold only one of them.
    destinations = [account_destination(a) for a in accounts]
    variables = [k for d in destinations for k in (d.variable_key, d.record)]
    for what, values in (("username", [a["username"] for a in accounts]), ("Variable key", variables)):
        twice = sorted(str(k) for k, n in Counter(values).items() if n > 1)
        if twice:
            raise invalid(
                field,
                f"{len(accounts)} accounts",
                f"{what} declared twice: {', '.join(twice)}",
                f"each {what} once",
            )
    return accounts


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
    hook: MotherDuckHook, account: Mapping[str, Any], destination: SecretDestination
) -> dict[str, Any]:
    """Bring one account (a :func:`check_account` result) to its declared state.

    Reads first and writes only what differs: creates the user if missing, merges the partial
    Duckling config (no ``PUT`` when equal), and issues a token unless the delivered one is still
    listed. Tokens an earlier try left that nobody holds are revoked. Returns the XCom of
    :class:`~airflow_provider_motherduck.operators.onboarding.MotherDuckOnboardAccountOperator`.
    """
    username: str = account["username"]
    token_name: str = account["token_name"]
    user_created = False
    try:
        tokens: list[Mapping[str, Any]] = list(hook.list_tokens(username))
    except MotherDuckNotFoundError:
        try:
            hook.create_user(username)
            user_created = True
            log.info("Created MotherDuck service account %s.", username)
        except MotherDuckConflictError:  # created meanwhile by someone else
            pass
        tokens = [] if user_created else list(hook.list_tokens(username))
    config = None
    if account["read_write"] is not None or account["read_scaling"] is not None:
        config = dict(
            hook.update_duckling_config(
                username, read_write=account["read_write"], read_scaling=account["read_scaling"]
            )
        )
    # The logical name: the bare name, or the name with a rotation's run marker (rotated since).
    family = name_pattern(token_name)
    found, unheld = (
        destination.find(tokens, username, family, account["token_type"]) if tokens else (None, [])
    )
    replaced: list[str] = []
    if found is not None:
        token = token_metadata(found, username)
        replaced = revoke_tokens(hook, username, [str(t.get("id")) for t in unheld])
        log.info(
            "%s: token %r (id %s) is in %s already.",
            username,
            token_name,
            token["id"],
            destination.describe(),
        )
    else:
        issued = issue_token(
            hook,
            username,
            token_name,
            ttl=account["ttl"],
            token_type=account["token_type"],
            destination=destination,
            listed=tokens,
        )
        token, replaced = issued.token, issued.replaced
    others = [
        str(t.get("id"))
        for t in tokens
        if family.fullmatch(str(t.get("name", "")))
        and t.get("id") != token["id"]
        and str(t.get("id")) not in replaced
    ]
    if others:
        log.warning(
            "%s has %d other token(s) named %r whose secret is not in %s: %s. Revoke them if unused "
            "(MotherDuckRevokeTokenOperator by id).",
            username,
            len(others),
            token_name,
            destination.describe(),
            ", ".join(others),
        )
    return {
        "username": username,
        "created": user_created,
        "duckling_config": config,
        "token": token,
        "token_created": found is None,
        "other_token_ids": others,
    }


def onboard_accounts(
    accounts: Sequence[Mapping[str, Any]], new_hook: HookFactory, *, max_workers: int
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Onboard checked declarations on up to ``max_workers`` threads, one hook per thread.

    Only the MotherDuck calls overlap; Variable reads and writes take turns. An account that
    fails does not stop the others, except for errors that would hit every account (401: the
    admin token is rejected; an unusable connection): then the accounts not yet started are
    skipped. Returns the results of the accounts onboarded, in input order, and
    ``{username: error}`` for the others.
    """
    results, errors = run_on_pool(
        accounts,
        lambda hook, account: onboard_account(hook, account, account_destination(account)),
        new_hook,
        max_workers=max_workers,
        name="md-onboard",
    )
    failed = {
        accounts[i]["username"]: str(err)
        if isinstance(err, SkippedError)
        else f"{type(err).__name__}: {redact(str(err))}"
        for i, err in errors.items()
    }
    return [r for r in results if r is not None], failed


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
