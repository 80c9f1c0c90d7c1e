"""Shared polling: triggers of one event loop on one connection make one request per interval.

Every test talks real HTTP to the emulator and counts the requests it answered; waits are bounded
and nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsTrigger, _polling
from airflow_provider_motherduck.triggers._polling import subscribe
from tests.hooks.raw_server import RawServer, Trickle
from tests.support import ACTIVE_ACCOUNTS_PATH, CONN_ENV, connection_json, polls

RW_ACTIVE = {"id": "rw", "type": "read_write", "status": "active"}
LIMIT = 20  # seconds any one test may run before it fails
NEVER = 3600.0  # a poke_interval no test waits out


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), LIMIT))


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded by the test's LIMIT) until ``condition()`` holds."""
    while not condition():
        await asyncio.sleep(0.002)


def start(trigger: MotherDuckActiveAccountsTrigger, events: list[dict[str, Any]]) -> asyncio.Task[None]:
    """Run the trigger in a task that appends each event's payload to ``events``."""

    async def collect() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    return asyncio.ensure_future(collect())


def waiting_for(username: str, interval: float = NEVER, **kwargs: Any) -> MotherDuckActiveAccountsTrigger:
    kwargs.setdefault("hook_params", {"retry_delay": 0.01})
    return MotherDuckActiveAccountsTrigger(usernames=[username], poke_interval=interval, **kwargs)


@pytest.fixture
def seeded(emulator: MotherDuckEmulator, motherduck_conn: str) -> Iterator[MotherDuckEmulator]:
    """etl_bot and bi_bot have an active Duckling; idle_bot has none."""
    for name in ("etl_bot", "bi_bot", "idle_bot"):
        emulator.add_user(name)
    emulator.set_ducklings("etl_bot", [RW_ACTIVE])
    emulator.set_ducklings("bi_bot", [RW_ACTIVE])
    yield emulator
    assert _polling._groups == {}  # every test leaves no poll running


def test_many_triggers_one_request(seeded: MotherDuckEmulator) -> None:
    events: list[dict[str, Any]] = []

    async def main() -> None:
        tasks = [start(waiting_for("etl_bot" if i % 2 else "bi_bot"), events) for i in range(20)]
        await asyncio.gather(*tasks)

    run(main)
    assert len(events) == 20
    assert {e["status"] for e in events} == {"success"}
    assert polls(seeded) == [200]


def test_each_trigger_judges_the_shared_answer_and_fires_on_its_own(seeded: MotherDuckEmulator) -> None:
    early: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    joiner: list[dict[str, Any]] = []

    async def main() -> None:
        fires_now = start(waiting_for("etl_bot"), early)
        waits = start(waiting_for("idle_bot"), late)  # would poll again only in an hour
        await fires_now
        assert polls(seeded) == [200]
        assert late == []
        seeded.set_ducklings("idle_bot", [RW_ACTIVE])
        # Joins mid-interval with a shorter interval (0: at once): the group's next poll comes
        # now, and serves the trigger that was there before as well.
        await start(waiting_for("bi_bot", interval=0), joiner)
        await waits

    run(main)
    assert early == [{"status": "success", "accounts": [{"username": "etl_bot", "ducklings": [RW_ACTIVE]}]}]
    assert late == [{"status": "success", "accounts": [{"username": "idle_bot", "ducklings": [RW_ACTIVE]}]}]
    assert joiner == [{"status": "success", "accounts": [{"username": "bi_bot", "ducklings": [RW_ACTIVE]}]}]
    assert polls(seeded) == [200, 200]


def test_a_joiner_sees_only_polls_sent_after_it_joined(seeded: MotherDuckEmulator) -> None:
    async def main() -> tuple[int, int]:
        with subscribe("motherduck_default", {}, 0.05) as first:
            await first.next()
            with subscribe("motherduck_default", {}, 0.05) as second:
                joined_after = len(polls(seeded))
                await second.next()
                return joined_after, len(polls(seeded))

    joined_after, served_by = run(main)
    assert served_by > joined_after  # served by a later poll, not handed the answer before it


def test_mixed_intervals_poll_at_the_shortest(seeded: MotherDuckEmulator) -> None:
    async def main() -> tuple[int, int]:
        with subscribe("motherduck_default", {}, NEVER) as slow:
            await slow.next()  # the group's first poll: at once
            with subscribe("motherduck_default", {}, 0.02) as fast:
                for _ in range(3):
                    await fast.next()
                await slow.next()  # served on the fast schedule too, not in an hour
            polled = len(polls(seeded))
            await asyncio.sleep(0.2)  # the fast member left: back to hourly
            return polled, len(polls(seeded))

    polled, later = run(main)
    assert polled >= 4
    assert later <= polled + 1  # at most the poll that was in flight as the fast member left


