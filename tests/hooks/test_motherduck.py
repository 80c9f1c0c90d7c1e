"""MotherDuckHook against the emulator over real HTTP: every endpoint, errors, retries, secrets."""

from __future__ import annotations

import json
import logging
import pickle
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import (
    MotherDuckAPIError,
    MotherDuckAuthError,
    MotherDuckConfigError,
    MotherDuckConflictError,
    MotherDuckNotFoundError,
    MotherDuckRouteNotFoundError,
    MotherDuckSQLError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.hooks.raw_server import RawServer, chunked, reset
from tests.sql_standin import StandIn, booted
from tests.support import CONN_ENV, FakeSleep, connection_json

STANDARD = {
    "read_write": {"instance_size": "standard", "cooldown_seconds": 60},
    "read_scaling": {"instance_size": "standard", "flock_size": 4, "cooldown_seconds": 60},
}


def writes(emulator: MotherDuckEmulator) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in emulator.journal if e.method != "GET"]


# -- endpoints -------------------------------------------------------------------------------------


def test_user_lifecycle(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    assert hook.create_user("etl_bot") == {"username": "etl_bot"}
    assert "etl_bot" in emulator.users()
    assert hook.get_duckling_config("etl_bot") == STANDARD
    assert hook.delete_user("etl_bot") is True
    assert "etl_bot" not in emulator.users()
    assert hook.delete_user("etl_bot", missing_ok=True) is False
    with pytest.raises(MotherDuckNotFoundError) as info:
        hook.delete_user("etl_bot")
    assert info.value.status_code == 404
    assert info.value.code == "NOT_FOUND"
    assert info.value.path == "/v1/users/etl_bot"


@pytest.mark.parametrize("status", [400, 409])
def test_create_existing_user_is_a_conflict(status: int, motherduck_conn: str, fake_sleep: FakeSleep) -> None:
    with MotherDuckEmulator(duplicate_user_status=status) as emu, pytest.MonkeyPatch.context() as mp:
        mp.setenv(CONN_ENV, connection_json(emu.url, emu.admin_token))
        emu.add_user("etl_bot")
        with pytest.raises(MotherDuckConflictError) as info:
            MotherDuckHook(sleep=fake_sleep).create_user("etl_bot")
    assert info.value.status_code == status
    assert fake_sleep.waits == []


def test_token_lifecycle(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    emulator.add_user("etl_bot")
    created = hook.create_token("etl_bot", "nightly", ttl="1 day", token_type="read_scaling")
    assert created["token"].startswith("mdt_")
    assert emulator.is_valid_token(created["token"])
    assert created["token_type"] == "read_scaling"
    assert created["read_only"] is True
    assert emulator.journal[-1].body == {"name": "nightly", "token_type": "read_scaling", "ttl": 86400}
    forever = hook.create_token("etl_bot", "forever")
    assert "ttl" not in emulator.journal[-1].body  # never expires: ttl left out, not null
    assert not forever.get("expire_at")

    listed = hook.list_tokens("etl_bot")
    assert {t["id"] for t in listed} == {created["id"], forever["id"]}
    assert all("token" not in t for t in listed)
    expiring = next(t for t in listed if t["id"] == created["id"])
    assert expiring["expire_at"]

    assert hook.revoke_token("etl_bot", created["id"]) is True
    assert not emulator.is_valid_token(created["token"])
    assert hook.revoke_token("etl_bot", created["id"], missing_ok=True) is False
    with pytest.raises(MotherDuckNotFoundError):
        hook.revoke_token("etl_bot", created["id"])
    assert [t["id"] for t in hook.list_tokens("etl_bot")] == [forever["id"]]


def test_path_segments_are_percent_encoded(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    with pytest.raises(MotherDuckNotFoundError):
        hook.delete_user("../users/admin")
    assert emulator.journal[-1].path == "/v1/users/..%2Fusers%2Fadmin"
    assert "admin" in emulator.users()


def test_human_users_names_need_not_be_service_account_names(
    hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    emulator.add_user("jane.doe-1")
    assert hook.list_tokens("jane.doe-1") == []
    assert hook.delete_user("jane.doe-1") is True
    assert emulator.journal[-1].path == "/v1/users/jane.doe-1"
    with pytest.raises(ValueError, match=r"username='jane\.doe-1'.*a letter first"):
        hook.create_user("jane.doe-1")  # new users are service accounts, which follow the rule


def test_a_secret_given_as_token_id_goes_nowhere(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    """The R package's mistake: the secret instead of the id. Refused unsent, and not echoed."""
    emulator.add_user("etl_bot")
    secret = emulator.add_token("etl_bot", "t")["token"]
    emulator.clear_journal()
    with pytest.raises(
        ValueError, match=r"token_id \(a str of \d+ characters, not shown.*\) is invalid"
    ) as info:
        hook.revoke_token("etl_bot", secret)
    assert secret not in str(info.value)
    assert emulator.journal == []


def test_duckling_config_set_and_update(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    emulator.add_user("etl_bot")
    jumbo = {
        "read_write": {"instance_size": "jumbo", "cooldown_seconds": 600},
        "read_scaling": {"instance_size": "pulse", "flock_size": 2},
    }
    assert hook.set_duckling_config("etl_bot", jumbo) == jumbo
    assert emulator.duckling_config("etl_bot") == jumbo

    emulator.clear_journal()
    assert hook.update_duckling_config("etl_bot", read_scaling={"flock_size": 8}) == {
        **jumbo,
        "read_scaling": {"instance_size": "pulse", "flock_size": 8},
    }
    assert [e.method for e in emulator.journal] == ["GET", "PUT"]
    assert emulator.journal[-1].body == {"config": emulator.duckling_config("etl_bot")}

    emulator.clear_journal()
    hook.update_duckling_config("etl_bot", read_write={"instance_size": "jumbo"})
    assert writes(emulator) == []  # nothing changes, nothing is written


def test_plan_limit_error_keeps_code_message_and_issues(
    motherduck_conn: str, fake_sleep: FakeSleep, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MotherDuckEmulator(max_flock_size=16) as emu:
        monkeypatch.setenv(CONN_ENV, connection_json(emu.url, emu.admin_token))
        emu.add_user("etl_bot")
        with pytest.raises(MotherDuckAPIError) as info:
            MotherDuckHook(sleep=fake_sleep).update_duckling_config(
                "etl_bot", read_scaling={"flock_size": 32}
            )
    err = info.value
    assert (err.status_code, err.code, err.method) == (400, "BAD_REQUEST", "PUT")
    assert "Invalid config for tier" in err.message
    assert "Invalid config for tier" in str(err)
    assert fake_sleep.waits == []


def test_server_side_validation_issues_are_kept(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    # Bypass client validation to see the server's field-level issues come through intact.
    with pytest.raises(MotherDuckAPIError) as info:
        hook._request("POST", "/v1/users", {"username": "9lives"})
    assert info.value.code == "BAD_REQUEST"
    assert info.value.issues
    assert info.value.issues[0]["path"] == ["username"]
    assert "username:" in str(info.value)


def test_active_accounts(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    assert hook.list_active_accounts() == []
    emulator.add_user("etl_bot")
    ducklings = [{"id": "rw", "type": "read_write", "status": "active"}]
    emulator.set_ducklings("etl_bot", ducklings)
    assert hook.list_active_accounts() == [{"username": "etl_bot", "ducklings": ducklings}]


def test_bad_input_sends_nothing(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    emulator.clear_journal()
    with pytest.raises(ValueError, match="username="):
        hook.create_user("etl-bot")
    with pytest.raises(ValueError, match="ttl="):
        hook.create_token("etl_bot", "t", ttl="1 minute")
    with pytest.raises(ValueError, match="token_type="):
        hook.create_token("etl_bot", "t", token_type="admin")
    with pytest.raises(ValueError, match=r"read_scaling.flock_size=99"):
        hook.update_duckling_config("etl_bot", read_scaling={"flock_size": 99})
    with pytest.raises(ValueError, match=r"token_id \(a str of \d+ characters, not shown.*\) is invalid"):
        hook.revoke_token("etl_bot", "")
    assert emulator.journal == []


# -- errors and auth -------------------------------------------------------------------------------


def test_wrong_token_is_an_auth_error_without_the_token(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "mdt_wrong_secret_0123456789"
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, wrong))
    hook = MotherDuckHook()
    with pytest.raises(MotherDuckAuthError) as info:
        hook.list_active_accounts()
    assert info.value.status_code == 401
    assert "rejected" in str(info.value)
    assert wrong not in str(info.value)
    ok, message = hook.test_connection()
    assert not ok
    assert "wrong, expired or revoked" in message
    assert wrong not in message


def test_non_admin_token_is_forbidden(emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.add_user("etl_bot")
    member = emulator.add_token("etl_bot", "member")["token"]
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, member))
    ok, message = MotherDuckHook().test_connection()
    assert not ok
    assert "HTTP 403" in message
    assert "Admin role" in message


def test_connection_ok(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    ok, message = hook.test_connection()
    assert ok
    assert emulator.url in message


def test_plain_text_404_is_a_route_error(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url + "/wrong-prefix", emulator.admin_token))
    with pytest.raises(MotherDuckRouteNotFoundError) as info:
        MotherDuckHook().delete_user("etl_bot", missing_ok=True)  # missing_ok must not hide a wrong host
    assert "API URL" in str(info.value)
    assert not isinstance(info.value, MotherDuckNotFoundError)


@pytest.mark.parametrize("status", [401, 403])
def test_plain_text_401_403_from_a_proxy_is_still_an_auth_error(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, status: int
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=status, body="Forbidden by the gateway")
    with pytest.raises(MotherDuckAuthError) as info:
        hook.list_active_accounts()
    assert info.value.status_code == status
    assert "Forbidden by the gateway" in str(info.value)
    assert "connection 'motherduck_default'" in str(info.value)  # what to fix, and where


def test_an_answer_that_is_not_json_is_an_api_error(
    hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=200, body="<html>a login page</html>")
    with pytest.raises(MotherDuckAPIError, match="not JSON") as info:
        hook.list_active_accounts()
    assert (info.value.status_code, info.value.method, info.value.path) == (200, "GET", "/v1/active_accounts")


# -- connection settings ---------------------------------------------------------------------------


def test_init_looks_nothing_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONN_ENV, raising=False)
    hook = MotherDuckHook("does_not_exist")
    assert repr(hook) == "MotherDuckHook(motherduck_conn_id='does_not_exist')"


def test_missing_token_names_the_three_places(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MD_EMPTY", json.dumps({"conn_type": "motherduck"}))
    with pytest.raises(MotherDuckConfigError) as info:
        MotherDuckHook("md_empty").list_active_accounts()
    text = str(info.value)
    assert "'md_empty'" in text
    assert "password" in text
    assert "extra 'token'" in text
    assert "MOTHERDUCK_TOKEN" in text


def test_token_from_extra_then_environment(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MD_EXTRA",
        json.dumps(
            {"conn_type": "motherduck", "host": emulator.url, "extra": {"token": emulator.admin_token}}
        ),
    )
    assert MotherDuckHook("md_extra").test_connection()[0]
    monkeypatch.setenv("AIRFLOW_CONN_MD_ENV", json.dumps({"conn_type": "motherduck", "host": emulator.url}))
    monkeypatch.setenv("MOTHERDUCK_TOKEN", emulator.admin_token)
    assert MotherDuckHook("md_env").test_connection()[0]


@pytest.mark.parametrize(
    ("host", "extra", "expected"),
    [
        (None, {}, "https://api.motherduck.com"),
        ("api.motherduck.com", {}, "https://api.motherduck.com"),
        ("https://api.motherduck.com/", {}, "https://api.motherduck.com"),
        ("http://127.0.0.1:8080", {}, "http://127.0.0.1:8080"),
        ("http://localhost:9", {}, "http://localhost:9"),
        ("http://md.internal", {"allow_insecure_http": True}, "http://md.internal"),
    ],
)
def test_base_url(
    host: str | None, extra: dict[str, object], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MD_URL",
        json.dumps({"conn_type": "motherduck", "host": host, "password": "x" * 12, "extra": extra}),
    )
    assert MotherDuckHook("md_url").settings.base_url == expected


def test_plain_http_to_a_remote_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MD_HTTP",
        json.dumps({"conn_type": "motherduck", "host": "http://md.example", "password": "x" * 12}),
    )
    with pytest.raises(MotherDuckConfigError, match="plain http"):
        MotherDuckHook("md_http").list_active_accounts()


def test_timeout_and_retries_from_extras_and_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "motherduck", "password": "x" * 12, "extra": {"timeout": "5", "retry_limit": 7}}
    monkeypatch.setenv("AIRFLOW_CONN_MD_T", json.dumps(conn))
    settings = MotherDuckHook("md_t").settings
    assert (settings.timeout, settings.retry_limit, settings.retry_delay) == (5.0, 7, 1.0)
    overridden = MotherDuckHook("md_t", timeout=2, retry_limit=0).settings
    assert (overridden.timeout, overridden.retry_limit) == (2.0, 0)
    monkeypatch.setenv("AIRFLOW_CONN_MD_T", json.dumps({**conn, "extra": {"timeout": "soon"}}))
    with pytest.raises(MotherDuckConfigError, match="timeout='soon'"):
        _ = MotherDuckHook("md_t").settings


def test_a_pasted_token_is_stripped(emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, f" {emulator.admin_token}\n"))
    assert MotherDuckHook().test_connection()[0]


def test_a_token_with_inner_spaces_is_refused_unsent(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = "mdt_first_half second_half"
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, broken))
    with pytest.raises(MotherDuckConfigError, match="spaces, control characters") as info:
        MotherDuckHook().list_active_accounts()
    assert "second_half" not in str(info.value)
    assert emulator.journal == []


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"timeout": 0}, "timeout=0 is invalid: out of range. Allowed: a finite number of seconds above 0."),
        ({"timeout": "nan"}, "timeout=nan is invalid"),
        (
            {"retry_delay": "inf"},
            "retry_delay=inf is invalid: out of range. Allowed: a finite number of seconds",
        ),
        ({"retry_limit": float("inf")}, "retry_limit=inf is invalid"),
        (
            {"retry_limit": 1.7},
            "retry_limit=1.7 is invalid: not a whole number. Allowed: a whole number of 0 or more",
        ),
        ({"retry_limit": "1.7"}, "retry_limit=1.7 is invalid: not a whole number"),
        ({"allow_insecure_http": "maybe"}, "allow_insecure_http='maybe' is invalid"),
    ],
)
def test_unusable_extras_are_refused(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, object], problem: str
) -> None:
    monkeypatch.setenv(
        CONN_ENV, json.dumps({"conn_type": "motherduck", "password": "x" * 12, "extra": extra})
    )
    with pytest.raises(MotherDuckConfigError) as info:
        _ = MotherDuckHook().settings
    assert problem in str(info.value)


