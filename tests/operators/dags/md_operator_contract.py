"""A DAG exercising the operators the way users will: mapping, templates, Variables, XCom.

Run by tests/operators/test_mapping.py with ``airflow dags test`` against an emulator.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckCreateUserOperator,
    MotherDuckGetDucklingConfigOperator,
    MotherDuckListTokensOperator,
    MotherDuckRevokeTokenOperator,
    MotherDuckSetDucklingConfigOperator,
)

USERS = ["svc_a", "svc_b", "svc_c"]

with DAG(
    dag_id="md_operator_contract",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={
        "token_name": "nightly",
        "ttl": "2 hours",
        "size": "jumbo",
        "bad_user": "9lives",
        "bad_ttl": "1 minute",
    },
):
    create_users = MotherDuckCreateUserOperator.partial(task_id="create_users", exists_ok=True).expand(
        username=USERS
    )
    size = MotherDuckSetDucklingConfigOperator.partial(
        task_id="size", read_write={"instance_size": "{{ params.size }}"}
    ).expand(username=USERS)
    tokens = MotherDuckCreateTokenOperator.partial(
        task_id="create_tokens", token_name="{{ params.token_name }}", ttl="{{ params.ttl }}"
    ).expand_kwargs([{"username": user, "variable_key": f"md_contract_{user}"} for user in USERS])
    # Positive control for the secrecy checks: this one puts its secret in XCom on purpose.
    reveal = MotherDuckCreateTokenOperator(
        task_id="reveal", username="svc_a", token_name="revealed", return_secret=True
    )
    # Map over an upstream task's XCom: the usernames that create_users returned.
    listed = MotherDuckListTokensOperator.partial(task_id="list_tokens").expand(
        username=create_users.output.map(lambda result: result["username"])
    )
    configs = MotherDuckGetDucklingConfigOperator.partial(task_id="get_config").expand(username=USERS)
    revoke_revealed = MotherDuckRevokeTokenOperator.partial(
        task_id="revoke_revealed", token_name="revealed", missing_ok=True
    ).expand(username=USERS)

    create_users >> size >> configs
    create_users >> tokens >> reveal >> listed >> revoke_revealed

    # Templated values that render bad: each task must fail before sending anything.
    MotherDuckCreateUserOperator(task_id="bad_username", username="{{ params.bad_user }}")
    MotherDuckCreateTokenOperator(
        task_id="bad_ttl", username="svc_a", token_name="never_created", ttl="{{ params.bad_ttl }}"
    )
