"""Onboarding N accounts, each with 2 roles and 2 shares, against an emulator with latency, as a ratio.

Every REST request and every SQL statement (the emulator's Postgres endpoint, over psycopg) waits
``--latency`` seconds first (20 ms). The emulator runs in its own process. Before the clock
starts, an owner account gets a database with two tables, a restricted share of each, and the
admin creates two custom roles. Then ``onboard_accounts`` (what MotherDuckBulkOnboardOperator
runs) onboards N new accounts on ``--workers`` threads: each account is created, gets a token,
is granted both roles (as the admin), read on both shares (as the owner, one short-lived session)
and attaches both (as itself, one short-lived session); then a re-run, which changes nothing.

The latency bound: one account's calls (REST requests and SQL statements) run one after another,
accounts side by side, so a run cannot end before ``ceil(N / workers) * calls per account *
latency``. The figure is wall time over that bound; it must stay within ``BOUND_TARGET``.

Each worker holds up to three SQL connections at once (the admin's, the owner's session and the
account's session), and the emulator's Postgres endpoint serves 32 (``pg_max_connections``), so
8 workers is the default; with more, sessions are refused ("too many clients").

    python benchmarks/onboarding_access.py [--accounts 100] [--latency 0.02] [--workers 8]

Stops by itself (the emulator process has a timeout); about 20 s with the defaults.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from emulator_process import EmulatorProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import OWNER, ROLES, SHARES

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120
BOUND_TARGET = 2.0
# The emulator in its own process: prints where it listens, then answers each line on stdin with
# {"rest", "sql"} (requests and statements received so far) until stdin closes.
_SERVER = """
import json, sys
from airflow_provider_motherduck.testing import MotherDuckEmulator
emu = MotherDuckEmulator()
emu.start()
emu.add_user(sys.argv[2])  # the owner and its database, as tests.support.seed_access makes them
emu.add_database(sys.argv[2], "sales", tables={"orders": 3, "customers": 5})
latency = float(sys.argv[1])
emu.inject("*", "*", delay=latency, times=10**9)
emu.inject_sql("*", delay=latency, times=10**9)
print(json.dumps({"url": emu.url, "admin_token": emu.admin_token, "host": emu.postgres_host,
                  "port": emu.postgres_port}), flush=True)
for line in sys.stdin:
    sql = sum(e.method == "SQL" for e in emu.journal)
    print(json.dumps({"rest": len(emu.journal) - sql, "sql": sql}), flush=True)
emu.stop()
"""


class Server(EmulatorProcess):
    """A fresh emulator process with latency on every request and statement."""

    def __init__(self, latency: float) -> None:
        super().__init__(_SERVER, str(latency), OWNER, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.ask("counts")
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    srv = Server(args.latency)
    try:
        rows = measure(srv, args.accounts, args.latency, args.workers)
    finally:
        srv.close()
    print(
        f"Onboarding {args.accounts} accounts with {len(ROLES)} roles and {len(SHARES)} shares each, "
        f"{args.workers} workers, {args.latency * 1000:.0f} ms per REST request and SQL statement"
    )
    print(f"{'run':<8} {'wall s':>8} {'REST':>6} {'SQL':>6} {'calls/acct':>10} {'bound s':>8} {'ratio':>6}")
    for row in rows:
        print(
            f"{row['run']:<8} {row['wall']:>8.2f} {row['rest']:>6} {row['sql']:>6} "
            f"{row['per_account']:>10.1f} {row['bound']:>8.2f} {row['ratio']:>6.2f}"
        )
    worst = max(r["ratio"] for r in rows)
    print(f"worst ratio {worst:.2f} (target <= {BOUND_TARGET})")
    if worst > BOUND_TARGET:
        raise SystemExit(1)


def measure(srv: Server, n: int, latency: float, workers: int) -> list[dict[str, Any]]:
    """The first run and the re-run: wall time, calls received, the latency bound and the ratio."""
    from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
    from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore, use_variable_store
    from airflow_provider_motherduck.workflows.onboarding import check_accounts, onboard_accounts
    from tests.support import connection_json, seed_roles_and_shares

    info = srv.info
    os.environ["AIRFLOW_CONN_MOTHERDUCK_DEFAULT"] = connection_json(
        info["url"],
        info["admin_token"],
        sql_transport="postgres",
        postgres_host=info["host"],
        postgres_port=info["port"],
    )
    use_variable_store(InMemoryVariableStore())
    logging.getLogger("airflow_provider_motherduck").setLevel(logging.WARNING)
    seed = MotherDuckHook()
    seed_roles_and_shares(seed)
    seed.close()
    accounts = check_accounts(
        [{"username": f"reader_{i:04d}", "variable_key": f"md_bench_reader_{i:04d}"} for i in range(n)],
        defaults={"token_name": "airflow", "roles": ROLES, "shares": SHARES},
    )
    rows = []
    for run in ("first", "re-run"):
        before = srv.counts()
        t0 = time.perf_counter()
        results, failed = onboard_accounts(accounts, MotherDuckHook, max_workers=workers)
        wall = time.perf_counter() - t0
        if failed or len(results) != n:
            raise SystemExit(f"onboarding failed: {dict(list(failed.items())[:3])}")
        after = srv.counts()
        rest, sql = after["rest"] - before["rest"], after["sql"] - before["sql"]
        per_account = (rest + sql) / n
        bound = math.ceil(n / workers) * per_account * latency
        rows.append(
            {
                "run": run,
                "wall": wall,
                "rest": rest,
                "sql": sql,
                "per_account": per_account,
                "bound": bound,
                "ratio": wall / bound,
            }
        )
    return rows


if __name__ == "__main__":
    main()
