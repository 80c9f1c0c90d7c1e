"""e2e: a deferrable sensor that waits in the triggerer until an account's Duckling is active.

The account is the run's ``username`` param, so each run can wait for an account of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_motherduck.sensors import MotherDuckActiveAccountsSensor

with DAG(
    dag_id="e2e_deferred_sensor",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"username": "e2e_sensor_bot"},
    tags=["e2e"],
):
    MotherDuckActiveAccountsSensor(
        task_id="wait_for_active",
        usernames=["{{ params.username }}"],
        duckling_type="read_write",
        deferrable=True,
        poke_interval=timedelta(seconds=2),
        timeout=timedelta(minutes=15),
    )
