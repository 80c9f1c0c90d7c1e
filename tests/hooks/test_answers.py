"""Hostile answers become the provider's API error (hooks/_answers.py), over real HTTP.

The emulator answers with bodies of the wrong shape, nested deeper than any reader wants, or
error bodies whose fields have the wrong types; each must be a ``MotherDuckAPIError`` naming the
call and what was wrong, never a raw ``RecursionError``, ``AttributeError`` or ``TypeError``, and
never quoting a value (it may be a secret).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.support import CONN_ENV, FakeSleep, connection_json

USER = "etl_bot"
SECRET = "mdt_hostile_answer_secret_0123456789"
DEEP = "[" * 100_000 + "]" * 100_000


def _nested(levels: int) -> Any:
    value: Any = SECRET
    for _ in range(levels):
        value = {"more": value}
    return value


CASES: list[tuple[str, str, str, Callable[[MotherDuckHook], object], Any, str]] = [
    (
        "users-a-string",
        "GET",
        "/v1/users",
        lambda h: h.list_users(),
        {"users": SECRET},
        "users is a string, expected an array",
    ),
    (
        "cursor-an-object",
        "GET",
        "/v1/users",
        lambda h: h.list_users(),
        {"users": [], "next_page_token": {"t": SECRET}},
        "next_page_token is an object, expected a string or null",
    ),
    (
        "user-not-an-object",
        "GET",
        "/v1/users",
        lambda h: h.list_users(),
        {"users": [SECRET]},
        "users[0] is a string, expected an object",
    ),
    (
        "tokens-items",
        "GET",
        f"/v1/users/{USER}/tokens",
        lambda h: h.list_tokens(USER),
        {"tokens": [{"name": SECRET}]},
        "tokens[0] has no id",
    ),
    (
        "token-id-a-number",
        "POST",
        f"/v1/users/{USER}/tokens",
        lambda h: h.create_token(USER, "nightly"),
        {"id": 5, "token": SECRET},
        "id is an integer, expected a string",
    ),
    (
        "read-only-a-string",
        "GET",
        f"/v1/users/{USER}/tokens",
        lambda h: h.list_tokens(USER),
        {"tokens": [{"id": "x", "read_only": "yes"}]},
        "tokens[0].read_only is a string, expected a boolean",
    ),
    (
        "ducklings-a-string",
        "GET",
        "/v1/active_accounts",
        lambda h: h.list_active_accounts(),
        {"accounts": [{"username": USER, "ducklings": SECRET}]},
        "accounts[0].ducklings is a string, expected an array",
    ),
    (
        "config-half-a-string",
        "GET",
        f"/v1/users/{USER}/instances",
        lambda h: h.get_duckling_config(USER),
        {"read_write": SECRET, "read_scaling": {}},
        "read_write is a string, expected an object",
    ),
    (
        "flock-a-boolean",
        "PUT",
        f"/v1/users/{USER}/instances",
        lambda h: h.set_duckling_config(
            USER,
            {
                "read_write": {"instance_size": "standard"},
                "read_scaling": {"instance_size": "pulse", "flock_size": 1},
            },
        ),
        {"read_write": {}, "read_scaling": {"flock_size": True}},
        "read_scaling.flock_size is a boolean, expected an integer",
    ),
    (
        "session-a-list",
        "POST",
        "/v1/dives/dive-1/embed-session",
        lambda h: h.create_dive_embed_session("dive-1", USER),
        {"session": [SECRET]},
        "session is an array, expected a string",
    ),
    (
        "username-a-number",
        "POST",
        "/v1/users",
        lambda h: h.create_user("etl_new"),
        {"username": 7},
        "username is an integer, expected a string",
    ),
    (
        "deleted-username-null",
        "DELETE",
        f"/v1/users/{USER}",
        lambda h: h.delete_user(USER),
        {"username": None},
        "username is null, expected a string",
    ),
    (
        "deep-json",
        "GET",
        "/v1/active_accounts",
        lambda h: h.list_active_accounts(),
        DEEP,
        "nests too deep to read",
    ),
    (
        "deeper-than-the-limit",
        "GET",
        "/v1/active_accounts",
        lambda h: h.list_active_accounts(),
        {"accounts": [], "extra": _nested(40)},
        "it nests deeper than 32 levels",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "call", "body", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_malformed_answer_is_an_api_error_naming_the_call_and_the_problem(
    method: str,
    path: str,
    call: Callable[[MotherDuckHook], object],
    body: Any,
    problem: str,
    hook: MotherDuckHook,
    emulator: MotherDuckEmulator,
) -> None:
    emulator.add_user(USER)
    text = body if isinstance(body, str) else json.dumps(body)
    emulator.inject(method, path, status=200, body=text)
    with pytest.raises(MotherDuckAPIError) as info:
        call(hook)
    message = str(info.value)
    assert message.startswith(f"MotherDuck {method} {path}")
    assert problem in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (DEEP, "[[[["),  # not MotherDuck's JSON: quoted as text, cut short
        (json.dumps({"code": ["x"], "message": {"m": SECRET}, "issues": SECRET}), "(a JSON object)"),
        (
            json.dumps(
                {"code": "BAD_REQUEST", "message": "bad", "issues": [7, {"path": 3, "message": [SECRET]}]}
            ),
            "- -: (a JSON array)",
        ),
    ],
    ids=["deep", "wrong-types", "wrong-issues"],
)
def test_a_malformed_error_answer_is_an_api_error(
    body: str, says: str, hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=400, body=body)
    with pytest.raises(MotherDuckAPIError) as info:
        hook.list_active_accounts()
    assert info.value.status_code == 400
    assert says in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.issues)


def test_tls_to_a_loopback_host_suggests_plain_http(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch, fake_sleep: FakeSleep
) -> None:
    netloc = emulator.url.removeprefix("http://")
    monkeypatch.setenv(CONN_ENV, connection_json(f"https://{netloc}", emulator.admin_token))
    with pytest.raises(MotherDuckAPIError) as info:
        MotherDuckHook(sleep=fake_sleep).list_active_accounts()
    message = str(info.value)
    assert (
        f"speaks plain http, so put http://{netloc} in the API URL of connection 'motherduck_default'"
        in message
    )
    assert "CA bundle" not in message
    assert fake_sleep.waits == []  # a TLS failure does not pass by waiting
