"""e2e: one rotation and one onboarding whose worker the harness kills mid-way.

The harness holds each task's token creation in the emulator, SIGKILLs the Celery worker running
it and starts the worker again; the retry must converge: one live token, its secret in the
Variable. ``keep=1``, so a second live token would be one whose secret is stored nowhere.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_motherduck.operators import (
    MotherDuckOnboardAccountOperator,
    MotherDuckRotateTokenOperator,
)

ROTATION_USER = "e2e_fault_rotation_bot"
ONBOARDING_USER = "e2e_fault_onboarding_bot"
RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=5)}

with DAG(
    dag_id="e2e_fault_rotation",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=RETRIES,
    tags=["e2e"],
):
    MotherDuckRotateTokenOperator(
        task_id="rotate_token",
        username=ROTATION_USER,
        token_name="airflow",
        ttl="1 day",
        variable_key=f"motherduck_token_{ROTATION_USER}",
        keep=1,
    )

with DAG(
    dag_id="e2e_fault_onboarding",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=RETRIES,
    tags=["e2e"],
):
    MotherDuckOnboardAccountOperator(
        task_id="onboard",
        username=ONBOARDING_USER,
        token_name="airflow",
        variable_key=f"motherduck_token_{ONBOARDING_USER}",
    )
