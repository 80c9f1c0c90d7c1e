"""The data-access example DAG, run for real with ``dag.test()`` against the emulator's REST and Postgres sides."""

from __future__ import annotations

import json

import pytest

from airflow_provider_motherduck.hooks.sql import is_session_token
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.testing.pytest_plugin import DagRunner
from tests.support import REPO_ROOT, example_dag, session_tokens, sessions_minted, sql_writes

DAG_ID = "example_motherduck_data_access"
SEED = json.loads((REPO_ROOT / "example_dags" / "demo_seed.json").read_text())
OWNER, ACCOUNT, ROLE, SHARE, ALIAS = (
    "warehouse_owner",
    "report_builder",
    "warehouse_readers",
    "warehouse_orders",
    "warehouse_orders",
)


@pytest.mark.airflow_run
def test_an_account_reads_a_share_through_its_attachment_and_a_rerun_changes_nothing(
    emulator: MotherDuckEmulator, sql_conn: str, motherduck_dag_run: DagRunner
) -> None:
    emulator.load_seed(SEED)  # the owner and its database, as the demo seeds them
    dag = example_dag(DAG_ID)

    first = motherduck_dag_run(dag)

    assert set(first.states.values()) == {"success"}, first
    assert (first.xcoms["create_role"]["created"], first.xcoms["create_share"]["created"]) == (True, True)
    assert first.xcoms["create_share"]["username"] == OWNER
    onboard = first.xcoms["onboard"]
    assert (onboard["created"], onboard["granted_roles"], onboard["granted_shares"]) == (
        True,
        [ROLE],
        [SHARE],
    )
    assert onboard["attached_aliases"] == [ALIAS]
    assert first.xcoms["count_orders"] == {
        "username": ACCOUNT,
        "table": f"{ALIAS}.main.orders",
        "row_count": 1200,
    }
    report = first.xcoms["access_report"]
    [account] = report["accounts"]
    assert account["username"] == ACCOUNT
    assert account["roles"] == [{"role": "explorer", "direct": False}, {"role": ROLE, "direct": True}]
    assert account["shares"] == [{"share": SHARE, "owner": OWNER, "via": "user", "role": None}]
    assert account["attached"] == [{"alias": ALIAS, "database": "warehouse"}]
    assert report["violations"] == []
    # MotherDuck's side: the owner's share granted to the account, attached by the account itself.
    access = emulator.describe_access()
    assert access["roles"][ROLE] == ["explorer"]
    [share] = access["users"][OWNER]["shares"]
    assert (share["name"], share["users"], share["include_pattern"]) == (SHARE, [ACCOUNT], ["main.orders"])
    assert access["users"][ACCOUNT]["roles"] == [ROLE]
    assert {"alias": ALIAS, "url": share["url"]} in access["users"][ACCOUNT]["attached"]
    assert sessions_minted(emulator) > 0
    assert session_tokens(emulator) == []

    emulator.clear_journal()
    minted = sessions_minted(emulator)
    second = motherduck_dag_run(dag)

    assert set(second.states.values()) == {"success"}, second
    assert (second.xcoms["create_role"]["created"], second.xcoms["create_share"]["created"]) == (False, False)
    assert second.xcoms["grant_explorer"]["granted"] is False
    again = second.xcoms["onboard"]
    assert (again["created"], again["token_created"]) == (False, False)
    assert (again["granted_roles"], again["granted_shares"], again["attached_aliases"]) == ([], [], [])
    assert second.xcoms["count_orders"]["row_count"] == 1200
    assert second.xcoms["access_report"] == report
    assert sql_writes(emulator) == []
    # Over REST, only the short-lived session tokens come and go (each minted, then revoked).
    rest_writes = [e for e in emulator.journal if e.method in ("POST", "PUT", "DELETE")]
    minted_now = sessions_minted(emulator) - minted
    assert minted_now > 0
    assert [e.method for e in rest_writes].count("POST") == minted_now
    assert [e.method for e in rest_writes].count("DELETE") == minted_now
    assert all(is_session_token(e.body["name"]) for e in rest_writes if e.method == "POST")
    assert session_tokens(emulator) == []
