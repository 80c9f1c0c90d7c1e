"""Onboard the declared service accounts in one task, on a bounded thread pool; re-runs change nothing.

The declarations are the customer tenants' accounts in ``tenant_accounts.json`` next to this file
(the same format as the mapped bulk onboarding example's ``service_accounts.json``), read when the
DAG is parsed, so a bad entry is an import error naming it. One task,
``MotherDuckBulkOnboardOperator``, brings every account to its declared state, 16 at a time;
``defaults`` fills in what an entry leaves out (here a 90-day lifetime for every token). For
thousands of accounts this costs the scheduler one task instead of thousands. A failed account
does not stop the others: the task fails at the end naming them, and a re-run finishes them.

Manages the tenants' accounts (``tenant_acme_loader``, ``tenant_globex_loader``,
``tenant_initech_reader``), their Duckling configs, ``airflow`` tokens and Variables
``motherduck_token_<user>``; no other example declares them. Uses the ``motherduck_default``
connection.
"""

from __future__ import annotations

# [START example_motherduck_bulk_onboarding_one_task]
import json
from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import MotherDuckBulkOnboardOperator

ACCOUNTS = json.loads(Path(__file__).with_name("tenant_accounts.json").read_text())

with DAG(
    dag_id="example_motherduck_bulk_onboarding_one_task",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_bulk_onboard]
    MotherDuckBulkOnboardOperator(
        task_id="onboard_all",
        accounts=ACCOUNTS,
        defaults={"ttl": "90 days"},
        max_workers=16,
    )
    # [END howto_operator_motherduck_bulk_onboard]
# [END example_motherduck_bulk_onboarding_one_task]
