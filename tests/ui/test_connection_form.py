"""The MotherDuck connection in Airflow 3's own UI, driven in a real headless Chromium.

A real ``airflow api-server`` (throwaway home, SQLite, simple auth manager, connection testing
enabled) and the emulator; Playwright drives Debian's Chromium through Admin, Connections, Add,
checks the form, saves, presses Test with the right and with a wrong token, and finally runs a DAG
task that uses the saved connection. Screenshots go to ``.artifacts/screenshots/``, or to
``$MOTHERDUCK_SCREENSHOT_DIR`` (``make test-ui`` points it at the docs' screenshots).

Airflow 3's UI has its Test button in the connection list, not in the form: it tests the *saved*
connection, so the flow saves before each Test. Airflow 3.3.2's Test button fails with "Bad
Request" for any connection without a port (see ``_stored_port_bug``); where that bug is present
the test rewrites that one field of the button's request as the upstream fix does, and says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_motherduck import DEFAULT_API_URL
from airflow_provider_motherduck._compat import AIRFLOW_V_3
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.support import REPO_ROOT
from tests.ui.support import AirflowServer, browser_skip_reason

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route

pytestmark = pytest.mark.browser

_REASON = browser_skip_reason()
if _REASON is not None:
    if AIRFLOW_V_3 and os.environ.get("CI") == "true":
        raise RuntimeError(f"CI must run the browser tests: {_REASON}")  # never skip silently there
    pytest.skip(_REASON, allow_module_level=True)

SCREENSHOTS = Path(os.environ.get("MOTHERDUCK_SCREENSHOT_DIR") or REPO_ROOT / ".artifacts" / "screenshots")
CONN_ID = "motherduck_default"
WRONG_TOKEN = "mdt_0123456789abcdef_not_an_admin_token"
DAG_ID = "md_ui_saved_connection"
DAG_FILE = f'''
"""One task that lists active accounts through the saved ``{CONN_ID}`` connection."""
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_motherduck.operators import MotherDuckListActiveAccountsOperator

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
    MotherDuckListActiveAccountsOperator(task_id="list_active_accounts")
'''


def _active_accounts_calls(emulator: MotherDuckEmulator) -> list[int | None]:
    return [e.status for e in emulator.journal if (e.method, e.path) == ("GET", "/v1/active_accounts")]


# -- the REST endpoints behind the form ----------------------------------------------------------


def test_hook_meta_serves_the_motherduck_form(airflow_server: AirflowServer) -> None:
    """``GET /ui/connections/hook_meta``: what the UI builds the MotherDuck form from."""
    assert (
        airflow_server.api("GET", "/ui/connections/hook_meta", headers={"Authorization": ""}).status_code
        == 401
    )
    response = airflow_server.api("GET", "/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    meta = {m["connection_type"]: m for m in response.json()}["motherduck"]
    assert meta["hook_name"] == "MotherDuck"
    assert meta["hook_class_name"] == "airflow_provider_motherduck.hooks.motherduck.MotherDuckHook"
    fields = meta["standard_fields"]
    for hidden in ("url_schema", "login", "port"):
        assert fields[hidden]["hidden"] is True, hidden
    assert fields["host"] == {"hidden": False, "title": "API URL", "placeholder": DEFAULT_API_URL}
    assert fields["password"]["hidden"] is False
    assert fields["password"]["title"] == "Admin access token"
    extras = meta["extra_fields"]
    assert sorted(extras) == [
        "allow_insecure_http",
        "postgres_host",
        "postgres_port",
        "region",
        "retry_delay",
        "retry_limit",
        "sql_transport",
        "timeout",
    ]
    assert extras["timeout"]["schema"]["title"] == "Timeout (seconds)"
    assert extras["allow_insecure_http"]["value"] is False


def test_connections_test_endpoint(airflow_server: AirflowServer, ui_emulator: MotherDuckEmulator) -> None:
    """``POST /api/v2/connections/test`` runs the hook's ``test_connection`` in the API server."""
    ui_emulator.clear_journal()
    body = {"connection_id": "md_rest_probe", "conn_type": "motherduck", "host": ui_emulator.url}

    good = airflow_server.api(
        "POST", "/api/v2/connections/test", json={**body, "password": ui_emulator.admin_token}
    )
    assert good.status_code == 200, good.text
    assert good.json()["status"] is True
    assert f"Connected to {ui_emulator.url} with an admin token (1 account(s)" in good.json()["message"]

    bad = airflow_server.api("POST", "/api/v2/connections/test", json={**body, "password": WRONG_TOKEN})
    assert bad.status_code == 200, bad.text
    assert bad.json()["status"] is False
    message = bad.json()["message"]
    assert "HTTP 401" in message
    assert "The token of this connection was rejected: it is wrong, expired or revoked" in message
    assert WRONG_TOKEN not in message
    assert _active_accounts_calls(ui_emulator) == [200, 401]


# -- the browser ---------------------------------------------------------------------------------


def _shot(target: Page | Locator, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    target.screenshot(path=str(path), animations="disabled")
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def _connections_list(page: Page, server: AirflowServer) -> Locator:
    """Open Admin, Connections from the navigation bar; return the list's row of CONN_ID."""
    page.goto(f"{server.url}/")
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url("**/connections")
    return page.get_by_role("row").filter(has_text=CONN_ID)


def _save(page: Page, dialog: Locator, toast: str) -> None:
    from playwright.sync_api import expect

    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status").filter(has_text=toast).first).to_be_visible()


def _press_test(page: Page, row: Locator, outcome: str) -> Locator:
    """Press the row's Test button; return the toast that reports ``outcome``."""
    from playwright.sync_api import expect

    row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text=f"Test Connection {outcome}")
    expect(toast).to_be_visible()
    return toast