def test_null_extras_mean_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the connection form saves for fields left empty."""
    extra = {"timeout": None, "retry_limit": None, "retry_delay": None, "allow_insecure_http": None}
    monkeypatch.setenv(
        CONN_ENV, json.dumps({"conn_type": "motherduck", "password": "x" * 12, "extra": extra})
    )
    settings = MotherDuckHook().settings
    assert (settings.timeout, settings.retry_limit, settings.retry_delay) == (30.0, 3, 1.0)


# -- retries ---------------------------------------------------------------------------------------


def test_429_with_retry_after_seconds(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=429, retry_after="7", times=2)
    assert hook.list_active_accounts() == []
    assert fake_sleep.waits == [7.0, 7.0]
    assert [e.status for e in emulator.journal] == [429, 429, 200]


def test_429_with_retry_after_http_date(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    # The wait is measured against the real clock, so bound it by the time the call took.
    target = (datetime.now(timezone.utc) + timedelta(seconds=30)).replace(microsecond=0)
    emulator.inject(
        "GET", "/v1/active_accounts", status=429, retry_after=format_datetime(target, usegmt=True)
    )
    started = datetime.now(timezone.utc)
    hook.list_active_accounts()
    finished = datetime.now(timezone.utc)
    assert len(fake_sleep.waits) == 1
    assert (
        (target - finished).total_seconds() - 0.01
        <= fake_sleep.waits[0]
        <= (target - started).total_seconds()
    )


def test_retry_after_is_capped(
    emulator: MotherDuckEmulator, motherduck_conn: str, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=429, retry_after="86400")
    MotherDuckHook(max_retry_wait=12, sleep=fake_sleep).list_active_accounts()
    assert fake_sleep.waits == [12]


def test_post_is_retried_on_429(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    emulator.add_user("etl_bot")
    emulator.inject("POST", "/v1/users/etl_bot/tokens", status=429)
    hook.create_token("etl_bot", "t")
    assert len(emulator.tokens("etl_bot")) == 1
    assert len(fake_sleep.waits) == 1


def test_exponential_backoff_with_jitter(
    motherduck_conn: str, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=503, times=4)
    hook = MotherDuckHook(retry_limit=4, retry_delay=1.0, sleep=fake_sleep)
    assert hook.list_active_accounts() == []
    for attempt, wait in enumerate(fake_sleep.waits):
        ceiling = 2.0**attempt
        assert ceiling / 2 <= wait <= ceiling
    assert len(fake_sleep.waits) == 4


def test_retries_run_out(hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=502, times=10)
    with pytest.raises(MotherDuckAPIError) as info:
        hook.list_active_accounts()
    assert info.value.status_code == 502
    assert len(fake_sleep.waits) == 3  # the default retry_limit
    assert len(emulator.journal) == 4


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_is_not_retried_on_5xx(status: int, hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    emulator.inject("POST", "/v1/users", status=status, after=True)
    with pytest.raises(MotherDuckAPIError) as info:
        hook.create_user("etl_bot")
    assert info.value.status_code == status
    assert [e.method for e in emulator.journal] == ["POST"]
    assert emulator.users().count("etl_bot") == 1  # processed once, never twice


@pytest.mark.parametrize("fault", [{"status": 500}, {"drop": True}], ids=["500", "dropped"])
def test_a_create_token_that_may_have_been_carried_out_says_how_to_find_it(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fault: dict[str, Any]
) -> None:
    """The real-scheduler defect: MotherDuck created the token, then the answer was lost."""
    emulator.add_user("etl_bot")
    emulator.inject("POST", "/v1/users/etl_bot/tokens", after=True, **fault)
    with pytest.raises(MotherDuckAPIError) as info:
        hook.create_token("etl_bot", "nightly")
    err = info.value
    assert err.maybe_carried_out is True
    assert (
        "the token may have been created: list the tokens of 'etl_bot' and look for one named 'nightly'"
        in str(err)
    )
    (created,) = emulator.tokens("etl_bot")  # created once, not repeated
    assert created["name"] == "nightly"
    copy = pickle.loads(pickle.dumps(err))  # Airflow pickles task errors
    assert (type(copy), copy.maybe_carried_out, str(copy)) == (type(err), True, str(err))
    assert emulator.admin_token not in str(err) + repr(err)


@pytest.mark.parametrize("fault", [{"status": 503}, {"drop": True}], ids=["503", "dropped"])
def test_a_create_user_that_may_have_been_carried_out_says_how_to_find_it(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fault: dict[str, Any]
) -> None:
    emulator.inject("POST", "/v1/users", after=True, **fault)
    with pytest.raises(MotherDuckAPIError) as info:
        hook.create_user("etl_bot")
    assert info.value.maybe_carried_out is True
    assert "the user 'etl_bot' may have been created: list its tokens or the users" in str(info.value)
    assert emulator.users().count("etl_bot") == 1


def test_a_refused_create_was_not_carried_out(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    """A throttled POST, retried until the retries run out, created nothing: the flag says so."""
    emulator.inject("POST", "/v1/users", status=429, times=10)
    with pytest.raises(MotherDuckAPIError) as info:
        hook.create_user("etl_bot")
    assert (info.value.status_code, info.value.maybe_carried_out) == (429, False)
    assert "may have been created" not in str(info.value)
    assert "throttled this call on all 4 attempts: try again later" in str(info.value)
    assert "etl_bot" not in emulator.users()


def test_post_is_not_repeated_after_a_dropped_answer(
    hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    emulator.add_user("etl_bot")
    emulator.inject("POST", "/v1/users/etl_bot/tokens", drop=True, after=True)
    with pytest.raises(MotherDuckAPIError, match="may have reached MotherDuck"):
        hook.create_token("etl_bot", "nightly")
    assert len(emulator.tokens("etl_bot")) == 1  # created once, and the hook did not mint a second
    assert len([e for e in emulator.journal if e.method == "POST"]) == 1


@pytest.mark.parametrize(
    "fault", [{"status": 503}, {"status": 502}, {"drop": True}], ids=["503", "502", "dropped"]
)
@pytest.mark.parametrize("what", ["token", "user"])
def test_delete_whose_answer_was_lost_is_done_not_missing(
    hook: MotherDuckHook,
    emulator: MotherDuckEmulator,
    fake_sleep: FakeSleep,
    fault: dict[str, Any],
    what: str,
) -> None:
    """MotherDuck deleted it but the answer was lost: the retry's 404 means done, not "not found"."""
    emulator.add_user("etl_bot")
    token_id = emulator.add_token("etl_bot", "t")["id"]
    path = f"/v1/users/etl_bot/tokens/{token_id}" if what == "token" else "/v1/users/etl_bot"
    emulator.inject("DELETE", path, after=True, **fault)
    if what == "token":
        assert hook.revoke_token("etl_bot", token_id) is True
        assert emulator.tokens("etl_bot") == []
    else:
        assert hook.delete_user("etl_bot") is True
        assert "etl_bot" not in emulator.users()
    assert [e.method for e in emulator.journal] == ["DELETE", "DELETE"]
    assert emulator.journal[-1].status == 404


