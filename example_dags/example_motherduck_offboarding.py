"""Offboard service accounts: revoke their Airflow tokens, then delete the users.

Mapped over the accounts, one task instance each. Safe to re-run: tokens or users already gone
are skipped (``missing_ok=True``), and every token named ``airflow`` is revoked, however many
there are (``all_matching=True``). Deleting a user also deletes all its data: irreversible.
Revoked secrets may still sit in Variables (``motherduck_token_<user>``); they no longer work.
Uses the ``motherduck_default`` connection.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import (
    MotherDuckDeleteTokenOperator,
    MotherDuckDeleteUserOperator,
)

USERNAMES = ["etl_loader", "bi_dashboards", "ml_features"]
TOKEN_NAME = "airflow"

with DAG(
    dag_id="example_motherduck_offboarding",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    revoke_tokens = MotherDuckDeleteTokenOperator.partial(
        task_id="revoke_tokens", token_name=TOKEN_NAME, missing_ok=True, all_matching=True
    ).expand(username=USERNAMES)
    delete_user = MotherDuckDeleteUserOperator.partial(task_id="delete_user", missing_ok=True).expand(
        username=USERNAMES
    )

    revoke_tokens >> delete_user
