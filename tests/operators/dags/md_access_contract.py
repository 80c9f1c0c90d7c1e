"""A DAG giving an account access as code: a role, a share of another account's database, attached as itself.

Run by tests/operators/test_access.py with ``airflow dags test`` against the emulator's Postgres endpoint.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import (
    MotherDuckAttachShareOperator,
    MotherDuckCreateDatabaseOperator,
    MotherDuckCreateRoleOperator,
    MotherDuckCreateShareOperator,
    MotherDuckDetachShareOperator,
    MotherDuckDropShareOperator,
    MotherDuckGrantRoleOperator,
    MotherDuckGrantShareOperator,
    MotherDuckRevokeShareOperator,
)

with DAG(
    dag_id="md_access_contract",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={"owner": "share_owner", "reader": "etl_bot", "role": "analysts"},
):
    role = MotherDuckCreateRoleOperator(task_id="role", role="{{ params.role }}")
    grant_role = MotherDuckGrantRoleOperator(
        task_id="grant_role", role="{{ params.role }}", to_user="{{ params.reader }}"
    )
    database = MotherDuckCreateDatabaseOperator(
        task_id="database", database="orders", as_user="{{ params.owner }}"
    )
    share = MotherDuckCreateShareOperator(
        task_id="share",
        share="orders_share",
        database="orders",
        include=["main.orders"],
        as_user="{{ params.owner }}",
    )
    grant = MotherDuckGrantShareOperator(
        task_id="grant", share="orders_share", to_user="{{ params.reader }}", as_user="{{ params.owner }}"
    )
    attach = MotherDuckAttachShareOperator(
        task_id="attach",
        url="{{ ti.xcom_pull(task_ids='share')['url'] }}",
        alias="orders_in",
        as_user="{{ params.reader }}",
    )
    detach = MotherDuckDetachShareOperator(task_id="detach", alias="orders_in", as_user="{{ params.reader }}")
    revoke = MotherDuckRevokeShareOperator(
        task_id="revoke", share="orders_share", from_user="{{ params.reader }}", as_user="{{ params.owner }}"
    )
    drop = MotherDuckDropShareOperator(task_id="drop", share="orders_share", as_user="{{ params.owner }}")
    # Refused after rendering, before anything is sent: the field is named.
    bad = MotherDuckCreateRoleOperator(task_id="bad_role", role="{{ params.role | upper }}")

    role >> grant_role
    database >> share >> grant >> attach >> detach >> revoke >> drop
