"""MotherDuckActiveAccountsTrigger: the active-accounts wait, run in Airflow's triggerer."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow_provider_motherduck._accounts import AccountsQuery
from airflow_provider_motherduck._compat import BaseTrigger, TriggerEvent
from airflow_provider_motherduck.arguments import check_conn_id, check_hook_params
from airflow_provider_motherduck.exceptions import MotherDuckError, invalid
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook


class MotherDuckActiveAccountsTrigger(BaseTrigger):
    """Poll ``GET /v1/active_accounts`` until the wait of a MotherDuckActiveAccountsSensor is over.

    The arguments mean what they mean on the sensor. Each poll is the hook's own call, run in a
    worker thread so the triggerer's event loop never blocks; it keeps the hook's retry rules
    (429 and 5xx are retried inside the call). Between polls it sleeps ``poke_interval`` seconds
    with ``asyncio.sleep``. It fires once: ``{"status": "success", "accounts": [...]}`` when done,
    or ``{"status": "error", "message": ...}`` when a call fails for good (bad token, retries
    exhausted, ...). Only plain values are serialised: the connection id, never a token.
    """

    def __init__(
        self,
        motherduck_conn_id: str = MotherDuckHook.default_conn_name,
        usernames: Sequence[str] | None = None,
        duckling_type: str | None = None,
        statuses: Sequence[str] = ("active",),
        match: str = "any",
        expect_active: bool = True,
        poke_interval: float = 60.0,
        hook_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.motherduck_conn_id = check_conn_id(motherduck_conn_id)
        if (
            isinstance(poke_interval, bool)
            or not isinstance(poke_interval, (int, float))
            or not 0 <= poke_interval < math.inf
        ):
            raise invalid("poke_interval", poke_interval, "expected a number of seconds", "a number >= 0")
        self.query = AccountsQuery.build(usernames, duckling_type, statuses, match, expect_active)
        self.poke_interval = float(poke_interval)
        self.hook_params = check_hook_params(hook_params)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and keyword arguments, plain JSON values only."""
        query = self.query
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "motherduck_conn_id": self.motherduck_conn_id,
                "usernames": None if query.usernames is None else list(query.usernames),
                "duckling_type": query.duckling_type,
                "statuses": list(query.statuses),
                "match": query.match,
                "expect_active": query.expect_active,
                "poke_interval": self.poke_interval,
                "hook_params": dict(self.hook_params),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until done; yield exactly one event."""
        hook = MotherDuckHook(self.motherduck_conn_id, **self.hook_params)
        self.log.info("Waiting for %s (every %.0f s)", self.query.describe(), self.poke_interval)
        try:
            while True:
                try:
                    accounts = await asyncio.to_thread(hook.list_active_accounts)
                except (MotherDuckError, ValueError) as err:
                    yield TriggerEvent({"status": "error", "message": str(err)})  # type: ignore[no-untyped-call]
                    return
                outcome = self.query.evaluate(accounts)
                if outcome.done:
                    yield TriggerEvent({"status": "success", "accounts": outcome.accounts})  # type: ignore[no-untyped-call]
                    return
                self.log.info("Still waiting on %s", ", ".join(outcome.waiting_for))
                await asyncio.sleep(self.poke_interval)
        finally:
            hook.close()
