"""The access report: its rules (pure, at their boundaries) and the reading over the real Postgres wire protocol."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql import RoleGrant, ShareGrant, is_session_token
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.access_report import (
    AccessFacts,
    access_table,
    judge_access,
    read_access,
    readable_shares,
    share_access,
)

OWNER, READER, OPS, HUMAN = "share_owner", "etl_bot", "ops_bot", "jane"
OPTIONS = {"visibility": "hidden", "update": "manual"}


def held(*roles: str, through: tuple[str, ...] = ()) -> list[RoleGrant]:
    """Roles held directly, and others through them (as ``SHOW ROLES TO USER`` lists them)."""
    return [RoleGrant(r, "custom", True) for r in roles] + [RoleGrant(r, "preset", False) for r in through]


def grant(kind: str, name: str, owner: str = OWNER) -> ShareGrant:
    return ShareGrant(owner, name, kind, "read")


ORG_WIDE = grant("organization", "ENTIRE_ORGANIZATION")
EVERYONE = grant("domain", "ALL_USERS")


def report(
    accounts: dict[str, bool],
    roles: dict[str, list[RoleGrant]] | None = None,
    grants: dict[str, list[ShareGrant]] | None = None,
    restricted: tuple[str, ...] = (),
) -> dict[str, Any]:
    return judge_access(AccessFacts(accounts, roles or {}, grants or {}), restricted)


def rules_broken(result: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(v["rule"], v["username"] or v["share"]) for v in result["violations"]]


# -- the rules, pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "roles", "broken"),
    [
        (True, held("admin"), True),
        (True, held("ops", through=("admin", "builder", "explorer")), True),  # through another role
        (True, held("builder", through=("explorer",)), False),  # Builder is not Admin
        (True, [RoleGrant("ADMIN", "preset", True)], True),  # role names compare case-insensitively
        (True, held("administrators"), False),  # a custom role is not Admin for its name
        (False, held("admin"), False),  # a human Admin is left to the humans
        (True, [], False),
    ],
)
def test_a_service_account_holding_admin(service: bool, roles: list[RoleGrant], broken: bool) -> None:
    result = report({READER: service}, {READER: roles})
    assert rules_broken(result) == ([("service_account_admin", READER)] if broken else [])
    assert result["accounts"][0]["breaks"] == (["service_account_admin"] if broken else [])


@pytest.mark.parametrize(
    ("grants", "restricted", "broken"),
    [
        ([ORG_WIDE], ("orders",), True),
        ([EVERYONE], ("orders",), True),
        ([ORG_WIDE], ("ORDERS",), True),  # share names compare case-insensitively
        ([grant("user", READER), grant("role", "readers")], ("orders",), False),
        ([], ("orders",), False),  # restricted, granted to nobody yet
        ([ORG_WIDE], ("other",), False),  # open, and nobody says it must not be
        ([ORG_WIDE], (), False),
    ],
)
def test_a_share_declared_restricted_but_open(
    grants: list[ShareGrant], restricted: tuple[str, ...], broken: bool
) -> None:
    result = report({}, grants={"orders": grants}, restricted=restricted)
    assert rules_broken(result) == ([("restricted_share_open", "orders")] if broken else [])
    (share,) = result["shares"]
    assert share["breaks"] == (["restricted_share_open"] if broken else [])
    assert share["access"] == share_access(grants)


def test_share_access_as_the_grants_show_it() -> None:
    assert [share_access(g) for g in ([ORG_WIDE], [EVERYONE], [grant("user", READER)], [])] == [
        "organization",
        "unrestricted",
        "restricted",
        "restricted",
    ]


def test_every_way_an_account_reads_a_share() -> None:
    grants = {
        "orders": [grant("user", "ETL_Bot"), grant("role", "Readers")],
        "metrics": [ORG_WIDE],
        "public": [EVERYONE],
        "own": [grant("user", "someone_else", owner="etl_bot")],
        "theirs": [grant("user", "someone_else"), grant("role", "writers")],
    }
    ways = readable_shares(READER, held("analysts", through=("readers",)), grants)
    assert [(w["share"], w["via"], w["role"]) for w in ways] == [
        ("metrics", "organization", None),
        ("orders", "role", "Readers"),  # held through analysts
        ("orders", "user", None),  # usernames compare case-insensitively
        ("own", "owner", None),
        ("public", "unrestricted", None),
    ]
    assert {w["owner"] for w in ways} == {OWNER, "etl_bot"}


def test_the_report_rows_and_the_table() -> None:
    result = report(
        {READER: True, HUMAN: False},
        {READER: held("analysts", through=("readers",)), HUMAN: held("admin")},
        {"orders": [grant("role", "readers")]},
    )
    assert result["accounts"] == [
        {
            "username": READER,
            "is_service_account": True,
            "roles": [{"role": "analysts", "direct": True}, {"role": "readers", "direct": False}],
            "shares": [{"share": "orders", "owner": OWNER, "via": "role", "role": "readers"}],
            "attached": None,
            "breaks": [],
        },
        {
            "username": HUMAN,
            "is_service_account": False,
            "roles": [{"role": "admin", "direct": True}],
            "shares": [],
            "attached": None,
            "breaks": [],
        },
    ]
    assert result["shares"] == [
        {
            "share": "orders",
            "owner": OWNER,
            "access": "restricted",
            "grantees": [{"grantee": "readers", "grantee_type": "role"}],
            "breaks": [],
        }
    ]
    lines = access_table(result).splitlines()
    assert lines[0].split() == ["username", "kind", "roles", "shares", "attached", "breaks"]
    assert lines[1].split() == [
        READER,
        "service",
        "analysts,",
        "readers*",
        "orders",
        "via",
        "role",
        "readers",
        "?",
        "-",
    ]
    assert lines[2].split() == [HUMAN, "human", "admin", "-", "?", "-"]


# -- reading, over the Postgres wire protocol --------------------------------------------------------


@pytest.fixture
def org(emulator: MotherDuckEmulator, sql_hook: MotherDuckHook) -> MotherDuckEmulator:
    """An owner sharing ``orders`` restricted (to a role held through another role) and ``metrics``
    open to the organisation; a reader that attached ``orders``; a service account that is an Admin
    through a custom role; a human Admin."""
    for name in (OWNER, READER, OPS):
        emulator.add_user(name)
    emulator.add_user(HUMAN, human=True, roles=["admin"])
    emulator.add_database(OWNER, "orders", tables={"orders": 3})
    emulator.add_database(OWNER, "metrics", tables={"daily": 1})
    for role in ("readers", "analysts", "ops"):
        sql_hook.create_role(role)
    sql_hook.grant_role("readers", to_role="analysts")
    sql_hook.grant_role("analysts", to_user=READER)
    sql_hook.grant_role("admin", to_role="ops")
    sql_hook.grant_role("ops", to_user=OPS)
    orders = sql_hook.create_share("orders", "orders", access="restricted", **OPTIONS, as_user=OWNER)
    sql_hook.create_share("metrics", "metrics", access="organization", **OPTIONS, as_user=OWNER)
    sql_hook.grant_share("orders", to_role="readers", as_user=OWNER)
    sql_hook.attach_share(orders.url, "orders_in", as_user=READER)
    return emulator


def _minted(emulator: MotherDuckEmulator) -> list[str]:
    return [i["name"] for i in emulator.issued_secrets() if is_session_token(i["name"])]


def test_the_report_read_over_sql(org: MotherDuckEmulator, sql_hook: MotherDuckHook) -> None:
    minted = len(_minted(org))
    facts = read_access(sql_hook, shares=["metrics", "orders", "ORDERS", "gone"], attachments=True)
    result = judge_access(facts, restricted=["metrics"])

    rows = {row["username"]: row for row in result["accounts"]}
    assert set(rows) == {"admin", OWNER, READER, OPS, HUMAN}
    reader = rows[READER]
    assert {(r["role"], r["direct"]) for r in reader["roles"]} == {("analysts", True), ("readers", False)}
    assert [(s["share"], s["via"], s["role"]) for s in reader["shares"]] == [
        ("metrics", "organization", None),
        ("orders", "role", "readers"),  # a grant to a role the reader holds through another role
    ]
    assert reader["attached"] == [{"alias": "orders_in", "database": "orders"}]
    assert [(s["share"], s["via"]) for s in rows[OWNER]["shares"]] == [
        ("metrics", "organization"),
        ("metrics", "owner"),
        ("orders", "owner"),
    ]
    assert rows[HUMAN]["attached"] is None  # humans cannot be acted as: not read
    assert rules_broken(result) == [("service_account_admin", OPS), ("restricted_share_open", "metrics")]
    assert result["missing_shares"] == ["gone"]
    # One short-lived token per service account read as itself, each revoked.
    assert len(_minted(org)) - minted == 3  # share_owner, etl_bot, ops_bot
    assert not any(is_session_token(t["name"]) for u in (OWNER, READER, OPS) for t in org.tokens(u))


def test_attachments_are_read_only_when_asked(org: MotherDuckEmulator, sql_hook: MotherDuckHook) -> None:
    minted = len(_minted(org))
    result = judge_access(read_access(sql_hook, usernames=["ETL_BOT"], shares=["orders"]))
    assert [(row["username"], row["attached"]) for row in result["accounts"]] == [(READER, None)]
    assert len(_minted(org)) == minted  # no token minted
