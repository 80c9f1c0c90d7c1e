"""MotherDuckActiveAccountsTrigger against the emulator over real HTTP, run with asyncio.run."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import pytest

from airflow_provider_motherduck._compat import TriggerEvent
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsTrigger
from tests.support import ACTIVE_ACCOUNTS_PATH, CONN_ENV, after_polls, connection_json, polls

PATH = ACTIVE_ACCOUNTS_PATH
FAST = {"retry_delay": 0.01}


def run_trigger(trigger: MotherDuckActiveAccountsTrigger, limit: float = 10) -> list[TriggerEvent]:
    """Every event the trigger yields (it must stop by itself after one)."""

    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), limit))


@pytest.fixture
def seeded(emulator: MotherDuckEmulator, motherduck_conn: str) -> MotherDuckEmulator:
    for name in ("etl_bot", "bi_bot", "idle_bot"):
        emulator.add_user(name)
    emulator.set_ducklings(
        "etl_bot",
        [
            {"id": "rw", "type": "read_write", "status": "active"},
            {"id": "rs.0", "type": "read_scaling", "status": "cooldown"},
        ],
    )
    emulator.set_ducklings("bi_bot", [{"id": "rs.0", "type": "read_scaling", "status": "active"}])
    return emulator


def test_serialize_round_trips_with_plain_values_only(seeded: MotherDuckEmulator) -> None:
    trigger = MotherDuckActiveAccountsTrigger(
        motherduck_conn_id="motherduck_default",
        usernames=("etl_bot", "bi_bot", "etl_bot"),
        duckling_type="read_scaling",
        statuses=("cooldown", "active"),
        match="all",
        expect_active=True,
        poke_interval=5,
        hook_params={"timeout": 3, "retry_limit": 2},
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_motherduck.triggers.accounts.MotherDuckActiveAccountsTrigger"
    assert kwargs == {
        "motherduck_conn_id": "motherduck_default",
        "usernames": ["etl_bot", "bi_bot"],
        "duckling_type": "read_scaling",
        "statuses": ["active", "cooldown"],
        "match": "all",
        "expect_active": True,
        "poke_interval": 5.0,
        "hook_params": {"timeout": 3, "retry_limit": 2},
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert seeded.admin_token not in repr(kwargs)
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"usernames": ["bad-name "]}, "usernames="),
        ({"usernames": []}, "usernames="),
        ({"duckling_type": "huge"}, "duckling_type="),
        ({"statuses": ["stopped"]}, "statuses="),
        ({"match": "all"}, "match="),
        ({"expect_active": "no"}, "expect_active="),
        ({"poke_interval": -1}, "poke_interval="),
        ({"hook_params": {"sleep": 1}}, "hook_params="),
        ({"motherduck_conn_id": ""}, "motherduck_conn_id="),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        MotherDuckActiveAccountsTrigger(**kwargs)


def test_fires_success_at_once_when_already_active(seeded: MotherDuckEmulator) -> None:
    trigger = MotherDuckActiveAccountsTrigger(usernames=["etl_bot", "idle_bot"], poke_interval=0.05)
    events = run_trigger(trigger)
    assert [e.payload for e in events] == [
        {
            "status": "success",
            "accounts": [
                {"username": "etl_bot", "ducklings": [{"id": "rw", "type": "read_write", "status": "active"}]}
            ],
        }
    ]
    assert polls(seeded) == [200]


def test_polls_until_the_state_flips(seeded: MotherDuckEmulator) -> None:
    flip = after_polls(
        seeded,
        2,
        lambda: seeded.set_ducklings("idle_bot", [{"id": "rw", "type": "read_write", "status": "active"}]),
    )
    trigger = MotherDuckActiveAccountsTrigger(usernames=["idle_bot"], poke_interval=0.05)
    started = time.monotonic()
    [event] = run_trigger(trigger)
    flip.join()
    assert event.payload["status"] == "success"
    assert event.payload["accounts"] == [
        {"username": "idle_bot", "ducklings": [{"id": "rw", "type": "read_write", "status": "active"}]}
    ]
    assert len(polls(seeded)) >= 3
    assert time.monotonic() - started >= 0.1  # slept poke_interval between polls


def test_waits_for_idle(seeded: MotherDuckEmulator) -> None:
    flip = after_polls(seeded, 1, lambda: seeded.set_ducklings("etl_bot", []))
    trigger = MotherDuckActiveAccountsTrigger(
        usernames=["etl_bot"], statuses=["active", "cooldown"], expect_active=False, poke_interval=0.05
    )
    [event] = run_trigger(trigger)
    flip.join()
    assert event.payload == {"status": "success", "accounts": []}
    assert len(polls(seeded)) >= 2


def test_survives_transient_503s_with_the_hook_retries(seeded: MotherDuckEmulator) -> None:
    seeded.inject("GET", PATH, status=503, times=2)
    trigger = MotherDuckActiveAccountsTrigger(usernames=["bi_bot"], poke_interval=0.05, hook_params=FAST)
    [event] = run_trigger(trigger)
    assert event.payload["status"] == "success"
    assert [a["username"] for a in event.payload["accounts"]] == ["bi_bot"]
    assert polls(seeded) == [503, 503, 200]


def test_error_event_when_retries_run_out(seeded: MotherDuckEmulator) -> None:
    seeded.inject("GET", PATH, status=503, times=5)
    trigger = MotherDuckActiveAccountsTrigger(
        usernames=["bi_bot"], poke_interval=0.05, hook_params={"retry_limit": 1, "retry_delay": 0.01}
    )
    [event] = run_trigger(trigger)
    assert event.payload["status"] == "error"
    assert "HTTP 503" in event.payload["message"]
    assert polls(seeded) == [503, 503]


def test_error_event_on_a_rejected_token(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, "mdt_not_a_real_token"))
    trigger = MotherDuckActiveAccountsTrigger(poke_interval=0.05, hook_params=FAST)
    [event] = run_trigger(trigger)
    assert event.payload["status"] == "error"
    assert "HTTP 401" in event.payload["message"]
    assert "rejected" in event.payload["message"]
    assert "mdt_not_a_real_token" not in event.payload["message"]
    assert polls(emulator) == [401]  # not retried


def test_the_event_loop_keeps_running_during_a_slow_call(seeded: MotherDuckEmulator) -> None:
    seeded.inject("GET", PATH, delay=0.5)
    trigger = MotherDuckActiveAccountsTrigger(usernames=["etl_bot"], poke_interval=0.05)

    async def main() -> tuple[list[TriggerEvent], int]:
        ticks = 0
        task = asyncio.ensure_future(asyncio.wait_for(_collect(trigger), 10))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return task.result(), ticks

    events, ticks = asyncio.run(main())
    assert events[0].payload["status"] == "success"
    # A loop blocked by the half-second request would tick once or twice; even a slow machine
    # ticks a 10 ms sleep several times in 0.5 s.
    assert ticks >= 5


async def _collect(trigger: MotherDuckActiveAccountsTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]
