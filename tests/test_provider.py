"""Registration through Airflow's own ProvidersManager and CLI."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec

import pytest
from airflow.providers_manager import ProvidersManager

from airflow_provider_motherduck import DEFAULT_API_URL, __version__, get_provider_info
from airflow_provider_motherduck._compat import AIRFLOW_V_3, AIRFLOW_V_3_1, AIRFLOW_V_3_2
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook

PACKAGE = "airflow-provider-motherduck"


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_provider_is_discovered() -> None:
    manager = ProvidersManager()
    assert PACKAGE in manager.providers
    assert manager.providers[PACKAGE].version == __version__
    hook_info = manager.hooks["motherduck"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_motherduck.hooks.motherduck.MotherDuckHook"
    assert hook_info.connection_id_attribute_name == "motherduck_conn_id"
    assert hook_info.hook_name == "MotherDuck"


@pytest.mark.skipif(
    AIRFLOW_V_3 and not AIRFLOW_V_3_2 and find_spec("flask_appbuilder") is None,
    reason="Airflow 3.0 and 3.1 load a hook's form fields only with flask_appbuilder installed (the FAB provider)",
)
def test_connection_form_behaviour() -> None:
    behaviour = ProvidersManager().field_behaviours["motherduck"]
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port"}
    assert behaviour["relabeling"]["password"] == "Admin access token"
    assert DEFAULT_API_URL in behaviour["placeholders"].values()
    # Airflow < 3.2 reads the hook's classmethod; it must say the same as the metadata.
    assert MotherDuckHook.get_ui_field_behaviour()["hidden_fields"] == behaviour["hidden_fields"]


def test_every_declared_module_imports() -> None:
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(kind, []):
            for module in entry["python-modules"]:
                __import__(module)


def test_cli_lists_provider_and_hook() -> None:
    providers = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "plain"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert PACKAGE in providers.stdout
    hooks = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "-o", "plain"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "motherduck" in hooks.stdout
    assert "MotherDuckHook" in hooks.stdout
    if AIRFLOW_V_3_1:  # on 3.0 the common-compat provider itself warns (airflow.operators.branch)
        assert "DeprecationWarning" not in hooks.stderr
