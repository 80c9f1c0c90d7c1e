"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3, AIRFLOW_V_3_1, AIRFLOW_V_3_3
from airflow_provider_motherduck.hooks.sql import is_session_token
from airflow_provider_motherduck.workflows.delivery import Delivered, DeliveryRecord, InMemoryVariableStore

if TYPE_CHECKING:
    from airflow_provider_motherduck._compat import DAG
    from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
    from airflow_provider_motherduck.testing import MotherDuckEmulator

REPO_ROOT = Path(__file__).resolve().parent.parent
CONN_ENV = "AIRFLOW_CONN_MOTHERDUCK_DEFAULT"
ACTIVE_ACCOUNTS_PATH = "/v1/active_accounts"

#: For the DAG runs whose output is scanned for secrets. Airflow 3.0's ``mask_secret`` sends the
#: secret to the supervisor before masking it, and the in-process supervisor of ``airflow dags test``
#: logs that ``MaskSecret`` message at debug level, secret in clear (3.1+ masks first; a real
#: deployment's supervisor does not log the message).
scans_dags_test_output_for_secrets = pytest.mark.skipif(
    AIRFLOW_V_3 and not AIRFLOW_V_3_1,
    reason="Airflow 3.0's `airflow dags test` logs every MaskSecret message with the secret in clear",
)


#: For tests that reach into Airflow's masker (the fast path of ``_compat.mask_secrets``, log
#: masking outside a task): Airflow 3.0 to 3.2 keep their masker in other modules, and
#: ``mask_secrets`` falls back to plain ``mask_secret`` there (checked on 2.11 and 3.3).
masks_logs_outside_a_task = pytest.mark.skipif(
    AIRFLOW_V_3 and not AIRFLOW_V_3_3,
    reason="Airflow 3.0 to 3.2 keep the masker elsewhere (mask_secrets falls back to mask_secret there)",
)


def connection_json(url: str, token: str, **extra: object) -> str:
    """The JSON form of a motherduck connection, as an AIRFLOW_CONN_* variable holds it."""
    conn: dict[str, object] = {"conn_type": "motherduck", "host": url, "password": token}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


class FakeSleep:
    """Records the waits the hook asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def example_dag(dag_id: str) -> DAG:
    """One of ``example_dags/``, loaded from its file as Airflow's DAG processor loads it."""
    from airflow_provider_motherduck._compat import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "example_dags" / f"{dag_id}.py")).dags[dag_id]


