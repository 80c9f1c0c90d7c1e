"""Operators that bring service accounts to a declared state, in bulk if need be, and take them away.

The work is :mod:`airflow_provider_motherduck.workflows.onboarding`'s; these are its task shells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool, check_variable_key, is_literal, optional
from airflow_provider_motherduck.exceptions import MotherDuckError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator

# The import path the docs promised; the group lives with the task groups.
from airflow_provider_motherduck.task_groups import offboard_account_group as offboard_account_group
from airflow_provider_motherduck.validation import check_username
from airflow_provider_motherduck.workflows.delivery import (
    SecretDestination,
    SecretSink,
    check_destination,
    issuer_of,
    task_identity,
)
from airflow_provider_motherduck.workflows.offboarding import offboard_account
from airflow_provider_motherduck.workflows.onboarding import (
    ACCOUNT_CHECKS,
    DEFAULT_MAX_WORKERS,
    check_account,
    check_accounts,
    check_defaults,
    check_max_workers,
    onboard_account,
    onboard_accounts,
)
from airflow_provider_motherduck.workflows.reconcile.declaration import FLAT_KEYS, DeclaredAccount


class MotherDuckOnboardAccountOperator(MotherDuckBaseOperator):
    """Bring one service account to a declared state; re-runs make no write request.

    The state: the user exists; its Duckling config holds the given partial ``read_write`` and
    ``read_scaling`` fields (merged; none given: left alone); a token named ``token_name`` (or a
    rotation of it, ``token_name@<run marker>``, see
    :class:`~airflow_provider_motherduck.operators.rotation.MotherDuckRotateTokenOperator`) of
    ``token_type`` exists, unexpired, and its secret is at the destination: the Variable
    ``variable_key`` or, instead, ``secret_sink``. Which token was delivered is kept in a record,
    the Variable ``record_key`` (default ``motherduck_delivery_<hash of variable_key>``, see
    :func:`~airflow_provider_motherduck.workflows.delivery.default_record_key`: token id, user,
    name and a SHA-256 fingerprint of the secret, never the secret). If the record's token is gone, expired,
    or the Variable no longer holds its secret, a new token is created and delivered (and revoked
    again if delivery fails). Other tokens of that name are reported, not revoked. The account
    holds the ``roles`` (granted by the admin) and reaches the ``shares``: each share's owner
    grants it read, and the share is attached as the account itself (a short-lived token of the
    account, revoked at the end of the task however it ends); what holds already is left alone.

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
    :param roles: role names the account must hold, e.g. ``["analysts"]``.
    :param shares: shares it must reach, each ``{"share": name, "owner": username, "alias": name}``
        (``alias`` defaults to the share's name).

    XCom: ``username``, ``created`` (the user), ``duckling_config`` (``None`` if none declared),
    ``token`` (metadata, never the secret), ``token_created``, ``other_token_ids``, and what this
    run changed: ``granted_roles``, ``granted_shares`` (share names), ``attached_aliases``.
    """

    template_fields: Sequence[str] = FLAT_KEYS
    template_fields_renderers = {
        "read_write": "json",
        "read_scaling": "json",
        "roles": "json",
        "shares": "json",
    }

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
        roles: Sequence[str] | str | None = None,
        shares: Sequence[Mapping[str, str]] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.roles = roles
        self.shares = shares
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
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return ACCOUNT_CHECKS  # secret_sink is not templated: check_destination saw it in __init__

    def execute_checked(self, context: Context) -> dict[str, Any]:
        destination = SecretDestination(
            self.variable_key, self.secret_sink, self.record_key, task=task_identity(context)
        )
        flat = {key: getattr(self, key) for key in ACCOUNT_CHECKS}
        return onboard_account(
            self.hook, check_account(flat, "account", destination=destination), issuer=issuer_of(context)
        )


class MotherDuckBulkOnboardOperator(MotherDuckBaseOperator):
    """Onboard many accounts in one task, ``max_workers`` at a time (a bounded thread pool).

    Each account is brought to its state exactly as :class:`MotherDuckOnboardAccountOperator`
    does (same function); each worker thread has its own hook and HTTP session. A failed account
    does not stop the others; the task fails at the end naming them, and a re-run finishes them.
    One process masks every new secret, and Airflow's secrets masker slows as it grows (see
    ``benchmarks/onboarding.py``): for many hundreds of new accounts, map a few bulk tasks over
    slices of the list (``.expand(accounts=...)``).

    :param accounts: a list of mappings with ``username``, ``token_name``, ``variable_key`` and
        optionally ``read_write``, ``read_scaling``, ``token_type``, ``ttl``, ``record_key``,
        ``roles``, ``shares`` (as :class:`MotherDuckOnboardAccountOperator` takes them); or
        its JSON text (templated, e.g. ``"{{ var.value.motherduck_accounts }}"``).
    :param defaults: values for keys an account leaves out, e.g. ``{"token_name": "airflow"}``.
    :param max_workers: accounts onboarded at the same time (1 to 128).

    XCom: ``{"account_count": n, "created_usernames": [...], "token_created_usernames": [...],
    "token_ids": {username: token id}, "granted_roles": {username: [roles]}, "granted_shares":
    {username: [shares]}, "attached_aliases": {username: [aliases]}}`` (the last three name only
    accounts this run changed); never a secret.
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
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "defaults": optional(check_defaults),
            "accounts": self._check_accounts,
            "max_workers": check_max_workers,
        }

    def _check_accounts(self, value: Any, field: str) -> Any:
        if not is_literal(self.defaults):  # before rendering: checked with the rendered defaults
            return value
        defaults = self.defaults if isinstance(self.defaults, Mapping) else None
        return check_accounts(value, field, defaults)

    def execute_checked(self, context: Context) -> dict[str, Any]:
        accounts: tuple[DeclaredAccount, ...] = self.accounts  # type: ignore[assignment]  # checked
        self.hook.settings  # noqa: B018  # a bad connection fails here, before any thread starts
        self.log.info("Onboarding %d account(s), %d at a time.", len(accounts), self.max_workers)
        results, failed = onboard_accounts(
            accounts,
            lambda: MotherDuckHook(self.motherduck_conn_id, **self.hook_params),
            max_workers=self.max_workers,
            issuer=issuer_of(context),
        )
        summary: dict[str, Any] = {
            "account_count": len(accounts),
            "created_usernames": [r["username"] for r in results if r["created"]],
            "token_created_usernames": [r["username"] for r in results if r["token_created"]],
            "token_ids": {r["username"]: r["token"]["id"] for r in results},
            **{
                key: {r["username"]: r[key] for r in results if r[key]}
                for key in ("granted_roles", "granted_shares", "attached_aliases")
            },
        }
        self.log.info(
            "Onboarded %d of %d account(s): %d user(s) and %d token(s) created.",
            len(results),
            len(accounts),
            len(summary["created_usernames"]),
            len(summary["token_created_usernames"]),
        )
        if failed:
            lines = "\n".join(f"  - {name}: {error}" for name, error in failed.items())
            raise MotherDuckError(
                f"{len(failed)} of {len(accounts)} account(s) not onboarded (a re-run finishes them):\n{lines}"
            )
        return summary


