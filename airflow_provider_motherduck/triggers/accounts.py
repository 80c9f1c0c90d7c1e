"""The active-accounts triggers: a deferred sensor's wait, and (Airflow 3) an asset watcher's event.

Both poll through :mod:`~airflow_provider_motherduck.triggers._polling`: every trigger of one
triggerer process waiting on the same connection (and hook params) shares one
``GET /v1/active_accounts`` per interval and judges the shared answer with its own
:class:`~airflow_provider_motherduck._accounts.AccountsQuery`, the sensor's rule.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from typing import Any, NoReturn

from airflow_provider_motherduck._accounts import AccountsQuery, Outcome
from airflow_provider_motherduck._compat import AIRFLOW_V_3, AIRFLOW_VERSION, BaseTrigger, TriggerEvent
from airflow_provider_motherduck.arguments import check_conn_id, check_hook_params
from airflow_provider_motherduck.exceptions import MotherDuckError, invalid
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.triggers._polling import Answer, Subscription, subscribe

_EVENT_TRIGGER = "MotherDuckActiveAccountsEventTrigger"


class _AccountsWait:
    """The sensor's arguments, checked at construction and serialised as plain JSON values."""

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
        super().__init__()
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
        self._subscription: Subscription | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and keyword arguments, plain JSON values only (a connection id, never a token)."""
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

    def _subscribe(self) -> Subscription:
        self._subscription = subscribe(self.motherduck_conn_id, self.hook_params, self.poke_interval)
        return self._subscription

    def _outcome(self, answer: Answer) -> Outcome:
        return self.query.evaluate(answer.accounts_of(self.query.usernames))

    async def cleanup(self) -> None:
        """Leave the shared poll (the last trigger to leave stops it)."""
        if self._subscription is not None:
            self._subscription.close()


class MotherDuckActiveAccountsTrigger(_AccountsWait, BaseTrigger):
    """Wait on ``GET /v1/active_accounts`` until the wait of a MotherDuckActiveAccountsSensor is over.

    The arguments mean what they mean on the sensor. The polls are shared: triggers of one
    triggerer on the same connection and hook params make one call per interval (the shortest
    ``poke_interval`` among them), run in a worker thread with the hook's retry rules (429 and 5xx
    are retried inside the call), and each trigger judges the answer on its own. It fires once:
    ``{"status": "success", "accounts": [...]}`` when done, or
    ``{"status": "error", "message": ...}`` when a call fails for good (bad token, retries
    exhausted, ...); every trigger waiting on that call gets the error.
    """

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait for the shared polls' answers until done; yield exactly one event."""
        self.log.info("Waiting for %s (every %.0f s)", self.query.describe(), self.poke_interval)
        with self._subscribe() as subscription:
            while True:
                answer = await subscription.next()
                try:
                    outcome = self._outcome(answer)
                except (MotherDuckError, ValueError) as err:
                    event: dict[str, Any] = {"status": "error", "message": str(err)}
                else:
                    if not outcome.done:
                        self.log.info("Still waiting on %s", ", ".join(outcome.waiting_for))
                        continue
                    event = {"status": "success", "accounts": outcome.accounts}
                subscription.close()  # done with the poll before the event is handed on
                yield TriggerEvent(event)  # type: ignore[no-untyped-call]
                return


async def _answers(subscription: Subscription) -> AsyncIterator[Answer]:
    while True:
        yield await subscription.next()


if AIRFLOW_V_3:
    from airflow_provider_motherduck._compat import BaseEventTrigger

    class MotherDuckActiveAccountsEventTrigger(_AccountsWait, BaseEventTrigger):
        """Fire each time the active accounts come into the awaited state: for asset watchers.

        Airflow 3 only (``AssetWatcher(name, trigger=...)``): a DAG scheduled on the asset runs
        once per transition. The arguments are the sensor's; the awaited state is what would end
        the sensor's wait, e.g. ``expect_active=False`` for "the account went idle". The first
        answer is the baseline: no event for a state that holds already when the watch starts,
        one event each time the state turns from not awaited to awaited:
        ``{"status": "success", "accounts": [...]}`` (the matching accounts; ``[]`` for idle).
        A failed poll (after the hook's retries) is logged and the watch goes on; it changes no
        state.

        The polls are shared with every trigger of the triggerer on the same connection and hook
        params. On Airflow 3.3 the triggerer also groups these watchers through its shared
        streams (:meth:`shared_stream_key`); elsewhere :meth:`run` polls the same way.
        """

        async def run(self) -> AsyncIterator[TriggerEvent]:
            """Poll for ever; yield an event on every transition into the awaited state."""
            with self._subscribe() as subscription:
                async for event in self.filter_shared_stream(_answers(subscription)):
                    yield event

        def shared_stream_key(self) -> Hashable:
            """Watchers with the same connection, hook params and interval share one stream."""
            return (
                _EVENT_TRIGGER,
                self.motherduck_conn_id,
                tuple(sorted(self.hook_params.items())),
                self.poke_interval,
            )

        @classmethod
        async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Answer]:
            """Every answer of the shared poll (a failed call too), for ever."""
            with subscribe(
                kwargs["motherduck_conn_id"], kwargs["hook_params"], kwargs["poke_interval"]
            ) as sub:
                async for answer in _answers(sub):
                    yield answer

        async def filter_shared_stream(
            self, shared_stream: AsyncIterator[Any]
        ) -> AsyncIterator[TriggerEvent]:
            """This watcher's events: one per transition into the awaited state."""
            self.log.info("Watching for %s (every %.0f s)", self.query.describe(), self.poke_interval)
            was_done: bool | None = None
            async for answer in shared_stream:
                try:
                    outcome = self._outcome(answer)
                except Exception as err:  # a watcher outlives failed polls: say so and poll on
                    self.log.warning("Listing active accounts failed; watching on: %s", err)
                    continue
                if outcome.done and was_done is False:
                    self.log.info("Now %s", self.query.describe())
                    yield TriggerEvent({"status": "success", "accounts": outcome.accounts})  # type: ignore[no-untyped-call]
                was_done = outcome.done

else:

    def __getattr__(name: str) -> NoReturn:
        if name == _EVENT_TRIGGER:
            raise ImportError(
                f"{_EVENT_TRIGGER} needs Airflow 3.0 or later (asset watchers); "
                f"this is Airflow {AIRFLOW_VERSION}."
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
