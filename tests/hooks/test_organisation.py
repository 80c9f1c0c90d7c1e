"""MotherDuckHook.list_users and create_dive_embed_session against the emulator over real HTTP."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import (
    MotherDuckAPIError,
    MotherDuckAuthError,
    MotherDuckRouteNotFoundError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.validation import INITIAL_STATE_MAX_BYTES, REQUIRED_RESOURCES_MAX_BYTES
from tests.support import CONN_ENV, connection_json

BOTS = [f"bot_{i}" for i in range(7)]


@pytest.fixture
def org(emulator: MotherDuckEmulator) -> MotherDuckEmulator:
    """admin (a human Admin), seven service accounts, a human builder, two deprovisioned users."""
    for name in BOTS:
        emulator.add_user(name)
    emulator.add_user("jane", roles=["builder"])
    emulator.add_user("gone_bot", deprovisioned=True)
    emulator.add_user("gone_human", admin=True, deprovisioned=True)
    return emulator


def queries(emulator: MotherDuckEmulator) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(e.path).query) for e in emulator.journal if e.path.startswith("/v1/users?")]


# -- list users ------------------------------------------------------------------------------------


def test_every_page_is_walked(hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    users = hook.list_users(page_size=3)
    assert [u["username"] for u in users] == sorted(["admin", "jane", *BOTS])  # active users only
    assert users[0] == {
        "id": users[0]["id"],
        "username": "admin",
        "email": "admin@example.com",
        "first_name": None,
        "last_name": None,
        "is_service_account": False,
        "is_deprovisioned": False,
        "roles": ["admin"],
    }
    sent = queries(org)
    assert len(sent) == 3  # 9 users, 3 a page
    assert all(q["limit"] == ["3"] and q["is_deprovisioned"] == ["false"] for q in sent)
    assert "page_token" not in sent[0]
    assert all("page_token" in q for q in sent[1:])
    assert "is_service_account" not in sent[0]


@pytest.mark.parametrize(
    ("kwargs", "expected", "sent"),
    [
        ({"service_accounts": True}, BOTS, {"is_service_account": ["true"], "is_deprovisioned": ["false"]}),
        (
            {"service_accounts": False},
            ["admin", "jane"],
            {"is_service_account": ["false"], "is_deprovisioned": ["false"]},
        ),
        ({"deprovisioned": True}, ["gone_bot", "gone_human"], {"is_deprovisioned": ["true"]}),
        ({"deprovisioned": None}, sorted(["admin", "jane", "gone_bot", "gone_human", *BOTS]), {}),
        (
            {"service_accounts": True, "deprovisioned": None},
            sorted(["gone_bot", *BOTS]),
            {"is_service_account": ["true"]},
        ),
    ],
)
def test_filters_are_sent_as_the_api_s_booleans(
    hook: MotherDuckHook,
    org: MotherDuckEmulator,
    kwargs: dict[str, bool | None],
    expected: list[str],
    sent: dict[str, list[str]],
) -> None:
    assert [u["username"] for u in hook.list_users(**kwargs)] == expected
    (query,) = queries(org)
    assert {k: v for k, v in query.items() if k.startswith("is_")} == sent


def test_filters_are_applied_to_the_answer_too(hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    """An API that ignored the filter would hand back humans: they are dropped."""
    listing = {
        "users": [
            {"id": "1", "username": "bot_0", "is_service_account": True, "is_deprovisioned": False},
            {"id": "2", "username": "jane", "is_service_account": False, "is_deprovisioned": False},
            {"id": "3", "username": "gone_bot", "is_service_account": True, "is_deprovisioned": True},
        ],
        "total_count": 3,
        "next_page_token": None,
    }
    org.inject("GET", "/v1/users", status=200, body=listing)
    assert [u["username"] for u in hook.list_users(service_accounts=True)] == ["bot_0"]


def test_a_repeated_cursor_is_a_loop(hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    org.repeat_listing_cursor()
    with pytest.raises(
        MotherDuckAPIError, match=r"gave the page token 'pt_[^']+' twice, after 2 pages"
    ) as info:
        hook.list_users(page_size=3)
    assert "looping" in str(info.value)
    # Page 2 answers its own token as the next one: the walk stops there, not on a third request.
    assert len(queries(org)) == 2


def test_a_user_seen_on_two_pages_is_kept_once(hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    # Inserted after page 1, sorting first: page 2 repeats the last user of page 1.
    org.add_user_during_listing("aaa_bot", after_pages=1)
    users = [u["username"] for u in hook.list_users(page_size=3)]
    assert len(users) == len(set(users))
    assert sorted(users) == sorted(["admin", "jane", *BOTS])  # inserted behind the walk: not seen
    assert "aaa_bot" in org.users()


def test_the_listing_carries_motherducks_total_count(hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    """A caller can tell a partial view: the walk above saw one user fewer than MotherDuck counts."""
    complete = hook.list_users(page_size=3)
    assert complete.total_count == len(complete)
    org.add_user_during_listing("aaa_bot", after_pages=1)
    partial = hook.list_users(page_size=3)
    assert partial.total_count == len(partial) + 1


def test_an_api_without_the_listing_says_so(hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    org.user_listing = False
    with pytest.raises(MotherDuckRouteNotFoundError, match="This MotherDuck API offers no user listing"):
        hook.list_users()


def test_a_page_size_over_the_server_s_limit_is_reported_with_the_limit_sent(
    hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    org.max_page_size = 50
    with pytest.raises(MotherDuckAPIError) as info:
        hook.list_users(page_size=100)
    assert info.value.status_code == 400
    assert "page_size=100 was sent as limit; MotherDuck accepts fewer per page" in str(info.value)
    assert info.value.issues  # MotherDuck's own issues are kept


def test_a_member_without_the_privilege_is_refused(
    org: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = org.add_token("bot_0", "member")["token"]
    monkeypatch.setenv(CONN_ENV, connection_json(org.url, member))
    with pytest.raises(MotherDuckAuthError) as info:
        MotherDuckHook().list_users()
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"page_size": 0}, "page_size=0"),
        ({"page_size": "100"}, "page_size='100'"),
        ({"service_accounts": "yes"}, "service_accounts='yes'"),
        ({"deprovisioned": 0}, "deprovisioned=0"),
    ],
)
def test_bad_listing_arguments_send_nothing(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field} is invalid"):
        hook.list_users(**kwargs)  # type: ignore[arg-type]
    assert emulator.journal == []


# -- Dive embed sessions ---------------------------------------------------------------------------


def test_an_embed_session_is_issued_and_masked_at_once(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_user("embed_bot")
    resources = [{"url": "md:sales", "alias": "sales"}]
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_motherduck"):
        result = hook.create_dive_embed_session(
            "dive-1",
            "embed_bot",
            session_name="kiosk",
            version=2,
            required_resources=resources,
            initial_state={"tab": 1},
        )
    (issued,) = emulator.embed_sessions()
    assert result == {"session": issued["secret"]}
    assert redact(f"session {result['session']}") == "session ***"
    assert (issued["dive_id"], issued["username"], issued["session_name"], issued["version"]) == (
        "dive-1",
        "embed_bot",
        "kiosk",
        2,
    )
    assert (issued["required_resources"], issued["initial_state"]) == (resources, {"tab": 1})
    assert emulator.journal[-1].body == {
        "username": "embed_bot",
        "session_name": "kiosk",
        "version": 2,
        "required_resources": resources,
        "initial_state": {"tab": 1},
    }
    assert result["session"] not in "\n".join(r.getMessage() for r in caplog.records)


def test_only_given_options_are_sent(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> None:
    emulator.add_user("embed_bot")
    hook.create_dive_embed_session("a/b", "embed_bot")
    assert emulator.journal[-1].path == "/v1/dives/a%2Fb/embed-session"
    assert emulator.journal[-1].body == {"username": "embed_bot"}


def _padded(size: int, key: str) -> dict[str, str]:
    """A JSON object of exactly ``size`` bytes as compact JSON."""
    return {key: "x" * (size - len(f'{{"{key}":""}}'))}


def test_the_size_limits_are_checked_before_sending(
    hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    emulator.add_user("embed_bot")
    url = "md:" + "x" * (REQUIRED_RESOURCES_MAX_BYTES - len('[{"url":"md:"}]'))
    at_limit = {"required_resources": [{"url": url}], "initial_state": _padded(INITIAL_STATE_MAX_BYTES, "s")}
    hook.create_dive_embed_session("dive-1", "embed_bot", **at_limit)  # the emulator agrees: accepted
    emulator.clear_journal()
    with pytest.raises(ValueError, match=r"required_resources .* is invalid: it is 8193 bytes as JSON"):
        hook.create_dive_embed_session("dive-1", "embed_bot", required_resources=[{"url": url + "x"}])
    with pytest.raises(ValueError, match=r"initial_state .* is invalid: it is 65537 bytes as JSON"):
        hook.create_dive_embed_session(
            "dive-1", "embed_bot", initial_state=_padded(INITIAL_STATE_MAX_BYTES + 1, "s")
        )
    assert emulator.journal == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dive_id": ""}, "dive_id=''"),
        ({"dive_id": ".."}, "dive_id='..'"),
        ({"username": ""}, "username=''"),
        ({"version": 0}, "version=0"),
        ({"version": True}, "version=True"),
        ({"session_name": " "}, "session_name=' '"),
        ({"required_resources": [{"alias": "a"}]}, r"required_resources\[0\]="),
        ({"required_resources": [{"url": "md:a", "role": "x"}]}, r"required_resources\[0\]="),
        ({"initial_state": ["not", "an", "object"]}, r"initial_state \(a list"),
    ],
)
def test_bad_embed_arguments_send_nothing(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, kwargs: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {"dive_id": "dive-1", "username": "embed_bot", **kwargs}
    with pytest.raises(ValueError, match=f"^{field}"):
        hook.create_dive_embed_session(**arguments)  # type: ignore[arg-type]
    assert emulator.journal == []


@pytest.mark.parametrize("why", ["plan", "human"])
def test_a_403_is_explained(hook: MotherDuckHook, emulator: MotherDuckEmulator, why: str) -> None:
    emulator.add_user("embed_bot")
    if why == "plan":
        emulator.business_plan = False
    with pytest.raises(MotherDuckAuthError) as info:
        hook.create_dive_embed_session("dive-1", "embed_bot" if why == "plan" else "admin")
    assert info.value.status_code == 403
    assert (
        "Dive embed sessions need MotherDuck's Business plan, and username must be an active service account"
        in str(info.value)
    )
    assert emulator.embed_sessions() == []