def test_two_connections_poll_apart(seeded: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with MotherDuckEmulator() as other:
        other.add_user("etl_bot")
        other.set_ducklings("etl_bot", [RW_ACTIVE])
        monkeypatch.setenv("AIRFLOW_CONN_MOTHERDUCK_OTHER", connection_json(other.url, other.admin_token))
        events: list[dict[str, Any]] = []

        async def main() -> None:
            tasks = [
                start(waiting_for("etl_bot", motherduck_conn_id=conn_id), events)
                for conn_id in ("motherduck_default", "motherduck_other") * 5
            ]
            await asyncio.gather(*tasks)

        run(main)
        assert polls(other) == [200]
    assert polls(seeded) == [200]
    assert len(events) == 10


def test_different_hook_params_poll_apart(seeded: MotherDuckEmulator) -> None:
    events: list[dict[str, Any]] = []

    async def main() -> None:
        await asyncio.gather(
            start(waiting_for("etl_bot", hook_params={"timeout": 5}), events),
            start(waiting_for("etl_bot", hook_params={"timeout": 6}), events),
        )

    run(main)
    assert polls(seeded) == [200, 200]


def test_a_failed_poll_reaches_every_waiter(seeded: MotherDuckEmulator) -> None:
    seeded.inject("GET", ACTIVE_ACCOUNTS_PATH, status=503, times=5)
    events: list[dict[str, Any]] = []
    params = {"retry_limit": 1, "retry_delay": 0.01}

    async def main() -> None:
        await asyncio.gather(*(start(waiting_for(n, hook_params=params), events) for n in ["idle_bot"] * 5))

    run(main)
    assert [e["status"] for e in events] == ["error"] * 5
    assert len({e["message"] for e in events}) == 1
    assert "HTTP 503" in events[0]["message"]
    assert polls(seeded) == [503, 503]  # one call with its one retry, not one per trigger


def test_a_rejected_token_reaches_every_waiter(
    seeded: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MOTHERDUCK_DEFAULT", connection_json(seeded.url, "mdt_not_a_real_token"))
    events: list[dict[str, Any]] = []

    async def main() -> None:
        await asyncio.gather(*(start(waiting_for("etl_bot"), events) for _ in range(3)))

    run(main)
    assert [e["status"] for e in events] == ["error"] * 3
    assert all("HTTP 401" in e["message"] and "mdt_not_a_real_token" not in e["message"] for e in events)
    assert polls(seeded) == [401]


def test_a_missing_connection_raises_in_every_waiter(seeded: MotherDuckEmulator) -> None:
    async def main() -> list[BaseException | None]:
        tasks = [start(waiting_for("etl_bot", motherduck_conn_id="no_such_conn"), []) for _ in range(3)]
        await asyncio.wait(tasks)
        return [task.exception() for task in tasks]

    errors = run(main)
    assert all(error is not None and "no_such_conn" in str(error) for error in errors)
    assert polls(seeded) == []


def test_cancelled_triggers_leave_and_the_last_one_stops_the_poll(seeded: MotherDuckEmulator) -> None:
    async def main() -> tuple[int, int]:
        tasks = [start(waiting_for("idle_bot", interval=0.02), []) for _ in range(3)]
        await until(lambda: len(polls(seeded)) >= 2)
        tasks[0].cancel()
        seen = len(polls(seeded))
        await until(lambda: len(polls(seeded)) >= seen + 2)  # the others still poll
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert _polling._groups == {}
        stopped = len(polls(seeded))
        await asyncio.sleep(0.2)
        return stopped, len(polls(seeded))

    stopped, later = run(main)
    assert later <= stopped + 1  # at most the call that was in flight


def test_cancelled_during_a_slow_call_then_a_new_trigger_polls_afresh(seeded: MotherDuckEmulator) -> None:
    seeded.inject("GET", ACTIVE_ACCOUNTS_PATH, delay=0.3)
    events: list[dict[str, Any]] = []

    async def main() -> None:
        task = start(waiting_for("etl_bot"), [])
        await asyncio.sleep(0.05)  # the first call is on its way
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert _polling._groups == {}
        await start(waiting_for("etl_bot"), events)
        await until(lambda: len(polls(seeded)) == 2)  # the abandoned call ends in its thread

    run(main)
    assert events[0]["status"] == "success"
    assert polls(seeded) == [200, 200]


def test_cleanup_is_safe_before_and_after_a_run(seeded: MotherDuckEmulator) -> None:
    async def main() -> None:
        trigger = waiting_for("idle_bot", interval=0.02)
        await trigger.cleanup()  # never ran: nothing to leave
        task = start(trigger, [])
        await until(lambda: len(polls(seeded)) >= 1)
        task.cancel()  # what the triggerer does, then it calls cleanup()
        await asyncio.gather(task, return_exceptions=True)
        await trigger.cleanup()
        assert _polling._groups == {}

    run(main)


def test_a_trickling_server_holds_the_shared_poll_no_longer_than_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each byte comes well within any per-read timeout; the attempt's deadline still ends the poll."""
    trickle = Trickle.json(b'{"accounts": []}' + b" " * 150, 0.02)

    async def main() -> None:
        with subscribe("motherduck_default", {"timeout": 0.3, "retry_limit": 0}, NEVER) as subscription:
            answer = await subscription.next()
        with pytest.raises(MotherDuckAPIError, match=r"no answer within the timeout of 0\.3 s"):
            answer.accounts()

    with RawServer(trickle) as server:
        monkeypatch.setenv(CONN_ENV, connection_json(server.url, "mdt_poll_admin_0123456789"))
        run(main)
    assert trickle.cut == 1
    assert _polling._groups == {}
