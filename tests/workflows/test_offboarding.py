"""Offboarding: every token revoked before the user is deleted; a failure part-way converges."""

from __future__ import annotations

import pytest

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore
from airflow_provider_motherduck.workflows.offboarding import offboard_account
from tests.support import delivered_id

USER = "etl_loader"
KEY = "motherduck_token_etl_loader"


def test_offboarding_whose_revoke_fails_part_way_converges(
    emulator: MotherDuckEmulator, hook: MotherDuckHook, motherduck_variables: InMemoryVariableStore
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
    assert delivered_id(motherduck_variables.get(KEY)) is None
