"""The temporary-account example DAG, run for real with ``airflow dags test`` against the emulator."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import default_record_key
from tests.operators.helpers import (
    SECRET_RE,
    DagRunRecord,
    everything_printed,
    failure_excerpt,
    leaked_secrets,
    variable,
)
from tests.support import CONN_ENV, REPO_ROOT, connection_json, scans_dags_test_output_for_secrets

DAG_ID = "example_motherduck_temporary_account"

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_temporary_account_is_created_used_and_removed(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str
) -> None:
    result = airflow_dag_runner(
        DAG_ID, REPO_ROOT / "example_dags", {CONN_ENV: connection_json(emulator.url, emulator.admin_token)}
    )
    printed = everything_printed(result, airflow_db, DAG_ID)
    record = DagRunRecord(airflow_db, DAG_ID)
    assert set(record.states().values()) == {"success"}, failure_excerpt(printed)
    assert result.returncode == 0, failure_excerpt(printed)

    assert emulator.users() == ["admin"]  # created, then deleted
    xcom = record.xcom()
    token_id = xcom[("create_token", -1)]["token"]["id"]
    assert [t["id"] for t in xcom[("list_tokens", -1)]] == [token_id]
    assert xcom[("revoke_tokens", -1)] == {
        "username": "backfill_bot",
        "revoked_ids": [token_id],
        "variables_deleted": [
            "motherduck_token_backfill_bot",
            default_record_key(variable_key="motherduck_token_backfill_bot"),
        ],
    }
    assert variable(airflow_db, "motherduck_token_backfill_bot") is None  # no revoked secret lingers
    assert xcom[("delete_user", -1)] == {"username": "backfill_bot", "deleted": True}

    writes = [(e.method, e.path) for e in emulator.journal if e.method != "GET"]
    assert writes == [
        ("POST", "/v1/users"),
        ("POST", "/v1/users/backfill_bot/tokens"),
        ("DELETE", f"/v1/users/backfill_bot/tokens/{token_id}"),
        ("DELETE", "/v1/users/backfill_bot"),
    ]
    (secret,) = [s["secret"] for s in emulator.issued_secrets() if s["id"] == token_id]
    assert not emulator.is_valid_token(secret)  # revoked with its account
    assert not any(SECRET_RE.search(text) for text in record.xcom_raw().values())
    assert leaked_secrets(printed, [secret, emulator.admin_token]) == []
