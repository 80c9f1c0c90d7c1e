"""Whole DAG runs for the pytest plugin: ``dag.test()`` in a throwaway ``AIRFLOW_HOME``.

The plugin's bridge to Airflow (the emulator modules beside it import none of it): only
``motherduck_dag_run`` imports this module, so loading the plugin still imports no Airflow. The
invariant: a run's result is read back from the home's own SQLite database after the run, as
Airflow stored it, never from objects the run left in memory.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_motherduck._compat import DAG


@dataclass(frozen=True)
class DagRunResult:
    """What one run left in the metadata database.

    ``states`` maps each task id to its final state and ``xcoms`` each task id to its return
    value (tasks that returned nothing are absent); for a mapped task both hold a list, in map
    index order.
    """

    dag_id: str
    run_id: str
    state: str
    states: dict[str, Any] = field(default_factory=dict)
    xcoms: dict[str, Any] = field(default_factory=dict)


def home_environment(home: Path) -> dict[str, str]:
    """The environment that points Airflow at ``home``: its SQLite database, an empty DAG folder, no examples."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }


def migrate(home: Path, timeout: float = 600) -> None:
    """Create ``home``'s metadata database with ``airflow db migrate`` (a few seconds on SQLite)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env={**os.environ, **home_environment(home)},
        check=True,
        capture_output=True,
        timeout=timeout,
    )


@contextmanager
def airflow_pointed_at(home: Path) -> Iterator[None]:
    """Point this process's Airflow at ``home`` for the block (its database even if Airflow was set up before)."""
    (home / "dags").mkdir(parents=True, exist_ok=True)
    saved = {key: os.environ.get(key) for key in home_environment(home)}
    os.environ.update(home_environment(home))
    from airflow import settings

    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    previous = settings.SQL_ALCHEMY_CONN
    if previous != url:
        settings.SQL_ALCHEMY_CONN = url
        settings.reconfigure_orm()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if previous != url and previous is not None:
            settings.SQL_ALCHEMY_CONN = previous
            settings.reconfigure_orm()  # type: ignore[no-untyped-call]


def run_dag(
    home: Path, dag: DAG, task_id: str | None = None, *, logical_date: datetime | None = None
) -> DagRunResult:
    """Run ``dag`` (only ``task_id`` of it, if given) with ``dag.test()`` in ``home``; read back what it left."""
    from airflow_provider_motherduck._compat import run_dag_test

    if task_id is not None:
        if task_id not in dag.task_ids:
            raise KeyError(
                f"task_id={task_id!r} is invalid: no such task in {dag.dag_id}. Allowed: {dag.task_ids}"
            )
        dag = dag.partial_subset([task_id], include_upstream=False)
    with airflow_pointed_at(home):
        run_id = run_dag_test(dag, logical_date)
    return read_dag_run(home / "airflow.db", dag.dag_id, run_id)


def read_dag_run(db: Path, dag_id: str, run_id: str) -> DagRunResult:
    """The states and return values of one run, read with plain SQL (the same tables on 2.11 and 3.x)."""
    with closing(sqlite3.connect(db)) as conn:
        (state,) = conn.execute(
            "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchone()
        tis = conn.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?"
            " ORDER BY task_id, map_index",
            (dag_id, run_id),
        ).fetchall()
        xcoms = conn.execute(
            "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'"
            " ORDER BY task_id, map_index",
            (dag_id, run_id),
        ).fetchall()
    return DagRunResult(dag_id, run_id, state, _by_task(tis), _by_task(xcoms, json.loads))


def _by_task(
    rows: list[tuple[str, int, Any]], decode: Callable[[Any], Any] = lambda value: value
) -> dict[str, Any]:
    """``task_id -> value``; a mapped task's values (map index 0, 1, ...) as one list."""
    out: dict[str, Any] = {}
    for task_id, map_index, value in rows:
        if map_index < 0:
            out[task_id] = decode(value)
        else:
            out.setdefault(task_id, []).append(decode(value))
    return out