def test_delete_of_a_missing_token_after_a_429_is_still_missing(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    """A 429 was not carried out, so the 404 that follows is a real "not found"."""
    emulator.add_user("etl_bot")
    missing = "123e4567-e89b-12d3-a456-426614174000"
    emulator.inject("DELETE", f"/v1/users/etl_bot/tokens/{missing}", status=429)
    with pytest.raises(MotherDuckNotFoundError):
        hook.revoke_token("etl_bot", missing)
    assert hook.revoke_token("etl_bot", missing, missing_ok=True) is False


def test_get_is_retried_after_a_dropped_connection(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", drop=True)
    assert hook.list_active_accounts() == []
    assert len(fake_sleep.waits) == 1


def test_connection_refused_is_retried_even_for_post(
    monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(CONN_ENV, connection_json(f"http://127.0.0.1:{port}", "mdt_x_0123456789"))
    with pytest.raises(MotherDuckAPIError, match="could not connect") as info:
        MotherDuckHook(retry_limit=2, retry_delay=0.01, sleep=fake_sleep).create_user("etl_bot")
    assert info.value.status_code is None
    assert len(fake_sleep.waits) == 2


def test_each_retry_is_logged(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=503)
    with caplog.at_level(logging.WARNING):
        hook.list_active_accounts()
    assert any("GET /v1/active_accounts failed (503); retry 1 of 3" in r.getMessage() for r in caplog.records)


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_are_masked_and_never_logged(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_user("etl_bot")
    emulator.inject("POST", "/v1/users/etl_bot/tokens", status=429)
    with caplog.at_level(logging.DEBUG):
        secret = hook.create_token("etl_bot", "nightly")["token"]
        hook.list_tokens("etl_bot")
    assert redact(f"the token is {secret}") == "the token is ***"
    assert redact(f"admin {emulator.admin_token}") == "admin ***"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /v1/users/etl_bot/tokens -> 200" in logged
    for value in (secret, emulator.admin_token):
        assert value not in logged
        assert value not in repr(hook)
        assert value not in repr(hook.settings)


# -- current user over SQL -------------------------------------------------------------------------

USER_INFO_MACRO = (
    "CREATE MACRO md_user_info() AS TABLE SELECT 'u-1' AS user_id, 'etl_bot' AS username, "
    "'o-1' AS org_id, 'Acme' AS org_name, 'business' AS org_type, 'aws-us-east-1' AS region"
)


def test_current_user_from_md_user_info(hook: MotherDuckHook) -> None:
    duckdb = pytest.importorskip("duckdb")
    with duckdb.connect(":memory:") as con:  # a table macro stands in for MotherDuck's md_user_info()
        con.execute(USER_INFO_MACRO)
        assert hook.get_current_user(con) == {
            "user_id": "u-1",
            "username": "etl_bot",
            "org_id": "o-1",
            "org_name": "Acme",
            "org_type": "business",
            "region": "aws-us-east-1",
        }


def test_plain_duckdb_is_not_taken_for_motherduck(hook: MotherDuckHook) -> None:
    duckdb = pytest.importorskip("duckdb")
    with duckdb.connect(":memory:") as con:
        local_user = con.execute("SELECT current_user").fetchone()[0]
        with pytest.raises(MotherDuckSQLError, match="not a MotherDuck session") as info:
            hook.get_current_user(con)
    assert repr(local_user) in str(info.value)  # plain DuckDB's default user, reported as such


def test_current_user_with_an_unexpected_shape(hook: MotherDuckHook) -> None:
    duckdb = pytest.importorskip("duckdb")
    with duckdb.connect(":memory:") as con:
        con.execute("CREATE MACRO md_user_info() AS TABLE SELECT 'x' AS username")
        with pytest.raises(MotherDuckSQLError, match="expected one row with user_id"):
            hook.get_current_user(con)


def test_current_user_sends_the_token_only_as_a_setting(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, duckdb_standin: StandIn
) -> None:
    duckdb_standin.setup.append(USER_INFO_MACRO)
    assert hook.get_current_user()["username"] == "etl_bot"
    [con] = duckdb_standin.connections
    assert (con.database, emulator.admin_token in repr(con.config)) == (":memory:", False)
    assert con.sent == [*booted(emulator.admin_token), "FROM md_user_info()"]


# -- bad input: path segments and the API URL -------------------------------------------------------


@pytest.mark.parametrize("username", ["", ".", ".."])
def test_a_dot_or_empty_path_segment_is_refused_unsent(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, username: str
) -> None:
    """``requests`` would resolve them: ``/v1/users/..`` is ``/v1/``, another route."""
    calls = [
        lambda: hook.delete_user(username),
        lambda: hook.list_tokens(username),
        lambda: hook.create_token(username, "t"),
        lambda: hook.revoke_token(username, "123e4567-e89b-12d3-a456-426614174000"),
        lambda: hook.get_duckling_config(username),
        lambda: hook.set_duckling_config(username, STANDARD),
        lambda: hook.update_duckling_config(username, read_scaling={"flock_size": 2}),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=rf"^username={username!r} is invalid"):
            call()
    assert emulator.journal == []


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("https://admin:hunter2secret@api.motherduck.com", "carries credentials"),
        ("https://hunter2secret@api.motherduck.com", "carries credentials"),
        ("https://api.motherduck.com/?token=hunter2secret", "carries a query or a fragment"),
        ("https://api.motherduck.com/#hunter2secret", "carries a query or a fragment"),
        ("https://api.motherduck.com/v1 hunter2secret", "contains whitespace"),
        ("https://api.mother\tduck.com/hunter2secret", "contains whitespace"),
    ],
)
def test_an_api_url_with_credentials_a_query_a_fragment_or_whitespace_is_refused(
    monkeypatch: pytest.MonkeyPatch, host: str, problem: str
) -> None:
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "motherduck", "host": host, "password": "x" * 12}))
    with pytest.raises(MotherDuckConfigError, match=problem) as info:
        _ = MotherDuckHook().settings
    assert "connection 'motherduck_default'" in str(info.value)
    assert "hunter2secret" not in str(info.value)  # never echoed: it may be a secret


