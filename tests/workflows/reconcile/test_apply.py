"""Apply over real HTTP against the emulator: converging, ownership and adoption, prune leaving
what it does not own alone, case, a partial listing, a stale view, a fault at each step."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import (
    InMemoryVariableStore,
    default_record_key,
)
from airflow_provider_motherduck.workflows.reconcile import (
    apply_plan,
    check_declaration,
    plan_reconcile,
    read_ownership,
    read_state,
)
from tests.operators.helpers import SECRET_RE, writes_seen
from tests.support import OWNER, ROLES, SHARES, count_as, delivered_id, session_tokens, sql_writes
from tests.workflows.reconcile.conftest import DESIRED, TOKENS, Reconcile, new_hook

ALL_DECLARED = ["admin", "etl_loader", "bi_dashboards", "ml_features"]


def assert_converged(emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore) -> None:
    """Each declared token: exactly one live token of that name, its secret in its Variable."""
    for (user, name), key in TOKENS.items():
        (token,) = [t for t in emulator.tokens(user) if t["name"] == name]
        assert emulator.is_valid_token(motherduck_variables[key])
        assert delivered_id(motherduck_variables[default_record_key(variable_key=key)]) == token["id"]
    assert emulator.duckling_config("etl_loader")["read_write"]["instance_size"] == "jumbo"
    assert emulator.duckling_config("ml_features")["read_scaling"] == {
        "instance_size": "pulse",
        "flock_size": 1,
    }


def test_apply_adopts_creates_owns_and_a_rerun_makes_no_write(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, reconcile: Reconcile
) -> None:
    emulator.add_user("bi_dashboards")
    emulator.add_token("bi_dashboards", "legacy")
    assert [a["action"] for a in reconcile(mode="plan")["plan"]] == [
        "create_user",
        "update_duckling_config",
        "issue_token",
        "adopt_user",
        "issue_token",
        "issue_token",
        "create_user",
        "update_duckling_config",
    ]
    assert writes_seen(emulator) == []
    assert motherduck_variables.writes == []

    summary = reconcile()

    assert_converged(emulator, motherduck_variables)
    assert summary["failed"] == {}
    assert len(emulator.tokens("bi_dashboards")) == 3  # legacy kept: not owned
    owned = read_ownership("analytics", motherduck_variables)
    assert owned.names("accounts") == ["bi_dashboards", "etl_loader", "ml_features"]
    assert owned.tokens("bi_dashboards") == {"dash", "ops"}
    emulator.clear_journal()
    motherduck_variables.writes.clear()

    again = reconcile(prune=True)
    assert again["plan"] == []
    assert writes_seen(emulator) == []
    assert motherduck_variables.writes == []
    assert reconcile(mode="check")["plan"] == []


def test_prune_leaves_unowned_accounts_alone_and_deletes_an_owned_one_no_longer_declared(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, reconcile: Reconcile
) -> None:
    emulator.add_user("other_team_bot")
    other = emulator.add_token("other_team_bot", "their_rotation")
    reconcile(prune=True)
    assert "other_team_bot" in emulator.users()  # neither declared nor owned: untouched

    stray = emulator.add_token("etl_loader", "by_hand")  # not owned: kept
    fewer = {
        "name": "analytics",
        "service_accounts": [
            {**DESIRED["service_accounts"][0], "tokens": []},  # airflow no longer declared
            DESIRED["service_accounts"][2],
        ],
    }
    emulator.clear_journal()
    summary = reconcile(fewer, prune=True)

    assert [(a["action"], a["username"]) for a in summary["plan"]] == [
        ("revoke_token", "etl_loader"),
        ("delete_user", "bi_dashboards"),
    ]
    assert sorted(emulator.users()) == ["admin", "etl_loader", "ml_features", "other_team_bot"]
    assert [t["id"] for t in emulator.tokens("etl_loader")] == [stray["id"]]
    assert [t["id"] for t in emulator.tokens("other_team_bot")] == [other["id"]]
    assert json.loads(motherduck_variables["motherduck_owned_analytics"])["accounts"] == {
        "etl_loader": {"tokens": []},
        "ml_features": {"tokens": []},
    }
    emulator.clear_journal()
    assert reconcile(fewer, prune=True)["plan"] == []


def test_two_dags_naming_one_declaration_share_ownership(
    emulator: MotherDuckEmulator, reconcile: Reconcile
) -> None:
    reconcile()
    other_half = {"name": "analytics", "service_accounts": [DESIRED["service_accounts"][2]]}
    other_name = {**other_half, "name": "another"}
    assert [a["action"] for a in reconcile(other_name, prune=True)["plan"]] == ["adopt_user"]
    summary = reconcile(other_half, prune=True, max_deletes=10)
    assert sorted(a["username"] for a in summary["plan"] if a["action"] == "delete_user") == [
        "bi_dashboards",
        "etl_loader",
    ]


def test_etl_loader_declared_as_ETL_Loader_is_one_account(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, reconcile: Reconcile
) -> None:
    emulator.add_user("etl_loader")
    kept = emulator.add_token("etl_loader", "data_pipeline")
    renamed = {"name": "analytics", "service_accounts": [{"username": "ETL_Loader", "tokens": []}]}
    summary = reconcile(renamed, prune=True)
    assert [(a["action"], a["username"]) for a in summary["plan"]] == [("adopt_user", "etl_loader")]
    assert emulator.users() == ["admin", "etl_loader"]
    assert [t["id"] for t in emulator.tokens("etl_loader")] == [kept["id"]]
    assert reconcile(renamed, prune=True)["plan"] == []


def test_a_listing_that_misses_a_declared_account_stops_before_any_write(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, reconcile: Reconcile
) -> None:
    for i in range(100):  # two pages of users
        emulator.add_user(f"z_bot_{i:03}")
    emulator.add_user_during_listing("bi_dashboards", after_pages=1)
    emulator.clear_journal()
    with pytest.raises(MotherDuckReconcileError, match=r"counts 102.*re-run once the organisation is still"):
        reconcile()
    assert writes_seen(emulator) == []
    assert motherduck_variables.writes == []
    reconcile()  # the next run sees it all, adopts it and converges
    assert_converged(emulator, motherduck_variables)


def test_a_create_that_conflicts_rereads_the_account_and_issues_no_second_token(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, reconcile: Reconcile
) -> None:
    """The plan was made on a stale view: the account appeared (with its delivered token) after
    the listing. The create conflicts; its tokens are read again and the held one is kept."""
    one = {"name": "analytics", "service_accounts": [DESIRED["service_accounts"][0]]}
    reconcile(one)
    (held,) = emulator.tokens("etl_loader")
    emulator.inject(
        "GET", "/v1/users", body={"users": [], "total_count": 0, "next_page_token": None}, status=200
    )
    summary = reconcile(one)
    assert [a["action"] for a in summary["plan"]][:1] == ["create_user"]
    assert summary["done"][0]["outcome"] == {"created": False}
    assert [t["id"] for t in emulator.tokens("etl_loader")] == [held["id"]]
    assert emulator.is_valid_token(motherduck_variables["md_etl"])


def test_more_deletes_than_max_deletes_are_refused_before_any_write(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, reconcile: Reconcile
) -> None:
    for i in range(3):
        emulator.add_user(f"old_{i}")
    reconcile({"name": "analytics", "service_accounts": [{"username": f"old_{i}"} for i in range(3)]})
    emulator.clear_journal()
    with pytest.raises(
        MotherDuckReconcileError, match=r"revokes or deletes 3 thing\(s\), more than max_deletes=2"
    ):
        reconcile(prune=True, max_deletes=2)
    assert writes_seen(emulator) == []
    assert reconcile(prune=True, mode="plan", max_deletes=2)["deletes"] == 3  # plan mode only warns


def test_check_fails_on_drift_and_names_it(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, reconcile: Reconcile
) -> None:
    reconcile()
    emulator.set_duckling_config(
        "etl_loader",
        {
            "read_write": {"instance_size": "standard"},
            "read_scaling": {"instance_size": "standard", "flock_size": 2},
        },
    )
    del motherduck_variables["md_bi"]  # the secret lost: a new token is due
    emulator.clear_journal()
    with pytest.raises(MotherDuckReconcileError, match="Drift") as caught:
        reconcile(mode="check")
    assert "read_write.instance_size: standard -> jumbo" in str(caught.value)
    assert [(a["action"], a["username"]) for a in caught.value.summary["plan"]] == [
        ("update_duckling_config", "etl_loader"),
        ("issue_token", "bi_dashboards"),
    ]
    assert writes_seen(emulator) == []


# -- a fault at each step, then a converging re-run ---------------------------------------------

Fault = Callable[[MotherDuckEmulator], None]
FAULTS: dict[str, Fault] = {
    "create user, answer lost": lambda e: e.inject("POST", "/v1/users", status=500, after=True),
    "create user refused": lambda e: e.inject("POST", "/v1/users", status=503),
    "read config": lambda e: e.inject("GET", "/v1/users/ml_features/instances", status=500, times=2),
    "write config": lambda e: e.inject("PUT", "/v1/users/*/instances", status=500),
    "create token, answer lost": lambda e: e.inject(
        "POST", "/v1/users/bi_dashboards/tokens", status=500, after=True
    ),
    "create token, dropped after": lambda e: e.inject("POST", "/v1/users/*/tokens", drop=True, after=True),
    "revoke token": lambda e: e.inject("DELETE", "/v1/users/etl_loader/tokens/*", status=500),
    "delete user": lambda e: e.inject("DELETE", "/v1/users/old_bot", status=500),
    "list a user's tokens on delete": lambda e: e.inject("GET", "/v1/users/old_bot/tokens", status=500),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_part_way_then_a_rerun_converges(
    fault: str,
    emulator: MotherDuckEmulator,
    motherduck_variables: InMemoryVariableStore,
    reconcile: Reconcile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.add_user("bi_dashboards")
    emulator.add_token("bi_dashboards", "legacy")
    emulator.add_user("old_bot")
    emulator.add_token("old_bot", "x")
    emulator.add_user("etl_loader")
    emulator.add_token("etl_loader", "old_name")
    was = {
        "name": "analytics",
        "service_accounts": [
            {"username": "old_bot"},
            {"username": "etl_loader", "tokens": [{"name": "old_name", "variable_key": "md_old"}]},
        ],
    }
    reconcile(was)  # owns old_bot and etl_loader's old_name, both pruned below
    FAULTS[fault](emulator)
    caplog.set_level(logging.INFO)

    with pytest.raises(MotherDuckReconcileError) as caught:
        reconcile(prune=True)
    assert caught.value.summary["failed"]
    emulator.clear_faults()
    reconcile(prune=True)  # the re-run finishes

    assert_converged(emulator, motherduck_variables)
    assert sorted(emulator.users()) == sorted(ALL_DECLARED)
    assert sorted(t["name"] for t in emulator.tokens("bi_dashboards")) == ["dash", "legacy", "ops"]
    assert [t["name"] for t in emulator.tokens("etl_loader")] == ["airflow"]
    emulator.clear_journal()
    assert reconcile(prune=True)["plan"] == []
    assert writes_seen(emulator) == []
    secrets = [s["secret"] for s in emulator.issued_secrets()]
    assert not any(s in caplog.text for s in secrets)
    assert not SECRET_RE.search(json.dumps(caught.value.summary))
    assert not SECRET_RE.search(str(caught.value))


def test_no_secret_in_the_summary_or_logs(
    emulator: MotherDuckEmulator, reconcile: Reconcile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    summary = reconcile()
    secrets = [s["secret"] for s in emulator.issued_secrets()]
    assert len(secrets) == 4  # the admin's and three new ones
    assert not SECRET_RE.search(json.dumps(summary))
    assert not any(s in caplog.text for s in secrets)
    assert "issue_token" in caplog.text  # the plan table was logged


def test_a_declared_accounts_roles_and_shares_are_applied_then_checked_without_drift(
    reconcile: Reconcile, access_org: MotherDuckEmulator, sql_hook: MotherDuckHook
) -> None:
    desired = {
        "name": "readers",
        "service_accounts": [
            {
                "username": "bi_reader",
                "tokens": [{"name": "airflow", "variable_key": "md_bi_reader"}],
                "roles": ROLES,
                "attach": SHARES,
            }
        ],
    }
    summary = reconcile(desired)
    assert [a["action"] for a in summary["done"]] == [
        "create_user",
        "issue_token",
        "grant_role",
        "grant_role",
        "grant_share",
        "grant_share",
        "attach_share",
        "attach_share",
    ]
    assert {g.role for g in sql_hook.roles_of("bi_reader") if g.direct} == set(ROLES)
    access_org.clear_journal()
    assert reconcile(desired, mode="check")["plan"] == []
    assert sql_writes(access_org) == []
    assert session_tokens(access_org) == []


# -- roles and shares the declaration owns, over the Postgres wire protocol ---------------------

READER = "report_reader"
SALES: dict[str, Any] = {
    "name": "sales_access",
    "roles": [{"name": "sales_readers", "includes": ["analysts"]}],
    "shares": [
        {
            "name": "sales_orders",
            "owner": OWNER,
            "database": "sales",
            "include": ["main.orders"],
            "grants": {"roles": ["sales_readers"]},
        }
    ],
    "service_accounts": [
        {
            "username": READER,
            "tokens": [{"name": "airflow", "variable_key": "md_report_reader"}],
            "roles": ["sales_readers"],
            "attach": [{"share": "sales_orders", "owner": OWNER, "alias": "orders_in"}],
        }
    ],
}


def test_declared_roles_and_shares_are_made_granted_and_attached_then_checked_without_drift(
    reconcile: Reconcile, access_org: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    summary = reconcile(SALES)
    assert [a["action"] for a in summary["done"]] == [
        "create_role",
        "include_role",
        "create_user",
        "issue_token",
        "grant_role",
        "create_share",
        "grant_share_to_role",  # the account reads through its role: no grant of its own
        "attach_share",
    ]
    assert count_as(access_org, motherduck_variables["md_report_reader"], "orders") == 3
    record = json.loads(motherduck_variables["motherduck_owned_sales_access"])
    assert record["roles"] == {"sales_readers": {"includes": ["analysts"]}}
    assert record["shares"] == {f"{OWNER}/sales_orders": {"roles": ["sales_readers"]}}
    assert record["accounts"][READER]["roles"] == ["sales_readers"]
    assert session_tokens(access_org) == []

    access_org.clear_journal()
    assert reconcile(SALES, mode="check", prune=True)["plan"] == []
    assert sql_writes(access_org) == []
    assert session_tokens(access_org) == []


def test_prune_drops_and_revokes_only_what_the_declaration_owns(
    reconcile: Reconcile,
    access_org: MotherDuckEmulator,
    sql_hook: MotherDuckHook,
    motherduck_variables: InMemoryVariableStore,
) -> None:
    reconcile(SALES)
    sql_hook.create_role("other_team")  # neither declared nor owned: never touched
    sql_hook.grant_role("other_team", to_user=READER)
    sql_hook.create_share(
        "their_share", "sales", access="restricted", visibility="hidden", update="manual", as_user=OWNER
    )
    sql_hook.grant_share("their_share", to_role="sales_readers", as_user=OWNER)
    bare = {
        "name": "sales_access",
        "service_accounts": [{**SALES["service_accounts"][0], "roles": [], "attach": []}],
    }
    summary = reconcile(bare, prune=True)
    assert [(a["action"], a["username"]) for a in summary["plan"]] == [
        ("revoke_role", READER),
        ("drop_share", OWNER),
        ("drop_role", None),
    ]
    assert {r.name for r in sql_hook.list_roles()} >= {"other_team", *ROLES}
    assert "sales_readers" not in {r.name for r in sql_hook.list_roles()}
    assert {s.name for s in sql_hook.list_shares(as_user=OWNER)} == {
        "their_share",
        *(s["share"] for s in SHARES),
    }
    assert [g.role for g in sql_hook.roles_of(READER) if g.direct] == ["other_team"]
    owned = read_ownership("sales_access", motherduck_variables)
    assert (owned.names("roles"), owned.names("shares"), owned.items("accounts", READER, "roles")) == (
        [],
        [],
        frozenset(),
    )
    assert reconcile(bare, mode="check", prune=True)["plan"] == []


def test_an_apply_from_a_stale_plan_beside_a_whole_run_changes_nothing_twice(
    reconcile: Reconcile, access_org: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    """Two overlapping applies of one declaration: one plans, the other runs whole, then the first
    applies its plan. Every create finds what the other made, every grant is held already."""
    declaration = check_declaration(SALES)
    stale = plan_reconcile(
        declaration, read_state(declaration, new_hook, max_workers=2, store=motherduck_variables)
    )
    reconcile(SALES)
    result = apply_plan(stale, new_hook, motherduck_variables, max_workers=2, max_deletes=5)
    assert result.failed == {}
    made = {d["action"]: d["outcome"] for d in result.done if d["action"] != "issue_token"}
    assert {k: v for k, v in made.items() if "created" in v} == {
        "create_role": {"created": False},
        "create_user": {"created": False},
        "create_share": {"created": False},
        "attach_share": {"alias": "orders_in", "created": False},
    }
    assert [t["name"] for t in access_org.tokens(READER)] == ["airflow"]
    assert reconcile(SALES, mode="check")["plan"] == []

    bare = {
        "name": "sales_access",
        "service_accounts": [{**SALES["service_accounts"][0], "roles": [], "attach": []}],
    }
    checked = check_declaration(bare)
    stale = plan_reconcile(
        checked, read_state(checked, new_hook, max_workers=2, store=motherduck_variables), prune=True
    )
    reconcile(bare, prune=True)
    result = apply_plan(stale, new_hook, motherduck_variables, max_workers=2, max_deletes=5)
    assert result.failed == {}
    assert [d["outcome"] for d in result.done] == [{"revoked": False}, {"deleted": False}, {"deleted": False}]
    assert reconcile(bare, mode="check", prune=True)["plan"] == []
    assert session_tokens(access_org) == []


def test_an_owned_share_whose_options_differ_is_made_again_and_attached_again(
    reconcile: Reconcile, access_org: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    reconcile(SALES)
    opened = json.loads(json.dumps(SALES))
    opened["shares"][0] = {**opened["shares"][0], "access": "organization", "grants": None}
    summary = reconcile(opened)
    assert [(a["action"], a.get("changes")) for a in summary["done"]] == [
        ("replace_share", {"access": {"from": "restricted", "to": "organization"}}),
        ("attach_share", None),
    ]
    assert count_as(access_org, motherduck_variables["md_report_reader"], "orders") == 3  # the new URL
    assert reconcile(opened, mode="check")["plan"] == []


def test_a_share_shows_other_tables_in_place_its_url_and_attachment_kept(
    reconcile: Reconcile, access_org: MotherDuckEmulator, sql_hook: MotherDuckHook
) -> None:
    reconcile(SALES)
    (before,) = [s for s in sql_hook.list_shares(as_user=OWNER) if s.name == "sales_orders"]
    wider = json.loads(json.dumps(SALES))
    wider["shares"][0]["include"] = ["main.orders", "main.customers"]
    summary = reconcile(wider)
    assert [(a["action"], a["detail"], a["outcome"]) for a in summary["done"]] == [
        ("set_share_include", "include: main.orders -> main.orders, main.customers", {"changed": True})
    ]
    (after,) = [s for s in sql_hook.list_shares(as_user=OWNER) if s.name == "sales_orders"]
    assert (after.include, after.url) == (("main.orders", "main.customers"), before.url)
    del wider["shares"][0]["include"]  # the whole database
    assert [a["action"] for a in reconcile(wider)["done"]] == ["set_share_include"]
    assert reconcile(wider, mode="check")["plan"] == []


def test_a_share_it_does_not_own_is_never_replaced_the_apply_is_refused(
    reconcile: Reconcile,
    access_org: MotherDuckEmulator,
    sql_hook: MotherDuckHook,
    motherduck_variables: InMemoryVariableStore,
) -> None:
    sql_hook.create_share(
        "their_share", "sales", access="restricted", visibility="hidden", update="manual", as_user=OWNER
    )
    access_org.clear_journal()
    theirs = {
        "name": "sales_access",
        "shares": [{"name": "their_share", "owner": OWNER, "database": "sales"}],
    }
    with pytest.raises(
        MotherDuckReconcileError, match=r"their_share of sales_owner has update manual \(declared automatic\)"
    ):
        reconcile(theirs)
    assert sql_writes(access_org) == []
    assert "motherduck_owned_sales_access" not in motherduck_variables


def test_a_share_granted_to_a_user_is_revoked_by_prune_once_nothing_declares_it(
    reconcile: Reconcile, access_org: MotherDuckEmulator, sql_hook: MotherDuckHook
) -> None:
    direct = json.loads(json.dumps(SALES))
    direct["shares"][0].update(grants={"users": [READER.upper()]}, visibility="discoverable", update="manual")
    direct["service_accounts"][0]["roles"] = []
    summary = reconcile(direct)
    assert [(a["action"], a["username"]) for a in summary["done"] if "share" in a["action"]] == [
        ("create_share", OWNER),
        ("grant_share", READER.upper()),  # the declared grant, once: the attachment needs no other
        ("attach_share", READER),
    ]
    (share,) = [s for s in sql_hook.list_shares(as_user=OWNER) if s.name == "sales_orders"]
    assert (share.visibility, share.update) == ("discoverable", "manual")

    del direct["shares"][0]["grants"]  # the account still attaches it: it keeps its read
    assert reconcile(direct, prune=True)["plan"] == []
    direct["service_accounts"][0]["attach"] = []
    summary = reconcile(direct, prune=True)
    assert [(a["action"], a["detail"]) for a in summary["done"]] == [
        ("revoke_share", f"read of user {READER.upper()}: no longer declared")
    ]
    assert [g.grantee for g in sql_hook.share_grants("sales_orders", as_user=OWNER)] == []
    assert reconcile(direct, mode="check", prune=True)["plan"] == []


def test_a_rejected_admin_token_stops_every_later_phase_and_a_rerun_finishes(
    reconcile: Reconcile, access_org: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    access_org.inject("POST", "/v1/users", status=401)
    with pytest.raises(MotherDuckReconcileError, match="1 account") as caught:
        reconcile(SALES)
    summary = caught.value.summary
    assert [a["action"] for a in summary["done"]] == ["create_role", "include_role"]
    assert [a["action"] for a in summary["not_attempted"]] == [
        "create_user",
        "issue_token",
        "grant_role",
        "create_share",
        "grant_share_to_role",
        "attach_share",
    ]
    assert session_tokens(access_org) == []
    assert [a["action"] for a in reconcile(SALES)["done"]] == [a["action"] for a in summary["not_attempted"]]
    assert count_as(access_org, motherduck_variables["md_report_reader"], "orders") == 3
