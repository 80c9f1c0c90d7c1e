"""The MotherDuck emulator, driven over real HTTP the way a client would drive MotherDuck."""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import shlex
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_motherduck.testing import JournalEntry, MotherDuckEmulator
from tests.testing.support import Api, Clock, as_api, assert_error, serve, wait_for_info

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
NEW_USER_CONFIG = {
    "read_write": {"instance_size": "standard", "cooldown_seconds": 60},
    "read_scaling": {"instance_size": "standard", "flock_size": 4, "cooldown_seconds": 60},
}
DROP = object()
RW = {"instance_size": "jumbo", "cooldown_seconds": 120}
RS = {"instance_size": "standard", "flock_size": 4}


def cfg(rw: dict[str, Any] | None = None, rs: dict[str, Any] | None = None) -> dict[str, Any]:
    """A PUT body: RW and RS with some keys changed (``DROP`` removes a key)."""
    read_write = {k: v for k, v in {**RW, **(rw or {})}.items() if v is not DROP}
    read_scaling = {k: v for k, v in {**RS, **(rs or {})}.items() if v is not DROP}
    return {"config": {"read_write": read_write, "read_scaling": read_scaling}}


# --- endpoints, happy paths -------------------------------------------------------------


def test_create_user_gives_a_service_account_with_default_config(api: Api, md: MotherDuckEmulator) -> None:
    response = api("POST", "/v1/users", json={"username": "Loader_2"})
    assert response.status_code == 200
    assert response.json() == {"username": "Loader_2"}
    assert md.users() == ["admin", "etl_bot", "Loader_2"]
    assert api("GET", "/v1/users/Loader_2/instances").json() == NEW_USER_CONFIG
    assert md.duckling_config("Loader_2") == NEW_USER_CONFIG


def test_delete_user_removes_tokens_config_and_ducklings(api: Api, md: MotherDuckEmulator) -> None:
    secret = api("POST", "/v1/users/etl_bot/tokens", json={"name": "ci"}).json()["token"]
    md.set_ducklings("etl_bot", [{"id": "rw", "type": "read_write", "status": "active"}])
    response = api("DELETE", "/v1/users/etl_bot")
    assert response.status_code == 200
    assert response.json() == {"username": "etl_bot"}
    assert md.users() == ["admin"]
    assert not md.is_valid_token(secret)
    assert api("GET", "/v1/active_accounts").json() == {"accounts": []}
    assert_error(api("GET", "/v1/users/etl_bot/instances"), 404, "NOT_FOUND", "ducklings.getConfig")
    api("POST", "/v1/users", json={"username": "etl_bot"})
    assert md.duckling_config("etl_bot") == NEW_USER_CONFIG
    assert md.tokens("etl_bot") == []


def test_create_token_answer(api: Api, md: MotherDuckEmulator, clock: Clock) -> None:
    response = api("POST", "/v1/users/etl_bot/tokens", json={"name": "nightly", "ttl": 3600})
    assert response.status_code == 200
    token = response.json()
    assert set(token) == {"token", "id", "name", "expire_at", "created_ts", "read_only", "token_type"}
    assert token["token"].startswith("mdt_")
    assert not token["token"].startswith("eyJ")
    assert str(uuid.UUID(token["id"])) == token["id"]
    assert token["name"] == "nightly"
    assert token["created_ts"] == "2026-01-02T03:04:05.678Z"
    assert token["expire_at"] == "2026-01-02T04:04:05.678Z"
    assert token["read_only"] is False
    assert token["token_type"] == "read_write"
    assert md.is_valid_token(token["token"])


def test_non_expiring_read_scaling_token_has_no_expire_at(api: Api) -> None:
    body = {"name": "bi", "token_type": "read_scaling"}
    token = api("POST", "/v1/users/etl_bot/tokens", json=body).json()
    assert "expire_at" not in token
    assert token["read_only"] is True
    assert token["token_type"] == "read_scaling"
    assert ISO_MS.fullmatch(token["created_ts"])


def test_list_tokens_shows_metadata_never_secrets(api: Api, md: MotherDuckEmulator) -> None:
    first = api("POST", "/v1/users/etl_bot/tokens", json={"name": "a", "ttl": 300}).json()
    second = api("POST", "/v1/users/etl_bot/tokens", json={"name": "b"}).json()
    response = api("GET", "/v1/users/etl_bot/tokens")
    assert response.status_code == 200
    listed = response.json()["tokens"]
    assert listed == [{k: v for k, v in t.items() if k != "token"} for t in (first, second)]
    assert first["token"] not in response.text
    assert second["token"] not in response.text
    assert md.tokens("etl_bot") == listed


def test_delete_token_invalidates_it(api: Api, md: MotherDuckEmulator) -> None:
    token = api("POST", "/v1/users/etl_bot/tokens", json={"name": "ci"}).json()
    response = api("DELETE", f"/v1/users/etl_bot/tokens/{token['id']}")
    assert response.status_code == 200
    assert response.json() == {}
    assert md.tokens("etl_bot") == []
    assert not md.is_valid_token(token["token"])
    again = api("DELETE", f"/v1/users/etl_bot/tokens/{token['id']}")
    assert_error(again, 404, "NOT_FOUND", "tokens.deleteToken")


def test_put_instances_stores_and_fills_default_cooldowns(api: Api, md: MotherDuckEmulator) -> None:
    body = {
        "config": {
            "read_write": {"instance_size": "mega"},
            "read_scaling": {"instance_size": "pulse", "flock_size": 0},
        }
    }
    expected = {
        "read_write": {"instance_size": "mega", "cooldown_seconds": 300},
        "read_scaling": {"instance_size": "pulse", "flock_size": 0},
    }
    response = api("PUT", "/v1/users/etl_bot/instances", json=body)
    assert response.status_code == 200
    assert response.json() == expected
    assert api("GET", "/v1/users/etl_bot/instances").json() == expected
    assert md.duckling_config("etl_bot") == expected


