"""e2e: a token rotated every minute, caught up over the intervals between two set moments.

``E2E_ROTATION_START`` and ``E2E_ROTATION_END`` (ISO timestamps, set by the e2e harness for every
Airflow process) bound the schedule, so the scheduler creates a fixed number of catch-up runs,
one at a time (``max_active_runs=1``). Each run creates ``e2e_rotation_bot``'s token
``airflow@<logical date>``, stores its secret in a Variable and keeps the newest two.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_motherduck.operators import MotherDuckRotateTokenOperator

USERNAME = "e2e_rotation_bot"
VARIABLE_KEY = f"motherduck_token_{USERNAME}"
KEEP = 2
START = datetime.fromisoformat(os.environ.get("E2E_ROTATION_START", "2025-01-01T00:00:00+00:00"))
END = datetime.fromisoformat(os.environ.get("E2E_ROTATION_END", "2025-01-01T00:00:00+00:00"))

with DAG(
    dag_id="e2e_rotation",
    schedule="* * * * *",
    start_date=START,
    end_date=END,
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=3)},
    tags=["e2e"],
):
    MotherDuckRotateTokenOperator(
        task_id="rotate_token",
        username=USERNAME,
        token_name="airflow",
        ttl="1 day",
        variable_key=VARIABLE_KEY,
        keep=KEEP,
    )
