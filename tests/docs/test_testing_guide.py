"""The examples of docs/testing.rst: testing DAG code offline against the MotherDuck emulator.

Written as a user of the provider would write them (only public names, a fixture of their own),
so the page shows code that runs. The markers delimit what the page includes.
"""

from __future__ import annotations

# [START imports]
import json
from collections.abc import Iterator
from datetime import datetime

import pytest

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckCreateUserOperator,
    MotherDuckDeleteUserOperator,
    MotherDuckListActiveAccountsOperator,
    MotherDuckRevokeTokenOperator,
    MotherDuckSetDucklingConfigOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.testing.pytest_plugin import DagRunner

# [END imports]


@pytest.fixture
def motherduck(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotherDuckEmulator]:
    """A fresh, empty MotherDuck organisation; ``motherduck_default`` points at it."""
    with MotherDuckEmulator() as emulator:
        connection = {"conn_type": "motherduck", "host": emulator.url, "password": emulator.admin_token}
        monkeypatch.setenv("AIRFLOW_CONN_MOTHERDUCK_DEFAULT", json.dumps(connection))
        yield emulator


# [START seed_and_state]
def test_offboarding_revokes_tokens_then_deletes_the_user(motherduck: MotherDuckEmulator) -> None:
    motherduck.load_seed({"users": ["etl_loader", "bi_dashboards"]})
    old = motherduck.add_token("etl_loader", "airflow")  # the answer holds the secret

    MotherDuckRevokeTokenOperator(
        task_id="revoke", username="etl_loader", token_name="airflow", all_matching=True
    ).execute(context={})
    MotherDuckDeleteUserOperator(task_id="delete", username="etl_loader").execute(context={})

    assert motherduck.users() == ["admin", "bi_dashboards"]
    assert not motherduck.is_valid_token(old["token"])


# [END seed_and_state]


# [START journal]
def test_a_token_is_requested_with_the_ttl_in_seconds(motherduck: MotherDuckEmulator) -> None:
    motherduck.add_user("etl_loader")

    MotherDuckCreateTokenOperator(
        task_id="create_token", username="etl_loader", token_name="nightly", ttl="1 day"
    ).execute(context={})

    (request,) = motherduck.journal
    assert (request.method, request.path, request.status) == ("POST", "/v1/users/etl_loader/tokens", 200)
    assert request.body == {"name": "nightly", "token_type": "read_write", "ttl": 86400}


# [END journal]


# [START faults]
def test_a_short_outage_is_retried(motherduck: MotherDuckEmulator) -> None:
    motherduck.inject("GET", "/v1/active_accounts", status=503, times=2)

    accounts = MotherDuckListActiveAccountsOperator(
        task_id="list", hook_params={"retry_delay": 0.01}
    ).execute(context={})

    assert accounts == []
    assert [(r.status, r.fault) for r in motherduck.journal] == [(503, True), (503, True), (200, False)]


def test_a_lost_answer_is_not_repeated_and_a_rerun_is_safe(motherduck: MotherDuckEmulator) -> None:
    # The user is created, then the connection drops before the answer.
    motherduck.inject("POST", "/v1/users", drop=True, after=True)
    create = MotherDuckCreateUserOperator(task_id="create", username="etl_loader", exists_ok=True)

    with pytest.raises(MotherDuckAPIError, match="may have reached MotherDuck"):
        create.execute(context={})
    assert create.execute(context={}) == {"username": "etl_loader", "created": False}  # Airflow's retry

    assert [(r.method, r.status) for r in motherduck.journal] == [("POST", None), ("POST", 400)]
    assert motherduck.users() == ["admin", "etl_loader"]


# [END faults]


# [START whole_dag]
def test_a_whole_dag(
    motherduck_emulator: MotherDuckEmulator, motherduck_connection: str, motherduck_dag_run: DagRunner
) -> None:
    with DAG("size_etl_loader", schedule=None, start_date=datetime(2025, 1, 1)) as dag:
        create = MotherDuckCreateUserOperator(task_id="create_user", username="etl_loader", exists_ok=True)
        size = MotherDuckSetDucklingConfigOperator(
            task_id="size", username="etl_loader", read_write={"instance_size": "jumbo"}
        )
        create >> size

    run = motherduck_dag_run(dag)

    assert run.states == {"create_user": "success", "size": "success"}
    assert run.xcoms["create_user"] == {"username": "etl_loader", "created": True}
    assert motherduck_emulator.duckling_config("etl_loader")["read_write"]["instance_size"] == "jumbo"

    again = motherduck_dag_run(dag, "create_user")  # one task of the DAG: the account is kept
    assert again.xcoms == {"create_user": {"username": "etl_loader", "created": False}}


# [END whole_dag]
