"""pytest fixtures that run a test against the MotherDuck emulator.

Installed with the package as the ``motherduck`` pytest plugin (a ``pytest11`` entry point),
so nothing needs importing: a test that names ``motherduck_emulator``, ``motherduck_connection``,
``motherduck_variables`` or ``motherduck_dag_run`` gets them. Loading the plugin does not import
Airflow and starts nothing; a test session that asks for none of its fixtures is not touched.

Override ``motherduck_conn_id`` in a ``conftest.py`` to point another connection id at the
emulator, and ``motherduck_airflow_home`` to run DAGs in a metadata database of your own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from airflow_provider_motherduck.testing.emulator import MotherDuckEmulator

if TYPE_CHECKING:
    from airflow_provider_motherduck._compat import DAG
    from airflow_provider_motherduck.testing.dag_run import DagRunResult
    from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore


@pytest.fixture
def motherduck_emulator() -> Iterator[MotherDuckEmulator]:
    """A started :class:`MotherDuckEmulator` on 127.0.0.1, a fresh organisation per test; stopped after."""
    with MotherDuckEmulator() as emulator:
        yield emulator


@pytest.fixture
def motherduck_conn_id() -> str:
    """The connection id that ``motherduck_connection`` sets up (override it to change it)."""
    return "motherduck_default"


@pytest.fixture
def motherduck_connection(
    motherduck_emulator: MotherDuckEmulator, motherduck_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Point ``motherduck_conn_id`` at the emulator with its admin token; returns the conn id.

    The connection is an ``AIRFLOW_CONN_<ID>`` environment variable, which Airflow reads inside
    and outside tasks and in ``airflow dags test`` subprocesses; it is removed after the test.
    """
    connection = {
        "conn_type": "motherduck",
        "host": motherduck_emulator.url,
        "password": motherduck_emulator.admin_token,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{motherduck_conn_id.upper()}", json.dumps(connection))
    return motherduck_conn_id


@pytest.fixture
def motherduck_variables() -> Iterator[InMemoryVariableStore]:
    """The Airflow Variables the provider reads and writes, kept in memory for the test.

    A mutable mapping of key to value: seed it before ``execute`` and read it after. With it,
    ``SomeMotherDuckOperator(...).execute(context)`` runs in a plain pytest with no metadata
    database and no task runner (on Airflow 2.11 and 3.x). Installed through the provider's
    public store interface (``use_variable_store``); Airflow's own Variables again after the test.
    """
    # Imported here: loading the plugin must not import Airflow.
    from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore, use_variable_store

    store = InMemoryVariableStore()
    use_variable_store(store)
    try:
        yield store
    finally:
        use_variable_store(None)


@pytest.fixture(scope="session")
def motherduck_airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway ``AIRFLOW_HOME`` with a migrated SQLite database, once per session (a few seconds)."""
    from airflow_provider_motherduck.testing.dag_run import migrate

    home = tmp_path_factory.mktemp("airflow-home")
    migrate(home)
    return home


class DagRunner(Protocol):
    """The callable that ``motherduck_dag_run`` returns."""

    def __call__(
        self, dag: DAG, task_id: str | None = None, *, logical_date: datetime | None = None
    ) -> DagRunResult: ...


@pytest.fixture
def motherduck_dag_run(motherduck_airflow_home: Path) -> DagRunner:
    """Runs a DAG (or one task of it) with ``dag.test()`` in ``motherduck_airflow_home``.

    ``motherduck_dag_run(dag)`` returns a result whose ``states`` maps each task id to its final
    state and whose ``xcoms`` maps each task id to its return value. A failing task does not
    raise: assert on ``states``. Connections come from the environment as everywhere
    (``motherduck_connection`` sets one).
    """
    from airflow_provider_motherduck.testing.dag_run import run_dag

    def run(dag: DAG, task_id: str | None = None, *, logical_date: datetime | None = None) -> DagRunResult:
        return run_dag(motherduck_airflow_home, dag, task_id, logical_date=logical_date)

    return run
