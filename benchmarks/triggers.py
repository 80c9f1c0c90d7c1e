"""K active-accounts triggers in one event loop, shared polling against one poll per trigger.

The emulator runs in its own process (as MotherDuck would: its work does not compete with the
event loop for one GIL) and waits ``--latency`` seconds (20 ms) before every answer. K
``MotherDuckActiveAccountsTrigger``s, each waiting for its own account to go idle, run in one
event loop, half on each of two connections, every ``--interval`` seconds. After a warm-up the
requests are counted over a few intervals; then every account goes idle at once and each
trigger's event is timed. Measured for each K:

- requests per interval (target: 1 per connection, so 2 here);
- from the state change to the last event, and from the sending of the poll that saw it to the
  last event (target: the latency plus 50 ms);
- the worst event-loop lag while the triggers wait and fire (a 1 ms ticker; target under 10 ms):
  as wall time, and as the loop thread's CPU time between two ticks. On a shared machine the wall
  time also counts the moments the OS gave the CPU to other processes (the load average is
  printed); the CPU time is the loop's own work, and is what the target is checked on;
- traced memory per waiting trigger (``tracemalloc``, in a run of its own).

"one poll per trigger" is the previous design, restated here for comparison: each trigger its own
hook, ``asyncio.to_thread`` per poll (Airflow's default thread pool), ``asyncio.sleep`` between.
Log lines of INFO and below are off (the triggerer writes them to files; here they would be the
cost measured). Before each run the heap so far (Airflow's modules: hundreds of thousands of
objects) is moved out of the garbage collector's sight with ``gc.freeze()``, as Airflow's DAG
processor does: without it one full collection, whoever triggers it, stalls the loop for 0.3 to
1 s here; the worst collection pause is printed in a column of its own. Prints one table; exits 1
when a shared run misses a target.

    python benchmarks/triggers.py [--ks 10 100 1000] [--latency 0.02] [--interval 0.5]

About a minute with the defaults; every subprocess and wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="md-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # see the docstring

import requests  # noqa: F401  # imported once here, not by the first poll while the lag is measured
from emulator_process import EmulatorProcess

from airflow_provider_motherduck._accounts import AccountsQuery
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsTrigger

REPO = Path(__file__).resolve().parent.parent
CONNECTIONS = ("motherduck_a", "motherduck_b")
WARM_UP, COUNTED = 1, 4  # intervals
LAG_TARGET, FANOUT_SLACK = 0.010, 0.050
TIMEOUT = 60.0  # seconds any one wait may take

# The emulator in its own process: prints {"url", "admin_token"}; then, per line on stdin,
# "seed K" (K accounts, each with an active Duckling), "idle" (every account idle at once) or
# "count" (active-accounts requests so far), answering each with one JSON line.
_SERVER = """
import json, sys
from airflow_provider_motherduck.testing import MotherDuckEmulator
emu = MotherDuckEmulator()
emu.inject("*", "*", delay=float(sys.argv[1]), times=10**9)
emu.start()
print(json.dumps({"url": emu.url, "admin_token": emu.admin_token}), flush=True)
names = []
for line in sys.stdin:
    op, *args = line.split()
    if op == "seed":
        names = [f"bench_{i:04d}" for i in range(int(args[0]))]
        for name in names:
            emu.add_user(name)
            emu.set_ducklings(name, [{"id": "rw", "type": "read_write", "status": "active"}])
    elif op == "idle":
        for name in names:
            emu.set_ducklings(name, [])
    print(json.dumps({"count": sum(e.path == "/v1/active_accounts" for e in emu.journal)}), flush=True)
emu.stop()
"""


class Server(EmulatorProcess):
    """A fresh emulator process; :meth:`send` runs one command and returns the request count."""

    def __init__(self, latency: float) -> None:
        super().__init__(_SERVER, str(latency), cwd=REPO)
        for conn_id in CONNECTIONS:
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {"conn_type": "motherduck", "host": self.info["url"], "password": self.info["admin_token"]}
            )

    def send(self, command: str) -> int:
        return int(self.ask(command)["count"])


@contextmanager
def server(latency: float, accounts: int) -> Iterator[Server]:
    srv = Server(latency)
    try:
        srv.send(f"seed {accounts}")
        yield srv
    finally:
        srv.close()


# -- what runs the triggers ----------------------------------------------------------------------

Starter = Callable[[int, float], Any]  # (trigger number, interval) -> an async iterator of events


def shared(i: int, interval: float) -> Any:
    return MotherDuckActiveAccountsTrigger(
        motherduck_conn_id=CONNECTIONS[i % 2],
        usernames=[f"bench_{i:04d}"],
        expect_active=False,
        poke_interval=interval,
    ).run()


async def one_poll_per_trigger(i: int, interval: float) -> Any:
    """The previous trigger's loop: its own hook, a thread of the default pool per poll."""
    query = AccountsQuery.build([f"bench_{i:04d}"], expect_active=False)
    hook = MotherDuckHook(CONNECTIONS[i % 2])
    try:
        while True:
            outcome = query.evaluate(await asyncio.to_thread(hook.list_active_accounts))
            if outcome.done:
                yield {"status": "success", "accounts": outcome.accounts}
                return
            await asyncio.sleep(interval)
    finally:
        hook.close()


