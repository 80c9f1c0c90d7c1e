"""The ``motherduck`` connection as Airflow itself reads it: CLI test, JSON and URI forms, form metadata.

No browser here (that is ``tests/ui``). Each Airflow check runs in a fresh subprocess, so nothing this
pytest process imported earlier can hide an import, a warning or a lazily loaded hook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from urllib.parse import quote

import pytest

from airflow_provider_motherduck import DEFAULT_API_URL, UI_FIELD_BEHAVIOUR
from airflow_provider_motherduck._compat import AIRFLOW_V_3, AIRFLOW_V_3_2, AIRFLOW_V_3_3
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.support import CONN_ENV, REPO_ROOT, connection_json

HOOK_MODULE = "airflow_provider_motherduck.hooks.motherduck"
CLI_TIMEOUT = 180


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this venv, from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def _connections_test(conn: str) -> subprocess.CompletedProcess[str]:
    """``airflow connections test motherduck_default`` with the connection in ``AIRFLOW_CONN_...``."""
    env = {
        **os.environ,
        CONN_ENV: conn,
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "COLUMNS": "500",  # the CLI prints through rich: no wrapping in the middle of the message
    }
    return subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "test", "motherduck_default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def _uri_encoded_host(url: str, token: str) -> str:
    """URI form 1: the whole API URL, scheme included, percent-encoded as the host.

    ``motherduck://:TOKEN@http%3A%2F%2F127.0.0.1%3A8089`` gives host ``http://127.0.0.1:8089``
    (Airflow un-quotes a host that holds a ``/``) and no port.
    """
    return f"motherduck://:{quote(token, safe='')}@{quote(url, safe='')}"


def _uri_scheme_prefix(url: str, token: str) -> str:
    """URI form 2: the API URL's scheme written after the connection type's.

    ``motherduck://http://:TOKEN@127.0.0.1:8089`` gives host ``http://127.0.0.1`` and port 8089,
    which the hook joins back into ``http://127.0.0.1:8089``.
    """
    scheme, rest = url.split("://", 1)
    return f"motherduck://{scheme}://:{quote(token, safe='')}@{rest}"


def _active_accounts_calls(emulator: MotherDuckEmulator) -> list[int | None]:
    return [e.status for e in emulator.journal if (e.method, e.path) == ("GET", "/v1/active_accounts")]


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda url, token: connection_json(url, token), id="json"),
        pytest.param(_uri_encoded_host, id="uri-encoded-host"),
        pytest.param(_uri_scheme_prefix, id="uri-scheme-prefix"),
    ],
)
def test_cli_connection_test_succeeds(emulator: MotherDuckEmulator, form: Callable[[str, str], str]) -> None:
    """Every way of writing the connection reaches the emulator with the admin token.

    The URI forms for an ``http://`` loopback API URL (the JSON form just holds the URL as ``host``):

    - ``motherduck://:TOKEN@http%3A%2F%2F127.0.0.1%3APORT``: the URL percent-encoded as the host;
    - ``motherduck://http://:TOKEN@127.0.0.1:PORT``: the URL's scheme after ``motherduck://``
      (the form ``Connection.get_uri()`` itself writes).

    A token with characters outside ``[A-Za-z0-9_.~-]`` must be percent-encoded in a URI.
    """
    result = _connections_test(form(emulator.url, emulator.admin_token))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    assert _active_accounts_calls(emulator) == [200]


def test_cli_connection_test_rejects_wrong_token(emulator: MotherDuckEmulator) -> None:
    """A wrong token fails with the hook's explanation (before Airflow 3.3 the CLI still exits 0 then)."""
    result = _connections_test(connection_json(emulator.url, "mdt_not_the_admin_token"))
    output = " ".join(result.stdout.split())
    assert result.returncode == (1 if AIRFLOW_V_3_3 else 0), result.stdout + result.stderr
    assert "Connection failed!" in output
    assert "HTTP 401" in output
    assert "The token of this connection was rejected" in output
    assert "mdt_not_the_admin_token" not in result.stdout + result.stderr
    assert _active_accounts_calls(emulator) == [401]


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        ("api.motherduck.com", "https://api.motherduck.com"),
        ("api.motherduck.com/", "https://api.motherduck.com"),
        (None, DEFAULT_API_URL),
        ("http://127.0.0.1:8089", "http://127.0.0.1:8089"),
        ("http://localhost:8089/", "http://localhost:8089"),
    ],
)
def test_host_forms(monkeypatch: pytest.MonkeyPatch, host: str | None, base_url: str) -> None:
    """A bare host means https; no host means MotherDuck's API; a loopback host may use http."""
    conn: dict[str, object] = {"conn_type": "motherduck", "password": "mdt_opaque_test_token"}
    if host is not None:
        conn["host"] = host
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    assert MotherDuckHook().settings.base_url == base_url


