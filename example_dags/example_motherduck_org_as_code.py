"""The organisation as code: reconcile MotherDuck's service accounts to ``motherduck_organisation.yaml``.

1. ``plan`` reads the organisation and logs what applying would change, as a table; it writes
   nothing. Its XCom is the plan.
2. ``apply`` reads again, plans again and carries the plan out, eight accounts at a time. A
   failure part-way leaves a state the next run finishes from; once MotherDuck matches the file, a
   run only reads.

A declared account, role or share that exists already is adopted. The file manages only what it
owns: the accounts, token names, roles, shares and grants it created or adopted, kept in its ownership record (the Variable
``motherduck_owned_<name>``). ``prune=True``: owned service accounts the file no longer names are
deleted (their tokens revoked first), and owned token names it no longer declares are revoked; an
account it neither declares nor owns is never touched. Human users, users with the Admin role,
deprovisioned users and names matching ``protect`` are never pruned, and a plan with more than
``max_deletes`` revokes and deletions is not applied.

Manages the accounts the file declares (``dwh_loader``, ``looker_reader``, ``feature_store``,
``reporting_bot``), their Duckling configs, tokens and Variables ``motherduck_token_<user>``, the
role ``dwh_analysts``, the share ``dwh_customers`` of ``warehouse_owner`` (an account it expects to
exist, owning the database ``warehouse``; the demo seeds it) with its grant, and
``looker_reader``'s attachment ``customers``; no other example declares them. Uses the
``motherduck_default`` connection, with its SQL transport.
"""

from __future__ import annotations

# [START example_motherduck_org_as_code]
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import MotherDuckReconcileOperator

DECLARATION = "motherduck_organisation.yaml"  # next to this file
GUARDS = {"prune": True, "protect": ["break_glass_*"], "max_deletes": 5}

with DAG(
    dag_id="example_motherduck_org_as_code",
    schedule=None,  # run it when the file changes (or from CI, after review)
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_reconcile]
    plan = MotherDuckReconcileOperator(task_id="plan", desired=DECLARATION, mode="plan", **GUARDS)
    apply = MotherDuckReconcileOperator(task_id="apply", desired=DECLARATION, mode="apply", **GUARDS)
    # [END howto_operator_motherduck_reconcile]
    plan >> apply
# [END example_motherduck_org_as_code]