class MotherDuckOffboardAccountOperator(MotherDuckBaseOperator):
    """Revoke every token of a user, then delete the user with all its data (irreversible).

    Re-runnable: a user already gone is success. With ``variable_key`` (or ``record_key``) the
    secret Variable and its delivery record are deleted too, unless ``forget_variables=False``.
    Does not wait for running Ducklings: :func:`offboard_account_group` puts a sensor in front.

    :param username: the user to offboard (templated).
    :param variable_key: the Variable holding its secret, deleted afterwards (templated).
    :param record_key: its delivery record, if not the default one (templated).
    :param forget_variables: delete those Variables (default); ``False`` keeps them.
    :param report_access: first read and log what access the account had: its roles (as the
        admin) and its attachments (one short-lived session as the account); needs the
        connection's SQL transport. The shares granted to it cannot be listed per account.

    XCom: ``{"username", "revoked_ids": [...], "deleted": bool, "variables_deleted": [keys]}``,
    and with ``report_access`` also ``access``: ``{"roles": [{"role", "direct"}], "attached":
    [{"alias", "type"}], "not_read": {part: why}}`` (a part not read is ``None``).
    """

    template_fields: Sequence[str] = ("username", "variable_key", "record_key")

    def __init__(
        self,
        *,
        username: str,
        variable_key: str | None = None,
        record_key: str | None = None,
        forget_variables: bool = True,
        report_access: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.variable_key = variable_key
        self.record_key = record_key
        self.forget_variables = forget_variables
        self.report_access = report_access
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "variable_key": optional(check_variable_key),
            "record_key": optional(check_variable_key),
            "forget_variables": check_bool,
            "report_access": check_bool,
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        return offboard_account(
            self.hook,
            self.username,
            variable_key=self.variable_key,
            record_key=self.record_key,
            forget_variables=self.forget_variables,
            report_access=self.report_access,
        )
