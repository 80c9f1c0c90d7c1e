"""Shared fixtures: a throwaway AIRFLOW_HOME, a live emulator, and a connection pointing at it.

The emulator and the connection come from the package's own pytest plugin
(``airflow_provider_motherduck.testing.pytest_plugin``, registered by its ``pytest11`` entry
point, never again here); ``emulator`` and ``motherduck_conn`` are the names these tests use.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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
from airflow_provider_motherduck.testing.dag_run import migrate  # noqa: E402
from tests.support import FakeSleep, run_airflow_dag, seed_access  # noqa: E402

if TYPE_CHECKING:
    from tests.sql_standin import StandIn


@pytest.fixture
def emulator(motherduck_emulator: MotherDuckEmulator) -> MotherDuckEmulator:
    """A fresh MotherDuck emulator on 127.0.0.1, stopped after the test."""
    return motherduck_emulator


@pytest.fixture
def motherduck_conn(motherduck_connection: str) -> str:
    """``motherduck_default`` pointing at the emulator with its admin token; returns the conn id."""
    return motherduck_connection


@pytest.fixture
def sql_conn(
    motherduck_emulator: MotherDuckEmulator, motherduck_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """``motherduck_default`` on the emulator with the ``postgres`` SQL transport (its Postgres endpoint)."""
    connection = json.dumps(motherduck_emulator.airflow_connection())
    monkeypatch.setenv(f"AIRFLOW_CONN_{motherduck_conn_id.upper()}", connection)
    return motherduck_conn_id


@pytest.fixture
def sql_hook(sql_conn: str, fake_sleep: FakeSleep) -> Iterator[MotherDuckHook]:
    """A hook whose SQL goes to the emulator's Postgres endpoint over the real wire protocol."""
    h = MotherDuckHook(sql_conn, retry_delay=0.01, sleep=fake_sleep)
    yield h
    h.close()


@pytest.fixture
def access_org(motherduck_emulator: MotherDuckEmulator, sql_hook: MotherDuckHook) -> MotherDuckEmulator:
    """The emulator (SQL on its Postgres endpoint) with :func:`tests.support.seed_access`'s roles and shares."""
    seed_access(motherduck_emulator, sql_hook)
    return motherduck_emulator


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
    migrate(Path(_AIRFLOW_HOME))
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def motherduck_airflow_home(airflow_db: str) -> Path:
    """The plugin's ``motherduck_dag_run`` runs DAGs in this suite's one metadata database."""
    return Path(airflow_db)


@pytest.fixture
def airflow_dag_runner(airflow_db: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`tests.support.run_airflow_dag`, once the metadata database exists."""
    return run_airflow_dag


@pytest.fixture
def duckdb_standin(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """``duckdb.connect`` replaced by :class:`tests.sql_standin.StandIn` (MotherDuck is out of reach)."""
    duckdb = pytest.importorskip("duckdb")
    from tests.sql_standin import StandIn

    standin = StandIn()
    monkeypatch.setattr(duckdb, "connect", standin.connect)
    return standin
