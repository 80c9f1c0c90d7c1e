"""Wait on MotherDuck compute: until an account's Duckling is up, then until another's is idle.

``wait_for_active`` waits until ``etl_loader`` has an active read/write Duckling, in
``reschedule`` mode (the worker slot is freed between pokes); its XCom is the matching accounts.
``list_active_accounts`` then lists every account with running Ducklings. ``wait_until_idle``
waits until ``ml_features`` has no running Duckling at all (active or cooling down), for example
before offboarding it; it is deferrable, so the triggerer does the waiting. The account names are
DAG params, templated into ``usernames``.

Manages nothing: it only reads (the accounts it watches are the onboarding example's). Uses the
``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_wait_for_active]
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import MotherDuckListActiveAccountsOperator
from airflow_provider_motherduck.sensors import MotherDuckActiveAccountsSensor

with DAG(
    dag_id="example_motherduck_wait_for_active",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"active_user": "etl_loader", "idle_user": "ml_features"},
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_sensor_motherduck_active_accounts]
    wait_for_active = MotherDuckActiveAccountsSensor(
        task_id="wait_for_active",
        usernames=["{{ params.active_user }}"],
        duckling_type="read_write",
        mode="reschedule",
        poke_interval=timedelta(minutes=1),
        timeout=timedelta(hours=1),
    )
    # [END howto_sensor_motherduck_active_accounts]
    # [START howto_operator_motherduck_list_active_accounts]
    list_active_accounts = MotherDuckListActiveAccountsOperator(task_id="list_active_accounts")
    # [END howto_operator_motherduck_list_active_accounts]
    # [START howto_sensor_motherduck_active_accounts_deferrable]
    wait_until_idle = MotherDuckActiveAccountsSensor(
        task_id="wait_until_idle",
        usernames=["{{ params.idle_user }}"],
        statuses=["active", "cooldown"],
        expect_active=False,
        deferrable=True,
        poke_interval=timedelta(seconds=30),
        timeout=timedelta(hours=2),
    )
    # [END howto_sensor_motherduck_active_accounts_deferrable]

    wait_for_active >> list_active_accounts >> wait_until_idle
# [END example_motherduck_wait_for_active]
