"""The onboarding workflow at its edges: races, odd answers, faults part-way; the flat form's checks
and the change log."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_motherduck.exceptions import TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore
from airflow_provider_motherduck.workflows.onboarding import check_account, onboard_account, onboard_accounts
from airflow_provider_motherduck.workflows.reconcile import check_declaration
from tests.operators.helpers import writes_seen
from tests.support import delivered_id

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