def run_airflow_dag(
    dag_id: str,
    dags_folder: Path,
    env: dict[str, str],
    *,
    logical_date: str | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG_ID`` in a subprocess (real Airflow, real task runner); output captured."""
    cmd = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if logical_date:
        cmd.append(logical_date)
    full_env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


def polls(emulator: MotherDuckEmulator) -> list[int | None]:
    """Statuses of the active-accounts requests the emulator has answered so far."""
    return [e.status for e in emulator.journal if e.method == "GET" and e.path == ACTIVE_ACCOUNTS_PATH]


def after_polls(emulator: MotherDuckEmulator, count: int, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in a thread once ``count`` polls have been answered (state flips between polls)."""

    def watch() -> None:
        deadline = time.monotonic() + 10
        while len(polls(emulator)) < count and time.monotonic() < deadline:
            time.sleep(0.002)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def delivered(text: str | None) -> Delivered | None:
    """The token a delivery record (its Variable's text) says was delivered."""
    record = DeliveryRecord.parse(text)
    return record.delivered if record is not None else None


def delivered_id(text: str | None) -> str | None:
    """The id of the token a delivery record (its Variable's text) says was delivered."""
    done = delivered(text)
    return done.id if done is not None else None


class PauseOnWrite:
    """A Variable store over ``store`` that, once the ``nth`` write of ``key`` has landed, holds the
    thread that made it until :meth:`resume`: the test runs another issuer in between, so an
    interleaving is forced, not left to timing. Install it with ``use_variable_store``."""

    def __init__(self, store: InMemoryVariableStore, key: str, nth: int = 1) -> None:
        self.store, self.key, self.nth = store, key, nth
        self.reached, self._resume = threading.Event(), threading.Event()
        self._count = 0

    def get(self, key: str) -> str | None:
        return self.store.get(key)

    def set(self, key: str, value: str, *, description: str | None = None) -> None:
        self.store.set(key, value, description=description)
        if key == self.key:
            self._count += 1
            if self._count == self.nth:
                self.reached.set()
                assert self._resume.wait(10), "never resumed"

    def delete(self, key: str) -> None:
        self.store.delete(key)

    def resume(self) -> None:
        self._resume.set()


def in_thread(action: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``action`` in a thread; the returned callable joins it and gives its result (or raises)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = action()
        except BaseException as err:  # handed to the test's thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(timeout=30)
        assert not thread.is_alive(), "the issuer never finished"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return join


def execute_off_the_main_thread(op: Any, context: Any) -> Any:
    """``op.execute(context)`` for a thread other than the main one: render, check, then the work.

    Airflow 2.11 wraps ``execute`` in a guard whose thread-local state exists only in the thread
    that built the operator.
    """
    op.render_template_fields(context)
    op.check_args(rendered=True)
    try:
        return op.execute_checked(context)
    finally:
        op.hook.close()


# -- access: an organisation with roles and shares to onboard onto (the ``access_org`` fixture) --

#: A service account owning the database ``sales`` (``orders``: 3 rows, ``customers``: 5) and a
#: restricted share of each table; ``ROLES`` are custom roles; ``SHARES`` as onboarding takes them.
OWNER = "sales_owner"
ROLES = ["analysts", "loaders"]
SHARES = [
    {"share": "orders_share", "owner": OWNER, "alias": "orders_in"},
    {"share": "customers_share", "owner": OWNER, "alias": "customers_in"},
]
#: Statements that change MotherDuck (the journal's SQL entries, uppercased, start so).
SQL_WRITES = ("GRANT", "REVOKE", "CREATE", "DROP", "ALTER", "DETACH", "ATTACH 'MD:_SHARE")


def seed_access(emulator: MotherDuckEmulator, hook: MotherDuckHook) -> None:
    """The owner, its database, the two shares and the two roles (made over SQL through ``hook``)."""
    emulator.add_user(OWNER)
    emulator.add_database(OWNER, "sales", tables={"orders": 3, "customers": 5})
    seed_roles_and_shares(hook)
    emulator.clear_journal()


def seed_roles_and_shares(hook: MotherDuckHook) -> None:
    """``ROLES`` created by the admin and ``SHARES`` by their owner (who has the database ``sales``)."""
    for role in ROLES:
        hook.create_role(role)
    for share in SHARES:
        table = share["share"].removesuffix("_share")
        hook.create_share(
            share["share"],
            "sales",
            access="restricted",
            visibility="hidden",
            update="manual",
            include=[f"main.{table}"],
            as_user=OWNER,
        )


def sql_writes(emulator: MotherDuckEmulator) -> list[str]:
    """The SQL statements in the journal that change something."""
    return [e.path for e in emulator.journal if e.method == "SQL" and e.path.upper().startswith(SQL_WRITES)]


def writes_beside_sessions(emulator: MotherDuckEmulator) -> list[str]:
    """What the journal shows changed MotherDuck (REST writes and SQL writes), leaving out the
    short-lived session tokens, each minted and revoked to act as an account."""
    sessions = {i["id"] for i in emulator.issued_secrets() if is_session_token(str(i.get("name")))}
    writes = []
    for e in emulator.journal:
        if e.method == "SQL":
            writes += [e.path] if e.path.upper().startswith(SQL_WRITES) else []
        elif e.method != "GET" and not (
            (e.method == "POST" and is_session_token(str((e.body or {}).get("name"))))
            or (e.method == "DELETE" and e.path.rsplit("/", 1)[-1] in sessions)
        ):
            writes.append(f"{e.method} {e.path}")
    return writes


def session_tokens(emulator: MotherDuckEmulator) -> list[str]:
    """Names of short-lived SQL session tokens still live, of any user."""
    return [t["name"] for u in emulator.users() for t in emulator.tokens(u) if is_session_token(t["name"])]


def sessions_minted(emulator: MotherDuckEmulator) -> int:
    """How many short-lived SQL session tokens were ever issued."""
    return sum(is_session_token(i["name"]) for i in emulator.issued_secrets())


def count_as(emulator: MotherDuckEmulator, secret: str, table: str) -> int:
    """``SELECT count(*) FROM "<table>_in".main.<table>`` over psycopg with an account's own token."""
    import psycopg  # the [postgres] extra

    with psycopg.connect(emulator.postgres_conninfo(), password=secret, connect_timeout=5) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}_in".main.{table}').fetchone()
    assert row is not None
    return int(row[0])
