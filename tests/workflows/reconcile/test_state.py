"""Reading the organisation (real HTTP against the emulator) and the ownership record."""

from __future__ import annotations

import json

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore
from airflow_provider_motherduck.workflows.reconcile import check_declaration, read_ownership, read_state
from airflow_provider_motherduck.workflows.reconcile.state import disown, own
from tests.workflows.reconcile.conftest import DESIRED, new_hook


def test_the_record_lists_owned_accounts_and_token_names_readably(
    motherduck_variables: InMemoryVariableStore,
) -> None:
    own(
        "analytics",
        motherduck_variables,
        [("accounts", "ETL_Loader", "tokens", "airflow"), ("accounts", "bi_bot"), ("roles", "sales_readers")],
    )
    own(
        "analytics", motherduck_variables, [("accounts", "etl_loader", "tokens", "ops")]
    )  # folded: one account
    own("analytics", motherduck_variables, [("shares", "Sales_Owner/orders", "roles", "sales_readers")])
    record = json.loads(motherduck_variables["motherduck_owned_analytics"])
    assert record["accounts"] == {"ETL_Loader": {"tokens": ["airflow", "ops"]}, "bi_bot": {"tokens": []}}
    assert record["roles"] == {"sales_readers": {}}
    assert record["shares"] == {"Sales_Owner/orders": {"roles": ["sales_readers"]}}
    writes = len(motherduck_variables.writes)
    own("analytics", motherduck_variables, [("accounts", "bi_bot"), ("roles", "SALES_READERS")])
    assert len(motherduck_variables.writes) == writes  # nothing new: no write

    disown(
        "analytics",
        motherduck_variables,
        [
            ("accounts", "etl_loader", "tokens", "ops"),
            ("accounts", "bi_bot"),
            ("shares", "sales_owner/ORDERS"),
        ],
    )
    owned = read_ownership("analytics", motherduck_variables)
    assert owned.owns("ETL_LOADER")
    assert not owned.owns("bi_bot")
    assert owned.tokens("etl_loader") == {"airflow"}
    assert (owned.names("roles"), owned.names("shares")) == (["sales_readers"], [])


def test_a_lost_update_only_makes_the_record_forget(motherduck_variables: InMemoryVariableStore) -> None:
    """Two writers read the same record, then write: the later write drops the earlier one's
    addition. The dropped account is then not owned (never pruned), and the next apply of its
    declaration adds it again."""
    own("shared", motherduck_variables, [("accounts", "a_bot")])
    first_read = motherduck_variables["motherduck_owned_shared"]
    own("shared", motherduck_variables, [("accounts", "b_bot")])
    motherduck_variables["motherduck_owned_shared"] = first_read  # the other writer's stale write lands last
    owned = read_ownership("shared", motherduck_variables)
    assert owned.owns("a_bot")
    assert not owned.owns("b_bot")


def test_an_unreadable_record_stops_the_run(motherduck_variables: InMemoryVariableStore) -> None:
    motherduck_variables["motherduck_owned_analytics"] = "{not json"
    with pytest.raises(MotherDuckReconcileError, match=r"motherduck_owned_analytics\) cannot be read"):
        read_ownership("analytics", motherduck_variables)


@pytest.mark.usefixtures("motherduck_conn")
def test_read_state_finds_accounts_whatever_their_case_and_notices_a_partial_listing(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    emulator.add_user("ETL_Loader")
    for i in range(4):
        emulator.add_user(f"z_bot_{i}")
    state = read_state(
        check_declaration(DESIRED), lambda: new_hook(), max_workers=2, store=motherduck_variables
    )
    assert state.partial is None
    assert state.account("etl_loader") is not None
    assert (state.user("etl_loader") or {}).get("username") == "ETL_Loader"

    for i in range(100):  # two pages of 100
        emulator.add_user(f"z_bot_{i:03}")
    emulator.add_user_during_listing("bi_dashboards", after_pages=1)  # a declared account, missed
    state = read_state(
        check_declaration(DESIRED), lambda: new_hook(), max_workers=2, store=motherduck_variables
    )
    assert state.user("bi_dashboards") is None
    assert f"counts {len(state.users) + 1}" in (state.partial or "")