def test_surrounding_whitespace_of_a_pasted_api_url_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "motherduck", "host": " https://api.motherduck.com/\n", "password": "x" * 12}
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    assert MotherDuckHook().settings.base_url == "https://api.motherduck.com"


# -- answer size limits ----------------------------------------------------------------------------


def test_a_success_answer_over_16_mib_is_not_read_even_when_streamed(
    monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    """No Content-Length to refuse up front: the hook stops reading at the limit."""
    with RawServer(chunked(17 * 2**20)) as server:
        monkeypatch.setenv(CONN_ENV, connection_json(server.url, "mdt_x_0123456789"))
        with pytest.raises(MotherDuckAPIError) as info:
            MotherDuckHook(sleep=fake_sleep).list_active_accounts()
    assert str(info.value).startswith(
        "MotherDuck GET /v1/active_accounts failed (HTTP 200): the answer is larger than 16 MiB, so it was not read"
    )
    assert fake_sleep.waits == []


def test_a_streamed_answer_within_the_limit_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def accounts(conn: socket.socket) -> None:
        body = b'{"accounts": []}' + b" " * 3 * 2**20  # whitespace is valid JSON padding
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + body)

    with RawServer(accounts) as server:
        monkeypatch.setenv(CONN_ENV, connection_json(server.url, "mdt_x_0123456789"))
        assert MotherDuckHook().list_active_accounts() == []