class Calls:
    """When each ``list_active_accounts`` call was sent (the hook's method, wrapped)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        original = MotherDuckHook.list_active_accounts

        def timed(hook: MotherDuckHook) -> Any:
            with self._lock:
                self.sent.append((time.monotonic(), hook.motherduck_conn_id))
            return original(hook)

        MotherDuckHook.list_active_accounts = timed  # type: ignore[method-assign]


@dataclass
class Result:
    requests_per_interval: float
    change_to_last: float
    poll_to_last: float
    worst_lag: float
    worst_busy: float
    worst_gc: float = 0.0


class GcPauses:
    """The longest garbage collection since :meth:`reset` (through ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        gc.collect()
        gc.freeze()
        self.worst = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.worst = max(self.worst, time.perf_counter() - self._started)


async def ticker(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """Record (wall lag, loop-thread CPU) of every 1 ms sleep until ``stop``."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before, cpu = loop.time(), time.thread_time()
        await asyncio.sleep(0.001)
        lags.append((loop.time() - before - 0.001, time.thread_time() - cpu))


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.005)


async def timed_run(k: int, interval: float, start: Starter, srv: Server, calls: Calls) -> Result:
    events: list[tuple[float, str]] = []

    async def collect(i: int) -> None:
        async for _ in start(i, interval):
            events.append((time.monotonic(), CONNECTIONS[i % 2]))

    sent = len(calls.sent)
    tasks = [asyncio.ensure_future(collect(i)) for i in range(k)]
    await until(lambda: len(calls.sent) >= sent + min(k, 2))  # started and polling
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    lag_task = asyncio.ensure_future(ticker(lags, stop))
    await asyncio.sleep(WARM_UP * interval)
    first = await asyncio.to_thread(srv.send, "count")
    await asyncio.sleep(COUNTED * interval)
    counted = await asyncio.to_thread(srv.send, "count") - first
    changed = time.monotonic()
    await asyncio.to_thread(srv.send, "idle")
    await until(lambda: len(events) == k)
    stop.set()
    await asyncio.gather(lag_task, *tasks)
    poll_to_last = 0.0
    for conn_id in CONNECTIONS:  # the poll that saw it: the last one sent before the first event
        fired = [t for t, c in events if c == conn_id]
        if fired:
            seen = max(t for t, c in calls.sent if c == conn_id and t < min(fired))
            poll_to_last = max(poll_to_last, max(fired) - seen)
    return Result(
        counted / COUNTED,
        max(t for t, _ in events) - changed,
        poll_to_last,
        max(wall for wall, _ in lags),
        max(cpu for _, cpu in lags),
    )


async def memory_run(k: int, interval: float, calls: Calls) -> float:
    """Traced bytes per trigger once all K wait (subscribed, first answer judged)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.ensure_future(_drain(shared(i, interval))) for i in range(k)]
    sent = len(calls.sent)
    await until(lambda: len(calls.sent) >= sent + 2)
    await asyncio.sleep(0.1)  # the answer reaches every trigger
    per_trigger = (tracemalloc.get_traced_memory()[0] - before) / k
    tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return per_trigger


async def _drain(events: Any) -> None:
    async for _ in events:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # Airflow 2's loggers (Airflow 3's: the setting at the top)
    calls = Calls()
    pauses = GcPauses()
    poll_target = args.latency + FANOUT_SLACK

    def measure(k: int, start: Starter) -> Result:
        with server(args.latency, k) as srv:
            pauses.reset()
            result = asyncio.run(timed_run(k, args.interval, start, srv, calls))
        result.worst_gc = pauses.worst
        return result

    header = (
        f"{'K':>5} {'polling':<20} {'req/interval':>12} {'x fewer':>8} {'change->last':>13} "
        f"{'poll->last':>11} {'lag wall':>9} {'lag cpu':>8} {'worst gc':>9} {'memory/trigger':>15}"
    )
    print(
        f"latency {args.latency * 1000:.0f} ms, interval {args.interval:.2f} s, {len(CONNECTIONS)} "
        f"connections; targets: {len(CONNECTIONS)} req/interval, poll->last <= "
        f"{poll_target * 1000:.0f} ms, worst lag < {LAG_TARGET * 1000:.0f} ms (loop CPU); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for k in args.ks:
        mine = measure(k, shared)
        before = measure(k, one_poll_per_trigger)
        with server(args.latency, k):
            memory = asyncio.run(memory_run(k, args.interval, calls))
        ok &= (
            mine.requests_per_interval <= len(CONNECTIONS)
            and mine.poll_to_last <= poll_target
            and mine.worst_busy < LAG_TARGET
        )
        for label, r, extra in (
            ("shared", mine, f"{before.requests_per_interval / mine.requests_per_interval:>8.1f}"),
            ("one poll per trigger", before, f"{'':>8}"),
        ):
            print(
                f"{k:>5} {label:<20} {r.requests_per_interval:>12.1f} {extra} "
                f"{r.change_to_last * 1000:>10.0f} ms {r.poll_to_last * 1000:>8.0f} ms "
                f"{r.worst_lag * 1000:>6.1f} ms {r.worst_busy * 1000:>5.1f} ms {r.worst_gc * 1000:>6.1f} ms "
                + (f"{memory / 1024:>11.1f} KiB" if label == "shared" else "")
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
