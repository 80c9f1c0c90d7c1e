"""The organisation-wide endpoints over real HTTP: list users, roles, embed sessions, own config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.testing.support import Api, as_api, assert_error

LISTING = "users.listUsers"
EMBED = "dives.createEmbedSession"
CONFIG = {
    "read_write": {"instance_size": "jumbo", "cooldown_seconds": 60},
    "read_scaling": {"instance_size": "standard", "flock_size": 2, "cooldown_seconds": 60},
}


@pytest.fixture
def org(md: MotherDuckEmulator) -> MotherDuckEmulator:
    """admin and etl_bot, plus: two more service accounts, humans of every role, two deprovisioned."""
    md.load_seed(
        {
            "users": [
                "bi_bot",
                "zz_bot",
                {"username": "jane", "roles": ["builder"], "first_name": "Jane", "last_name": "Doe"},
                {"username": "ed", "roles": ["explorer"], "email": "ed@corp.test"},
                {"username": "mo", "human": True},
                {"username": "gone_bot", "deprovisioned": True},
                {"username": "gone_human", "admin": True, "deprovisioned": True},
            ]
        }
    )
    return md


def walk(api: Api, **params: Any) -> list[dict[str, Any]]:
    """Every page of GET /v1/users, following next_page_token (bounded)."""
    pages = [api("GET", "/v1/users", params=params).json()]
    while pages[-1]["next_page_token"] is not None:
        assert len(pages) < 50
        pages.append(
            api("GET", "/v1/users", params={**params, "page_token": pages[-1]["next_page_token"]}).json()
        )
    return pages


def names(page: dict[str, Any]) -> list[str]:
    return [u["username"] for u in page["users"]]


def token_of(md: MotherDuckEmulator, username: str, **kwargs: Any) -> Api:
    return as_api(md, md.add_token(username, "t", **kwargs)["token"])


# --- list users ---------------------------------------------------------------------------------


def test_one_page_lists_every_user_ordered_by_username_with_its_fields(
    api: Api, org: MotherDuckEmulator
) -> None:
    page = api("GET", "/v1/users").json()
    assert names(page) == sorted(org.users())
    assert page["total_count"] == 9
    assert page["next_page_token"] is None
    by_name = {u["username"]: u for u in page["users"]}
    assert set(by_name["jane"]) == {
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "is_service_account",
        "is_deprovisioned",
        "roles",
    }
    assert {k: v for k, v in by_name["jane"].items() if k != "id"} == {
        "username": "jane",
        "email": "jane@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "is_service_account": False,
        "is_deprovisioned": False,
        "roles": ["builder"],
    }
    assert by_name["etl_bot"]["email"] is None
    assert (by_name["etl_bot"]["is_service_account"], by_name["etl_bot"]["roles"]) == (True, ["member"])
    assert (by_name["admin"]["is_service_account"], by_name["admin"]["roles"]) == (False, ["admin"])
    assert (by_name["mo"]["is_service_account"], by_name["mo"]["roles"]) == (False, ["member"])
    assert by_name["ed"]["email"] == "ed@corp.test"
    assert by_name["gone_human"]["is_deprovisioned"] is True
    assert len({u["id"] for u in page["users"]}) == 9


def test_a_user_created_by_the_api_is_a_member_service_account(api: Api, md: MotherDuckEmulator) -> None:
    api("POST", "/v1/users", json={"username": "new_bot"})
    (new,) = [u for u in api("GET", "/v1/users").json()["users"] if u["username"] == "new_bot"]
    assert (new["is_service_account"], new["is_deprovisioned"], new["roles"]) == (True, False, ["member"])


def test_pages_follow_the_cursor_until_it_is_null(api: Api, org: MotherDuckEmulator) -> None:
    pages = walk(api, limit=2)
    assert [len(p["users"]) for p in pages] == [2, 2, 2, 2, 1]
    assert [u for p in pages for u in names(p)] == sorted(org.users())
    assert {p["total_count"] for p in pages} == {9}
    tokens = [p["next_page_token"] for p in pages[:-1]]
    assert len(set(tokens)) == 4
    assert all(isinstance(t, str) and t for t in tokens)
    assert "next_page_token" in pages[-1]


def test_offset_starts_later_and_is_ignored_with_a_page_token(api: Api, org: MotherDuckEmulator) -> None:
    everyone = sorted(org.users())
    assert names(api("GET", "/v1/users", params={"offset": 7}).json()) == everyone[7:]
    first = api("GET", "/v1/users", params={"limit": 3}).json()
    second = api(
        "GET", "/v1/users", params={"limit": 3, "offset": 8, "page_token": first["next_page_token"]}
    ).json()
    assert names(second) == everyone[3:6]
    beyond = api("GET", "/v1/users", params={"offset": 40}).json()
    assert (beyond["users"], beyond["total_count"], beyond["next_page_token"]) == ([], 9, None)


FILTERS = [
    pytest.param({"is_service_account": "true"}, ["bi_bot", "etl_bot", "gone_bot", "zz_bot"], id="service"),
    pytest.param({"is_service_account": "false"}, ["admin", "ed", "gone_human", "jane", "mo"], id="human"),
    pytest.param({"is_deprovisioned": "true"}, ["gone_bot", "gone_human"], id="deprovisioned"),
    pytest.param(
        {"is_service_account": "true", "is_deprovisioned": "false"},
        ["bi_bot", "etl_bot", "zz_bot"],
        id="both",
    ),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS)
def test_filters(api: Api, org: MotherDuckEmulator, params: dict[str, str], expected: list[str]) -> None:
    pages = walk(api, limit=2, **params)
    assert [u for p in pages for u in names(p)] == expected
    assert pages[0]["total_count"] == len(expected)


BAD_QUERIES = [
    pytest.param({"is_service_account": "yes"}, "is_service_account", id="filter-yes"),
    pytest.param({"is_deprovisioned": "True"}, "is_deprovisioned", id="filter-capitalised"),
    pytest.param({"is_deprovisioned": "1"}, "is_deprovisioned", id="filter-1"),
    pytest.param({"is_service_account": ""}, "is_service_account", id="filter-empty"),
    pytest.param({"limit": "0"}, "limit", id="limit-0"),
    pytest.param({"limit": "ten"}, "limit", id="limit-text"),
    pytest.param({"limit": "2.5"}, "limit", id="limit-float"),
    pytest.param({"offset": "-1"}, "offset", id="offset-negative"),
    pytest.param({"page_token": "pt_forged"}, "page_token", id="unknown-cursor"),
]


@pytest.mark.parametrize(("params", "field"), BAD_QUERIES)
def test_bad_queries_are_400_naming_the_field(api: Api, params: dict[str, str], field: str) -> None:
    body = assert_error(api("GET", "/v1/users", params=params), 400, "BAD_REQUEST", LISTING)
    assert body["issues"][0]["path"] == [field]
    assert field in body["message"] or "page_token" in body["message"]


def test_a_limit_over_the_maximum_is_400_naming_the_maximum(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start(max_page_size=3)
    api = as_api(md, md.admin_token)
    body = assert_error(api("GET", "/v1/users", params={"limit": 4}), 400, "BAD_REQUEST", LISTING)
    assert body["message"] == "limit must be less than or equal to 3"
    assert body["issues"] == [{"code": "too_big", "path": ["limit"], "message": body["message"]}]
    assert api("GET", "/v1/users", params={"limit": 3}).status_code == 200
    md.max_page_size = 500
    assert api("GET", "/v1/users", params={"limit": 500}).status_code == 200
    assert api("GET", "/v1/users", params={"limit": 501}).json()["message"].endswith("500")


def test_the_default_page_is_100_users(api: Api, md: MotherDuckEmulator) -> None:
    for i in range(120):
        md.add_user(f"bot_{i:03d}")
    pages = walk(api)
    assert [len(p["users"]) for p in pages] == [100, 22]


ROLES_THAT_LIST = [["admin"], ["builder"], ["explorer"], ["member", "explorer"]]


@pytest.mark.parametrize("roles", ROLES_THAT_LIST, ids="+".join)
def test_admin_builder_and_explorer_may_list(md: MotherDuckEmulator, roles: list[str]) -> None:
    md.add_user("viewer", roles=roles)
    assert token_of(md, "viewer")("GET", "/v1/users").status_code == 200


def test_a_member_may_not_list(md: MotherDuckEmulator) -> None:
    md.add_user("mo", human=True)
    for who in ("mo", "etl_bot"):
        body = assert_error(token_of(md, who)("GET", "/v1/users"), 403, "FORBIDDEN", LISTING)
        assert "member_management.view_all_members" in body["message"]


def test_a_builder_may_list_but_not_administer(md: MotherDuckEmulator) -> None:
    md.add_user("jane", roles=["builder"])
    jane = token_of(md, "jane")
    assert_error(
        jane("POST", "/v1/users", json={"username": "x"}), 403, "FORBIDDEN", "users.createServiceAccount"
    )
    assert_error(jane("GET", "/v1/active_accounts"), 403, "FORBIDDEN", "ducklings.activeAccounts")


def test_a_read_scaling_token_may_not_list(md: MotherDuckEmulator) -> None:
    assert_error(
        token_of(md, "admin", token_type="read_scaling")("GET", "/v1/users"), 403, "FORBIDDEN", LISTING
    )


def test_a_deprovisioned_users_token_no_longer_authenticates(md: MotherDuckEmulator) -> None:
    md.add_user("old_admin", admin=True, deprovisioned=True)
    assert_error(token_of(md, "old_admin")("GET", "/v1/users"), 401, "UNAUTHORIZED", LISTING)


def test_a_repeated_cursor_is_played_once(api: Api, org: MotherDuckEmulator) -> None:
    org.repeat_listing_cursor()
    first = api("GET", "/v1/users", params={"limit": 4}).json()  # no page_token: not repeated
    cursor = first["next_page_token"]
    second = api("GET", "/v1/users", params={"limit": 4, "page_token": cursor}).json()
    assert second["next_page_token"] == cursor
    assert names(second) == sorted(org.users())[4:8]
    third = api("GET", "/v1/users", params={"limit": 4, "page_token": cursor}).json()
    assert third["next_page_token"] not in (None, cursor)


def test_a_repeated_cursor_can_even_follow_the_last_page(api: Api, org: MotherDuckEmulator) -> None:
    org.repeat_listing_cursor(times=2)
    first = api("GET", "/v1/users", params={"limit": 5}).json()
    last = api("GET", "/v1/users", params={"limit": 5, "page_token": first["next_page_token"]}).json()
    assert last["next_page_token"] == first["next_page_token"]


def test_a_user_inserted_mid_walk_shifts_the_next_page(api: Api, org: MotherDuckEmulator) -> None:
    everyone = sorted(org.users())  # admin, bi_bot, ed, etl_bot, gone_bot, ...
    org.add_user_during_listing("cy_bot", after_pages=1)
    pages = walk(api, limit=4)
    seen = [u for p in pages for u in names(p)]
    assert names(pages[0]) == everyone[:4]
    assert names(pages[1])[0] == everyone[3]  # etl_bot again: cy_bot sorted in before it
    assert sorted(set(seen)) == everyone  # nobody lost; cy_bot landed on a page already read
    assert len(seen) == len(everyone) + 1
    assert pages[-1]["total_count"] == 10


def test_a_user_inserted_mid_walk_takes_add_user_arguments(api: Api, org: MotherDuckEmulator) -> None:
    org.add_user_during_listing("zzz_admin", after_pages=2, admin=True)
    pages = walk(api, limit=4)
    assert next(u for p in pages for u in p["users"] if u["username"] == "zzz_admin")["roles"] == ["admin"]
    with pytest.raises(ValueError, match="already exists"):
        org.add_user_during_listing("jane")
    with pytest.raises(ValueError, match="after_pages"):
        org.add_user_during_listing("x", after_pages=0)
    with pytest.raises(ValueError, match="roles"):
        org.add_user_during_listing("x", roles=["owner"])


def test_clear_faults_forgets_listing_quirks(api: Api, org: MotherDuckEmulator) -> None:
    org.repeat_listing_cursor()
    org.add_user_during_listing("cy_bot")
    org.clear_faults()
    pages = walk(api, limit=4)
    assert len(pages) == 3
    assert "cy_bot" not in org.users()


def test_without_user_listing_the_route_is_the_plain_text_404(
    start: Callable[..., MotherDuckEmulator],
) -> None:
    md = start(user_listing=False)
    api = as_api(md, md.admin_token)
    response = api("GET", "/v1/users")
    assert (response.status_code, response.headers["Content-Type"], response.text) == (
        404,
        "text/plain; charset=utf-8",
        "Not Found",
    )
    assert api("POST", "/v1/users", json={"username": "still_works"}).status_code == 200
    md.user_listing = True
    assert api("GET", "/v1/users").status_code == 200


def test_faults_and_journal_cover_the_listing(api: Api, md: MotherDuckEmulator) -> None:
    md.inject("GET", "/v1/users", status=503)
    assert api("GET", "/v1/users", params={"limit": 1}).status_code == 503
    assert api("GET", "/v1/users", params={"limit": 1}).status_code == 200
    assert [(e.method, e.path, e.status, e.fault) for e in md.journal] == [
        ("GET", "/v1/users?limit=1", 503, True),
        ("GET", "/v1/users?limit=1", 200, False),
    ]


# --- a member's own Duckling config -------------------------------------------------------------


def test_a_member_reads_and_writes_its_own_config(md: MotherDuckEmulator) -> None:
    bot = token_of(md, "etl_bot")
    assert bot("GET", "/v1/users/etl_bot/instances").status_code == 200
    assert bot("PUT", "/v1/users/etl_bot/instances", json={"config": CONFIG}).json() == CONFIG
    assert md.duckling_config("etl_bot") == CONFIG


def test_a_member_may_not_touch_another_users_config(md: MotherDuckEmulator) -> None:
    md.add_user("other_bot")
    bot = token_of(md, "etl_bot")
    for who in ("other_bot", "admin", "ghost"):
        body = assert_error(bot("GET", f"/v1/users/{who}/instances"), 403, "FORBIDDEN", "ducklings.getConfig")
        assert body["message"] == "The Admin role is required"
        assert_error(
            bot("PUT", f"/v1/users/{who}/instances", json={"config": CONFIG}),
            403,
            "FORBIDDEN",
            "ducklings.setConfig",
        )
    assert md.duckling_config("other_bot") != CONFIG
    assert_error(bot("GET", "/v1/users/etl_bot/tokens"), 403, "FORBIDDEN", "tokens.listTokens")


def test_a_members_own_config_write_is_still_validated(md: MotherDuckEmulator) -> None:
    bot = token_of(md, "etl_bot")
    bad = {"config": {"read_write": {"instance_size": "huge"}}}
    assert_error(
        bot("PUT", "/v1/users/etl_bot/instances", json=bad), 400, "BAD_REQUEST", "ducklings.setConfig"
    )


# --- embed sessions -----------------------------------------------------------------------------


def test_an_embed_session_is_issued_and_recorded(api: Api, md: MotherDuckEmulator) -> None:
    body = {
        "username": "etl_bot",
        "session_name": "board",
        "version": 3,
        "required_resources": [{"url": "md:_share/sales/abc", "alias": "sales"}],
        "initial_state": {"filters": {"region": "EU"}},
    }
    response = api("POST", "/v1/dives/dive%2F1/embed-session", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert list(answer) == ["session"]
    assert answer["session"].startswith("mds_")
    assert answer["session"].count(".") == 0  # opaque, not a JWT
    (record,) = md.embed_sessions()
    assert record["secret"] == answer["session"]
    assert {k: record[k] for k in ("dive_id", "username", "session_name", "version")} == {
        "dive_id": "dive/1",
        "username": "etl_bot",
        "session_name": "board",
        "version": 3,
    }
    assert record["required_resources"] == body["required_resources"]
    assert record["initial_state"] == body["initial_state"]
    assert record["expire_at"] == "2026-01-03T03:04:05.678Z"  # 24 h after the test clock
    assert md.tokens("etl_bot") == []  # no visible token for an audit or a prune to trip over
    assert answer["session"] not in repr(md.journal)


def test_the_minimal_body_and_the_deprecated_session_hint(api: Api, md: MotherDuckEmulator) -> None:
    assert api("POST", "/v1/dives/d1/embed-session", json={"username": "etl_bot"}).status_code == 200
    hinted = api("POST", "/v1/dives/d1/embed-session", json={"username": "etl_bot", "session_hint": "old"})
    assert hinted.status_code == 200
    assert [s["session_name"] for s in md.embed_sessions()] == [None, "old"]
    assert len({s["secret"] for s in md.embed_sessions()}) == 2


def resources_of(size: int) -> list[dict[str, str]]:
    """required_resources whose compact JSON is exactly ``size`` bytes."""
    return [{"url": "u" * (size - len('[{"url":""}]'))}]


def state_of(size: int) -> dict[str, str]:
    """An initial_state whose compact JSON is exactly ``size`` bytes."""
    return {"k": "x" * (size - len('{"k":""}'))}


def test_the_size_limits_are_inclusive(api: Api) -> None:
    body = {"username": "etl_bot", "required_resources": resources_of(8192), "initial_state": state_of(65536)}
    assert api("POST", "/v1/dives/d1/embed-session", json=body).status_code == 200


INVALID_EMBEDS = [
    pytest.param({}, ["username"], id="no-username"),
    pytest.param({"username": ""}, ["username"], id="empty-username"),
    pytest.param({"username": "etl_bot", "owner": "x"}, [], id="unknown-key"),
    pytest.param(
        {"username": "etl_bot", "session_name": "a", "session_hint": "a"}, ["session_hint"], id="both"
    ),
    pytest.param({"username": "etl_bot", "session_name": 5}, ["session_name"], id="name-not-string"),
    pytest.param({"username": "etl_bot", "version": 0}, ["version"], id="version-0"),
    pytest.param({"username": "etl_bot", "version": 1.5}, ["version"], id="version-float"),
    pytest.param({"username": "etl_bot", "version": True}, ["version"], id="version-bool"),
    pytest.param(
        {"username": "etl_bot", "required_resources": {}}, ["required_resources"], id="resources-object"
    ),
    pytest.param(
        {"username": "etl_bot", "required_resources": [{"alias": "a"}]},
        ["required_resources", "0", "url"],
        id="resource-without-url",
    ),
    pytest.param(
        {"username": "etl_bot", "required_resources": resources_of(8193)},
        ["required_resources"],
        id="resources-8193",
    ),
    pytest.param({"username": "etl_bot", "initial_state": [1]}, ["initial_state"], id="state-array"),
    pytest.param(
        {"username": "etl_bot", "initial_state": state_of(65537)}, ["initial_state"], id="state-65537"
    ),
]


@pytest.mark.parametrize(("body", "path"), INVALID_EMBEDS)
def test_invalid_embed_bodies_are_400_and_issue_nothing(
    api: Api, md: MotherDuckEmulator, body: dict[str, Any], path: list[str]
) -> None:
    error = assert_error(api("POST", "/v1/dives/d1/embed-session", json=body), 400, "BAD_REQUEST", EMBED)
    assert error["issues"][0]["path"] == path
    assert md.embed_sessions() == []


def test_limit_messages_name_the_limit(api: Api) -> None:
    body = {"username": "etl_bot", "required_resources": resources_of(8193), "initial_state": state_of(65537)}
    error = api("POST", "/v1/dives/d1/embed-session", json=body).json()
    assert [i["message"] for i in error["issues"]] == [
        "required_resources must be at most 8192 bytes as JSON",
        "initial_state must be at most 65536 bytes as JSON",
    ]


TARGETS = [
    pytest.param("ghost", 404, "NOT_FOUND", id="unknown-user"),
    pytest.param("admin", 403, "FORBIDDEN", id="human"),
    pytest.param("gone_bot", 403, "FORBIDDEN", id="deprovisioned"),
]


@pytest.mark.parametrize(("username", "status", "code"), TARGETS)
def test_only_an_active_service_account_gets_a_session(
    api: Api, md: MotherDuckEmulator, username: str, status: int, code: str
) -> None:
    md.add_user("gone_bot", deprovisioned=True)
    body = assert_error(
        api("POST", "/v1/dives/d1/embed-session", json={"username": username}), status, code, EMBED
    )
    assert username in body["message"]
    assert md.embed_sessions() == []


def test_without_the_business_plan_embed_sessions_are_403(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start(business_plan=False)
    md.add_user("etl_bot")
    api = as_api(md, md.admin_token)
    body = assert_error(
        api("POST", "/v1/dives/d1/embed-session", json={"username": "etl_bot"}), 403, "FORBIDDEN", EMBED
    )
    assert "Business plan" in body["message"]
    md.business_plan = True
    assert api("POST", "/v1/dives/d1/embed-session", json={"username": "etl_bot"}).status_code == 200


def test_a_member_may_not_create_embed_sessions(md: MotherDuckEmulator) -> None:
    bot = token_of(md, "etl_bot")
    assert_error(
        bot("POST", "/v1/dives/d1/embed-session", json={"username": "etl_bot"}), 403, "FORBIDDEN", EMBED
    )


def test_an_empty_dive_id_has_no_route(api: Api) -> None:
    response = api("POST", "/v1/dives//embed-session", json={"username": "etl_bot"})
    assert (response.status_code, response.text) == (404, "Not Found")


# --- issued secrets and seeding -----------------------------------------------------------------


def test_issued_secrets_hold_every_secret_ever_issued(api: Api, md: MotherDuckEmulator) -> None:
    created = api("POST", "/v1/users/etl_bot/tokens", json={"name": "ci"}).json()
    api("DELETE", f"/v1/users/etl_bot/tokens/{created['id']}")
    seeded = md.add_token("admin", "seeded")
    session = api("POST", "/v1/dives/d1/embed-session", json={"username": "etl_bot"}).json()["session"]
    issued = md.issued_secrets()
    assert [(s["kind"], s["username"], s["secret"]) for s in issued] == [
        ("token", "admin", md.admin_token),
        ("token", "etl_bot", created["token"]),
        ("token", "admin", seeded["token"]),
        ("embed_session", "etl_bot", session),
    ]
    assert issued[1]["id"] == created["id"]


def test_add_user_refuses_bad_arguments(md: MotherDuckEmulator) -> None:
    with pytest.raises(ValueError, match="not both"):
        md.add_user("a", admin=True, roles=["builder"])
    with pytest.raises(ValueError, match="unknown roles"):
        md.add_user("a", roles=["owner"])
    with pytest.raises(ValueError, match="non-empty"):
        md.add_user("a", roles=[])
    with pytest.raises(ValueError, match="distinct"):
        md.add_user("a", roles=["admin", "admin"])
    with pytest.raises(ValueError, match="deprovisioned"):
        md.add_user("a", deprovisioned="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="email"):
        md.add_user("a", email=5)  # type: ignore[arg-type]
    assert "a" not in md.users()


def test_a_service_account_may_hold_the_admin_role(api: Api, md: MotherDuckEmulator) -> None:
    md.add_user("ops_bot", roles=["admin"], human=False)
    (ops,) = [u for u in api("GET", "/v1/users").json()["users"] if u["username"] == "ops_bot"]
    assert (ops["is_service_account"], ops["email"], ops["roles"]) == (True, None, ["admin"])
    assert token_of(md, "ops_bot")("POST", "/v1/users", json={"username": "x"}).status_code == 200


def test_load_seed_takes_user_attributes_and_refuses_unknown_ones(md: MotherDuckEmulator) -> None:
    md.load_seed({"users": [{"username": "ed", "roles": ["explorer"], "deprovisioned": True}]})
    (ed,) = [u for u in md.describe_users() if u["username"] == "ed"]
    assert (ed["roles"], ed["is_deprovisioned"], ed["is_service_account"]) == (["explorer"], True, False)
    with pytest.raises(ValueError, match="unknown seed user keys"):
        md.load_seed({"users": [{"username": "x", "role": "admin"}]})


def test_switches_refuse_bad_values(md: MotherDuckEmulator) -> None:
    with pytest.raises(ValueError, match="user_listing"):
        md.user_listing = "no"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="max_page_size"):
        md.max_page_size = 0
    with pytest.raises(ValueError, match="business_plan"):
        md.business_plan = None  # type: ignore[assignment]