def test_active_accounts_lists_only_users_with_running_ducklings(api: Api, md: MotherDuckEmulator) -> None:
    md.add_user("idle_bot")
    md.add_user("bi_bot")
    ducklings = [
        {"id": "rw", "type": "read_write", "status": "active"},
        {"id": "rs.0", "type": "read_scaling", "status": "cooldown"},
    ]
    md.set_ducklings("bi_bot", ducklings)
    md.set_ducklings("idle_bot", [{"id": "rw", "type": "read_write", "status": "active"}])
    md.set_ducklings("idle_bot", [])
    response = api("GET", "/v1/active_accounts")
    assert response.status_code == 200
    assert response.json() == {"accounts": [{"username": "bi_bot", "ducklings": ducklings}]}


def test_percent_encoded_segments_are_decoded_one_by_one(api: Api, md: MotherDuckEmulator) -> None:
    md.add_user("odd name/x")
    response = api("POST", "/v1/users/odd%20name%2Fx/tokens", json={"name": "t"})
    assert response.status_code == 200
    assert [t["name"] for t in md.tokens("odd name/x")] == ["t"]
    unencoded = api("GET", "/v1/users/odd name/x/tokens")
    assert unencoded.status_code == 404
    assert unencoded.text == "Not Found"


def test_query_string_is_ignored_for_routing(api: Api) -> None:
    assert api("GET", "/v1/active_accounts?limit=5").json() == {"accounts": []}


# --- validation ---------------------------------------------------------------------------

ROUTE = {
    "user": ("POST", "/v1/users", "users.createServiceAccount"),
    "token": ("POST", "/v1/users/etl_bot/tokens", "tokens.createToken"),
    "config": ("PUT", "/v1/users/etl_bot/instances", "ducklings.setConfig"),
}

INVALID = [
    pytest.param("user", {}, ["username"], "invalid_type", id="username-missing"),
    pytest.param("user", {"username": None}, ["username"], "invalid_type", id="username-null"),
    pytest.param("user", {"username": 42}, ["username"], "invalid_type", id="username-number"),
    pytest.param("user", {"username": ""}, ["username"], "too_small", id="username-empty"),
    pytest.param("user", {"username": "a" * 256}, ["username"], "too_big", id="username-256"),
    pytest.param("user", {"username": "1abc"}, ["username"], "invalid_string", id="username-digit-first"),
    pytest.param("user", {"username": "_abc"}, ["username"], "invalid_string", id="username-underscore-1st"),
    pytest.param("user", {"username": "ab-c"}, ["username"], "invalid_string", id="username-dash"),
    pytest.param("user", {"username": "ab c"}, ["username"], "invalid_string", id="username-space"),
    pytest.param("user", {"username": "abc\n"}, ["username"], "invalid_string", id="username-newline"),
    pytest.param("user", {"username": "ok", "role": "admin"}, [], "unrecognized_keys", id="user-extra-key"),
    pytest.param("user", ["etl"], [], "invalid_type", id="user-body-array"),
    pytest.param("token", {}, ["name"], "invalid_type", id="name-missing"),
    pytest.param("token", {"name": ""}, ["name"], "too_small", id="name-empty"),
    pytest.param("token", {"name": "n" * 256}, ["name"], "too_big", id="name-256"),
    pytest.param("token", {"name": "t", "ttl": 299}, ["ttl"], "too_small", id="ttl-299"),
    pytest.param("token", {"name": "t", "ttl": 31_536_001}, ["ttl"], "too_big", id="ttl-over-a-year"),
    pytest.param("token", {"name": "t", "ttl": None}, ["ttl"], "invalid_type", id="ttl-null"),
    pytest.param("token", {"name": "t", "ttl": "600"}, ["ttl"], "invalid_type", id="ttl-string"),
    pytest.param("token", {"name": "t", "ttl": True}, ["ttl"], "invalid_type", id="ttl-bool"),
    pytest.param(
        "token", {"name": "t", "token_type": "admin"}, ["token_type"], "invalid_enum_value", id="type-unknown"
    ),
    pytest.param(
        "token", {"name": "t", "token_type": None}, ["token_type"], "invalid_enum_value", id="type-null"
    ),
    pytest.param("token", {"name": "t", "expires_in": 600}, [], "unrecognized_keys", id="token-extra-key"),
    pytest.param("config", {}, ["config"], "invalid_type", id="config-missing"),
    pytest.param("config", {"config": []}, ["config"], "invalid_type", id="config-array"),
    pytest.param("config", {**cfg(), "dry_run": True}, [], "unrecognized_keys", id="body-extra-key"),
    pytest.param(
        "config",
        {"config": {"read_write": RW}},
        ["config", "read_scaling"],
        "invalid_type",
        id="half-missing",
    ),
    pytest.param(
        "config",
        {"config": {**cfg()["config"], "region": "eu"}},
        ["config"],
        "unrecognized_keys",
        id="config-extra-key",
    ),
    pytest.param(
        "config",
        cfg(rw={"instance_size": DROP}),
        ["config", "read_write", "instance_size"],
        "invalid_type",
        id="size-missing",
    ),
    pytest.param(
        "config",
        cfg(rw={"instance_size": "huge"}),
        ["config", "read_write", "instance_size"],
        "invalid_enum_value",
        id="size-unknown",
    ),
    pytest.param(
        "config",
        cfg(rs={"flock_size": DROP}),
        ["config", "read_scaling", "flock_size"],
        "invalid_type",
        id="flock-missing",
    ),
    pytest.param(
        "config",
        cfg(rs={"flock_size": -1}),
        ["config", "read_scaling", "flock_size"],
        "too_small",
        id="flock-negative",
    ),
    pytest.param(
        "config",
        cfg(rs={"flock_size": 65}),
        ["config", "read_scaling", "flock_size"],
        "too_big",
        id="flock-65",
    ),
    pytest.param(
        "config",
        cfg(rs={"flock_size": 4.5}),
        ["config", "read_scaling", "flock_size"],
        "invalid_type",
        id="flock-float",
    ),
    pytest.param(
        "config",
        cfg(rs={"flock_size": "4"}),
        ["config", "read_scaling", "flock_size"],
        "invalid_type",
        id="flock-string",
    ),
    pytest.param(
        "config",
        cfg(rw={"cooldown_seconds": 59}),
        ["config", "read_write", "cooldown_seconds"],
        "too_small",
        id="cooldown-59",
    ),
    pytest.param(
        "config",
        cfg(rs={"cooldown_seconds": 86_401}),
        ["config", "read_scaling", "cooldown_seconds"],
        "too_big",
        id="cooldown-over-a-day",
    ),
    pytest.param(
        "config",
        cfg(rw={"cooldown_seconds": 60.5}),
        ["config", "read_write", "cooldown_seconds"],
        "invalid_type",
        id="cooldown-float",
    ),
    pytest.param(
        "config",
        cfg(rw={"instance_size": "pulse", "cooldown_seconds": 60}),
        ["config", "read_write", "cooldown_seconds"],
        "custom",
        id="cooldown-with-pulse",
    ),
    pytest.param(
        "config", cfg(rw={"flock_size": 2}), ["config", "read_write"], "unrecognized_keys", id="rw-flock"
    ),
]


