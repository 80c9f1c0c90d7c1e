"""The ``motherduck`` pytest plugin: registered once by its entry point, inert until asked, and
its fixtures as a user's test suite sees them (docs/testing.rst includes the marked parts)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import airflow_provider_motherduck.testing.pytest_plugin as pytest_plugin
from airflow_provider_motherduck._compat import AIRFLOW_V_3, DAG
from airflow_provider_motherduck.testing.pytest_plugin import DagRunner

if AIRFLOW_V_3:
    from airflow.sdk import task
else:
    from airflow.decorators import task

# isort: split
# [START user_imports]
from datetime import datetime, timezone

from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckCreateUserOperator,
    MotherDuckOnboardAccountOperator,
    MotherDuckReconcileOperator,
    MotherDuckRotateTokenOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore

# [END user_imports]


# [START user_tests]
def test_create_user(motherduck_emulator: MotherDuckEmulator, motherduck_connection: str) -> None:
    MotherDuckCreateUserOperator(
        task_id="create", username="etl_loader", motherduck_conn_id=motherduck_connection
    ).execute(context={})

    assert motherduck_emulator.users() == ["admin", "etl_loader"]


def test_create_token_into_a_variable(
    motherduck_emulator: MotherDuckEmulator,
    motherduck_connection: str,
    motherduck_variables: InMemoryVariableStore,
) -> None:
    motherduck_emulator.add_user("etl_loader")
    xcom = MotherDuckCreateTokenOperator(
        task_id="token", username="etl_loader", token_name="airflow", variable_key="md_etl"
    ).execute(context={})

    assert motherduck_emulator.is_valid_token(motherduck_variables["md_etl"])
    assert [t["id"] for t in motherduck_emulator.tokens("etl_loader")] == [xcom["token"]["id"]]


def test_onboarding_then_rotation(
    motherduck_emulator: MotherDuckEmulator,
    motherduck_connection: str,
    motherduck_variables: InMemoryVariableStore,
) -> None:
    MotherDuckOnboardAccountOperator(
        task_id="onboard", username="etl_loader", token_name="airflow", variable_key="md_etl"
    ).execute(context={})
    onboarded = motherduck_variables["md_etl"]

    rotated = MotherDuckRotateTokenOperator(
        task_id="rotate", username="etl_loader", token_name="airflow", ttl="90 days", variable_key="md_etl"
    ).execute(context={"logical_date": datetime(2026, 1, 5, tzinfo=timezone.utc)})

    assert motherduck_variables["md_etl"] != onboarded
    assert motherduck_emulator.is_valid_token(motherduck_variables["md_etl"])
    assert not motherduck_emulator.is_valid_token(onboarded)
    assert rotated["created"] is True


def test_reconcile_apply(
    motherduck_emulator: MotherDuckEmulator,
    motherduck_connection: str,
    motherduck_variables: InMemoryVariableStore,
) -> None:
    desired = {
        "name": "bi",
        "service_accounts": [
            {
                "username": "bi_reader",
                "tokens": [{"name": "airflow", "ttl": "30 days", "variable_key": "md_bi"}],
            }
        ],
    }
    MotherDuckReconcileOperator(task_id="apply", desired=desired).execute(context={})

    assert "bi_reader" in motherduck_emulator.users()
    assert motherduck_emulator.is_valid_token(motherduck_variables["md_bi"])


# [END user_tests]


def test_registered_once_under_its_entry_point_name(pytestconfig: pytest.Config) -> None:
    manager = pytestconfig.pluginmanager
    assert manager.get_plugin("motherduck") is pytest_plugin
    assert [p for p in manager.get_plugins() if getattr(p, "__file__", None) == pytest_plugin.__file__] == [
        pytest_plugin
    ]
    copies = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == pytest_plugin.__file__]
    assert copies == [pytest_plugin]


def _run_pytest(tmp_path: Path, test_source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test_source))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_loading_the_plugin_does_not_import_airflow(tmp_path: Path) -> None:
    result = _run_pytest(
        tmp_path,
        """
        import sys

        def test_nothing_loaded(pytestconfig):
            assert pytestconfig.pluginmanager.get_plugin("motherduck") is not None
            assert [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")] == []
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_user_suite_overrides_the_conn_id_and_starts_each_test_clean(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def motherduck_conn_id():
                return "md_admin"
            """
        )
    )
    result = _run_pytest(
        tmp_path,
        """
        import json, os

        import requests

        from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
        from airflow_provider_motherduck.workflows.delivery import AirflowVariableStore, forget, variable_store

        seen = {}

        def test_hook_on_the_emulator(motherduck_emulator, motherduck_connection):
            assert motherduck_connection == "md_admin"
            assert json.loads(os.environ["AIRFLOW_CONN_MD_ADMIN"])["host"] == motherduck_emulator.url
            MotherDuckHook(motherduck_connection).create_user("etl_loader")
            assert motherduck_emulator.users() == ["admin", "etl_loader"]
            seen["url"] = motherduck_emulator.url

        def test_seeded_variables_are_read(motherduck_variables):
            motherduck_variables["md_old"] = "opaque-value"
            assert variable_store() is motherduck_variables
            assert forget("md_old") == ["md_old"]
            assert dict(motherduck_variables) == {}

        def test_the_next_test_starts_clean():
            assert isinstance(variable_store(), AirflowVariableStore)
            assert "AIRFLOW_CONN_MD_ADMIN" not in os.environ
            try:
                requests.get(seen["url"] + "/v1/active_accounts", timeout=5)
            except requests.ConnectionError:
                return
            raise AssertionError("the emulator still answers after its test")
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_dag_run_reports_every_task_mapped_and_failed_ones_included(
    motherduck_emulator: MotherDuckEmulator, motherduck_connection: str, motherduck_dag_run: DagRunner
) -> None:
    with DAG("plugin_dag_run", schedule=None, start_date=datetime(2025, 1, 1)) as dag:

        @task
        def names() -> list[str]:
            return ["etl_loader", "bi_dashboards"]

        @task
        def label() -> str:
            return "1"  # a string that looks like JSON stays a string

        @task
        def broken() -> None:
            raise ValueError("broken on purpose")

        MotherDuckCreateUserOperator.partial(task_id="create").expand(username=names())
        label()
        broken()

    run = motherduck_dag_run(dag)

    assert (run.dag_id, run.state) == ("plugin_dag_run", "failed")
    assert run.states == {
        "broken": "failed",
        "create": ["success", "success"],
        "label": "success",
        "names": "success",
    }
    assert run.xcoms == {
        "create": [{"username": name, "created": True} for name in ("etl_loader", "bi_dashboards")],
        "label": "1",
        "names": ["etl_loader", "bi_dashboards"],
    }
    assert sorted(motherduck_emulator.users()) == ["admin", "bi_dashboards", "etl_loader"]

    with pytest.raises(KeyError, match=r"task_id='nope' is invalid: no such task in plugin_dag_run"):
        motherduck_dag_run(dag, "nope")
    assert motherduck_dag_run(dag, "label").states == {"label": "success"}