def _stored_port_bug(server: AirflowServer, host: str) -> bool:
    """Whether this Airflow refuses its own UI's Test of a connection that has no port.

    Airflow 3.3.2's UI posts ``port: Number(null)``, i.e. 0, and its API then answers 400 "The host
    or port to test differs from the stored connection" for every connection without a port (all
    MotherDuck ones). Fixed upstream in the API (apache/airflow#73298, after 3.3.2).
    """
    probe = {
        "connection_id": CONN_ID,
        "conn_type": "motherduck",
        "host": host,
        "port": 0,
        "password": "***",
        "login": "",
        "schema": "",
        "description": "",
        "extra": "{}",
    }
    response = server.api("POST", "/api/v2/connections/test", json=probe)
    return response.status_code == 400 and "differs from the stored connection" in response.text


def _send_missing_port_as_null(route: Route) -> None:
    """Apply apache/airflow#73298 on the way out: the Test of a port-less connection posts no port."""
    body = route.request.post_data_json
    if isinstance(body, dict) and body.get("port") == 0:
        body["port"] = None
    route.continue_(post_data=json.dumps(body))


def test_connection_form_in_the_browser(
    airflow_server: AirflowServer, ui_emulator: MotherDuckEmulator, page: Page
) -> None:
    from playwright.sync_api import expect

    # Admin -> Connections -> Add, type MotherDuck.
    row = _connections_list(page, airflow_server)
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    dialog.get_by_role("combobox").fill("MotherDuck")
    page.get_by_role("option", name="MotherDuck", exact=True).click()

    # The form: schema, login and port hidden; host and password relabelled; the token masked.
    host = dialog.get_by_label("API URL", exact=True)
    token = dialog.get_by_label("Admin access token", exact=True)
    expect(host).to_be_visible()
    expect(host).to_have_attribute("placeholder", DEFAULT_API_URL)
    expect(token).to_have_attribute("type", "password")
    for gone in ("Schema", "Login", "Port", "Host", "Password"):
        expect(dialog.get_by_label(gone, exact=True)).to_have_count(0)
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()  # an accordion: one open
    expect(dialog.get_by_label("Timeout (seconds)")).to_be_visible()
    expect(dialog.get_by_label("Allow plain http")).not_to_be_checked()
    dialog.get_by_role("button", name="Standard Fields", exact=True).click()
    expect(token).to_be_visible()

    host.fill(ui_emulator.url)
    token.fill(ui_emulator.admin_token)
    expect(token).to_have_attribute("type", "password")  # still masked once typed in
    _shot(dialog, "connection-form.png")
    _save(page, dialog, "Create Connection Request Submitted")
    expect(row).to_contain_text(ui_emulator.url)

    saved = airflow_server.api("GET", f"/api/v2/connections/{CONN_ID}").json()
    assert (saved["conn_type"], saved["host"], saved["port"], saved["login"]) == (
        "motherduck",
        ui_emulator.url,
        None,
        None,
    )
    assert saved["password"] == "***"  # stored, and never sent back to a browser

    if _stored_port_bug(airflow_server, ui_emulator.url):
        print("Airflow's Test button posts port 0 for a port-less connection; sending null instead")
        page.route("**/api/v2/connections/test", _send_missing_port_as_null)

    # Test with the right token: success, and the emulator saw the call.
    ui_emulator.clear_journal()
    toast = _press_test(page, row, "Successful")
    expect(toast).to_contain_text(f"Connected to {ui_emulator.url} with an admin token")
    _shot(page, "connection-test-ok.png")
    assert _active_accounts_calls(ui_emulator) == [200]

    # A wrong token, saved, then Test: a failure that says the token was rejected.
    row = _connections_list(page, airflow_server)  # a fresh page: no toast left over
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Admin access token", exact=True)).to_have_value("***")
    dialog.get_by_label("Admin access token", exact=True).fill(WRONG_TOKEN)
    _save(page, dialog, "Update Connection Request Submitted")
    ui_emulator.clear_journal()
    toast = _press_test(page, row, "Failed")
    expect(toast).to_contain_text(
        "The token of this connection was rejected: it is wrong, expired or revoked"
    )
    expect(toast).not_to_contain_text(WRONG_TOKEN)
    _shot(page, "connection-test-failed.png")
    assert _active_accounts_calls(ui_emulator) == [401]

    # The right token again, saved; a DAG task then uses the saved connection.
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Admin access token", exact=True).fill(ui_emulator.admin_token)
    _save(page, dialog, "Update Connection Request Submitted")
    _run_dag_on_saved_connection(airflow_server, ui_emulator)


def _run_dag_on_saved_connection(server: AirflowServer, emulator: MotherDuckEmulator) -> None:
    (server.home / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
    emulator.clear_journal()
    result = server.airflow("dags", "test", DAG_ID)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _active_accounts_calls(emulator) == [200]

    runs = server.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"order_by": "-run_after"}).json()
    run_id = runs["dag_runs"][0]["dag_run_id"]
    task = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/list_active_accounts"
    assert server.api("GET", task).json()["state"] == "success"
    xcom = server.api("GET", f"{task}/xcomEntries/return_value", params={"deserialize": "true"}).json()
    value = xcom["value"]
    accounts = json.loads(value) if isinstance(value, str) else value
    assert [a["username"] for a in accounts] == ["etl_bot"]
