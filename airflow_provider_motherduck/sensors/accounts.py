"""MotherDuckActiveAccountsSensor: wait until accounts have running Ducklings, or none any more."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow_provider_motherduck._accounts import (
    AccountsQuery,
    check_options,
    check_usernames_at_parse_time,
)
from airflow_provider_motherduck._compat import BaseSensorOperator, Context, PokeReturnValue, conf
from airflow_provider_motherduck.arguments import check_conn_id, check_hook_params, is_literal
from airflow_provider_motherduck.exceptions import MotherDuckError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook


class MotherDuckActiveAccountsSensor(BaseSensorOperator):
    """Wait on MotherDuck's active accounts (``GET /v1/active_accounts``).

    An account matches when it is one of ``usernames`` (any account if ``None``) and has a
    Duckling of ``duckling_type`` (any if ``None``) whose status is in ``statuses``. With
    ``expect_active=True`` the sensor is done when one account matches (``match="any"``) or every
    named account does (``match="all"``); with ``expect_active=False`` it is done when none
    matches, e.g. before deleting a user (``match`` then plays no part). The result (XCom) is the
    matching accounts, each with its matching Ducklings only: ``[]`` when done waiting for idle.

    How it waits:

    - ``mode="poke"`` (default): keeps its worker slot and pokes every ``poke_interval``.
    - ``mode="reschedule"``: frees the slot between pokes; better for long waits.
    - ``deferrable=True``: pokes once, then hands the wait to
      :class:`~airflow_provider_motherduck.triggers.accounts.MotherDuckActiveAccountsTrigger` in the
      triggerer (no slot held), with the same ``poke_interval`` and what is left of ``timeout``.

    :param usernames: accounts to watch (templated): a name, a list, or ``None`` for any account.
    :param duckling_type: ``None``, ``"read_write"`` or ``"read_scaling"``.
    :param statuses: Duckling statuses that count as running: a subset of ``("active", "cooldown")``.
    :param match: ``"any"`` or ``"all"`` (every named user must match; needs ``usernames``).
    :param expect_active: ``True`` waits for a match, ``False`` for no match.
    :param motherduck_conn_id: the Airflow connection with the admin token (templated).
    :param hook_params: plain-number hook arguments: ``timeout``, ``retry_limit``, ``retry_delay``,
        ``max_retry_wait``.
    :param deferrable: defer to the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("usernames", "motherduck_conn_id")
    template_fields_renderers = {"usernames": "json"}
    ui_color = "#fff3c4"

    def __init__(
        self,
        *,
        usernames: str | Sequence[str] | None = None,
        duckling_type: str | None = None,
        statuses: str | Sequence[str] = ("active",),
        match: str = "any",
        expect_active: bool = True,
        motherduck_conn_id: str = MotherDuckHook.default_conn_name,
        hook_params: Mapping[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        with self._naming_the_task():
            check_usernames_at_parse_time(usernames)
            self.usernames = usernames
            self.duckling_type, self.statuses, self.match, self.expect_active = check_options(
                usernames is None, duckling_type, statuses, match, expect_active
            )
            self.motherduck_conn_id = (
                check_conn_id(motherduck_conn_id) if is_literal(motherduck_conn_id) else motherduck_conn_id
            )
            self.hook_params = check_hook_params(hook_params)
        self.deferrable = bool(deferrable)

    @contextmanager
    def _naming_the_task(self) -> Iterator[None]:
        """A bad argument's error names this sensor's class and task, as the operators' do."""
        try:
            yield
        except ValueError as err:
            raise ValueError(f"{type(self).__name__} {self.task_id!r}: {err}") from None

    def _log_done(self, query: AccountsQuery, accounts: list[dict[str, Any]]) -> None:
        matched = ", ".join(account["username"] for account in accounts) or "no account matches"
        self.log.info("Done waiting for %s: %s", query.describe(), matched)

    @cached_property
    def hook(self) -> MotherDuckHook:
        """One hook (and HTTP session) for every poke of this run."""
        return MotherDuckHook(self.motherduck_conn_id, **self.hook_params)

    def _query(self) -> AccountsQuery:
        """The wait, with ``usernames`` as rendered (checked here, before any request)."""
        with self._naming_the_task():
            return AccountsQuery.build(
                self.usernames, self.duckling_type, self.statuses, self.match, self.expect_active
            )

    def poke(self, context: Context) -> PokeReturnValue:
        """Look once; done or not, with the matching accounts as the value."""
        query = self._query()
        outcome = query.evaluate(self.hook.list_active_accounts())
        if outcome.done:
            self._log_done(query, outcome.accounts)
        else:
            self.log.info(
                "Waiting for %s; still waiting on %s", query.describe(), ", ".join(outcome.waiting_for)
            )
        return PokeReturnValue(outcome.done, xcom_value=outcome.accounts)

    def execute(self, context: Context) -> Any:
        """Poke or reschedule through Airflow's sensor loop, or poke once and defer."""
        with self._naming_the_task():
            self.motherduck_conn_id = check_conn_id(self.motherduck_conn_id)  # as rendered
        try:
            if not self.deferrable:
                return super().execute(context)
            started = time.monotonic()
            first = self.poke(context)
            if first.is_done:
                return first.xcom_value
            # Imported here: a DAG parse needs no trigger machinery, only a deferring sensor does.
            from airflow_provider_motherduck.triggers.accounts import MotherDuckActiveAccountsTrigger

            query = self._query()
            remaining = max(self.timeout - (time.monotonic() - started), 0.0)
            self.defer(
                trigger=MotherDuckActiveAccountsTrigger(
                    motherduck_conn_id=self.motherduck_conn_id,
                    usernames=query.usernames,
                    duckling_type=query.duckling_type,
                    statuses=query.statuses,
                    match=query.match,
                    expect_active=query.expect_active,
                    poke_interval=self.poke_interval,
                    hook_params=self.hook_params,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=remaining),
            )
        finally:
            if "hook" in self.__dict__:
                self.__dict__.pop("hook").close()

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Resume after the trigger fired: the matching accounts, or the trigger's error raised."""
        if event and event.get("status") == "success":
            accounts: list[dict[str, Any]] = event.get("accounts") or []
            self._log_done(self._query(), accounts)
            return accounts
        message = (event or {}).get("message") or f"unexpected trigger event {event!r}"
        raise MotherDuckError(
            f"{type(self).__name__} {self.task_id!r}: waiting for active accounts on connection "
            f"{self.motherduck_conn_id!r} failed: {message}"
        )
