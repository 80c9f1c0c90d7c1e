"""What every operator gets from the base: writing operators run one instance per task at a time."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_motherduck import operators
from airflow_provider_motherduck._compat import DAG
from airflow_provider_motherduck.exceptions import MotherDuckConfigError
from airflow_provider_motherduck.operators import (
    MotherDuckCreateUserOperator,
    MotherDuckListUsersOperator,
    MotherDuckReconcileOperator,
)
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from tests.operators.helpers import run
from tests.support import CONN_ENV, connection_json

READ_ONLY = {
    "MotherDuckAccessAuditOperator",  # its short-lived session tokens are its own: safe side by side
    "MotherDuckCurrentUserOperator",
    "MotherDuckGetDucklingConfigOperator",
    "MotherDuckListActiveAccountsOperator",
    "MotherDuckListTokensOperator",
    "MotherDuckListUsersOperator",
    "MotherDuckTokenAuditOperator",
}
CLASSES = {
    name: cls
    for name in operators.__all__
    if isinstance(cls := getattr(operators, name), type) and issubclass(cls, MotherDuckBaseOperator)
}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_only_read_only_operators_say_so(name: str) -> None:
    assert CLASSES[name].writes is (name not in READ_ONLY)


def test_a_writing_operator_runs_once_at_a_time_unless_told_otherwise() -> None:
    assert MotherDuckCreateUserOperator(task_id="c", username="u").max_active_tis_per_dag == 1
    assert (
        MotherDuckCreateUserOperator(
            task_id="c", username="u", max_active_tis_per_dag=3
        ).max_active_tis_per_dag
        == 3
    )
    start = datetime(2025, 1, 6, tzinfo=timezone.utc)
    with DAG("d", schedule=None, start_date=start, default_args={"max_active_tis_per_dag": 2}):
        assert MotherDuckCreateUserOperator(task_id="c", username="u").max_active_tis_per_dag == 2


def test_a_read_only_operator_keeps_airflows_default() -> None:
    assert MotherDuckListUsersOperator(task_id="l").max_active_tis_per_dag is None


def test_a_bad_connection_extra_names_the_task_and_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json("http://127.0.0.1:9", "x" * 12, allow_insecure_http="maybe"))
    with pytest.raises(MotherDuckConfigError) as info:
        run(MotherDuckListUsersOperator(task_id="list_users"))
    assert str(info.value) == (
        "MotherDuckListUsersOperator 'list_users': allow_insecure_http='maybe' is invalid: not a boolean. "
        "Allowed: true or false. (an extra of connection 'motherduck_default')"
    )


def test_a_missing_declaration_file_names_the_task(tmp_path: Path) -> None:
    missing = tmp_path / "organisation.yaml"
    with pytest.raises(ValueError, match=r"^MotherDuckReconcileOperator 'apply': desired=") as info:
        run(MotherDuckReconcileOperator(task_id="apply", desired=str(missing), mode="apply"))
    assert "cannot be read (No such file or directory)" in str(info.value)
