"""The pure planner: ownership, adoption, case folding, the strict prune guards and the one check
that refuses before any write."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.hooks.sql.answers import Role, Share, ShareGrant
from airflow_provider_motherduck.workflows.reconcile import (
    AccountAccess,
    AccountState,
    OrgState,
    Ownership,
    check_declaration,
    plan_reconcile,
)
from airflow_provider_motherduck.workflows.reconcile.state import ShareState


def user(name: str, *, roles: Any = ("member",), sa: Any = True, gone: Any = False) -> dict[str, Any]:
    return {
        "username": name,
        "roles": list(roles) if isinstance(roles, tuple) else roles,
        "is_service_account": sa,
        "is_deprovisioned": gone,
    }


def token(token_id: str, name: str) -> dict[str, Any]:
    return {"id": token_id, "name": name, "token_type": "read_write", "created_ts": "2026-01-01T00:00:00Z"}


def owned(*accounts: tuple[str, tuple[str, ...]]) -> Ownership:
    return Ownership(
        "analytics", {("accounts", u.casefold()): (u, {"tokens": frozenset(names)}) for u, names in accounts}
    )


def declare(*accounts: dict[str, Any]) -> Any:
    return check_declaration({"name": "analytics", "service_accounts": list(accounts)})


def actions(plan: Any) -> list[tuple[str, str, str | None]]:
    return [(a["action"], a["username"], a.get("token_id")) for a in plan.as_list()]


def test_prune_touches_only_owned_accounts_and_tokens_and_spares_the_guarded() -> None:
    declared = declare(
        {"username": "kept_bot", "tokens": [{"name": "airflow", "variable_key": "k"}]},
        {"username": "svc_admin", "tokens": []},
    )
    state = OrgState(
        users=(
            user("jane", roles=("admin",), sa=False),
            user("kept_bot"),
            user("svc_admin", roles=("admin",)),
            user("old_bot"),  # owned, no longer declared: deleted
            user("strangers_bot"),  # neither declared nor owned: never touched
            user("left_bot", gone=True),
            user("Prod_Loader"),
            user("owned_admin", roles=("admin",)),
        ),
        accounts={
            "kept_bot": AccountState(
                tokens=(
                    token("t1", "airflow"),
                    token("t2", "airflow@20250101T000000Z"),
                    token("t3", "legacy"),  # owned name, no longer declared
                    token("t4", "by_hand"),  # never owned: kept
                ),
                delivered={"airflow": "t1"},
            ),
            "svc_admin": AccountState(tokens=(token("t5", "connection"),)),
        },
        owned=owned(
            ("kept_bot", ("airflow", "legacy")),
            ("svc_admin", ("connection",)),
            ("old_bot", ()),
            ("left_bot", ()),
            ("prod_loader", ()),
            ("owned_admin", ()),
            ("jane", ()),
        ),
    )
    plan = plan_reconcile(declared, state, prune=True, protect=("PROD_*",))

    assert actions(plan) == [("revoke_token", "kept_bot", "t3"), ("delete_user", "old_bot", None)]
    assert dict(plan.spared) == {
        "svc_admin": "1 owned undeclared token(s) kept: Admin role",
        "jane": "owned, not declared, kept: a human user",
        "left_bot": "owned, not declared, kept: deprovisioned",
        "Prod_Loader": "owned, not declared, kept: protected",
        "owned_admin": "owned, not declared, kept: Admin role",
    }
    assert plan.deletes == 2
    assert plan_reconcile(declared, state, prune=False).actions == ()


def test_an_existing_declared_account_is_adopted_and_nothing_unowned_is_pruned() -> None:
    declared = declare({"username": "etl_loader", "tokens": [{"name": "airflow", "variable_key": "k"}]})
    state = OrgState(
        (user("etl_loader"), user("other_team_bot")),
        {"etl_loader": AccountState(tokens=(token("t1", "airflow"),), delivered={"airflow": "t1"})},
        owned(),  # a record that owns nothing yet
    )
    plan = plan_reconcile(declared, state, prune=True)
    assert actions(plan) == [("adopt_user", "etl_loader", None)]
    assert plan.as_list()[0]["token_names"] == ["airflow"]
    assert plan.owns == (("accounts", "etl_loader"), ("accounts", "etl_loader", "tokens", "airflow"))
    assert "adopt_user" in plan.table()


def test_usernames_compare_folded_and_print_in_motherducks_spelling() -> None:
    """ETL_Loader declared, etl_loader in the organisation: one account, adopted, never deleted."""
    declared = declare({"username": "ETL_Loader", "read_write": {"instance_size": "jumbo"}})
    config = {
        "read_write": {"instance_size": "standard"},
        "read_scaling": {"instance_size": "standard", "flock_size": 1},
    }
    state = OrgState(
        (user("etl_loader"),), {"etl_loader": AccountState(config=config)}, owned(("ETL_LOADER", ()))
    )
    plan = plan_reconcile(declared, state, prune=True, protect=())
    assert actions(plan) == [("update_duckling_config", "etl_loader", None)]
    assert plan.as_list()[0]["changes"] == {"read_write.instance_size": {"from": "standard", "to": "jumbo"}}
    assert plan.owns == (("accounts", "etl_loader"),)


@pytest.mark.parametrize(
    ("listing", "field"),
    [
        ({"roles": "admin"}, "roles"),
        ({"roles": ["member", 1]}, "roles"),
        ({"is_service_account": "true"}, "is_service_account"),
        ({"is_deprovisioned": "false"}, "is_deprovisioned"),
        ({"is_deprovisioned": None}, "is_deprovisioned"),
    ],
)
def test_a_malformed_listing_makes_a_user_unprunable_with_a_warning(
    listing: dict[str, Any], field: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = OrgState((user("old_bot") | listing,), {}, owned(("old_bot", ())))
    plan = plan_reconcile(declare(), state, prune=True)
    assert plan.actions == ()
    assert dict(plan.spared) == {"old_bot": f"owned, not declared, kept: malformed {field} in the listing"}
    assert f"'{field}' is malformed" in caplog.text


def test_unsafe_plans_are_refused_before_any_write_with_every_reason() -> None:
    declared = declare({"username": "jane"}, {"username": "left_bot"}, {"username": "new_bot"})
    state = OrgState(
        (user("Jane", sa=False), user("left_bot", gone=True), *(user(f"old_{i}") for i in range(3))),
        {},
        owned(*((f"old_{i}", ()) for i in range(3))),
        total_count=6,
    )
    plan = plan_reconcile(declared, state, prune=True)
    with pytest.raises(MotherDuckReconcileError) as caught:
        plan.raise_if_unsafe(max_deletes=2)
    message = str(caught.value)
    assert "showed 5 user(s) but MotherDuck counts 6" in message
    assert "Jane (a human user), left_bot (deprovisioned or malformed)" in message
    assert "revokes or deletes 3 thing(s), more than max_deletes=2" in message
    assert caught.value.summary["unsafe"] == plan.unsafe(2)
    plan_reconcile(declared, OrgState((), {}), prune=True).raise_if_unsafe(max_deletes=0)  # safe: passes


def test_prune_takes_back_only_owned_roles_inclusions_shares_and_grants() -> None:
    declared = check_declaration(
        {
            "name": "analytics",
            "roles": [{"name": "readers", "includes": ["explorer"]}],
            "shares": [
                {
                    "name": "orders",
                    "owner": "Sales_Owner",
                    "database": "sales",
                    "grants": {"roles": ["readers"]},
                }
            ],
            "service_accounts": [
                {
                    "username": "bot",
                    "roles": ["readers"],
                    "attach": [{"share": "orders", "owner": "sales_owner"}],
                }
            ],
        }
    )
    role = Role("readers", "custom", ("explorer", "builder", "theirs"))
    grants = tuple(
        ShareGrant("sales_owner", name, kind, "read")
        for kind, name in (("role", "readers"), ("user", "Old_Bot"), ("user", "their_bot"))
    )
    state = OrgState(
        users=(user("bot"), user("sales_owner")),
        accounts={"bot": AccountState(access=AccountAccess())},
        owned=Ownership(
            "analytics",
            {
                ("accounts", "bot"): ("bot", {}),
                ("roles", "readers"): ("readers", {"includes": frozenset({"builder"})}),
                ("roles", "gone_role"): ("gone_role", {}),
                ("shares", "sales_owner/orders"): ("sales_owner/orders", {"users": frozenset({"old_bot"})}),
                ("shares", "sales_owner/old_share"): ("sales_owner/old_share", {}),
            },
        ),
        me="admin",
        roles={
            "readers": role,
            "gone_role": Role("gone_role", "custom"),
            "their_role": Role("their_role", "custom"),
        },
        shares={
            "sales_owner/orders": ShareState(
                Share("orders", "sales", "restricted", "hidden", "automatic", "md:_share/sales/x"), grants
            ),
            "sales_owner/old_share": ShareState(
                Share("old_share", "sales", "restricted", "hidden", "automatic", "md:_share/sales/y")
            ),
        },
    )
    plan = plan_reconcile(declared, state, prune=True)
    assert [(a["action"], a["detail"]) for a in plan.as_list()] == [
        ("grant_role", "role readers"),
        ("attach_share", "share orders of sales_owner as 'orders'"),  # read through the role: no grant
        ("exclude_role", "no longer includes builder"),  # owned; "theirs" is not
        ("revoke_share", "read of user old_bot: no longer declared"),  # owned; their_bot's is not
        ("drop_share", "owned, no longer declared: dropped"),
        ("drop_role", "owned, no longer declared: dropped"),  # gone_role; their_role is not owned
    ]
    assert [a.subject for a in plan.actions][-2:] == ["share sales_owner/old_share", "role gone_role"]
    assert plan.deletes == 4
    assert ("shares", "sales_owner/orders", "roles", "readers") in plan.owns

    no_owner = check_declaration(
        {"name": "analytics", "shares": [{"name": "x", "owner": "nobody", "database": "d"}]}
    )
    refused = plan_reconcile(
        no_owner, OrgState(users=(), accounts={}, me="admin", missing_owners=frozenset({"nobody"}))
    )
    assert refused.actions == ()
    assert "owner nobody, which is not an active service account" in refused.refusals[0]
