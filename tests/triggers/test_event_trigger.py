"""MotherDuckActiveAccountsEventTrigger (asset watchers, Airflow 3) against the emulator over real HTTP.

The tests change the emulator's state between polls and count the events; waits are bounded.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3, AIRFLOW_V_3_3
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.triggers import _polling
from tests.support import ACTIVE_ACCOUNTS_PATH, polls

RW_ACTIVE = {"id": "rw", "type": "read_write", "status": "active"}
RW_COOLDOWN = {"id": "rw", "type": "read_write", "status": "cooldown"}
LIMIT = 20

needs_airflow_3 = pytest.mark.skipif(not AIRFLOW_V_3, reason="asset watchers exist from Airflow 3.0")
needs_shared_streams = pytest.mark.skipif(
    not AIRFLOW_V_3_3,
    reason="the triggerer's SharedStreamManager (airflow.triggers.shared_stream) is new in Airflow 3.3",
)


@pytest.mark.skipif(AIRFLOW_V_3, reason="Airflow 2 only")
def test_absent_on_airflow_2_with_a_clear_error() -> None:
    with pytest.raises(
        ImportError, match=r"MotherDuckActiveAccountsEventTrigger needs Airflow 3\.0 or later"
    ):
        from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsEventTrigger
    with pytest.raises(ImportError, match="this is Airflow 2"):
        from airflow_provider_motherduck.triggers.accounts import MotherDuckActiveAccountsEventTrigger  # noqa: F401


def event_trigger(**kwargs: Any) -> Any:
    from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsEventTrigger

    kwargs.setdefault("hook_params", {"retry_delay": 0.01})
    kwargs.setdefault("poke_interval", 0.02)
    return MotherDuckActiveAccountsEventTrigger(**kwargs)


def idle_watch(**kwargs: Any) -> Any:
    """Fires when etl_loader goes idle: no Duckling active or cooling down."""
    return event_trigger(
        usernames=["etl_loader"], statuses=["active", "cooldown"], expect_active=False, **kwargs
    )


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), LIMIT))


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.002)


async def collect(events: AsyncIterator[Any], into: list[dict[str, Any]]) -> None:
    async for event in events:
        into.append(event.payload)


class Organisation:
    """The emulator, changed only once the polls so far have seen its current state."""

    def __init__(self, emulator: MotherDuckEmulator) -> None:
        self.emulator = emulator

    async def settle(self, polls_more: int = 2) -> None:
        """Let ``polls_more`` further polls see the current state."""
        seen = len(polls(self.emulator))
        await until(lambda: len(polls(self.emulator)) >= seen + polls_more)

    async def set(self, *ducklings: dict[str, str]) -> None:
        self.emulator.set_ducklings("etl_loader", list(ducklings))
        await self.settle()


@pytest.fixture
def organisation(emulator: MotherDuckEmulator, motherduck_conn: str) -> Organisation:
    emulator.add_user("etl_loader")
    emulator.add_user("bi_dashboards")
    emulator.set_ducklings("etl_loader", [RW_ACTIVE])
    return Organisation(emulator)


@needs_airflow_3
def test_serialize_round_trips_and_an_asset_watcher_takes_it() -> None:
    from airflow.sdk import Asset, AssetWatcher

    trigger = idle_watch(poke_interval=30)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_motherduck.triggers.accounts.MotherDuckActiveAccountsEventTrigger"
    assert kwargs == {
        "motherduck_conn_id": "motherduck_default",
        "usernames": ["etl_loader"],
        "duckling_type": None,
        "statuses": ["active", "cooldown"],
        "match": "any",
        "expect_active": False,
        "poke_interval": 30.0,
        "hook_params": {"retry_delay": 0.01},
    }
    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name)(**kwargs).serialize() == (classpath, kwargs)
    asset = Asset("etl_loader_idle", watchers=[AssetWatcher(name="etl_loader_idle", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger


@needs_airflow_3
def test_bad_arguments_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="match="):
        event_trigger(match="all")
    with pytest.raises(ValueError, match="poke_interval="):
        event_trigger(poke_interval=-1)


@needs_airflow_3
def test_fires_once_per_transition_into_the_awaited_state(organisation: Organisation) -> None:
    events: list[dict[str, Any]] = []

    async def main() -> None:
        task = asyncio.ensure_future(collect(idle_watch().run(), events))
        await organisation.settle()  # busy at the start: the baseline, no event
        await organisation.set(RW_COOLDOWN)  # cooling down is not idle yet
        assert events == []
        await organisation.set()  # idle: the first transition
        await until(lambda: len(events) == 1)
        await organisation.settle(3)  # staying idle fires nothing more
        await organisation.set(RW_ACTIVE)  # busy again, then idle: the second transition
        await organisation.set()
        await until(lambda: len(events) == 2)
        await organisation.settle(3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(main)
    assert events == [{"status": "success", "accounts": []}] * 2
    assert _polling._groups == {}


@needs_airflow_3
def test_no_event_for_a_state_that_holds_at_the_start(organisation: Organisation) -> None:
    events: list[dict[str, Any]] = []
    organisation.emulator.set_ducklings("etl_loader", [])

    async def main() -> None:
        task = asyncio.ensure_future(collect(idle_watch().run(), events))
        await organisation.settle(3)
        await organisation.set(RW_ACTIVE)  # becoming busy is not the awaited state
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(main)
    assert events == []


@needs_airflow_3
def test_becoming_active_fires_with_the_matching_accounts(organisation: Organisation) -> None:
    events: list[dict[str, Any]] = []
    organisation.emulator.set_ducklings("etl_loader", [])

    async def main() -> None:
        task = asyncio.ensure_future(collect(event_trigger(usernames="etl_loader").run(), events))
        await organisation.settle()
        await organisation.set(RW_ACTIVE)
        await until(lambda: len(events) == 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(main)
    assert events == [
        {"status": "success", "accounts": [{"username": "etl_loader", "ducklings": [RW_ACTIVE]}]}
    ]


@needs_airflow_3
def test_a_failed_poll_is_logged_and_the_watch_goes_on(
    organisation: Organisation, capfd: pytest.CaptureFixture[str]
) -> None:
    events: list[dict[str, Any]] = []

    async def main() -> None:
        task = asyncio.ensure_future(collect(idle_watch(hook_params={"retry_limit": 0}).run(), events))
        await organisation.settle()
        organisation.emulator.inject("GET", ACTIVE_ACCOUNTS_PATH, status=503, times=3)
        await organisation.settle(3)
        assert events == []  # a failure is no transition
        await organisation.set()
        await until(lambda: len(events) == 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(main)
    assert events == [{"status": "success", "accounts": []}]
    assert 503 in polls(organisation.emulator)
    assert "Listing active accounts failed; watching on" in capfd.readouterr().out


@needs_airflow_3
def test_shares_the_poll_with_deferred_triggers(organisation: Organisation) -> None:
    from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsTrigger

    waits: list[dict[str, Any]] = []
    watches: list[dict[str, Any]] = []

    async def main() -> None:
        watchers = [
            asyncio.ensure_future(collect(idle_watch(poke_interval=3600).run(), watches)) for _ in range(3)
        ]
        await until(lambda: len(polls(organisation.emulator)) == 1)
        organisation.emulator.set_ducklings("etl_loader", [])
        # A deferred sensor's trigger joins with a shorter interval: its poll serves the watchers.
        await collect(
            MotherDuckActiveAccountsTrigger(
                usernames=["etl_loader"],
                expect_active=False,
                poke_interval=0,
                hook_params={"retry_delay": 0.01},
            ).run(),
            waits,
        )
        await until(lambda: len(watches) == 3)
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    run(main)
    assert waits == [{"status": "success", "accounts": []}]
    assert watches == [{"status": "success", "accounts": []}] * 3
    assert polls(organisation.emulator) == [200, 200]


@needs_shared_streams
def test_through_airflows_shared_stream_manager(organisation: Organisation) -> None:
    """How the Airflow 3.3 triggerer runs watchers that share a stream key: one poll for all."""
    from airflow.triggers.shared_stream import SharedStreamManager

    events: list[dict[str, Any]] = []
    triggers = [idle_watch() for _ in range(3)]
    key = triggers[0].shared_stream_key()
    assert {t.shared_stream_key() for t in triggers} == {key}
    assert idle_watch(poke_interval=5).shared_stream_key() != key
    assert idle_watch(motherduck_conn_id="other").shared_stream_key() != key

    async def main() -> None:
        manager = SharedStreamManager()
        tasks = [
            asyncio.ensure_future(
                collect(t.filter_shared_stream(manager.subscribe(trigger_id=i, trigger=t, key=key)), events)
            )
            for i, t in enumerate(triggers)
        ]
        await organisation.settle()
        [group] = _polling._groups.values()
        assert len(group._members) == 1  # Airflow's group is the one member of the poll
        await organisation.set()
        await until(lambda: len(events) == 3)
        for i, task in enumerate(tasks):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await manager.unsubscribe(i, key)

    run(main)
    assert events == [{"status": "success", "accounts": []}] * 3
    assert _polling._groups == {}