def test_an_error_answer_over_1_mib_is_not_read(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=400, body="e" * (2**20 + 1))
    with pytest.raises(MotherDuckAPIError) as info:
        hook.list_active_accounts()
    assert info.value.status_code == 400
    assert "an error answer larger than 1 MiB, not read" in str(info.value)
    assert "eeee" not in str(info.value)


# -- network faults the emulator cannot play -------------------------------------------------------


def test_a_tcp_reset_after_a_post_is_not_repeated(
    monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    with RawServer(reset) as server:
        monkeypatch.setenv(CONN_ENV, connection_json(server.url, "mdt_x_0123456789"))
        with pytest.raises(MotherDuckAPIError) as info:
            MotherDuckHook(sleep=fake_sleep).create_token("etl_bot", "nightly")
        assert len(server.requests) == 1
    assert info.value.maybe_carried_out is True
    assert "the connection broke before the answer arrived" in str(info.value)
    assert "look for one named 'nightly'" in str(info.value)


def test_a_tcp_reset_of_a_get_is_retried(monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep) -> None:
    with RawServer(reset) as server:
        monkeypatch.setenv(CONN_ENV, connection_json(server.url, "mdt_x_0123456789"))
        with pytest.raises(MotherDuckAPIError, match=r"ConnectionError, 3 attempts") as info:
            MotherDuckHook(retry_limit=2, sleep=fake_sleep).list_active_accounts()
        assert len(server.requests) == 3
    assert info.value.maybe_carried_out is False  # a read carries nothing out


# -- timeouts --------------------------------------------------------------------------------------


def test_the_timeout_applies_to_a_slow_answer(
    emulator: MotherDuckEmulator, motherduck_conn: str, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", delay=0.05)  # slow, within the timeout
    assert MotherDuckHook(timeout=5, sleep=fake_sleep).list_active_accounts() == []
    emulator.inject("GET", "/v1/active_accounts", delay=0.3)  # slower than the timeout
    with pytest.raises(MotherDuckAPIError, match=r"no answer within the timeout of 0.1 s \(ReadTimeout\)"):
        MotherDuckHook(timeout=0.1, retry_limit=0, sleep=fake_sleep).list_active_accounts()
    deadline = time.monotonic() + 10  # the emulator finishes the slow answer on its own
    while len(emulator.journal) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.status for e in emulator.journal] == [200, 200]


def test_a_get_that_timed_out_once_is_retried_and_succeeds(
    emulator: MotherDuckEmulator, motherduck_conn: str, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", delay=0.3, drop=True)
    assert MotherDuckHook(timeout=0.1, sleep=fake_sleep).list_active_accounts() == []
    assert len(fake_sleep.waits) == 1


def test_a_post_that_timed_out_is_not_repeated_and_says_it_may_be_done(
    emulator: MotherDuckEmulator, motherduck_conn: str, fake_sleep: FakeSleep
) -> None:
    emulator.inject("POST", "/v1/users", delay=0.3, drop=True, after=True)
    with pytest.raises(MotherDuckAPIError) as info:
        MotherDuckHook(timeout=0.1, sleep=fake_sleep).create_user("etl_bot")
    assert info.value.maybe_carried_out is True
    assert "may have reached MotherDuck, so it was not repeated" in str(info.value)
    deadline = time.monotonic() + 10
    while "etl_bot" not in emulator.users() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emulator.users().count("etl_bot") == 1
    assert [e.method for e in emulator.journal] == ["POST"]


# -- retry timing over HTTP ------------------------------------------------------------------------


def test_retry_after_on_a_503_for_a_get(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=503, retry_after="4")
    assert hook.list_active_accounts() == []
    assert fake_sleep.waits == [4.0]


def test_max_retry_wait_caps_the_backoff(
    emulator: MotherDuckEmulator, motherduck_conn: str, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=502, times=3)
    MotherDuckHook(retry_delay=10, max_retry_wait=0.5, sleep=fake_sleep).list_active_accounts()
    assert fake_sleep.waits == [0.5, 0.5, 0.5]


def test_501_is_not_retried(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=501)
    with pytest.raises(MotherDuckAPIError, match="does not offer this call there"):
        hook.list_active_accounts()
    assert fake_sleep.waits == []


# -- the last input gaps: refused before anything is sent -------------------------------------------


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (
            lambda h: h.create_token("etl_bot", "nightly\nX-Injected: 1"),
            r"^token_name=.* control characters \(U\+000A\)",
        ),
        (
            lambda h: h.create_token("etl_bot", "night\x00ly"),
            r"^token_name=.* control characters \(U\+0000\)",
        ),
        (
            lambda h: h.create_dive_embed_session("d" * 256, "etl_bot"),
            r"^dive_id='ddd.*' is invalid: it has 256 characters. Allowed: a Dive id \(a UUID",
        ),
        (
            lambda h: h.create_dive_embed_session("dive 1", "etl_bot"),
            r"^dive_id='dive 1' is invalid: it contains spaces",
        ),
        (
            lambda h: h.create_dive_embed_session("dive-1", "etl_bot", session_name="s" * 256),
            r"^session_name=.* it has 256 characters. Allowed: a name of 1 to 255 characters",
        ),
        (
            lambda h: h.create_dive_embed_session("dive-1", "etl_bot", session_name="a\tb"),
            r"^session_name='a\\tb' is invalid: it contains control characters",
        ),
    ],
    ids=[
        "token-name-newline",
        "token-name-nul",
        "dive-id-long",
        "dive-id-space",
        "session-name-long",
        "session-name-tab",
    ],
)
def test_bad_names_and_ids_are_refused_unsent(
    call: Any, problem: str, hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    emulator.add_user("etl_bot")
    emulator.clear_journal()
    with pytest.raises(ValueError, match=problem):
        call(hook)
    assert emulator.journal == []


def test_max_retry_wait_is_at_most_an_hour() -> None:
    with pytest.raises(
        ValueError, match=r"^max_retry_wait=1000000000000.0 is invalid: out of range. Allowed: .* to 3600"
    ):
        MotherDuckHook(max_retry_wait=1e12)
    assert MotherDuckHook(max_retry_wait=3600).max_retry_wait == 3600


@pytest.mark.parametrize(
    ("conn", "problem"),
    [
        ({"port": 99999}, r"The port \(port=99999\) of connection 'motherduck_default' is invalid"),
        (
            {"host_suffix": ":99999"},
            r"The port \(in the API URL\) of connection 'motherduck_default' is invalid",
        ),
        ({"host_suffix": ":abc"}, r"The port \(in the API URL\)"),
    ],
)
def test_an_unusable_port_is_refused_unsent(
    conn: dict[str, Any], problem: str, emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = "http://127.0.0.1" + conn.pop("host_suffix", "")
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps({"conn_type": "motherduck", "host": host, "password": emulator.admin_token, **conn}),
    )
    with pytest.raises(MotherDuckConfigError, match=problem):
        MotherDuckHook().list_active_accounts()
    assert emulator.journal == []


def test_a_non_ascii_token_is_refused_unsent(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, "mdt_tökén_0123456789"))
    with pytest.raises(MotherDuckConfigError, match="non-ASCII characters \\(not shown\\)") as info:
        MotherDuckHook().list_active_accounts()
    assert "tökén" not in str(info.value)
    assert emulator.journal == []


def test_an_unknown_extra_is_a_warning_naming_the_known_ones(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(emulator.url, emulator.admin_token, timout=5, colour="blue"))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_motherduck"):
        assert MotherDuckHook().list_active_accounts() == []
    (warning,) = [r.getMessage() for r in caplog.records if "unknown" in r.getMessage()]
    assert warning == (
        "The extras of connection 'motherduck_default': unknown 'colour', 'timout' (did you mean 'timeout'?) "
        "ignored. Known: timeout, retry_limit, retry_delay, allow_insecure_http, sql_transport, postgres_host, "
        "postgres_port, region, token."
    )
