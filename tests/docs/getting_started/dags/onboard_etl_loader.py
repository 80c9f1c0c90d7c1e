"""A first DAG: onboard one service account. Re-runnable: a second run changes nothing."""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import MotherDuckOnboardAccountOperator

with DAG(dag_id="onboard_etl_loader", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    MotherDuckOnboardAccountOperator(
        task_id="onboard",
        username="etl_loader",  # created if missing
        read_write={"instance_size": "standard"},  # its Duckling, merged into the current config
        token_name="airflow",  # one token of this name, kept while it is valid
        ttl="90 days",
        variable_key="motherduck_token_etl_loader",  # where its secret is delivered
    )
