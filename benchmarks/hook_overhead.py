"""Hook overhead, as ratios measured in one run (wall-clock figures on shared machines are noise).

1. N sequential ``list_tokens`` calls through MotherDuckHook vs the same calls through a bare
   ``requests.Session`` (same emulator, same keep-alive, JSON decoded), interleaved in rounds.
2. The import time of ``airflow_provider_motherduck.hooks.motherduck`` after ``import airflow.sdk``.

    python benchmarks/hook_overhead.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import requests

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="md-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator

RATIO_TARGET = 1.0
IMPORT_TARGET_MS = 50.0

_IMPORT_PROBE = """
import time
t0 = time.perf_counter(); import airflow.sdk; t1 = time.perf_counter()
import airflow_provider_motherduck.hooks.motherduck; t2 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def timed(calls: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


def call_overhead(calls: int, rounds: int) -> tuple[float, float]:
    with MotherDuckEmulator() as emu:
        emu.add_user("etl_bot")
        for i in range(5):
            emu.add_token("etl_bot", f"token_{i}")
        os.environ["AIRFLOW_CONN_MOTHERDUCK_DEFAULT"] = json.dumps(
            {"conn_type": "motherduck", "host": emu.url, "password": emu.admin_token}
        )
        hook = MotherDuckHook()
        bare = requests.Session()
        bare.headers.update({"Authorization": f"Bearer {emu.admin_token}", "Accept": "application/json"})
        url = f"{emu.url}/v1/users/etl_bot/tokens"

        def through_bare() -> object:
            response = bare.get(url, timeout=30)
            response.raise_for_status()
            return response.json()["tokens"]

        hook.list_tokens("etl_bot"), through_bare()  # warm both connections
        per_round = max(calls // rounds, 1)
        hook_s = bare_s = 0.0
        for i in range(rounds):  # interleave, alternating who goes first: drift hits both sides alike
            if i % 2:
                bare_s += timed(per_round, through_bare)
            hook_s += timed(per_round, lambda: hook.list_tokens("etl_bot"))
            if not i % 2:
                bare_s += timed(per_round, through_bare)
        return hook_s, bare_s


def import_overhead(samples: int) -> tuple[float, float]:
    runs = []
    for _ in range(samples):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, check=True
        )
        runs.append(tuple(float(x) for x in out.stdout.split()))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--import-samples", type=int, default=5)
    args = parser.parse_args()

    hook_s, bare_s = call_overhead(args.calls, args.rounds)
    sdk_ms, hook_ms = import_overhead(args.import_samples)
    ratio = hook_s / bare_s
    print(f"{'measure':<44} {'value':>12} {'target':>10}")
    print(f"{'list_tokens x' + str(args.calls) + ' via hook (s)':<44} {hook_s:>12.3f}")
    print(f"{'list_tokens x' + str(args.calls) + ' via bare Session (s)':<44} {bare_s:>12.3f}")
    print(f"{'ratio hook / bare':<44} {ratio:>12.3f} {'<= ' + str(RATIO_TARGET):>10}")
    print(f"{'import airflow.sdk (ms, median)':<44} {sdk_ms:>12.1f}")
    print(
        f"{'+ import hooks.motherduck after it (ms)':<44} {hook_ms:>12.1f} {'<= ' + str(IMPORT_TARGET_MS):>10}"
    )
    return 0 if ratio <= RATIO_TARGET and hook_ms <= IMPORT_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
