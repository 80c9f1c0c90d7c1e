"""Rotate a service account's token every week: create a new one, store it, revoke the old ones.

1. ``create_token`` makes a token named ``airflow`` valid for 35 days and writes its secret to
   the Variable ``motherduck_token_etl_loader`` (the secret never reaches XCom or the logs).
2. ``list_tokens`` lists the account's tokens (metadata only).
3. ``older_token_ids`` keeps the ids of the other tokens with that name.
4. ``revoke_token`` deletes each of them by id, one mapped task per id; ``missing_ok=True`` makes
   a re-run harmless.

Consumers read the Variable each time they connect, so they pick up the new token. Uses the
``motherduck_default`` connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckDeleteTokenOperator,
    MotherDuckListTokensOperator,
)

USERNAME = "etl_loader"
TOKEN_NAME = "airflow"
VARIABLE_KEY = f"motherduck_token_{USERNAME}"

with DAG(
    dag_id="example_motherduck_token_rotation",
    schedule="@weekly",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    create_token = MotherDuckCreateTokenOperator(
        task_id="create_token",
        username=USERNAME,
        token_name=TOKEN_NAME,
        ttl="35 days",  # a week of overlap after the next rotation
        variable_key=VARIABLE_KEY,
    )
    list_tokens = MotherDuckListTokensOperator(task_id="list_tokens", username=USERNAME)

    @task
    def older_token_ids(tokens: list[dict[str, Any]], new_token: dict[str, Any]) -> list[str]:
        """Ids of the tokens named like the new one, except the new one."""
        return [t["id"] for t in tokens if t["name"] == new_token["name"] and t["id"] != new_token["id"]]

    old_ids = older_token_ids(list_tokens.output, create_token.output)
    revoke_token = MotherDuckDeleteTokenOperator.partial(
        task_id="revoke_token", username=USERNAME, missing_ok=True
    ).expand(token_id=old_ids)

    create_token >> list_tokens
