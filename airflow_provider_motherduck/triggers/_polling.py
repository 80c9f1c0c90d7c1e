"""One ``GET /v1/active_accounts`` per interval for every trigger of an event loop on one connection.

Triggers in one triggerer process share one event loop. Those that wait on the same connection id
with the same hook params join one poll group: a task that calls the hook's
``list_active_accounts`` in the group's own worker thread (so neither the loop nor Airflow's
default thread pool waits on it) and hands each answer, or the call's exception, to every member.
Retries and their policy are the hook's, inside that one call, so one poll holds the group at
most the hook's ``longest_call``: each attempt ends within its ``timeout`` however slowly a server
answers (:mod:`~airflow_provider_motherduck.hooks.deadline`).

When the group polls: its first poll at once; then every ``interval`` after the previous poll was
sent, the shortest interval among its current members. A member sees only answers to polls sent
after it joined; one that joins a running group is served by the next poll, which comes no later
than its own interval after it joined. When the last member leaves, the poll task stops and the
hook's session is closed in the worker thread, after any call still in flight.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import cached_property
from types import TracebackType
from typing import Any

from airflow_provider_motherduck.hooks.motherduck import ActiveAccount, MotherDuckHook

# Members woken per turn of the event loop: with a thousand triggers on one answer, the loop still
# gets to other work every few milliseconds.
_WAKE_BATCH = 100

_Key = tuple[asyncio.AbstractEventLoop, str, tuple[tuple[str, Any], ...]]
_groups: dict[_Key, _PollGroup] = {}


class Answer:
    """One poll's outcome, shared by every member: the accounts, or the exception of the call."""

    def __init__(self, accounts: list[ActiveAccount] | None = None, error: Exception | None = None) -> None:
        self._accounts = accounts or []
        self._error = error
        self._traceback = error.__traceback__ if error is not None else None

    def accounts(self) -> list[ActiveAccount]:
        """The accounts listed, or the call's exception raised again (as if this member had called)."""
        if self._error is not None:
            # Reset the traceback first: every member re-raises the same exception object.
            raise self._error.with_traceback(self._traceback)
        return self._accounts

    def accounts_of(self, usernames: tuple[str, ...] | None) -> list[ActiveAccount]:
        """The listed accounts named ``usernames`` (all if ``None``), in the answer's order.

        What ``AccountsQuery.evaluate`` needs, found through one index per answer: a thousand
        members watching one account each do not each scan a thousand accounts.
        """
        accounts = self.accounts()
        if usernames is None:
            return accounts
        found = sorted(i for name in usernames for i in self._positions.get(name, ()))
        return [accounts[i] for i in found]

    @cached_property
    def _positions(self) -> dict[str, list[int]]:
        positions: dict[str, list[int]] = {}
        for i, account in enumerate(self.accounts()):
            name = account.get("username") if isinstance(account, Mapping) else None
            if isinstance(name, str):
                positions.setdefault(name, []).append(i)
        return positions


class Subscription:
    """A trigger's place in a poll group; :meth:`close` (idempotent) leaves it."""

    def __init__(self, group: _PollGroup, interval: float, first_poll: int) -> None:
        self.interval = interval
        self._group: _PollGroup | None = group
        self._first_poll = first_poll
        self._answer: Answer | None = None
        self._ready = asyncio.Event()

    async def next(self) -> Answer:
        """Wait for the answer of the next poll sent since this member joined or last looked."""
        if self._group is None:
            raise RuntimeError("this subscription is closed")
        await self._ready.wait()
        self._ready.clear()
        answer, self._answer = self._answer, None
        assert answer is not None
        return answer

    def close(self) -> None:
        """Leave the group; the last member to leave stops its poll."""
        group, self._group = self._group, None
        if group is not None:
            group.leave(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _deliver(self, poll: int, answer: Answer) -> None:
        if poll >= self._first_poll and self._group is not None:
            self._answer = answer
            self._ready.set()


def subscribe(conn_id: str, hook_params: Mapping[str, Any], interval: float) -> Subscription:
    """Join (or start) the running loop's poll group of ``conn_id`` with ``hook_params``."""
    loop = asyncio.get_running_loop()
    key: _Key = (loop, conn_id, tuple(sorted(hook_params.items())))
    group = _groups.get(key)
    if group is None:
        group = _groups[key] = _PollGroup(key, MotherDuckHook(conn_id, **hook_params))
    return group.join(interval)


class _PollGroup:
    def __init__(self, key: _Key, hook: MotherDuckHook) -> None:
        self._key = key
        self._loop = key[0]
        self._hook = hook
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="motherduck-active-accounts")
        self._members: dict[Subscription, None] = {}  # an ordered set
        self._intervals: Counter[float] = Counter()
        self._polls_sent = 0
        self._last_sent: float | None = None
        self._due = self._loop.time()  # the first poll: at once
        self._joiners_due = math.inf  # by when the members that joined since the last send are owed a poll
        self._wake = asyncio.Event()
        # A fresh context: the poll is no one trigger's, so its logs carry no trigger's log context.
        self._task = contextvars.Context().run(
            self._loop.create_task, self._run(), name=f"motherduck-active-accounts[{key[1]}]"
        )

    def join(self, interval: float) -> Subscription:
        member = Subscription(self, interval, self._polls_sent)
        self._members[member] = None
        self._intervals[interval] += 1
        self._joiners_due = min(self._joiners_due, self._loop.time() + interval)
        if self._joiners_due < self._due:
            self._due = self._joiners_due
            self._wake.set()
        return member

    def leave(self, member: Subscription) -> None:
        if member not in self._members:
            return
        del self._members[member]
        self._intervals[member.interval] -= 1
        if not self._intervals[member.interval]:
            del self._intervals[member.interval]
        if not self._members:
            self._stop()
        elif self._last_sent is not None:  # the shortest interval may have grown: poll later, never sooner
            self._due = min(self._last_sent + min(self._intervals), self._joiners_due)

    def _stop(self) -> None:
        if _groups.get(self._key) is self:
            del _groups[self._key]
        self._task.cancel()
        self._executor.submit(self._hook.close)  # runs after a call still in flight
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        loop = self._loop
        while True:
            while (delay := self._due - loop.time()) > 0:
                self._wake.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            poll, self._polls_sent = self._polls_sent, self._polls_sent + 1
            self._last_sent = loop.time()
            self._due = self._last_sent + min(self._intervals)
            self._joiners_due = math.inf
            answer = await self._call()
            members = list(self._members)
            for first in range(0, len(members), _WAKE_BATCH):
                for member in members[first : first + _WAKE_BATCH]:
                    member._deliver(poll, answer)
                # The woken members run now: those done leave before the next poll is timed.
                await asyncio.sleep(0)

    async def _call(self) -> Answer:
        try:
            accounts = await self._loop.run_in_executor(self._executor, self._hook.list_active_accounts)
        except Exception as err:  # not handled here: every member gets it, as if it had called itself
            return Answer(error=err)
        return Answer(accounts)