@pytest.mark.parametrize(("route", "body", "issue_path", "issue_code"), INVALID)
def test_invalid_bodies_get_400_with_issues_and_change_nothing(
    api: Api, md: MotherDuckEmulator, route: str, body: Any, issue_path: list[str], issue_code: str
) -> None:
    method, path, procedure = ROUTE[route]
    response = api(method, path, json=body)
    error = assert_error(response, 400, "BAD_REQUEST", procedure)
    assert {"code": issue_code, "path": issue_path} in [
        {"code": i["code"], "path": i["path"]} for i in error["issues"]
    ]
    assert error["message"] == error["issues"][0]["message"]
    assert md.users() == ["admin", "etl_bot"]
    assert md.tokens("etl_bot") == []
    assert md.duckling_config("etl_bot") == NEW_USER_CONFIG


VALID_EDGES = [
    pytest.param("user", {"username": "a"}, id="username-1"),
    pytest.param("user", {"username": "Z" * 255}, id="username-255"),
    pytest.param("user", {"username": "a_1_B"}, id="username-mixed"),
    pytest.param("token", {"name": "n" * 255, "ttl": 300}, id="ttl-300"),
    pytest.param("token", {"name": "t", "ttl": 31_536_000}, id="ttl-a-year"),
    pytest.param("token", {"name": "t", "ttl": 600.5}, id="ttl-float"),
    pytest.param("token", {"name": "t", "token_type": "read_write"}, id="type-read-write"),
    pytest.param("config", cfg(rs={"flock_size": 0}), id="flock-0"),
    pytest.param("config", cfg(rs={"flock_size": 64, "cooldown_seconds": 86_400}), id="flock-64"),
    pytest.param("config", cfg(rw={"instance_size": "giga", "cooldown_seconds": 60}), id="cooldown-60"),
    pytest.param("config", cfg(rw={"instance_size": "pulse", "cooldown_seconds": DROP}), id="pulse"),
]


@pytest.mark.parametrize(("route", "body"), VALID_EDGES)
def test_edge_values_are_accepted(api: Api, route: str, body: dict[str, Any]) -> None:
    method, path, _ = ROUTE[route]
    assert api(method, path, json=body).status_code == 200


BAD_FRAMING = [
    pytest.param({}, id="no-body"),
    pytest.param({"data": "{", "headers": {"Content-Type": "application/json"}}, id="not-json"),
    pytest.param({"data": '{"username": "x"}', "headers": {"Content-Type": "text/plain"}}, id="wrong-type"),
    pytest.param(
        {"data": '{"username": NaN}', "headers": {"Content-Type": "application/json"}}, id="nan-constant"
    ),
]


@pytest.mark.parametrize("kwargs", BAD_FRAMING)
def test_missing_or_non_json_body_is_400(api: Api, md: MotherDuckEmulator, kwargs: dict[str, Any]) -> None:
    error = assert_error(api("POST", "/v1/users", **kwargs), 400, "BAD_REQUEST", "users.createServiceAccount")
    assert "issues" not in error
    assert md.users() == ["admin", "etl_bot"]


