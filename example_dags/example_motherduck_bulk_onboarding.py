"""Onboard a list of service accounts, one mapped task each; re-runs change nothing.

The list is the JSON in the Airflow Variable ``motherduck_service_accounts`` if it is set, else
``service_accounts.json`` next to this file. Each entry declares one account: ``username``,
``token_name``, ``variable_key`` (the Variable that receives the token's secret), and optionally a
partial Duckling config (``read_write``, ``read_scaling``), ``ttl`` and ``token_type``.

``load_accounts`` checks every entry first (a bad one fails the run, named, before any account is
touched); ``onboard`` then brings each account to its declared state, at most 16 at a time. A
second run with the same list only reads: MotherDuckOnboardAccountOperator keeps a delivery record
next to each secret (the Variable ``motherduck_delivery_<hash of variable_key>``) and creates a
token only if the delivered one is gone. For hundreds of accounts in a single task, use MotherDuckBulkOnboardOperator.

Manages the accounts the list declares (the file's: ``crm_sync``, ``finance_reports``,
``marketing_attribution``), their Duckling configs, their ``airflow`` tokens and the Variables
named in the list; no other example declares them. Uses the ``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_bulk_onboarding]
import json
from datetime import datetime
from pathlib import Path
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, Variable, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models import Variable

from airflow_provider_motherduck.operators import MotherDuckOnboardAccountOperator
from airflow_provider_motherduck.operators.onboarding import check_accounts

ACCOUNTS_VARIABLE = "motherduck_service_accounts"
ACCOUNTS_FILE = Path(__file__).with_name("service_accounts.json")

with DAG(
    dag_id="example_motherduck_bulk_onboarding",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_onboard_account]
    @task
    def load_accounts() -> list[dict[str, Any]]:
        """The declarations, from the Variable or the file, checked before anything is changed."""
        text = Variable.get(ACCOUNTS_VARIABLE, None)  # default by position: Airflow 2 and 3 name it apart
        source = f"Variable {ACCOUNTS_VARIABLE}" if text is not None else str(ACCOUNTS_FILE)
        accounts: list[dict[str, Any]] = json.loads(text if text is not None else ACCOUNTS_FILE.read_text())
        check_accounts(accounts)
        print(f"{len(accounts)} account(s) declared in {source}")
        return accounts

    MotherDuckOnboardAccountOperator.partial(task_id="onboard", max_active_tis_per_dag=16).expand_kwargs(
        load_accounts()
    )
    # [END howto_operator_motherduck_onboard_account]
# [END example_motherduck_bulk_onboarding]
