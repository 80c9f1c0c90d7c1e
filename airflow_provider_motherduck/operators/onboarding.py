"""Bring service accounts to a declared state, in bulk if need be, and take them away again.

Onboarding is idempotent: a re-run with the same declaration only reads (``GET``), and a run
that failed mid-way is finished by the next one. The delivered token is recognised through the
delivery record described in :mod:`airflow_provider_motherduck.operators._delivery`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from airflow_provider_motherduck._compat import Context, TaskGroup, redact
from airflow_provider_motherduck.arguments import check_variable_key, is_literal
from airflow_provider_motherduck.exceptions import (
    MotherDuckAuthError,
    MotherDuckConfigError,
    MotherDuckConflictError,
    MotherDuckError,
    MotherDuckNotFoundError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators._base import Check, MotherDuckBaseOperator, optional
from airflow_provider_motherduck.operators._delivery import (
    SecretDestination,
    SecretSink,
    check_destination,
    forget,
    record_key_for,
)
from airflow_provider_motherduck.operators.rotation import name_pattern
from airflow_provider_motherduck.operators.tokens import (
    create_delivered_token,
    revoke_tokens,
    token_metadata,
)
from airflow_provider_motherduck.sensors.accounts import MotherDuckActiveAccountsSensor
from airflow_provider_motherduck.validation import (
    check_duckling_half,
    check_new_username,
    check_token_name,
    check_token_type,
    check_username,
    parse_ttl,
)

#: Makes a hook; the bulk onboarding calls it once per worker thread (a Session is not shared).
HookFactory = Callable[[], MotherDuckHook]

DEFAULT_MAX_WORKERS = 16
MAX_WORKERS_LIMIT = 128


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
    if not isinstance(value, Mapping):
        raise ValueError(f"{field}={value!r} is invalid: expected a mapping of {', '.join(ACCOUNT_CHECKS)}.")
    unknown = sorted(str(k) for k in value if k not in ACCOUNT_CHECKS)
    missing = [k for k in ("username", "token_name", "variable_key") if value.get(k) is None]
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"missing {', '.join(missing)}"
        raise ValueError(
            f"{field}={dict(value)!r} is invalid: {problem}. Allowed: {', '.join(ACCOUNT_CHECKS)}."
        )
    merged = {**_ACCOUNT_DEFAULTS, **value}
    try:
        account = {key: check(merged[key], key) for key, check in ACCOUNT_CHECKS.items()}
        record_key_for(account["variable_key"], account["record_key"])
        return account
    except ValueError as err:
        raise ValueError(f"{field} ({merged['username']!r}): {err}") from None


def check_accounts(
    value: Any, field: str = "accounts", defaults: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A list of declarations (or its JSON text) checked one by one; usernames and keys unique.

    ``defaults`` fills the keys an account leaves out.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{field} is invalid: not JSON. Allowed: a list of account mappings.") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{field}={value!r} is invalid: expected a non-empty list of account mappings.")
    base = dict(defaults or {})
    accounts = [
        check_account({**base, **item} if isinstance(item, Mapping) else item, f"{field}[{i}]")
        for i, item in enumerate(value)
    ]
    # A Variable shared by two accounts, as a secret or a delivery record, would hold only one of them.
    variables = [
        k for a in accounts for k in (a["variable_key"], record_key_for(a["variable_key"], a["record_key"]))
    ]
    for what, values in (("username", [a["username"] for a in accounts]), ("Variable key", variables)):
        twice = sorted(k for k, n in Counter(values).items() if n > 1)
        if twice:
            raise ValueError(f"{field} is invalid: {what} declared twice: {', '.join(twice)}.")
    return accounts


def onboard_account(
    hook: MotherDuckHook, account: Mapping[str, Any], destination: SecretDestination, log: Any
) -> dict[str, Any]:
    """Bring one account (a :func:`check_account` result) to its declared state.

    Reads first and writes only what differs: creates the user if missing, merges the partial
    Duckling config (no ``PUT`` when equal), and creates and delivers a token unless the
    delivered one is still listed. Returns the XCom of :class:`MotherDuckOnboardAccountOperator`.
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
    named = [t for t in tokens if family.fullmatch(str(t.get("name", "")))]
    found = destination.delivered(named, username, family, account["token_type"]) if named else None
    if found is not None:
        token = token_metadata(found, username)
        log.info(
            "%s: token %r (id %s) is in %s already.",
            username,
            token_name,
            token["id"],
            destination.describe(),
        )
    else:
        token, secret = create_delivered_token(
            hook,
            username,
            token_name,
            ttl=account["ttl"],
            token_type=account["token_type"],
            deliver=destination.deliver,
            log=log,
        )
        # Not undone on failure: the secret is out and valid. A re-run then delivers a fresh one.
        destination.write_record(str(secret), token)
        log.info("%s: delivered the secret of token %s to %s.", username, token["id"], destination.describe())
    others = [str(t.get("id")) for t in named if t.get("id") != token["id"]]
    if others:
        log.warning(
            "%s has %d other token(s) named %r whose secret is not in %s: %s. Revoke them if unused "
            "(MotherDuckDeleteTokenOperator by id).",
            username,
            len(others),
            token_name,
            destination.describe(),
            ", ".join(others),
        )
    return {
        "username": username,
        "user_created": user_created,
        "duckling_config": config,
        "token": token,
        "token_created": found is None,
        "other_token_ids": others,
    }


