"""The onboarding workflow at its edges: races, odd answers, faults part-way; the flat form's checks
and the change log."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckSQLError, TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore
from airflow_provider_motherduck.workflows.onboarding import check_account, onboard_account, onboard_accounts
from airflow_provider_motherduck.workflows.reconcile import check_declaration
from tests.operators.helpers import writes_seen
from tests.support import (
    OWNER,
    ROLES,
    SHARES,
    count_as,
    delivered_id,
    session_tokens,
    sessions_minted,
    sql_writes,
)

USER = "etl_loader"
KEY = "motherduck_token_etl_loader"
ACCOUNT = check_account({"username": USER, "token_name": "airflow", "variable_key": KEY})


def test_a_user_created_by_someone_else_meanwhile_is_adopted(
    emulator: MotherDuckEmulator, hook: MotherDuckHook, motherduck_variables: InMemoryVariableStore
) -> None:
    """Between our 404 and our POST someone created the user: the conflict is success, not an error."""
    emulator.inject("POST", "/v1/users", status=409, after=True)
    result = onboard_account(hook, ACCOUNT)
    assert result["created"] is False
    assert USER in emulator.users()
    (token,) = emulator.tokens(USER)
    assert result["token"]["id"] == token["id"]
    assert emulator.is_valid_token(motherduck_variables[KEY])


def test_a_create_answer_without_secret_delivers_nothing(
    emulator: MotherDuckEmulator, hook: MotherDuckHook, motherduck_variables: InMemoryVariableStore
) -> None:
    emulator.add_user(USER)
    answer = {
        "id": "00000000-0000-4000-8000-000000000000",
        "name": "airflow",
        "token_type": "read_write",
        "read_only": False,
        "created_ts": "2026-12-01T00:00:00Z",
    }
    emulator.inject("POST", f"/v1/users/{USER}/tokens", status=200, body=answer)
    with pytest.raises(TokenIssueError, match="carried no secret") as info:
        onboard_account(hook, ACCOUNT)
    assert info.value.revoked
    assert not info.value.delivered
    assert KEY not in motherduck_variables
    assert writes_seen(emulator)[-1] == f"DELETE /v1/users/{USER}/tokens/{answer['id']}"


def test_a_bulk_retry_after_lost_answers_leaves_one_token_per_account(
    emulator: MotherDuckEmulator, motherduck_conn: str, motherduck_variables: InMemoryVariableStore
) -> None:
    """Two create answers lost in a bulk run: the re-run revokes those tokens, one per account stays."""
    accounts = [
        check_account({"username": f"bot_{i}", "token_name": "airflow", "variable_key": f"md_bot_{i}"})
        for i in range(4)
    ]
    for i in (1, 3):
        emulator.inject("POST", f"/v1/users/bot_{i}/tokens", status=500, after=True)

    def new_hook() -> MotherDuckHook:
        return MotherDuckHook(motherduck_conn, retry_limit=0)

    done, failed = onboard_accounts(accounts, new_hook, max_workers=4)
    assert sorted(failed) == ["bot_1", "bot_3"]
    assert [r["username"] for r in done] == ["bot_0", "bot_2"]
    assert [len(emulator.tokens(f"bot_{i}")) for i in range(4)] == [1, 1, 1, 1]  # the lost ones exist, unseen

    done, failed = onboard_accounts(accounts, new_hook, max_workers=4)
    assert failed == {}
    assert [r["token_created"] for r in done] == [False, True, False, True]
    for i in range(4):
        (token,) = emulator.tokens(f"bot_{i}")
        assert emulator.is_valid_token(motherduck_variables[f"md_bot_{i}"])
        assert (
            delivered_id(motherduck_variables[(accounts[i].tokens or ())[0].destination.record])
            == token["id"]
        )


def test_the_flat_form_is_the_declared_account_of_a_declaration(
    emulator: MotherDuckEmulator,
    hook: MotherDuckHook,
    motherduck_variables: InMemoryVariableStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One model: the flat arguments give the DeclaredAccount a YAML declaration gives; the user
    is found whatever the case of its name; each change is logged with its Duckling fields."""
    flat = {
        "username": "ETL_Loader",
        "token_name": "airflow",
        "variable_key": KEY,
        "read_write": {"instance_size": "jumbo"},
    }
    nested = check_declaration(
        {
            "name": "x",
            "service_accounts": [
                {
                    "username": "ETL_Loader",
                    "read_write": {"instance_size": "jumbo"},
                    "tokens": [{"name": "airflow", "variable_key": KEY}],
                }
            ],
        }
    )
    assert check_account(flat) == nested.accounts[0]
    emulator.add_user(USER)
    caplog.set_level(logging.INFO)
    result = onboard_account(hook, check_account(flat))
    assert result["created"] is False
    assert emulator.users() == ["admin", USER]
    assert "read_write.instance_size: standard -> jumbo" in caplog.text
    emulator.clear_journal()
    assert onboard_account(hook, check_account(flat))["token_created"] is False  # the record's user folds
    assert writes_seen(emulator) == []


