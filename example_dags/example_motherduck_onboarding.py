"""Onboard service accounts: create each user, size its Ducklings, store a new token in a Variable.

Every step is a mapped task, one instance per account, so a long list spreads over the workers.
Safe to re-run: existing users are kept (``exists_ok=True``) and sizing changes nothing the
second time. Each run creates one more token per account and overwrites its Variable; revoke the
older ones as the token rotation example does for its account.

Manages ``etl_loader``, ``bi_dashboards`` and ``ml_features``: the users, their Duckling configs,
their ``airflow`` tokens and the Variables ``motherduck_token_<user>``; no other example writes to
them (``example_motherduck_wait_for_active`` only reads their Ducklings). Uses the
``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_onboarding]
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckCreateUserOperator,
    MotherDuckSetDucklingConfigOperator,
)

# Partial Duckling settings: the fields given are merged into each account's current config.
SERVICE_ACCOUNTS = [
    {
        "username": "etl_loader",
        "token_type": "read_write",
        "read_write": {"instance_size": "jumbo"},
        "read_scaling": {"flock_size": 2},
    },
    {
        "username": "bi_dashboards",
        "token_type": "read_scaling",  # dashboards only read
        "read_write": {"instance_size": "standard"},
        "read_scaling": {"instance_size": "standard", "flock_size": 8},
    },
    {
        "username": "ml_features",
        "token_type": "read_write",
        "read_write": {"instance_size": "pulse"},
        "read_scaling": {"instance_size": "pulse", "flock_size": 1},
    },
]
TOKEN_NAME = "airflow"
TOKEN_TTL = "90 days"
VARIABLE_PREFIX = "motherduck_token_"  # the secret of user U lands in Variable motherduck_token_U

with DAG(
    dag_id="example_motherduck_onboarding",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    # [START howto_operator_motherduck_create_user]
    create_user = MotherDuckCreateUserOperator.partial(task_id="create_user", exists_ok=True).expand(
        username=[account["username"] for account in SERVICE_ACCOUNTS]
    )
    # [END howto_operator_motherduck_create_user]
    # [START howto_operator_motherduck_set_duckling_config]
    size_ducklings = MotherDuckSetDucklingConfigOperator.partial(task_id="size_ducklings").expand_kwargs(
        [
            {
                "username": account["username"],
                "read_write": account["read_write"],
                "read_scaling": account["read_scaling"],
            }
            for account in SERVICE_ACCOUNTS
        ]
    )
    # [END howto_operator_motherduck_set_duckling_config]
    # [START howto_operator_motherduck_create_token_mapped]
    create_token = MotherDuckCreateTokenOperator.partial(
        task_id="create_token", token_name=TOKEN_NAME, ttl=TOKEN_TTL
    ).expand_kwargs(
        [
            {
                "username": account["username"],
                "token_type": account["token_type"],
                "variable_key": f"{VARIABLE_PREFIX}{account['username']}",
            }
            for account in SERVICE_ACCOUNTS
        ]
    )
    # [END howto_operator_motherduck_create_token_mapped]

    create_user >> size_ducklings >> create_token
# [END example_motherduck_onboarding]
