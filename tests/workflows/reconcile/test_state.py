"""Reading the organisation (real HTTP against the emulator) and the ownership record."""

from __future__ import annotations

import json

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore, VariableStore
from airflow_provider_motherduck.workflows.reconcile import check_declaration, read_ownership, read_state
from airflow_provider_motherduck.workflows.reconcile.state import disown, own
from tests.workflows.reconcile.conftest import DESIRED, new_hook


def test_the_record_lists_owned_accounts_and_token_names_readably(
    store: VariableStore, variables: InMemoryVariableStore
) -> None:
    own("analytics", store, {"ETL_Loader": ["airflow"], "bi_bot": []})
    own("analytics", store, {"etl_loader": ["ops"]})  # folded: the same account, its spelling kept
    record = json.loads(variables["motherduck_owned_analytics"])
    assert record["accounts"] == {"ETL_Loader": {"tokens": ["airflow", "ops"]}, "bi_bot": {"tokens": []}}
    writes = len(variables.writes)
    own("analytics", store, {"bi_bot": []})
    assert len(variables.writes) == writes  # nothing new: no write

    disown("analytics", store, {"etl_loader": ["ops"], "bi_bot": None})
    owned = read_ownership("analytics", store)
    assert owned.owns("ETL_LOADER")
    assert not owned.owns("bi_bot")
    assert owned.tokens("etl_loader") == {"airflow"}


def test_a_lost_update_only_makes_the_record_forget(
    store: VariableStore, variables: InMemoryVariableStore
) -> None:
    """Two writers read the same record, then write: the later write drops the earlier one's
    addition. The dropped account is then not owned (never pruned), and the next apply of its
    declaration adds it again."""
    own("shared", store, {"a_bot": []})
    first_read = variables["motherduck_owned_shared"]
    own("shared", store, {"b_bot": []})
    variables["motherduck_owned_shared"] = first_read  # the other writer's stale write lands last
    owned = read_ownership("shared", store)
    assert owned.owns("a_bot")
    assert not owned.owns("b_bot")


def test_an_unreadable_record_stops_the_run(store: VariableStore, variables: InMemoryVariableStore) -> None:
    variables["motherduck_owned_analytics"] = "{not json"
    with pytest.raises(MotherDuckReconcileError, match=r"motherduck_owned_analytics\) cannot be read"):
        read_ownership("analytics", store)


@pytest.mark.usefixtures("motherduck_conn")
def test_read_state_finds_accounts_whatever_their_case_and_notices_a_partial_listing(
    emulator: MotherDuckEmulator, store: VariableStore
) -> None:
    emulator.add_user("ETL_Loader")
    for i in range(4):
        emulator.add_user(f"z_bot_{i}")
    state = read_state(check_declaration(DESIRED), lambda: new_hook(), max_workers=2, store=store)
    assert state.partial is None
    assert state.account("etl_loader") is not None
    assert (state.user("etl_loader") or {}).get("username") == "ETL_Loader"

    for i in range(100):  # two pages of 100
        emulator.add_user(f"z_bot_{i:03}")
    emulator.add_user_during_listing("bi_dashboards", after_pages=1)  # a declared account, missed
    state = read_state(check_declaration(DESIRED), lambda: new_hook(), max_workers=2, store=store)
    assert state.user("bi_dashboards") is None
    assert f"counts {len(state.users) + 1}" in (state.partial or "")
