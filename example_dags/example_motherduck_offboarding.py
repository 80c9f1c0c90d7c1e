"""Offboard service accounts: wait until none has a running Duckling, then remove each one.

``offboard_account_group`` builds the task group ``offboard``: the sensor ``wait_until_idle``
(reschedule mode, a look every 5 minutes, 6 hours at most) waits until no Duckling of these
accounts is active or cooling down; then ``offboard_account``, one mapped task per account,
revokes every token of the account, deletes the user with all its data (irreversible), and
deletes the Variable holding its secret (``motherduck_token_<user>``) with its delivery record.
Safe to re-run: an account already gone counts as done.

Manages (removes) the retired accounts ``legacy_etl``, ``tableau_extracts`` and ``churn_model_v1``
and their Variables ``motherduck_token_<user>``; no other example creates or uses them. Uses the
``motherduck_default`` connection.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import offboard_account_group

USERNAMES = ["legacy_etl", "tableau_extracts", "churn_model_v1"]  # retired
VARIABLE_PREFIX = "motherduck_token_"  # where the onboarding examples put secrets

with DAG(
    dag_id="example_motherduck_offboarding",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_offboard_account_group]
    offboard_account_group(
        [{"username": user, "variable_key": f"{VARIABLE_PREFIX}{user}"} for user in USERNAMES],
        poke_interval=300,
        timeout=6 * 3600,
        mode="reschedule",
    )
    # [END howto_operator_motherduck_offboard_account_group]
