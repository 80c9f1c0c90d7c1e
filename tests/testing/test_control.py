"""The control API under /_emulator/ and its client, in-process over HTTP and against ``serve``."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_motherduck.testing import EmulatorControl, JournalEntry, MotherDuckEmulator
from tests.testing.support import Api, as_api, serve, wait_for_info

ACTIVE = [{"id": "rw", "type": "read_write", "status": "active"}]
CONFIG = {
    "read_write": {"instance_size": "mega", "cooldown_seconds": 300},
    "read_scaling": {"instance_size": "standard", "flock_size": 2, "cooldown_seconds": 60},
}


@pytest.fixture
def control(md: MotherDuckEmulator) -> EmulatorControl:
    return EmulatorControl(md.url, md.control_key)


def test_the_control_api_needs_its_own_key(md: MotherDuckEmulator) -> None:
    url = md.url + "/_emulator/secrets"
    for headers in ({}, {"X-Emulator-Control-Key": "wrong"}, {"Authorization": f"Bearer {md.admin_token}"}):
        response = requests.get(url, headers=headers, timeout=5)
        assert response.status_code == 401
        assert "X-Emulator-Control-Key" in response.json()["error"]
    with pytest.raises(PermissionError):
        EmulatorControl(md.url, "wrong").issued_secrets()


def test_the_control_key_opens_no_motherduck_route(md: MotherDuckEmulator) -> None:
    response = requests.get(
        md.url + "/v1/active_accounts", headers={"X-Emulator-Control-Key": md.control_key}, timeout=5
    )
    assert response.status_code == 401


def test_control_calls_are_neither_journaled_nor_faulted(
    md: MotherDuckEmulator, control: EmulatorControl
) -> None:
    md.inject("*", "*", status=503, times=5)
    assert control.settings() == {"max_page_size": 500, "user_listing": True, "business_plan": True}
    assert md.journal == []
    assert as_api(md, md.admin_token)("GET", "/v1/active_accounts").status_code == 503


def test_unknown_control_routes_and_bad_bodies(md: MotherDuckEmulator) -> None:
    headers = {"X-Emulator-Control-Key": md.control_key}
    assert requests.get(md.url + "/_emulator/nothing", headers=headers, timeout=5).status_code == 404
    broken = requests.post(md.url + "/_emulator/faults", data=b"{", headers=headers, timeout=5)
    assert (broken.status_code, broken.json()) == (400, {"error": "the request body is not valid JSON"})
    not_object = requests.post(md.url + "/_emulator/seed", json=[1], headers=headers, timeout=5)
    assert not_object.status_code == 400


def test_seeding_and_state_through_the_client(md: MotherDuckEmulator, control: EmulatorControl) -> None:
    control.add_user("jane", roles=["builder"], first_name="Jane")
    control.load_seed({"users": ["bi/bot"], "ducklings": {"bi/bot": ACTIVE}})
    control.set_duckling_config("bi/bot", CONFIG)
    token = control.add_token("bi/bot", "ci", ttl=600)
    assert md.is_valid_token(token["token"])
    users = {u["username"]: u for u in control.users()}
    assert list(users) == ["admin", "etl_bot", "jane", "bi/bot"]
    assert (users["jane"]["roles"], users["jane"]["first_name"]) == (["builder"], "Jane")
    assert users["bi/bot"]["ducklings"] == ACTIVE
    assert users["bi/bot"]["duckling_config"] == CONFIG
    assert users["bi/bot"]["tokens"] == md.tokens("bi/bot")
    assert "token" not in users["bi/bot"]["tokens"][0]
    control.set_ducklings("bi/bot", [])
    assert md.describe_users()[-1]["ducklings"] == []


def test_client_errors_are_the_emulators(control: EmulatorControl) -> None:
    with pytest.raises(ValueError, match="already exists"):
        control.add_user("etl_bot")
    with pytest.raises(ValueError, match="unknown roles"):
        control.add_user("x", roles=["owner"])
    with pytest.raises(KeyError, match="ghost"):
        control.set_ducklings("ghost", ACTIVE)
    with pytest.raises(ValueError, match="status"):
        control.inject("GET", "/v1/users", status=42)
    with pytest.raises(ValueError, match="unknown settings"):
        control.configure(plan="free")
    with pytest.raises(ValueError, match="ducklings"):
        control.set_ducklings("etl_bot", "active")  # type: ignore[arg-type]


def test_faults_journal_and_secrets_through_the_client(
    md: MotherDuckEmulator, control: EmulatorControl, api: Api
) -> None:
    control.inject("POST", "/v1/users/*/tokens", status=429, retry_after="0")
    assert api("POST", "/v1/users/etl_bot/tokens", json={"name": "ci"}).status_code == 429
    created = api("POST", "/v1/users/etl_bot/tokens", json={"name": "ci"}).json()
    session = api("POST", "/v1/dives/d1/embed-session", json={"username": "etl_bot"}).json()["session"]
    journal = control.journal()
    assert journal == md.journal
    assert all(isinstance(e, JournalEntry) for e in journal)
    assert [(e.status, e.fault) for e in journal] == [(429, True), (200, False), (200, False)]
    secrets = [s["secret"] for s in control.issued_secrets()]
    assert secrets == [md.admin_token, created["token"], session]
    control.clear_journal()
    assert md.journal == []
    control.inject("GET", "/v1/active_accounts", status=503)
    control.clear_faults()
    assert api("GET", "/v1/active_accounts").status_code == 200


def test_listing_quirks_and_settings_through_the_client(
    md: MotherDuckEmulator, control: EmulatorControl, api: Api
) -> None:
    md.load_seed({"users": ["a_bot", "b_bot", "c_bot"]})
    control.repeat_listing_cursor()
    control.add_user_during_listing("aa_bot", after_pages=1, deprovisioned=True)
    first = api("GET", "/v1/users", params={"limit": 2}).json()
    second = api("GET", "/v1/users", params={"limit": 2, "page_token": first["next_page_token"]}).json()
    assert second["next_page_token"] == first["next_page_token"]
    assert "aa_bot" in md.users()
    assert control.configure(user_listing=False, max_page_size=10) == {
        "max_page_size": 10,
        "user_listing": False,
        "business_plan": True,
    }
    assert api("GET", "/v1/users").text == "Not Found"
    control.configure(business_plan=False)
    assert api("POST", "/v1/dives/d1/embed-session", json={"username": "a_bot"}).status_code == 403


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``serve`` with a seed file of every kind, until the test has read its info file."""
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "users": [
                    "etl_bot",
                    {
                        "username": "jane",
                        "roles": ["explorer"],
                        "email": "jane@corp.test",
                        "last_name": "Doe",
                    },
                    {"username": "gone_bot", "deprovisioned": True},
                ],
                "duckling_configs": {"etl_bot": CONFIG},
                "ducklings": {"etl_bot": ACTIVE},
            }
        )
    )
    info_file = tmp_path / "emulator.json"
    process = serve(
        *("--seed", str(seed), "--info-file", str(info_file)),
        *("--max-page-size", "2", "--no-business-plan"),
    )
    try:
        wait_for_info(process, info_file)
        yield process, info_file
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_a_served_emulator_is_driven_from_another_process(served: tuple[subprocess.Popen[str], Path]) -> None:
    process, info_file = served
    control = EmulatorControl.from_info_file(info_file)
    info: dict[str, Any] = json.loads(info_file.read_text())
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {info['admin_token']}"
    users = {u["username"]: u for u in control.users()}
    assert (users["jane"]["roles"], users["jane"]["email"], users["jane"]["last_name"]) == (
        ["explorer"],
        "jane@corp.test",
        "Doe",
    )
    assert users["gone_bot"]["is_deprovisioned"] is True
    assert users["etl_bot"]["duckling_config"] == CONFIG
    assert control.settings() == {"max_page_size": 2, "user_listing": True, "business_plan": False}
    assert api.get(info["url"] + "/v1/users", params={"limit": 3}, timeout=5).status_code == 400

    control.set_ducklings("jane", ACTIVE)
    control.inject("GET", "/v1/active_accounts", status=503)
    assert api.get(info["url"] + "/v1/active_accounts", timeout=5).status_code == 503
    accounts = api.get(info["url"] + "/v1/active_accounts", timeout=5).json()["accounts"]
    assert [a["username"] for a in accounts] == ["etl_bot", "jane"]
    control.configure(business_plan=True)
    session = api.post(
        info["url"] + "/v1/dives/d1/embed-session", json={"username": "etl_bot"}, timeout=5
    ).json()["session"]
    assert [e.status for e in control.journal()] == [400, 503, 200, 200]
    assert [s["secret"] for s in control.issued_secrets()] == [info["admin_token"], session]
    api.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert not info_file.exists()


def test_serve_without_user_listing(tmp_path: Path) -> None:
    info_file = tmp_path / "emulator.json"
    process = serve("--no-user-listing", "--info-file", str(info_file))
    try:
        info = wait_for_info(process, info_file)
        headers = {"Authorization": f"Bearer {info['admin_token']}"}
        response = requests.get(info["url"] + "/v1/users", headers=headers, timeout=5)
        assert (response.status_code, response.text) == (404, "Not Found")
    finally:
        process.kill()
        process.communicate(timeout=10)
