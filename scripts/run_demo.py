"""The main job: run the example DAGs end to end against the bundled MotherDuck emulator.

Starts the emulator, points ``motherduck_default`` at it, runs each example DAG with
``airflow dags test`` in a throwaway AIRFLOW_HOME (SQLite), and prints what the organisation
holds after each one. Run it with ``make demo``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from airflow_provider_motherduck.testing import MotherDuckEmulator

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".airflow-demo"
# The accounts the examples expect to exist already (each example creates only its own).
SEED = REPO / "example_dags" / "demo_seed.json"
# In the order a platform team lives them: onboard, size, rotate, wait for compute, size down when
# idle (asset watchers: Airflow 3 only), audit the tokens, take the organisation over as code and
# check it for drift, offboard.
DAGS = (
    "example_motherduck_onboarding",
    "example_motherduck_bulk_onboarding",
    "example_motherduck_bulk_onboarding_one_task",
    "example_motherduck_sizing",
    "example_motherduck_token_rotation",
    "example_motherduck_temporary_account",
    "example_motherduck_wait_for_active",
    *(("example_motherduck_resize_when_idle",) if AIRFLOW_V_3 else ()),
    "example_motherduck_token_audit",
    "example_motherduck_org_as_code",
    "example_motherduck_drift_check",
    "example_motherduck_offboarding",
)


def start_query(emulator: MotherDuckEmulator) -> str:
    emulator.set_ducklings("etl_loader", [{"id": "rw", "type": "read_write", "status": "active"}])
    return "etl_loader runs a query: its read_write Duckling is active"


def notebooks_idle(emulator: MotherDuckEmulator) -> str:
    emulator.set_ducklings("notebook_runner", [])
    return "the analysts' notebooks are closed: notebook_runner has no Duckling running"


# What happens in MotherDuck between two DAGs (the emulator plays the organisation's users). The
# resize DAG runs as its asset watcher's event (notebook_runner going idle) would start it.
BEFORE = {
    "example_motherduck_wait_for_active": start_query,
    "example_motherduck_resize_when_idle": notebooks_idle,
}


def airflow(*args: str, env: dict[str, str]) -> int:
    """Run an Airflow CLI command; on failure show the end of its output."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        print("\n".join((done.stdout + done.stderr).splitlines()[-40:]), file=sys.stderr)
    return done.returncode


def describe(emulator: MotherDuckEmulator) -> None:
    """Print the users, their Duckling sizes and live tokens, as the emulator holds them."""
    for username in emulator.users():
        config = emulator.duckling_config(username)
        rw, rs = config["read_write"], config["read_scaling"]
        tokens = ", ".join(sorted(t["name"] for t in emulator.tokens(username))) or "-"
        print(
            f"  {username:<16} read_write={rw['instance_size']:<8} "
            f"read_scaling={rs['instance_size']}x{rs['flock_size']:<3} tokens: {tokens}"
        )


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir()
    with MotherDuckEmulator() as emulator:
        if SEED.exists():
            emulator.load_seed(json.loads(SEED.read_text()))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
            "AIRFLOW_CONN_MOTHERDUCK_DEFAULT": json.dumps(
                {"conn_type": "motherduck", "host": emulator.url, "password": emulator.admin_token}
            ),
        }
        print(f"MotherDuck emulator at {emulator.url}; throwaway Airflow home {HOME}")
        describe(emulator)
        if airflow("db", "migrate", env=env) != 0:
            print("airflow db migrate failed", file=sys.stderr)
            return 1
        results = []
        for dag_id in DAGS:
            print(f"\n=== airflow dags test {dag_id} ===", flush=True)
            if dag_id in BEFORE:
                print(f"(meanwhile in MotherDuck: {BEFORE[dag_id](emulator)})")
            started = time.monotonic()
            rc = airflow("dags", "test", dag_id, env=env)
            results.append((dag_id, rc, time.monotonic() - started))
            print(f"{'succeeded' if rc == 0 else 'FAILED'}; the organisation now holds:")
            describe(emulator)
        writes = [f"{e.method} {e.path} -> {e.status}" for e in emulator.journal if e.method != "GET"]
    print(f"\n=== {len(writes)} writes reached MotherDuck ===")
    print("\n".join(f"  {w}" for w in writes))
    print("\n=== summary ===")
    for dag_id, rc, seconds in results:
        print(f"  {'ok    ' if rc == 0 else 'FAILED'} {dag_id:<44} {seconds:6.1f} s")
    return 1 if any(rc for _, rc, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
