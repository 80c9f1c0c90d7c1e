"""Audit every service account's tokens each night: which expire soon, which are too old, which never expire.

One task, ``MotherDuckTokenAuditOperator``, lists the tokens of every active service account
(humans, Admins and deprovisioned users are left out) and checks three rules:

* ``expires_soon``: the token expires within 14 days: rotate it before it breaks a job;
* ``too_old``: it was created more than 180 days ago;
* ``never_expires``: it has no expiry at all.

The task log shows every token in a table, and the XCom (``{"tokens": [...], "violations":
[...]}``) says which rules each token breaks; only metadata is read, never a secret. Here the task
succeeds either way, so downstream tasks can read the violations; with ``fail_on_violation=True``
it fails instead, listing them, and Airflow's failure alerts fire.

Manages nothing: it only reads token metadata. Uses ``motherduck_default``.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import MotherDuckTokenAuditOperator

with DAG(
    dag_id="example_motherduck_token_audit",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_token_audit]
    MotherDuckTokenAuditOperator(
        task_id="audit_tokens",
        expiring_within="14 days",
        max_age="180 days",
        require_expiry=True,
        fail_on_violation=False,  # True: the task fails listing the violations (an alert)
    )
    # [END howto_operator_motherduck_token_audit]
