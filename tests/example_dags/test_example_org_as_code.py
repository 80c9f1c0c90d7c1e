"""The org-as-code and drift-check examples, run with ``airflow dags test`` against the emulator.

Run 1 (org as code) creates what ``motherduck_organisation.yaml`` declares (accounts, a role, a
share of the data owner's database, its grant, an attachment), adopts an account made by hand, prunes one an earlier version of the file owned and leaves one it never owned alone; real
Variables, real task runner. Run 2 (drift check)
passes and makes no write. After a resize by hand, run 3 (drift check) fails and logs the plan.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

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
from tests.support import CONN_ENV, REPO_ROOT, scans_dags_test_output_for_secrets, writes_beside_sessions

EXAMPLES = REPO_ROOT / "example_dags"
DECLARATION: dict[str, Any] = yaml.safe_load((EXAMPLES / "motherduck_organisation.yaml").read_text())
DECLARED: list[dict[str, Any]] = DECLARATION["service_accounts"]
OWNED_KEY = "motherduck_owned_" + DECLARATION["name"]
KEYS = [t["variable_key"] for a in DECLARED for t in a["tokens"]]

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _run(dag_id: str, emulator: MotherDuckEmulator, runner: Runner, home: str) -> tuple[DagRunRecord, str]:
    result = runner(dag_id, EXAMPLES, {CONN_ENV: json.dumps(emulator.airflow_connection())})
    return DagRunRecord(home, dag_id), everything_printed(result, home, dag_id)


@scans_dags_test_output_for_secrets
@pytest.mark.airflow_run
def test_org_as_code_then_drift_check(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str
) -> None:
    for key in KEYS:  # the metadata database is shared by the session's tests
        set_variable(airflow_db, key, None)
        set_variable(airflow_db, default_record_key(variable_key=key), None)
    emulator.add_user("looker_reader")  # made by hand before: adopted
    emulator.add_user("old_bot")  # an earlier version of the file owned it: pruned
    emulator.add_token("old_bot", "nightly")
    emulator.add_user("break_glass_ops")  # owned too, but protected
    owned_before = {"old_bot": {"tokens": []}, "break_glass_ops": {"tokens": []}}
    set_variable(airflow_db, OWNED_KEY, json.dumps({"accounts": owned_before}))
    emulator.add_user("other_team_bot")  # neither declared nor owned: never touched
    emulator.add_user("jane", roles=["admin"])  # a human Admin: never a candidate
    emulator.add_user("warehouse_owner")  # owns the database the declared share shares
    emulator.add_database("warehouse_owner", "warehouse", tables={"orders": 3, "customers": 5})

    record, printed = _run("example_motherduck_org_as_code", emulator, airflow_dag_runner, airflow_db)
    assert set(record.states().values()) == {"success"}, failure_excerpt(printed)

    names = [a["username"] for a in DECLARED]
    assert sorted(emulator.users()) == sorted(
        ["admin", "jane", "break_glass_ops", "other_team_bot", "warehouse_owner", *names]
    )
    access = emulator.describe_access()
    assert access["roles"]["dwh_analysts"] == ["explorer"]
    (share,) = access["users"]["warehouse_owner"]["shares"]
    assert (share["name"], share["roles"], share["include_pattern"]) == (
        "dwh_customers",
        ["dwh_analysts"],
        ["main.customers"],
    )
    assert access["users"]["looker_reader"]["roles"] == ["dwh_analysts"]
    assert access["users"]["looker_reader"]["attached"] == [{"alias": "customers", "url": share["url"]}]
    assert sorted(json.loads(variable(airflow_db, OWNED_KEY) or "{}")["accounts"]) == sorted(
        ["break_glass_ops", *names]
    )
    assert emulator.duckling_config("looker_reader")["read_scaling"]["flock_size"] == 8
    secrets = []
    for account in DECLARED:
        ((token,), (declared,)) = emulator.tokens(account["username"]), account["tokens"]
        assert (token["name"], token["token_type"]) == (
            declared["name"],
            declared.get("token_type", "read_write"),
        )
        secret = variable(airflow_db, declared["variable_key"])
        assert secret is not None
        assert emulator.is_valid_token(secret)
        secrets.append(secret)
    xcom = record.xcom()
    planned = [(a["action"], a["username"]) for a in xcom[("plan", -1)]["plan"]]
    assert ("delete_user", "old_bot") in planned
    assert ("adopt_user", "looker_reader") in planned
    assert ("create_user", "looker_reader") not in planned
    assert [(a["action"], a["username"]) for a in xcom[("apply", -1)]["done"]] == planned
    assert {s["username"] for s in xcom[("apply", -1)]["spared"]} == {"break_glass_ops"}
    assert "delete_user" in printed  # the plan table in the task log
    assert not any(SECRET_RE.search(text) for text in record.xcom_raw().values())
    assert leaked_secrets(printed, [*secrets, emulator.admin_token]) == []

    # Run 2: converged, so the drift check passes and nothing is written (it reads the account's
    # attachments as the account, through a short-lived token minted and revoked).
    emulator.clear_journal()
    record, printed = _run("example_motherduck_drift_check", emulator, airflow_dag_runner, airflow_db)
    assert record.states() == {("check", -1): "success"}, failure_excerpt(printed)
    assert writes_beside_sessions(emulator) == []
    assert record.xcom()[("check", -1)]["plan"] == []

    # Run 3: someone resized an account by hand.
    emulator.set_duckling_config(
        "dwh_loader",
        {
            "read_write": {"instance_size": "giga"},
            "read_scaling": {"instance_size": "standard", "flock_size": 2},
        },
    )
    emulator.clear_journal()
    record, printed = _run("example_motherduck_drift_check", emulator, airflow_dag_runner, airflow_db)
    assert record.states() == {("check", -1): "failed"}
    assert "read_write.instance_size: giga -> jumbo" in printed
    assert writes_beside_sessions(emulator) == []
    assert leaked_secrets(printed, [*secrets, emulator.admin_token]) == []
