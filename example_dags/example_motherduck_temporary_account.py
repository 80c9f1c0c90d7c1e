"""A service account for one job: create it with a one-day token, run the job, then remove it.

1. ``create_user`` creates ``backfill_bot`` (``exists_ok=True``: a retry finds it).
2. ``create_token`` gives it a read/write token valid for one day and writes the secret to the
   Variable ``motherduck_token_backfill_bot`` (never to XCom or the logs).
3. ``backfill`` stands for the job, which would connect with the secret from that Variable.
4. ``list_tokens`` records the account's tokens before it goes (metadata only, kept in XCom).
5. ``revoke_tokens`` revokes every token named ``backfill`` (a retried create may have made two)
   and deletes the Variable with its delivery record, so no revoked secret lingers.
6. ``delete_user`` deletes the account with all its data (irreversible).

Steps 4 to 6 run even when the job failed (``trigger_rule="all_done"``), and are safe to re-run
(``missing_ok=True``).

Manages ``backfill_bot``, its ``backfill`` tokens and the Variable ``motherduck_token_backfill_bot``,
from creation to deletion; no other example names them. Uses the ``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_temporary_account]
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckCreateUserOperator,
    MotherDuckDeleteUserOperator,
    MotherDuckListTokensOperator,
    MotherDuckRevokeTokenOperator,
)

USERNAME = "backfill_bot"
TOKEN_NAME = "backfill"
VARIABLE_KEY = f"motherduck_token_{USERNAME}"

with DAG(
    dag_id="example_motherduck_temporary_account",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    create_user = MotherDuckCreateUserOperator(task_id="create_user", username=USERNAME, exists_ok=True)
    # [START howto_operator_motherduck_create_token]
    create_token = MotherDuckCreateTokenOperator(
        task_id="create_token",
        username=USERNAME,
        token_name=TOKEN_NAME,
        token_type="read_write",
        ttl="1 day",
        variable_key=VARIABLE_KEY,
    )
    # [END howto_operator_motherduck_create_token]

    @task
    def backfill() -> None:
        """Stands for the job: it would read the secret with Variable.get(VARIABLE_KEY)."""

    # [START howto_operator_motherduck_list_tokens]
    list_tokens = MotherDuckListTokensOperator(
        task_id="list_tokens", username=USERNAME, trigger_rule="all_done"
    )
    # [END howto_operator_motherduck_list_tokens]
    # [START howto_operator_motherduck_revoke_token]
    revoke_tokens = MotherDuckRevokeTokenOperator(
        task_id="revoke_tokens",
        username=USERNAME,
        token_name=TOKEN_NAME,
        all_matching=True,
        missing_ok=True,
        variable_key=VARIABLE_KEY,
        trigger_rule="all_done",
    )
    # [END howto_operator_motherduck_revoke_token]
    # [START howto_operator_motherduck_delete_user]
    delete_user = MotherDuckDeleteUserOperator(
        task_id="delete_user", username=USERNAME, missing_ok=True, trigger_rule="all_done"
    )
    # [END howto_operator_motherduck_delete_user]

    create_user >> create_token >> backfill() >> list_tokens >> revoke_tokens >> delete_user
# [END example_motherduck_temporary_account]