def onboard_accounts(
    accounts: Sequence[Mapping[str, Any]], new_hook: HookFactory, *, max_workers: int, log: Any
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Onboard checked declarations on up to ``max_workers`` threads, one hook per thread.

    Only the MotherDuck calls overlap; Variable reads and writes take turns. An account that
    fails does not stop the others, except for errors that would hit every account (401: the
    admin token is rejected; an unusable connection): then the accounts not yet started are
    skipped. Returns the results of the accounts onboarded, in input order, and
    ``{username: error}`` for the others.
    """
    local = threading.local()
    hooks: list[MotherDuckHook] = []
    lock = threading.Lock()
    stop = threading.Event()

    def one(account: Mapping[str, Any]) -> dict[str, Any] | None:
        if stop.is_set():
            return None
        hook = getattr(local, "hook", None)
        if hook is None:
            hook = local.hook = new_hook()
            with lock:
                hooks.append(hook)
        destination = SecretDestination(account["variable_key"], record_key=account["record_key"])
        try:
            return onboard_account(hook, account, destination, log)
        except MotherDuckAuthError as err:
            if err.status_code == 401:  # a 403 may concern this account only
                stop.set()
            raise
        except MotherDuckConfigError:
            stop.set()
            raise

    failed: dict[str, str] = {}
    results: list[dict[str, Any] | None] = []
    try:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="md-onboard") as pool:
            futures = [pool.submit(one, account) for account in accounts]
            for account, future in zip(accounts, futures, strict=True):
                try:
                    result = future.result()
                except Exception as err:
                    failed[account["username"]] = f"{type(err).__name__}: {redact(str(err))}"
                    result = None
                else:
                    if result is None:
                        failed[account["username"]] = (
                            "skipped: an earlier account hit an error that affects all"
                        )
                results.append(result)
    finally:
        for hook in hooks:
            hook.close()
    return [r for r in results if r is not None], failed


class MotherDuckOnboardAccountOperator(MotherDuckBaseOperator):
    """Bring one service account to a declared state; re-runs make no write request.

    The state: the user exists; its Duckling config holds the given partial ``read_write`` and
    ``read_scaling`` fields (merged; none given: left alone); a token named ``token_name`` (or a
    rotation of it, ``token_name@<run marker>``, see
    :class:`~airflow_provider_motherduck.operators.rotation.MotherDuckRotateTokenOperator`) of
    ``token_type`` exists, unexpired, and its secret is at the destination: the Variable
    ``variable_key`` or, instead, ``secret_sink``. Which token was delivered is kept in a record,
    the Variable ``record_key`` (default ``<variable_key>__delivery``: token id, user, name and a
    SHA-256 fingerprint of the secret, never the secret). If the record's token is gone, expired,
    or the Variable no longer holds its secret, a new token is created and delivered (and revoked
    again if delivery fails). Other tokens of that name are reported, not revoked.

    Templated: every argument but ``secret_sink``. Mapped over accounts (``expand_kwargs``) it
    onboards them in parallel, one task each; for hundreds in one task, see
    :class:`MotherDuckBulkOnboardOperator`.

    :param username: the service account.
    :param token_name: the token's name; ``token_type`` and ``ttl`` as in
        :class:`~airflow_provider_motherduck.operators.tokens.MotherDuckCreateTokenOperator`.
    :param variable_key: the Variable receiving the secret. Give this or ``secret_sink``.
    :param secret_sink: a callable taking the secret (returns nothing, raises on failure);
        needs ``record_key``.
    :param record_key: the Variable holding the delivery record.
    :param read_write: partial config, e.g. ``{"instance_size": "jumbo"}``.
    :param read_scaling: partial config, e.g. ``{"flock_size": 8}``.

    XCom: ``username``, ``user_created``, ``duckling_config`` (``None`` if none declared),
    ``token`` (metadata, never the secret), ``token_created``, ``other_token_ids``.
    """

    template_fields: Sequence[str] = (
        "username",
        "token_name",
        "token_type",
        "ttl",
        "variable_key",
        "record_key",
        "read_write",
        "read_scaling",
    )
    template_fields_renderers = {"read_write": "json", "read_scaling": "json"}

    def __init__(
        self,
        *,
        username: str,
        token_name: str,
        variable_key: str | None = None,
        secret_sink: SecretSink | None = None,
        record_key: str | None = None,
        read_write: Mapping[str, Any] | None = None,
        read_scaling: Mapping[str, Any] | None = None,
        token_type: str = "read_write",
        ttl: int | float | str | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.token_name = token_name
        self.variable_key = variable_key
        self.secret_sink = secret_sink
        self.record_key = record_key
        self.read_write = read_write
        self.read_scaling = read_scaling
        self.token_type = token_type
        self.ttl = ttl
        check_destination(f"{type(self).__name__} {self.task_id!r}", variable_key, secret_sink, record_key)
        self.validate_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return ACCOUNT_CHECKS  # secret_sink is not templated: check_destination saw it in __init__

    def run(self, args: dict[str, Any], context: Context) -> dict[str, Any]:
        destination = SecretDestination(args["variable_key"], self.secret_sink, args["record_key"])
        return onboard_account(self.hook, args, destination, self.log)


class MotherDuckBulkOnboardOperator(MotherDuckBaseOperator):
    """Onboard many accounts in one task, ``max_workers`` at a time (a bounded thread pool).

    Each account is brought to its state exactly as :class:`MotherDuckOnboardAccountOperator`
    does (same function); each worker thread has its own hook and HTTP session. A failed account
    does not stop the others; the task fails at the end naming them, and a re-run finishes them.
    One process masks every new secret, and Airflow's secrets masker slows as it grows (see
    ``benchmarks/onboarding.py``): for many hundreds of new accounts, map a few bulk tasks over
    slices of the list (``.expand(accounts=...)``).

    :param accounts: a list of mappings with ``username``, ``token_name``, ``variable_key`` and
        optionally ``read_write``, ``read_scaling``, ``token_type``, ``ttl``, ``record_key``; or
        its JSON text (templated, e.g. ``"{{ var.value.motherduck_accounts }}"``).
    :param defaults: values for keys an account leaves out, e.g. ``{"token_name": "airflow"}``.
    :param max_workers: accounts onboarded at the same time (1 to 128).

    XCom: ``{"accounts": n, "users_created": [...], "tokens_created": [...], "tokens": {username:
    token id}}``; never a secret.
    """

    template_fields: Sequence[str] = ("accounts", "defaults")
    template_fields_renderers = {"accounts": "json", "defaults": "json"}

    def __init__(
        self,
        *,
        accounts: Sequence[Mapping[str, Any]] | str,
        defaults: Mapping[str, Any] | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.accounts = accounts
        self.defaults = defaults
        self.max_workers = max_workers
        self.validate_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "defaults": optional(_check_defaults),
            "accounts": self._check_accounts,
            "max_workers": _check_workers,
        }

    def _check_accounts(self, value: Any, field: str) -> Any:
        if not is_literal(self.defaults):  # before rendering: checked with the rendered defaults
            return value
        defaults = self.defaults if isinstance(self.defaults, Mapping) else None
        return check_accounts(value, field, defaults)

    def run(self, args: dict[str, Any], context: Context) -> dict[str, Any]:
        accounts: list[dict[str, Any]] = args["accounts"]
        params = args["hook_params"]
        self.hook.settings  # noqa: B018  # a bad connection fails here, before any thread starts
        self.log.info("Onboarding %d account(s), %d at a time.", len(accounts), args["max_workers"])
        results, failed = onboard_accounts(
            accounts,
            lambda: MotherDuckHook(self.motherduck_conn_id, **params),
            max_workers=args["max_workers"],
            log=self.log,
        )
        summary: dict[str, Any] = {
            "accounts": len(accounts),
            "users_created": [r["username"] for r in results if r["user_created"]],
            "tokens_created": [r["username"] for r in results if r["token_created"]],
            "tokens": {r["username"]: r["token"]["id"] for r in results},
        }
        self.log.info(
            "Onboarded %d of %d account(s): %d user(s) and %d token(s) created.",
            len(results),
            len(accounts),
            len(summary["users_created"]),
            len(summary["tokens_created"]),
        )
        if failed:
            lines = "\n".join(f"  - {name}: {error}" for name, error in failed.items())
            raise MotherDuckError(
                f"{len(failed)} of {len(accounts)} account(s) not onboarded (a re-run finishes them):\n{lines}"
            )
        return summary


def _check_defaults(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or "username" in value:
        raise ValueError(
            f"{field}={value!r} is invalid: expected a mapping of account keys other than username."
        )
    unknown = sorted(str(k) for k in value if k not in ACCOUNT_CHECKS)
    if unknown:
        raise ValueError(f"{field}={dict(value)!r} is invalid: unknown keys {unknown}.")
    return dict(value)


def _check_workers(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS_LIMIT:
        raise ValueError(
            f"{field}={value!r} is invalid: expected an integer. Allowed: 1 to {MAX_WORKERS_LIMIT}."
        )
    return value


class MotherDuckOffboardAccountOperator(MotherDuckBaseOperator):
    """Revoke every token of a user, then delete the user with all its data (irreversible).

    Re-runnable: a user already gone is success. With ``variable_key`` (or ``record_key``) the
    secret Variable and its delivery record are deleted too. Does not wait for running
    Ducklings: :func:`offboard_account_group` puts a sensor in front.

    :param username: the user to offboard (templated).
    :param variable_key: the Variable holding its secret, deleted afterwards (templated).
    :param record_key: its delivery record (default ``<variable_key>__delivery``; templated).

    XCom: ``{"username", "revoked": [token ids], "deleted": bool, "variables_deleted": [keys]}``.
    """

    template_fields: Sequence[str] = ("username", "variable_key", "record_key")

    def __init__(
        self,
        *,
        username: str,
        variable_key: str | None = None,
        record_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.variable_key = variable_key
        self.record_key = record_key
        self.validate_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "variable_key": optional(check_variable_key),
            "record_key": optional(check_variable_key),
        }

    def run(self, args: dict[str, Any], context: Context) -> dict[str, Any]:
        username: str = args["username"]
        try:
            ids = [str(t["id"]) for t in self.hook.list_tokens(username)]
        except MotherDuckNotFoundError:
            ids = []
        revoked = revoke_tokens(self.hook, username, ids)
        deleted = self.hook.delete_user(username, missing_ok=True)
        self.log.info(
            "%s: revoked %d token(s); %s.", username, len(revoked), "deleted" if deleted else "no such user"
        )
        removed = forget(args["variable_key"], args["record_key"])
        if removed:
            self.log.info("Deleted Variable(s) %s.", ", ".join(removed))
        return {"username": username, "revoked": revoked, "deleted": deleted, "variables_deleted": removed}


def offboard_account_group(
    accounts: str | Sequence[str | Mapping[str, Any]],
    *,
    group_id: str = "offboard",
    poke_interval: float = 60.0,
    timeout: float = 6 * 3600.0,
    mode: str = "reschedule",
    deferrable: bool | None = None,
    motherduck_conn_id: str = MotherDuckHook.default_conn_name,
    hook_params: Mapping[str, Any] | None = None,
) -> TaskGroup:
    """A task group: wait until no account has a running Duckling, then offboard each one.

    ``accounts``: a username, or a list of usernames or of mappings with ``username`` and
    optionally ``variable_key``/``record_key`` (onboarding declarations are accepted; their other
    keys are ignored). One sensor (``wait_until_idle``, ``expect_active=False``, statuses active
    and cooldown) waits for all of them; then ``offboard_account`` runs per account, mapped for
    a list. ``poke_interval``, ``timeout``, ``mode`` and ``deferrable`` go to the sensor.
    """
    single = isinstance(accounts, str)
    items = [accounts] if isinstance(accounts, str) else list(accounts)
    if not items:
        raise ValueError(f"offboard_account_group {group_id!r}: accounts is empty.")
    kwargs_list = [_offboard_kwargs(item, f"accounts[{i}]") for i, item in enumerate(items)]
    common: dict[str, Any] = {"motherduck_conn_id": motherduck_conn_id, "hook_params": hook_params}
    sensor_extra: dict[str, Any] = {} if deferrable is None else {"deferrable": deferrable}
    with TaskGroup(group_id=group_id, tooltip="wait until idle, revoke tokens, delete users") as group:
        wait = MotherDuckActiveAccountsSensor(
            task_id="wait_until_idle",
            usernames=[kw["username"] for kw in kwargs_list],
            statuses=("active", "cooldown"),
            expect_active=False,
            poke_interval=poke_interval,
            timeout=timeout,
            mode=mode,
            **common,
            **sensor_extra,
        )
        if single:
            offboard: Any = MotherDuckOffboardAccountOperator(
                task_id="offboard_account", **kwargs_list[0], **common
            )
        else:
            offboard = MotherDuckOffboardAccountOperator.partial(
                task_id="offboard_account", **common
            ).expand_kwargs(kwargs_list)
        wait >> offboard
    return group


def _offboard_kwargs(item: str | Mapping[str, Any], field: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"username": check_username(item, field), "variable_key": None, "record_key": None}
    if not isinstance(item, Mapping) or "username" not in item:
        raise ValueError(f"{field}={item!r} is invalid: expected a username or a mapping with username.")
    return {
        "username": check_username(item["username"], f"{field}.username"),
        "variable_key": optional(check_variable_key)(item.get("variable_key"), f"{field}.variable_key"),
        "record_key": optional(check_variable_key)(item.get("record_key"), f"{field}.record_key"),
    }
