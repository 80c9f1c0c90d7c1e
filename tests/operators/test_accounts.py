"""List active accounts against the emulator."""

from __future__ import annotations

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.operators import MotherDuckListActiveAccountsOperator
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import requests_seen, run

pytestmark = pytest.mark.usefixtures("motherduck_conn")


def test_list_active_accounts(emulator: MotherDuckEmulator) -> None:
    op = MotherDuckListActiveAccountsOperator(task_id="a")
    assert run(op) == []

    ducklings = [
        {"id": "rw", "type": "read_write", "status": "active"},
        {"id": "rs.0", "type": "read_scaling", "status": "cooldown"},
    ]
    emulator.load_seed({"users": ["etl_bot", "idle_bot"], "ducklings": {"etl_bot": ducklings}})
    assert run(MotherDuckListActiveAccountsOperator(task_id="a")) == [
        {"username": "etl_bot", "ducklings": ducklings}
    ]
    assert requests_seen(emulator) == ["GET /v1/active_accounts"] * 2


def test_transient_errors_are_retried_by_the_hook(emulator: MotherDuckEmulator) -> None:
    emulator.inject("GET", "/v1/active_accounts", status=503, times=2)
    op = MotherDuckListActiveAccountsOperator(task_id="a", hook_params={"retry_delay": 0.01})
    assert run(op) == []
    assert len(emulator.journal) == 3

    emulator.inject("GET", "/v1/active_accounts", status=503, times=2)
    no_retry = MotherDuckListActiveAccountsOperator(
        task_id="a", hook_params={"retry_limit": 1, "retry_delay": 0.01}
    )
    with pytest.raises(MotherDuckAPIError, match="503"):
        run(no_retry)


def test_bad_hook_params_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match=r"hook_params=\['timeout'\]"):
        MotherDuckListActiveAccountsOperator(task_id="a", hook_params=["timeout"])
