"""MotherDuckReconcileOperator: checks at parse time, a declaration file rendered with Jinja, the
modes, sinks by name, and no secret in its XCom."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_motherduck._compat import DAG
from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.operators import MotherDuckReconcileOperator
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows import delivery
from tests.operators.helpers import SECRET_RE, run, writes_seen
from tests.support import FakeVariables

pytestmark = pytest.mark.usefixtures("motherduck_conn")

NO_RETRY = {"retry_limit": 0}
DESIRED: dict[str, Any] = {
    "service_accounts": [
        {
            "username": "etl_loader",
            "read_write": {"instance_size": "jumbo"},
            "tokens": [{"name": "airflow", "ttl": "90 days", "variable_key": "md_etl"}],
        }
    ]
}


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    fake = FakeVariables()
    monkeypatch.setattr(delivery, "Variable", fake)
    return fake


def reconcile_op(**kwargs: Any) -> MotherDuckReconcileOperator:
    return MotherDuckReconcileOperator(
        task_id="reconcile", hook_params=NO_RETRY, **{"desired": DESIRED, **kwargs}
    )


def test_a_bad_declaration_or_argument_fails_when_the_dag_is_parsed() -> None:
    bad = {"service_accounts": [{"username": "x", "tokens": [{"name": "t", "ttl": 5, "variable_key": "k"}]}]}
    with pytest.raises(ValueError, match=r"(?s)'reconcile'.*service_accounts\[0\]\.tokens\[0\]\.ttl=5"):
        reconcile_op(desired=bad)
    with pytest.raises(ValueError, match="mode='dry'"):
        reconcile_op(mode="dry")
    with pytest.raises(ValueError, match="protect='prod_'"):
        reconcile_op(protect="prod_")
    with pytest.raises(ValueError, match="max_deletes=-1"):
        reconcile_op(max_deletes=-1)
    reconcile_op(desired="not_read_yet.yaml")  # a file is read when the task runs


def test_apply_then_check_and_the_xcom_holds_no_secret(
    emulator: MotherDuckEmulator, variables: FakeVariables
) -> None:
    done = run(reconcile_op())
    assert [a["action"] for a in done["done"]] == ["create_user", "update_duckling_config", "create_token"]
    assert not SECRET_RE.search(json.dumps(done))
    assert emulator.is_valid_token(variables.values["md_etl"])
    emulator.clear_journal()

    assert run(reconcile_op(mode="check"))["plan"] == []
    assert writes_seen(emulator) == []
    emulator.add_user("stray_bot")
    with pytest.raises(MotherDuckReconcileError, match="Drift"):
        run(reconcile_op(mode="check", prune=True))


def test_a_declaration_file_is_rendered_then_checked(
    tmp_path: Path, emulator: MotherDuckEmulator, variables: FakeVariables
) -> None:
    (tmp_path / "org.yaml").write_text(
        "service_accounts:\n"
        "  - username: {{ params.prefix }}_loader\n"
        "    tokens: [{name: airflow, secret_sink: vault, record_key: md_record}]\n"
    )
    received: list[str] = []
    with DAG("reconcile_file", schedule=None) as dag:
        op = MotherDuckReconcileOperator(
            task_id="reconcile",
            desired="org.yaml",
            secret_sinks={"vault": received.append},
            hook_params=NO_RETRY,
        )
    dag.fileloc = str(tmp_path / "reconcile_file.py")  # relative paths start from the DAG file's folder

    summary = run(op, {"prefix": "prod"})

    assert emulator.users() == ["admin", "prod_loader"]
    (secret,) = received
    assert emulator.is_valid_token(secret)
    assert secret not in json.dumps(summary)


def test_plan_mode_writes_nothing(emulator: MotherDuckEmulator, variables: FakeVariables) -> None:
    summary = run(reconcile_op(mode="plan"))
    assert [a["action"] for a in summary["plan"]] == ["create_user", "update_duckling_config", "create_token"]
    assert "done" not in summary
    assert writes_seen(emulator) == []
    assert variables.writes == []