# -- access: roles and shares, over the Postgres wire protocol -----------------------------------

WITH_ACCESS = check_account(
    {"username": USER, "token_name": "airflow", "variable_key": KEY, "roles": ROLES, "shares": SHARES}
)


def test_onboarding_grants_roles_and_shares_and_the_account_reads_through_its_attachment(
    access_org: MotherDuckEmulator,
    sql_hook: MotherDuckHook,
    motherduck_variables: InMemoryVariableStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = sessions_minted(access_org)
    with caplog.at_level(logging.INFO):
        result = onboard_account(sql_hook, WITH_ACCESS)
    # The grants were made as the owner, the attachments as the account: one session token each.
    assert sessions_minted(access_org) - before == 2
    assert (result["granted_roles"], result["granted_shares"], result["attached_aliases"]) == (
        ROLES,
        ["orders_share", "customers_share"],
        ["orders_in", "customers_in"],
    )
    assert {g.role for g in sql_hook.roles_of(USER) if g.direct} == set(ROLES)
    for share in ("orders_share", "customers_share"):
        grants = sql_hook.share_grants(share, as_user=OWNER)
        assert [(g.grantee, g.share_owner) for g in grants] == [(USER, OWNER)]
    secret = motherduck_variables[KEY]
    assert (count_as(access_org, secret, "orders"), count_as(access_org, secret, "customers")) == (3, 5)
    assert session_tokens(access_org) == []
    logged = caplog.text
    for line in ("role analysts granted", "read on share orders_share granted by its owner sales_owner"):
        assert f"{USER}: {line}" in logged
    assert f"{USER}: share customers_share of {OWNER} attached as 'customers_in'" in logged
    assert "md:_share" not in logged  # a share URL is never logged

    access_org.clear_journal()
    again = onboard_account(sql_hook, WITH_ACCESS)
    assert (again["granted_roles"], again["granted_shares"], again["attached_aliases"]) == ([], [], [])
    assert again["token_created"] is False
    assert sql_writes(access_org) == []
    rest = [w.split(" ")[0] + " " + w.split(" ")[1].rsplit("/", 1)[0] for w in writes_seen(access_org)]
    rest = [w for w in rest if not w.startswith("SQL")]
    # Only the account's read session (its attachments): minted, then revoked.
    assert rest == [f"POST /v1/users/{USER}", f"DELETE /v1/users/{USER}/tokens"]
    assert session_tokens(access_org) == []


def test_onboarding_failing_on_attach_converges_on_the_re_run(
    access_org: MotherDuckEmulator, sql_hook: MotherDuckHook, motherduck_variables: InMemoryVariableStore
) -> None:
    access_org.inject_sql("ATTACH 'md:_share/*' AS \"customers_in\"", error="IO Error: the attach failed")
    with pytest.raises(MotherDuckSQLError, match="the attach failed"):
        onboard_account(sql_hook, WITH_ACCESS)
    assert session_tokens(access_org) == []  # revoked although the run failed
    assert [a["alias"] for a in access_org.describe_access()["users"][USER]["attached"]] == ["orders_in"]

    access_org.clear_journal()
    result = onboard_account(sql_hook, WITH_ACCESS)
    assert (result["granted_roles"], result["granted_shares"], result["attached_aliases"]) == (
        [],
        [],
        ["customers_in"],
    )
    assert [w for w in sql_writes(access_org)] == [
        w for w in sql_writes(access_org) if w.startswith("ATTACH") and "customers_in" in w
    ]
    assert len(sql_writes(access_org)) == 1
    assert count_as(access_org, motherduck_variables[KEY], "customers") == 5
    assert session_tokens(access_org) == []


def test_the_flat_access_arguments_report_every_problem_with_its_path() -> None:
    flat = {"username": USER, "token_name": "airflow", "variable_key": KEY}
    with pytest.raises(ValueError, match="3 problem") as info:
        check_account(
            {
                **flat,
                "roles": ["Analysts", "ok_role"],
                "shares": [{"share": "s", "owner": OWNER}, {"share": "t", "alias": "A"}, "x"],
            }
        )
    problems = str(info.value).splitlines()[1:]
    assert [p.split("=")[0] for p in problems] == [
        "  - account.roles[0]",
        "  - account.shares[1].owner",
        "  - account.shares[2]",
    ]
    with pytest.raises(
        ValueError, match=r"(?s)roles\[1\]=.*declared twice.*shares\[1\]\.alias=.*declared twice"
    ):
        check_account(
            {
                **flat,
                "roles": ["ok_role", "ok_role"],
                "shares": [{"share": "s", "owner": OWNER}, {"share": "t", "owner": OWNER, "alias": "S"}],
            }
        )
    checked = check_account({**flat, "shares": [{"share": "s", "owner": OWNER}]})
    assert [(s.share, s.alias) for s in checked.attach] == [("s", "s")]  # the alias defaults to the name
