"""The bulk onboarding example, run twice with ``airflow dags test`` against the emulator.

Run 1 reads ``service_accounts.json`` and onboards every account (real Variables, real task
runner). Run 2 reads the list from the Variable ``motherduck_service_accounts`` (as an
``AIRFLOW_VAR_`` environment variable): the same accounts plus one; the known accounts are only
read (no write request, no new token), and only the new one is created.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import (
    Delivered,
    DeliveryRecord,
    default_record_key,
    fingerprint,
)
from tests.operators.helpers import (
    SECRET_RE,
    DagRunRecord,
    everything_printed,
    failure_excerpt,
    leaked_secrets,
    set_variable,
    variable,
    writes_seen,
)
from tests.support import CONN_ENV, REPO_ROOT, connection_json, scans_dags_test_output_for_secrets

DAG_ID = "example_motherduck_bulk_onboarding"
EXAMPLES = REPO_ROOT / "example_dags"
DECLARED: list[dict[str, Any]] = json.loads((EXAMPLES / "service_accounts.json").read_text())
NEWCOMER = {"username": "ops_alerts", "token_name": "airflow", "variable_key": "motherduck_token_ops_alerts"}

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _run(
    emulator: MotherDuckEmulator, runner: Runner, airflow_home: str, **env: str
) -> tuple[DagRunRecord, str]:
    result = runner(DAG_ID, EXAMPLES, {CONN_ENV: connection_json(emulator.url, emulator.admin_token), **env})
    printed = everything_printed(result, airflow_home, DAG_ID)
    record = DagRunRecord(airflow_home, DAG_ID)
    failed = {key: state for key, state in record.states().items() if state != "success"}
    assert not failed, failure_excerpt(printed)
    assert result.returncode == 0, failure_excerpt(printed)
    return record, printed


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_bulk_onboarding_example_converges_and_reruns_read_only(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str
) -> None:
    for account in [*DECLARED, NEWCOMER]:  # the metadata database is shared by the session's tests
        set_variable(airflow_db, account["variable_key"], None)
        set_variable(airflow_db, default_record_key(variable_key=account["variable_key"]), None)
    emulator.add_user("finance_reports")  # onboarded by hand before: taken in its stride
    record, printed = _run(emulator, airflow_dag_runner, airflow_db)

    names = [a["username"] for a in DECLARED]
    assert sorted(emulator.users()) == sorted(["admin", *names])
    assert emulator.duckling_config("crm_sync") == {
        "read_write": {"instance_size": "jumbo", "cooldown_seconds": 60},
        "read_scaling": {"instance_size": "standard", "flock_size": 2, "cooldown_seconds": 60},
    }
    assert emulator.duckling_config("finance_reports")["read_scaling"]["flock_size"] == 8
    assert emulator.duckling_config("marketing_attribution") == {
        "read_write": {"instance_size": "pulse"},
        "read_scaling": {"instance_size": "pulse", "flock_size": 1},
    }
    xcom = record.xcom()
    assert xcom[("load_accounts", -1)] == DECLARED
    assert [xcom[("onboard", i)]["created"] for i in range(3)] == [True, False, True]
    secrets = []
    for i, account in enumerate(DECLARED):
        (token,) = emulator.tokens(account["username"])
        assert token["name"] == "airflow"
        assert token["token_type"] == account.get("token_type", "read_write")
        assert xcom[("onboard", i)]["token"]["id"] == token["id"]
        secret = variable(airflow_db, account["variable_key"])
        assert secret is not None
        assert emulator.is_valid_token(secret)
        record_key = default_record_key(variable_key=account["variable_key"])
        delivery = DeliveryRecord.parse(variable(airflow_db, record_key))
        assert delivery is not None
        assert (delivery.user, delivery.delivered) == (
            account["username"],
            Delivered(token["id"], "airflow", fingerprint(secret)),
        )
        secrets.append(secret)
    assert not any(SECRET_RE.search(text) for text in record.xcom_raw().values())
    assert leaked_secrets(printed, [*secrets, emulator.admin_token]) == []

    # Run 2: the list from a Variable, one account more. Known accounts: reads only.
    emulator.clear_journal()
    declared = [*DECLARED, NEWCOMER]
    record, printed = _run(
        emulator, airflow_dag_runner, airflow_db, AIRFLOW_VAR_MOTHERDUCK_SERVICE_ACCOUNTS=json.dumps(declared)
    )
    assert writes_seen(emulator) == ["POST /v1/users", "POST /v1/users/ops_alerts/tokens"]
    xcom = record.xcom()
    assert [xcom[("onboard", i)]["token_created"] for i in range(4)] == [False, False, False, True]
    for account in DECLARED:
        assert len(emulator.tokens(account["username"])) == 1
    for account, secret in zip(DECLARED, secrets, strict=True):
        assert variable(airflow_db, account["variable_key"]) == secret  # untouched
    assert emulator.is_valid_token(variable(airflow_db, NEWCOMER["variable_key"]) or "")
    assert leaked_secrets(printed, [*secrets, emulator.admin_token]) == []
