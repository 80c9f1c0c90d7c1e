"""pytest fixtures that run a test against the MotherDuck emulator.

Installed with the package as the ``motherduck`` pytest plugin (a ``pytest11`` entry point),
so nothing needs importing: a test that names ``motherduck_emulator``,
``motherduck_connection`` or ``motherduck_variables`` gets them. Loading the plugin does not
import Airflow and starts nothing; a test session that asks for none of them is not touched.

Override ``motherduck_conn_id`` in a ``conftest.py`` to point another connection id at the
emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from airflow_provider_motherduck.testing.emulator import MotherDuckEmulator

if TYPE_CHECKING:
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
