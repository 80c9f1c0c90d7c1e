"""The one-task bulk onboarding example, run for real with ``airflow dags test`` against the emulator."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import default_record_key
from tests.operators.helpers import (
    SECRET_RE,
    DagRunRecord,
    everything_printed,
    failure_excerpt,
    leaked_secrets,
    set_variable,
    variable,
)
from tests.support import CONN_ENV, REPO_ROOT, connection_json, scans_dags_test_output_for_secrets

DAG_ID = "example_motherduck_bulk_onboarding_one_task"
EXAMPLES = REPO_ROOT / "example_dags"
DECLARED: list[dict[str, Any]] = json.loads((EXAMPLES / "tenant_accounts.json").read_text())

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _lifetime_days(token: dict[str, Any]) -> float:
    created, expires = (
        datetime.fromisoformat(token[k].replace("Z", "+00:00")) for k in ("created_ts", "expire_at")
    )
    return (expires - created).total_seconds() / 86400


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_one_task_onboards_every_declared_account(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str
) -> None:
    for account in DECLARED:  # the metadata database is shared by the session's tests
        set_variable(airflow_db, account["variable_key"], None)
        set_variable(airflow_db, default_record_key(variable_key=account["variable_key"]), None)

    result = airflow_dag_runner(
        DAG_ID, EXAMPLES, {CONN_ENV: connection_json(emulator.url, emulator.admin_token)}
    )
    printed = everything_printed(result, airflow_db, DAG_ID)
    record = DagRunRecord(airflow_db, DAG_ID)
    assert record.states() == {("onboard_all", -1): "success"}, failure_excerpt(printed)
    assert result.returncode == 0, failure_excerpt(printed)

    names = [a["username"] for a in DECLARED]
    assert sorted(emulator.users()) == sorted(["admin", *names])
    summary = record.xcom()[("onboard_all", -1)]
    assert summary["account_count"] == len(DECLARED)
    assert sorted(summary["created_usernames"]) == sorted(names)
    assert sorted(summary["token_created_usernames"]) == sorted(names)
    secrets = []
    for account in DECLARED:
        (token,) = emulator.tokens(account["username"])
        assert summary["token_ids"][account["username"]] == token["id"]
        assert _lifetime_days(token) == pytest.approx(90, abs=0.01)  # the entry's ttl, or the default
        secret = variable(airflow_db, account["variable_key"])
        assert secret is not None
        assert emulator.is_valid_token(secret)
        secrets.append(secret)
    assert emulator.duckling_config("tenant_acme_loader")["read_write"]["instance_size"] == "jumbo"
    assert not any(SECRET_RE.search(text) for text in record.xcom_raw().values())
    assert leaked_secrets(printed, [*secrets, emulator.admin_token]) == []