def test_chunked_body_is_read(api: Api, md: MotherDuckEmulator) -> None:
    chunks = iter([b'{"username":', b' "chunky"}'])
    response = api("POST", "/v1/users", data=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert "chunky" in md.users()


def test_flock_size_above_plan_limit_is_a_tier_error(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start(max_flock_size=16)
    md.add_user("etl_bot")
    api = as_api(md, md.admin_token)
    error = assert_error(
        api("PUT", "/v1/users/etl_bot/instances", json=cfg(rs={"flock_size": 17})),
        400,
        "BAD_REQUEST",
        "ducklings.setConfig",
    )
    assert error["message"].startswith("Invalid config for tier")
    assert "issues" not in error
    assert api("PUT", "/v1/users/etl_bot/instances", json=cfg(rs={"flock_size": 16})).status_code == 200
    with pytest.raises(ValueError, match="Invalid config for tier"):
        md.set_duckling_config("etl_bot", cfg(rs={"flock_size": 17})["config"])


def test_duplicate_user_is_400_unique_constraint_by_default(api: Api, md: MotherDuckEmulator) -> None:
    error = assert_error(
        api("POST", "/v1/users", json={"username": "etl_bot"}),
        400,
        "BAD_REQUEST",
        "users.createServiceAccount",
    )
    assert 'duplicate key value violates unique constraint "users_username_key"' in error["message"]
    assert md.users() == ["admin", "etl_bot"]


def test_duplicate_user_can_be_409(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start(duplicate_user_status=409)
    api = as_api(md, md.admin_token)
    assert api("POST", "/v1/users", json={"username": "bot"}).status_code == 200
    assert_error(
        api("POST", "/v1/users", json={"username": "bot"}), 409, "CONFLICT", "users.createServiceAccount"
    )


def test_usernames_are_one_whatever_their_case(api: Api, md: MotherDuckEmulator) -> None:
    """As MotherDuck: creating ETL_BOT when etl_bot exists is a duplicate; paths find the user
    whatever the case; the listing keeps the spelling it was created with."""
    assert_error(
        api("POST", "/v1/users", json={"username": "ETL_Bot"}),
        400,
        "BAD_REQUEST",
        "users.createServiceAccount",
    )
    assert api("POST", "/v1/users/ETL_BOT/tokens", json={"name": "t"}).status_code == 200
    assert [t["name"] for t in api("GET", "/v1/users/Etl_Bot/tokens").json()["tokens"]] == ["t"]
    assert "etl_bot" in [u["username"] for u in api("GET", "/v1/users").json()["users"]]
    assert api("DELETE", "/v1/users/ETL_bot").status_code == 200
    assert md.users() == ["admin"]


# --- auth ------------------------------------------------------------------------------------

UNAUTHORIZED_HEADERS = [
    pytest.param({}, id="missing"),
    pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
    pytest.param({"Authorization": "Basic YWRtaW46eA=="}, id="basic"),
    pytest.param({"Authorization": "Bearer mdt_unknown"}, id="unknown-secret"),
]


@pytest.mark.parametrize("headers", UNAUTHORIZED_HEADERS)
def test_bad_credentials_get_401(md: MotherDuckEmulator, headers: dict[str, str]) -> None:
    response = requests.post(md.url + "/v1/users", json={"username": "x"}, headers=headers, timeout=5)
    assert_error(response, 401, "UNAUTHORIZED", "users.createServiceAccount")
    assert md.users() == ["admin", "etl_bot"]


def test_bearer_scheme_is_case_insensitive(md: MotherDuckEmulator) -> None:
    headers = {"Authorization": f"bearer {md.admin_token}"}
    assert requests.get(md.url + "/v1/active_accounts", headers=headers, timeout=5).status_code == 200


def test_read_scaling_token_of_the_admin_gets_403(md: MotherDuckEmulator) -> None:
    secret = md.add_token("admin", "bi", token_type="read_scaling")["token"]
    assert_error(
        as_api(md, secret)("GET", "/v1/active_accounts"), 403, "FORBIDDEN", "ducklings.activeAccounts"
    )


def test_service_account_token_from_the_api_authenticates_but_is_not_admin(
    api: Api, md: MotherDuckEmulator
) -> None:
    secret = api("POST", "/v1/users/etl_bot/tokens", json={"name": "ci"}).json()["token"]
    bot = as_api(md, secret)
    assert_error(bot("GET", "/v1/users/etl_bot/tokens"), 403, "FORBIDDEN", "tokens.listTokens")
    assert_error(
        bot("POST", "/v1/users", json={"username": "x"}), 403, "FORBIDDEN", "users.createServiceAccount"
    )


def test_other_human_admins_get_no_tokens_and_are_not_deleted(api: Api, md: MotherDuckEmulator) -> None:
    md.add_user("jane", admin=True)
    assert_error(
        api("POST", "/v1/users/jane/tokens", json={"name": "x"}), 403, "FORBIDDEN", "tokens.createToken"
    )
    assert_error(api("DELETE", "/v1/users/jane"), 403, "FORBIDDEN", "users.deleteUser")
    assert md.tokens("jane") == []
    assert "jane" in md.users()


def test_admin_may_create_tokens_for_itself_and_use_them(api: Api, md: MotherDuckEmulator) -> None:
    response = api("POST", "/v1/users/admin/tokens", json={"name": "second"})
    assert response.status_code == 200
    assert as_api(md, response.json()["token"])("GET", "/v1/active_accounts").status_code == 200


def test_a_seeded_human_admin_token_works(md: MotherDuckEmulator) -> None:
    md.add_user("jane", admin=True)
    secret = md.add_token("jane", "laptop")["token"]
    assert as_api(md, secret)("POST", "/v1/users", json={"username": "jane_bot"}).status_code == 200


# --- 404s ------------------------------------------------------------------------------------

MISSING_USER = [
    pytest.param("DELETE", "/v1/users/ghost", None, "users.deleteUser", id="delete-user"),
    pytest.param("POST", "/v1/users/ghost/tokens", {"name": "t"}, "tokens.createToken", id="create-token"),
    pytest.param("GET", "/v1/users/ghost/tokens", None, "tokens.listTokens", id="list-tokens"),
    pytest.param("DELETE", "/v1/users/ghost/tokens/abc", None, "tokens.deleteToken", id="delete-token"),
    pytest.param("DELETE", "/v1/users/etl_bot/tokens/abc", None, "tokens.deleteToken", id="unknown-token-id"),
    pytest.param("GET", "/v1/users/ghost/instances", None, "ducklings.getConfig", id="get-config"),
    pytest.param("PUT", "/v1/users/ghost/instances", cfg(), "ducklings.setConfig", id="put-config"),
]


@pytest.mark.parametrize(("method", "path", "body", "procedure"), MISSING_USER)
def test_missing_user_or_token_is_json_404(
    api: Api, method: str, path: str, body: Any, procedure: str
) -> None:
    assert_error(api(method, path, json=body), 404, "NOT_FOUND", procedure)


def test_a_token_id_of_another_user_is_not_found(api: Api, md: MotherDuckEmulator) -> None:
    md.add_user("other_bot")
    token = md.add_token("other_bot", "t")
    response = api("DELETE", f"/v1/users/etl_bot/tokens/{token['id']}")
    assert_error(response, 404, "NOT_FOUND", "tokens.deleteToken")
    assert md.is_valid_token(token["token"])


NO_ROUTE = [
    pytest.param("GET", "/v1/nothing", id="unknown"),
    pytest.param("GET", "/users", id="no-version"),
    pytest.param("PATCH", "/v1/users/etl_bot", id="wrong-method"),
    pytest.param("GET", "/v1/users/etl_bot", id="get-user"),
    pytest.param("POST", "/v1/active_accounts", id="post-accounts"),
    pytest.param("GET", "/v1/users/etl_bot/tokens/", id="trailing-slash"),
    pytest.param("DELETE", "/v1/users//tokens/x", id="empty-segment"),
]


@pytest.mark.parametrize(("method", "path"), NO_ROUTE)
@pytest.mark.parametrize("token", [True, False], ids=["with-token", "without-token"])
def test_unknown_route_is_plain_text_404(md: MotherDuckEmulator, method: str, path: str, token: bool) -> None:
    response = as_api(md, md.admin_token if token else None)(method, path)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "Not Found"


# --- token lifecycle --------------------------------------------------------------------------


def test_token_lifecycle_create_use_delete(api: Api, md: MotherDuckEmulator) -> None:
    created = api("POST", "/v1/users/admin/tokens", json={"name": "rotation"}).json()
    fresh = as_api(md, created["token"])
    assert fresh("GET", "/v1/users/admin/tokens").status_code == 200
    assert fresh("DELETE", f"/v1/users/admin/tokens/{created['id']}").status_code == 200
    assert_error(fresh("GET", "/v1/active_accounts"), 401, "UNAUTHORIZED", "ducklings.activeAccounts")
    assert api("GET", "/v1/active_accounts").status_code == 200


def test_token_expires_by_the_injected_clock(api: Api, md: MotherDuckEmulator, clock: Clock) -> None:
    created = api("POST", "/v1/users/admin/tokens", json={"name": "short", "ttl": 300}).json()
    holder = as_api(md, created["token"])
    clock.now += timedelta(seconds=299)
    assert holder("GET", "/v1/active_accounts").status_code == 200
    clock.now += timedelta(seconds=1)
    assert_error(holder("GET", "/v1/active_accounts"), 401, "UNAUTHORIZED", "ducklings.activeAccounts")
    assert not md.is_valid_token(created["token"])
    assert [t["id"] for t in md.tokens("admin")][-1] == created["id"]


def test_a_naive_clock_is_read_as_utc(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start(clock=lambda: datetime(2026, 5, 6, 7, 8, 9))
    token = md.add_token("admin", "t", ttl=300)
    assert (token["created_ts"], token["expire_at"]) == (
        "2026-05-06T07:08:09.000Z",
        "2026-05-06T07:13:09.000Z",
    )


def test_default_clock_is_real_utc(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start()
    created = datetime.strptime(md.tokens("admin")[0]["created_ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(created.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(seconds=60)


# --- faults -----------------------------------------------------------------------------------

STATUS_CODES = [
    (429, "TOO_MANY_REQUESTS"),
    (500, "INTERNAL_SERVER_ERROR"),
    (502, "BAD_GATEWAY"),
    (503, "SERVICE_UNAVAILABLE"),
    (504, "GATEWAY_TIMEOUT"),
]


@pytest.mark.parametrize(("status", "code"), STATUS_CODES)
def test_status_fault_answers_instead_and_changes_nothing(
    api: Api, md: MotherDuckEmulator, status: int, code: str
) -> None:
    md.inject("POST", "/v1/users", status=status)
    assert_error(
        api("POST", "/v1/users", json={"username": "bot"}), status, code, "users.createServiceAccount"
    )
    assert "bot" not in md.users()
    assert md.journal[-1] == JournalEntry("POST", "/v1/users", status, {"username": "bot"}, fault=True)
    assert api("POST", "/v1/users", json={"username": "bot"}).status_code == 200


@pytest.mark.parametrize("retry_after", ["2", "Wed, 21 Oct 2015 07:28:00 GMT"], ids=["seconds", "http-date"])
def test_retry_after_header_is_sent_verbatim(api: Api, md: MotherDuckEmulator, retry_after: str) -> None:
    md.inject("GET", "/v1/active_accounts", status=429, retry_after=retry_after)
    response = api("GET", "/v1/active_accounts")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == retry_after
    assert "Retry-After" not in api("GET", "/v1/active_accounts").headers


def test_glob_any_method_and_times(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("*", "/v1/users/*/tokens", status=503, times=2)
    assert api("GET", "/v1/active_accounts").status_code == 200
    assert api("GET", "/v1/users/etl_bot/tokens").status_code == 503
    assert api("POST", "/v1/users/etl_bot/tokens", json={"name": "t"}).status_code == 503
    assert md.tokens("etl_bot") == []
    assert api("GET", "/v1/users/etl_bot/tokens").status_code == 200


def test_fault_only_matches_its_method(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("get", "/v1/users/etl_bot/tokens", status=500)
    assert api("POST", "/v1/users/etl_bot/tokens", json={"name": "t"}).status_code == 200
    assert api("GET", "/v1/users/etl_bot/tokens").status_code == 500


def test_fault_body_can_be_text_or_json(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("GET", "/v1/active_accounts", status=502, body="<html>Bad gateway</html>")
    md.inject("GET", "/v1/active_accounts", status=200, body={"accounts": "oops"})
    html = api("GET", "/v1/active_accounts")
    assert (html.status_code, html.text) == (502, "<html>Bad gateway</html>")
    assert html.headers["Content-Type"].startswith("text/plain")
    assert api("GET", "/v1/active_accounts").json() == {"accounts": "oops"}


def test_delay_alone_adds_latency_and_handles_normally(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("*", "*", delay=0.3, times=1000)
    begin = time.perf_counter()
    assert api("POST", "/v1/users", json={"username": "slow"}).status_code == 200
    assert api("GET", "/v1/active_accounts").status_code == 200
    assert time.perf_counter() - begin >= 0.6
    assert "slow" in md.users()
    assert [e.fault for e in md.journal] == [False, False]
    md.clear_faults()
    api("GET", "/v1/active_accounts")
    assert md.journal[-1].fault is False  # no longer delayed: the fault is gone


def test_delay_then_status(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("GET", "/v1/active_accounts", status=504, delay=0.05)
    begin = time.perf_counter()
    assert api("GET", "/v1/active_accounts").status_code == 504
    assert time.perf_counter() - begin >= 0.05


def test_drop_closes_without_answer_and_changes_nothing(api: Api, md: MotherDuckEmulator) -> None:
    assert api("GET", "/v1/active_accounts").status_code == 200  # a pooled keep-alive connection
    md.inject("POST", "/v1/users", drop=True)
    with pytest.raises(requests.ConnectionError):
        api("POST", "/v1/users", json={"username": "lost"})
    assert "lost" not in md.users()
    assert md.journal[-1] == JournalEntry("POST", "/v1/users", None, {"username": "lost"}, fault=True)
    assert api("POST", "/v1/users", json={"username": "lost"}).status_code == 200


def test_after_status_applies_the_request_then_fails(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("POST", "/v1/users/etl_bot/tokens", status=502, after=True)
    response = api("POST", "/v1/users/etl_bot/tokens", json={"name": "maybe"})
    assert response.status_code == 502
    assert [t["name"] for t in md.tokens("etl_bot")] == ["maybe"]
    assert md.journal[-1].fault is True


def test_after_drop_applies_the_request_then_hangs_up(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("POST", "/v1/users", drop=True, after=True)
    with pytest.raises(requests.ConnectionError):
        api("POST", "/v1/users", json={"username": "ghost_bot"})
    assert "ghost_bot" in md.users()
    assert md.journal[-1].status is None


def test_clear_faults(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("*", "*", status=500, times=10)
    md.clear_faults()
    assert api("GET", "/v1/active_accounts").status_code == 200


BAD_INJECT = [
    pytest.param({}, id="nothing-to-do"),
    pytest.param({"status": 503, "drop": True}, id="status-and-drop"),
    pytest.param({"retry_after": "1"}, id="retry-after-without-status"),
    pytest.param({"body": "x"}, id="body-without-status"),
    pytest.param({"delay": 0.1, "after": True}, id="after-without-status"),
    pytest.param({"status": 503, "times": 0}, id="times-0"),
    pytest.param({"status": 999}, id="unknown-status"),
    pytest.param({"status": 101}, id="informational-status"),
    pytest.param({"delay": -1.0}, id="negative-delay"),
]


@pytest.mark.parametrize("kwargs", BAD_INJECT)
def test_inject_rejects_meaningless_faults(md: MotherDuckEmulator, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        md.inject("GET", "/v1/active_accounts", **kwargs)


# --- journal ---------------------------------------------------------------------------------


def test_journal_records_every_request_in_order(api: Api, md: MotherDuckEmulator) -> None:
    md.add_user("odd name")
    api("POST", "/v1/users", json={"username": "j_bot"})
    api("GET", "/v1/users/odd%20name/tokens?x=1")
    api("GET", "/v1/nowhere")
    assert md.journal == [
        JournalEntry("POST", "/v1/users", 200, {"username": "j_bot"}, fault=False),
        JournalEntry("GET", "/v1/users/odd%20name/tokens?x=1", 200, None, fault=False),
        JournalEntry("GET", "/v1/nowhere", 404, None, fault=False),
    ]
    md.clear_journal()
    assert md.journal == []


def test_journal_entries_are_frozen(api: Api, md: MotherDuckEmulator) -> None:
    api("GET", "/v1/active_accounts")
    with pytest.raises(dataclasses.FrozenInstanceError):
        md.journal[0].status = 500  # type: ignore[misc]


def test_journal_holds_no_secret(api: Api, md: MotherDuckEmulator) -> None:
    created = api("POST", "/v1/users/etl_bot/tokens", json={"name": "ci"}).json()["token"]
    seeded = md.add_token("etl_bot", "seeded")["token"]
    api("GET", "/v1/users/etl_bot/tokens")
    api("POST", "/v1/users", json={"username": "x", "token": seeded})
    as_api(md, created)("GET", "/v1/active_accounts")
    journal = md.journal
    assert journal[2].body == {"username": "x", "token": "***"}
    text = repr(journal)
    for secret in (md.admin_token, created, seeded):
        assert secret not in text
    assert "Bearer" not in text


# --- transport --------------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(md: MotherDuckEmulator) -> None:
    host, port = md.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    auth = {"Authorization": f"Bearer {md.admin_token}", "Content-Type": "application/json"}
    sockets = set()
    try:
        for method, path, body, status in [
            ("GET", "/v1/active_accounts", None, 200),
            ("GET", "/v1/nowhere", None, 404),
            ("POST", "/v1/users", json.dumps({"username": "1"}), 400),
            ("POST", "/v1/users", json.dumps({"username": "kept"}), 200),
        ]:
            conn.request(method, path, body=body, headers=auth)
            response = conn.getresponse()
            data = response.read()
            assert response.status == status
            assert response.version == 11
            assert response.getheader("Content-Length") == str(len(data))
            sockets.add(id(conn.sock))
    finally:
        conn.close()
    assert len(sockets) == 1


BROKEN_FRAMING = [
    pytest.param(b"Content-Length: abc\r\n", id="length-not-a-number"),
    pytest.param(b"Content-Length: -5\r\n", id="length-negative"),
    pytest.param(b"Transfer-Encoding: chunked\r\n", id="chunk-size-not-hex"),
]


@pytest.mark.parametrize("framing", BROKEN_FRAMING)
def test_broken_framing_gets_400_and_a_closed_connection(md: MotherDuckEmulator, framing: bytes) -> None:
    host, port = md.url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /v1/users HTTP/1.1\r\nHost: md\r\n" + framing + b"\r\nzz\r\n")
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 ")
    assert md.journal == [JournalEntry("POST", "/v1/users", 400, None, fault=False)]
    assert md.users() == ["admin", "etl_bot"]


def test_stop_cuts_idle_connections_and_keeps_state(api: Api, md: MotherDuckEmulator) -> None:
    assert api("POST", "/v1/users", json={"username": "kept"}).status_code == 200
    old_url = md.url
    md.stop()
    with pytest.raises(RuntimeError):
        md.url  # noqa: B018
    with pytest.raises(requests.ConnectionError):
        api.session.get(old_url + "/v1/active_accounts", timeout=5)
    md.start()
    assert "kept" in md.users()
    assert as_api(md, md.admin_token)("GET", "/v1/users/kept/tokens").status_code == 200


def test_concurrent_requests_see_one_consistent_state(md: MotherDuckEmulator) -> None:
    auth = {"Authorization": f"Bearer {md.admin_token}"}

    def create(username: str) -> int:
        response = requests.post(md.url + "/v1/users", json={"username": username}, headers=auth, timeout=5)
        return response.status_code

    names = ["same"] * 12 + [f"bot_{i}" for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(create, names))
    assert sorted(statuses[:12]) == [200] + [400] * 11
    assert statuses[12:] == [200] * 12
    assert len(md.users()) == 2 + 1 + 12
    assert len(md.journal) == 24


def test_start_twice_is_an_error(md: MotherDuckEmulator) -> None:
    with pytest.raises(RuntimeError):
        md.start()


def test_context_manager_serves_then_releases(clock: Clock) -> None:
    with MotherDuckEmulator(admin_username="boss", admin_token="tok_fixed", clock=clock) as md:
        assert md.url.startswith("http://127.0.0.1:")
        assert not md.url.endswith("/")
        assert md.admin_username == "boss"
        assert md.admin_token == "tok_fixed"
        response = as_api(md, "tok_fixed")("POST", "/v1/users/boss/tokens", json={"name": "x"})
        assert response.status_code == 200
        url = md.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v1/active_accounts", timeout=5)


# --- seeding and constructor ------------------------------------------------------------------


def test_load_seed(md: MotherDuckEmulator) -> None:
    ducklings = [{"id": "rw", "type": "read_write", "status": "active"}]
    md.load_seed(
        {
            "users": ["bot_a", {"username": "jane", "admin": True}],
            "duckling_configs": {"bot_a": {"read_write": {"instance_size": "pulse"}, "read_scaling": RS}},
            "ducklings": {"bot_a": ducklings},
        }
    )
    assert md.users() == ["admin", "etl_bot", "bot_a", "jane"]
    assert md.duckling_config("bot_a") == {
        "read_write": {"instance_size": "pulse"},
        "read_scaling": {**RS, "cooldown_seconds": 60},
    }
    api = as_api(md, md.admin_token)
    assert api("GET", "/v1/active_accounts").json() == {
        "accounts": [{"username": "bot_a", "ducklings": ducklings}]
    }
    assert api("POST", "/v1/users/jane/tokens", json={"name": "x"}).status_code == 403


BAD_SEEDS = [
    pytest.param({"user": ["a"]}, ValueError, id="unknown-key"),
    pytest.param({"users": ["etl_bot"]}, ValueError, id="duplicate-user"),
    pytest.param({"users": [{"name": "a"}]}, ValueError, id="user-without-username"),
    pytest.param({"duckling_configs": {"ghost": NEW_USER_CONFIG}}, KeyError, id="config-of-nobody"),
    pytest.param({"duckling_configs": {"etl_bot": {"read_write": RW}}}, ValueError, id="half-config"),
    pytest.param({"ducklings": {"ghost": []}}, KeyError, id="ducklings-of-nobody"),
    pytest.param({"ducklings": {"etl_bot": [{"id": 1}]}}, ValueError, id="duckling-not-strings"),
    pytest.param({"ducklings": {"etl_bot": {"id": "rw"}}}, ValueError, id="ducklings-not-a-list"),
    pytest.param({"users": "abc"}, ValueError, id="users-not-a-list"),
    pytest.param({"ducklings": []}, ValueError, id="ducklings-not-a-mapping"),
]


@pytest.mark.parametrize(("seed", "error"), BAD_SEEDS)
def test_bad_seeds_are_refused(md: MotherDuckEmulator, seed: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        md.load_seed(seed)


def test_seeding_helpers_refuse_bad_input(md: MotherDuckEmulator) -> None:
    with pytest.raises(ValueError, match="already exists"):
        md.add_user("etl_bot")
    with pytest.raises(ValueError, match="300"):
        md.add_token("etl_bot", "short", ttl=10)
    with pytest.raises(ValueError, match="enum"):
        md.add_token("etl_bot", "t", token_type="admin")
    with pytest.raises(KeyError):
        md.add_token("ghost", "t")
    with pytest.raises(KeyError):
        md.tokens("ghost")
    with pytest.raises(KeyError):
        md.duckling_config("ghost")
    assert md.tokens("etl_bot") == []


def test_add_token_returns_the_secret_once(md: MotherDuckEmulator, clock: Clock) -> None:
    token = md.add_token("etl_bot", "seeded", ttl=600, token_type="read_scaling")
    assert md.is_valid_token(token["token"])
    assert token["expire_at"] == "2026-01-02T03:14:05.678Z"
    assert md.tokens("etl_bot") == [{k: v for k, v in token.items() if k != "token"}]


BAD_CONSTRUCTOR = [
    pytest.param({"max_flock_size": 65}, id="flock-over-64"),
    pytest.param({"max_flock_size": -1}, id="flock-negative"),
    pytest.param({"duplicate_user_status": 500}, id="duplicate-status"),
    pytest.param({"admin_token": ""}, id="empty-token"),
    pytest.param({"admin_token": " tok"}, id="token-with-space"),
    pytest.param({"control_key": ""}, id="empty-control-key"),
    pytest.param({"max_page_size": 0}, id="page-size-0"),
    pytest.param({"user_listing": "no"}, id="user-listing-not-bool"),
    pytest.param({"business_plan": 1}, id="business-plan-not-bool"),
]


@pytest.mark.parametrize("kwargs", BAD_CONSTRUCTOR)
def test_constructor_refuses_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        MotherDuckEmulator(**kwargs)


# --- CLI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signalled(tmp_path: Path, stop_signal: signal.Signals) -> None:
    seed = tmp_path / "seed.json"
    ducklings = [{"id": "rw", "type": "read_write", "status": "active"}]
    seed.write_text(json.dumps({"users": ["etl_bot"], "ducklings": {"etl_bot": ducklings}}))
    info_file = tmp_path / "emulator.json"
    process = serve(
        *("--admin-token", "tok_cli", "--control-key", "ctl_cli"),
        *("--seed", str(seed), "--info-file", str(info_file)),
        *("--duplicate-user-status", "409", "--max-flock-size", "8"),
    )
    try:
        info = wait_for_info(process, info_file)
        assert (info["admin_token"], info["control_key"]) == ("tok_cli", "ctl_cli")
        api = requests.Session()
        api.headers["Authorization"] = "Bearer tok_cli"
        response = api.get(info["url"] + "/v1/active_accounts", timeout=5)
        assert response.json() == {"accounts": [{"username": "etl_bot", "ducklings": ducklings}]}
        assert api.post(info["url"] + "/v1/users", json={"username": "etl_bot"}, timeout=5).status_code == 409
        too_big = api.put(
            info["url"] + "/v1/users/etl_bot/instances", json=cfg(rs={"flock_size": 9}), timeout=5
        )
        assert too_big.json()["message"].startswith("Invalid config for tier")
        api.close()
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert stdout.splitlines() == [
        f"MOTHERDUCK_EMULATOR_URL={info['url']}",
        "MOTHERDUCK_EMULATOR_ADMIN_TOKEN=tok_cli",
        "MOTHERDUCK_EMULATOR_CONTROL_KEY=ctl_cli",
        f"MOTHERDUCK_EMULATOR_POSTGRES_PORT={info['postgres_port']}",
        "AIRFLOW_CONN_MOTHERDUCK_DEFAULT="
        + shlex.quote(json.dumps(_both_sides(info["url"], "tok_cli", info["postgres_port"]))),
    ]
    assert not info_file.exists()


def test_cli_prints_the_connection_of_the_conn_id_given_ready_for_a_shell(tmp_path: Path) -> None:
    info_file = tmp_path / "emulator.json"
    process = serve("--conn-id", "md_admin", "--info-file", str(info_file))
    try:
        info = wait_for_info(process, info_file)
        process.terminate()
        stdout, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    line = stdout.splitlines()[-1]
    shell = subprocess.run(
        ["sh", "-c", f'export {line} && printf %s "$AIRFLOW_CONN_MD_ADMIN"'],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    connection = json.loads(shell.stdout)
    assert connection == _both_sides(info["url"], info["admin_token"], info["postgres_port"])


def _both_sides(url: str, token: str, postgres_port: int) -> dict[str, object]:
    """The connection the CLI prints: the REST API and the Postgres endpoint, both on loopback."""
    extra = {"sql_transport": "postgres", "postgres_host": "127.0.0.1", "postgres_port": postgres_port}
    return {"conn_type": "motherduck", "host": url, "password": token, "extra": extra}


def test_cli_on_a_busy_port_says_to_pick_another_or_use_port_0() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = serve("--port", str(port))
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use: pick another --port, or --port 0 for any free one" in stderr
    assert "Errno" not in stderr
    assert stdout == ""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--host", "0.0.0.0"), "--allow-remote"),
        (("--conn-id", "motherduck-admin"), "--conn-id motherduck-admin is invalid"),
    ],
    ids=["remote-host", "conn-id-no-env-name"],
)
def test_cli_refuses_before_serving(args: tuple[str, ...], said: str) -> None:
    process = serve(*args)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 2
    assert said in stderr
    assert stdout == ""


def test_cli_reports_a_bad_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"users": ["a"], "tokens": []}))
    process = serve("--seed", str(seed))
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 2
    assert "unknown seed keys" in stderr
