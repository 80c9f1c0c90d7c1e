"""Rotate a service account's token every week, safely: the Variable always holds a working secret.

One task, ``MotherDuckRotateTokenOperator``:

1. creates a token for ``dbt_prod`` (the account production dbt runs connect with) named
   ``airflow@<logical date>``, valid for 35 days;
2. writes its secret to the Variable ``motherduck_token_dbt_prod`` (never to XCom or the logs),
   and a delivery record (token id, no secret) to the Variable
   ``motherduck_delivery_<hash of motherduck_token_dbt_prod>``;
3. only then revokes older ``airflow`` tokens: ``keep=2`` leaves the previous one working until
   the next rotation, for consumers that read the Variable only when they start, and
   ``revoke_after="1 day"`` never revokes a token younger than a day (say, after a manual run).

If a step fails, nothing is lost: the old secret stays in place until the new one is delivered.
If a revoke fails, the task fails naming the tokens still live; clearing it (or a retry) finishes
the job without creating a second token for the same week.

Manages ``dbt_prod``'s ``airflow`` tokens and the Variable ``motherduck_token_dbt_prod``; no other
example writes to that account or Variable. Uses ``motherduck_default``.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import MotherDuckRotateTokenOperator

USERNAME = "dbt_prod"

with DAG(
    dag_id="example_motherduck_token_rotation",
    schedule="@weekly",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_rotate_token]
    MotherDuckRotateTokenOperator(
        task_id="rotate_token",
        username=USERNAME,
        token_name="airflow",
        ttl="35 days",  # outlives the next rotation, and the one after (keep=2)
        variable_key=f"motherduck_token_{USERNAME}",
        keep=2,
        revoke_after="1 day",
    )
    # [END howto_operator_motherduck_rotate_token]
