"""Onboarding and offboarding workflows at their edges: races, odd answers, faults part-way."""

from __future__ import annotations

import pytest

from airflow_provider_motherduck.exceptions import TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows import delivery
from airflow_provider_motherduck.workflows.onboarding import (
    account_destination,
    check_account,
    offboard_account,
    onboard_account,
    onboard_accounts,
)
from tests.operators.helpers import writes_seen
from tests.support import FakeVariables, delivered_id

USER = "etl_loader"
KEY = "motherduck_token_etl_loader"
ACCOUNT = check_account({"username": USER, "token_name": "airflow", "variable_key": KEY})


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    fake = FakeVariables()
    monkeypatch.setattr(delivery, "Variable", fake)
    return fake


def test_a_user_created_by_someone_else_meanwhile_is_adopted(
    emulator: MotherDuckEmulator, hook: MotherDuckHook, variables: FakeVariables
) -> None:
    """Between our 404 and our POST someone created the user: the conflict is success, not an error."""
    emulator.inject("POST", "/v1/users", status=409, after=True)
    result = onboard_account(hook, ACCOUNT, account_destination(ACCOUNT))
    assert result["created"] is False
    assert USER in emulator.users()
    (token,) = emulator.tokens(USER)
    assert result["token"]["id"] == token["id"]
    assert emulator.is_valid_token(variables.values[KEY])


def test_a_create_answer_without_secret_delivers_nothing(
    emulator: MotherDuckEmulator, hook: MotherDuckHook, variables: FakeVariables
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
        onboard_account(hook, ACCOUNT, account_destination(ACCOUNT))
    assert info.value.revoked
    assert not info.value.delivered
    assert KEY not in variables.values
    assert writes_seen(emulator)[-1] == f"DELETE /v1/users/{USER}/tokens/{answer['id']}"


def test_offboarding_whose_revoke_fails_part_way_converges(
    emulator: MotherDuckEmulator, hook: MotherDuckHook, variables: FakeVariables
) -> None:
    emulator.add_user(USER)
    first, second = emulator.add_token(USER, "a"), emulator.add_token(USER, "b")
    emulator.inject("DELETE", f"/v1/users/{USER}/tokens/{second['id']}", status=503, times=10)
    with pytest.raises(Exception, match="503"):
        offboard_account(hook, USER, variable_key=KEY)
    assert USER in emulator.users()  # not deleted while a token is live
    assert [t["id"] for t in emulator.tokens(USER)] == [second["id"]]

    emulator.clear_faults()
    result = offboard_account(hook, USER, variable_key=KEY)
    assert result["revoked_ids"] == [second["id"]]
    assert result["deleted"] is True
    assert emulator.users() == ["admin"]
    assert not emulator.is_valid_token(first["token"])
    assert delivered_id(variables.values.get(KEY)) is None


def test_a_bulk_retry_after_lost_answers_leaves_one_token_per_account(
    emulator: MotherDuckEmulator, motherduck_conn: str, variables: FakeVariables
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
        assert emulator.is_valid_token(variables.values[f"md_bot_{i}"])
        assert delivered_id(variables.values[account_destination(accounts[i]).record]) == token["id"]
