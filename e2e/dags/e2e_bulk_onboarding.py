"""e2e: 100 service accounts onboarded by one mapped task each, spread over the Celery workers.

Each account gets a user, a read-scaling flock of 2 and a token whose secret lands in the
Variable ``motherduck_token_<user>``. Retries finish what a 503 on a create left undone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_motherduck.operators import MotherDuckOnboardAccountOperator

COUNT = 100
USERNAMES = [f"e2e_bulk_{i:03d}" for i in range(COUNT)]
ACCOUNTS = [
    {
        "username": name,
        "token_name": "airflow",
        "variable_key": f"motherduck_token_{name}",
        "read_scaling": {"flock_size": 2},
    }
    for name in USERNAMES
]

with DAG(
    dag_id="e2e_bulk_onboarding",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["e2e"],
):
    MotherDuckOnboardAccountOperator.partial(
        task_id="onboard",
        max_active_tis_per_dag=16,
        retries=3,
        retry_delay=timedelta(seconds=2),
    ).expand_kwargs(ACCOUNTS)
