"""A drift alert: fail when MotherDuck no longer matches ``motherduck_organisation.yaml``.

Every hour ``check`` reads the organisation and plans a reconcile with the same guards as
``example_motherduck_org_as_code``, writing nothing. The task succeeds when the plan is empty and
fails otherwise, its log showing the plan as a table (an account resized by hand, a token revoked,
a service account nobody declared). Route the failure to your alerting (``on_failure_callback``,
email) and fix the drift by running the org-as-code DAG, or by changing the file.

Manages nothing: it only reads (the accounts and Variables it checks are the org-as-code
example's). Uses the ``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_drift_check]
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import MotherDuckReconcileOperator

with DAG(
    dag_id="example_motherduck_drift_check",
    schedule="@hourly",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_drift_check]
    MotherDuckReconcileOperator(
        task_id="check",
        desired="motherduck_organisation.yaml",
        mode="check",  # no write; fails when the plan is not empty
        prune=True,
        protect=["break_glass_*"],
        retries=0,  # drift is not a transient error
    )
    # [END howto_operator_motherduck_drift_check]
# [END example_motherduck_drift_check]
