"""Give a service account a bigger Duckling for its nightly batch, then put its config back.

Manages ``nightly_batch``'s Duckling config (and leaves it as it found it); no other example writes
to that account.

1. ``current_config`` reads the account's Duckling config; its XCom is that config.
2. ``scale_up`` merges a larger read/write instance into it (read, merge, write; nothing is
   written when the Duckling has that size already).
3. ``nightly_load`` stands for the heavy work.
4. ``restore`` writes the config read in step 1 back, whole (``replace=True``), even when the
   load failed (``trigger_rule="all_done"``). Its arguments are templates pulling the XCom of
   step 1: ``render_template_as_native_obj=True`` makes them render as dicts, not strings.

Uses the ``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_sizing]
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_motherduck.operators import (
    MotherDuckGetDucklingConfigOperator,
    MotherDuckSetDucklingConfigOperator,
)

USERNAME = "nightly_batch"
SAVED = "ti.xcom_pull(task_ids='current_config')"

with DAG(
    dag_id="example_motherduck_sizing",
    schedule="0 2 * * *",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # read, scale up, restore: two overlapping runs would restore each other's sizes
    render_template_as_native_obj=True,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_get_duckling_config]
    current_config = MotherDuckGetDucklingConfigOperator(task_id="current_config", username=USERNAME)
    # [END howto_operator_motherduck_get_duckling_config]
    # [START howto_operator_motherduck_set_duckling_config_merge]
    scale_up = MotherDuckSetDucklingConfigOperator(
        task_id="scale_up",
        username=USERNAME,
        read_write={"instance_size": "jumbo"},  # the cooldown becomes jumbo's default
    )
    # [END howto_operator_motherduck_set_duckling_config_merge]

    @task
    def nightly_load() -> None:
        """Stands for the heavy work that needs the bigger Duckling."""

    # [START howto_operator_motherduck_set_duckling_config_replace]
    restore = MotherDuckSetDucklingConfigOperator(
        task_id="restore",
        username=USERNAME,
        read_write="{{ " + SAVED + "['read_write'] }}",
        read_scaling="{{ " + SAVED + "['read_scaling'] }}",
        replace=True,
        trigger_rule="all_done",
    )
    # [END howto_operator_motherduck_set_duckling_config_replace]

    current_config >> scale_up >> nightly_load() >> restore
# [END example_motherduck_sizing]
