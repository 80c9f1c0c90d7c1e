"""Shared fixtures: a throwaway AIRFLOW_HOME, a live emulator, and a connection pointing at it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Airflow reads its configuration on first import: point it at a throwaway home before that.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="md-airflow-home-")
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
    }
)
os.environ.pop("MOTHERDUCK_TOKEN", None)

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook  # noqa: E402
from airflow_provider_motherduck.testing import MotherDuckEmulator  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
CONN_ENV = "AIRFLOW_CONN_MOTHERDUCK_DEFAULT"


def connection_json(url: str, token: str, **extra: object) -> str:
    """The JSON form of a motherduck connection, as an AIRFLOW_CONN_* variable holds it."""
    conn: dict[str, object] = {"conn_type": "motherduck", "host": url, "password": token}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


@pytest.fixture
def emulator() -> Iterator[MotherDuckEmulator]:
    """A fresh MotherDuck emulator on 127.0.0.1, stopped after the test."""
    with MotherDuckEmulator() as emu:
        yield emu


@pytest.fixture
def motherduck_conn(emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """``motherduck_default`` pointing at the emulator with its admin token; returns the conn id."""
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, emulator.admin_token))
    return "motherduck_default"


class FakeSleep:
    """Records the waits the hook asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def hook(motherduck_conn: str, fake_sleep: FakeSleep) -> Iterator[MotherDuckHook]:
    """A hook on the emulator that never really sleeps between retries."""
    h = MotherDuckHook(motherduck_conn, retry_delay=0.01, sleep=fake_sleep)
    yield h
    h.close()


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate the throwaway SQLite metadata database once; returns AIRFLOW_HOME."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return _AIRFLOW_HOME


def run_airflow_dag(
    dag_id: str, dags_folder: Path, env: dict[str, str], *, logical_date: str | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG_ID`` in a subprocess (real Airflow, real task runner); output captured."""
    cmd = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if logical_date:
        cmd.append(logical_date)
    full_env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder), "PYTHONPATH": str(REPO_ROOT), **env}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def airflow_dag_runner(airflow_db: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Fixture form of :func:`run_airflow_dag` (makes sure the metadata database exists first)."""
    return run_airflow_dag