@pytest.mark.skipif(
    not AIRFLOW_V_3_2,
    reason="on Airflow 3.0 and 3.1 `from airflow.sdk import task` warns by itself (the common-compat "
    "provider's airflow.operators.branch), and 2.x has no Task SDK to check the imports against",
)
def test_no_deprecation_warning_on_import_or_dag_parse() -> None:
    """Import every provider module and parse every example DAG with deprecations as errors.

    Airflow 3 warns about moved imports with ``DeprecatedImportWarning``, a ``FutureWarning``, so
    that category is an error too, not only ``DeprecationWarning``.
    """
    dags = sorted(str(p) for p in (REPO_ROOT / "example_dags").glob("*.py"))
    result = _python(
        f"""
        import importlib, pkgutil, runpy, warnings
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("error", category)
        import airflow_provider_motherduck as package
        modules = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
        for name in modules:
            importlib.import_module(name)
        for path in {dags!r}:
            runpy.run_path(path, run_name="__airflow_dag_parse__")
        # The hook keeps the Airflow < 3.2 form methods: the providers manager, importing every hook
        # as `airflow providers widgets` does, must not warn about it (other providers may warn).
        import sys
        from airflow.providers_manager import ProvidersManager
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ProvidersManager().connection_form_widgets
        assert {HOOK_MODULE!r} in sys.modules
        ours = [str(w.message) for w in caught if "MotherDuck" in str(w.message)]
        assert not ours, ours
        print("modules", len(modules), "dags", {len(dags)})
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    modules = int(result.stdout.split()[1])
    assert modules >= 10, result.stdout  # hooks, operators, sensors, triggers, testing, ...
    assert dags, "no example DAG found"


@pytest.mark.skipif(
    not AIRFLOW_V_3_3,
    reason="ProvidersManager.iter_connection_type_hook_ui_metadata, which the UI's hook_meta reads, is new in Airflow 3.3",
)
def test_form_metadata_read_without_importing_the_hook() -> None:
    """What the UI's ``/ui/connections/hook_meta`` is built from, in a fresh process: no hook import."""
    result = _python(
        f"""
        import json, sys
        from airflow.providers_manager import ProvidersManager
        manager = ProvidersManager()
        meta = {{m.connection_type: m for m in manager.iter_connection_type_hook_ui_metadata()}}["motherduck"]
        widgets = manager._connection_form_widgets_from_metadata  # what hook_meta reads (3.2+)
        print(json.dumps({{
            "hook_name": meta.hook_name,
            "hook_class_name": meta.hook_class_name,
            "field_behaviour": meta.field_behaviour,
            "extra_fields": sorted(k for k in widgets if k.startswith("extra__motherduck__")),
            "hook_imported": {HOOK_MODULE!r} in sys.modules,
        }}))
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["hook_imported"] is False
    assert got["hook_name"] == "MotherDuck"
    assert got["hook_class_name"] == f"{HOOK_MODULE}.MotherDuckHook"
    assert got["field_behaviour"] == {
        "hidden_fields": ["schema", "login", "port"],
        "relabeling": {"host": "API URL", "password": "Admin access token"},
        "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
    }
    assert got["extra_fields"] == [
        f"extra__motherduck__{name}"
        for name in (
            "allow_insecure_http",
            "postgres_host",
            "postgres_port",
            "region",
            "retry_delay",
            "retry_limit",
            "sql_transport",
            "timeout",
        )
    ]


# 3.0 and 3.1 build it from the hook class too, but only with flask_appbuilder (the FAB provider),
# which their lock files leave out; 3.2+ reads conn-fields from get_provider_info.
airflow_2_form = pytest.mark.skipif(
    AIRFLOW_V_3, reason="Airflow 2.x's Flask UI builds the form from the hook class"
)


@airflow_2_form
def test_airflow2_form_comes_from_the_hook() -> None:
    """On Airflow 2.11 the form is the hook's ``get_ui_field_behaviour``, found by importing the hook."""
    result = _python(
        f"""
        import json, sys
        from airflow.providers_manager import ProvidersManager
        behaviour = ProvidersManager().field_behaviours["motherduck"]
        print(json.dumps({{"behaviour": behaviour, "hook_imported": {HOOK_MODULE!r} in sys.modules}}))
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["hook_imported"] is True
    assert got["behaviour"] == MotherDuckHook.get_ui_field_behaviour()
    assert set(got["behaviour"]["hidden_fields"]) == {"schema", "login", "port"}
    assert got["behaviour"]["relabeling"]["password"] == "Admin access token"
    assert got["behaviour"]["placeholders"]["host"] == DEFAULT_API_URL


@airflow_2_form
def test_airflow2_form_has_the_extra_fields_and_the_hook_reads_what_they_save() -> None:
    """Airflow 2.11's Flask form gets the extras from ``get_connection_form_widgets``; fill it in as a
    user would, save the way 2.11's connection view does (non-empty values under the field name), and
    the hook reads the numbers back (a text field left out is None, not saved). A value that is not a
    number is refused by the form."""
    result = _python(
        """
        import json, os
        from werkzeug.datastructures import MultiDict
        from wtforms import Form
        from airflow.providers_manager import ProvidersManager
        from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook

        widgets = {
            key: info for key, info in ProvidersManager().connection_form_widgets.items()
            if key.startswith("extra__motherduck__")
        }
        form_class = type("MotherDuckForm", (Form,), {key: info.field for key, info in widgets.items()})

        def submit(**values):
            form = form_class(MultiDict({f"extra__motherduck__{k}": v for k, v in values.items()}))
            ok = form.validate()
            saved = {
                info.field_name: form.data[key] for key, info in widgets.items() if form.data[key] not in ("", None)
            }
            return ok, saved, {k.split("__")[-1]: v for k, v in form.errors.items()}

        ok, saved, _ = submit(timeout="12.5", retry_limit="2", retry_delay="", allow_insecure_http="y")
        os.environ["AIRFLOW_CONN_MOTHERDUCK_DEFAULT"] = json.dumps(
            {"conn_type": "motherduck", "host": "api.example.test", "password": "t", "extra": saved}
        )
        settings = MotherDuckHook().settings
        bad_ok, _, errors = submit(timeout="soon", retry_limit="-1")
        print(json.dumps({
            "fields": sorted((info.field_name, info.field.field_class.__name__) for info in widgets.values()),
            "ok": ok, "saved": saved,
            "read": [settings.timeout, settings.retry_limit, settings.retry_delay],
            "bad_ok": bad_ok, "errors": sorted(errors),
            "sensitive": [info.field_name for info in widgets.values() if info.is_sensitive],
        }))
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["fields"] == [
        ["allow_insecure_http", "BooleanField"],
        ["postgres_host", "StringField"],
        ["postgres_port", "IntegerField"],
        ["region", "StringField"],
        ["retry_delay", "StringField"],
        ["retry_limit", "IntegerField"],
        ["sql_transport", "StringField"],
        ["timeout", "StringField"],
    ]
    assert got["ok"] is True
    assert got["saved"] == {"timeout": "12.5", "retry_limit": 2, "allow_insecure_http": True}
    assert got["read"] == [12.5, 2, 1.0]  # retry_delay left empty: the default
    assert (got["bad_ok"], got["errors"]) == (False, ["retry_limit", "timeout"])
    assert got["sensitive"] == []
