"""A DAG exercising the organisation operators as users will: mapping, templates, a failing audit, embed sessions.

Run by tests/operators/test_organisation.py with ``airflow dags test`` against an emulator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_motherduck.operators import (
    MotherDuckCreateDiveEmbedSessionOperator,
    MotherDuckListUsersOperator,
    MotherDuckTokenAuditOperator,
)


def usernames(users: list[dict[str, Any]]) -> list[str]:
    return [user["username"] for user in users]


with DAG(
    dag_id="md_organisation_contract",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={"window": "30 days", "bad_age": "fortnight", "dive": "dive-7"},
):
    # Mapped over the filter: service accounts, then humans.
    users = MotherDuckListUsersOperator.partial(task_id="list_users").expand(service_accounts=[True, False])
    # Mapped over the upstream XCom: one audit per list, with a templated duration.
    audit = MotherDuckTokenAuditOperator.partial(
        task_id="audit", expiring_within="{{ params.window }}", require_expiry=True
    ).expand(usernames=users.output.map(usernames))
    # Default selection, failing on a violation (expected to fail).
    MotherDuckTokenAuditOperator(task_id="audit_strict", require_expiry=True, fail_on_violation=True)
    # A rendered value that is no duration: refused before any request (expected to fail).
    MotherDuckTokenAuditOperator(task_id="bad_age", max_age="{{ params.bad_age }}")
    MotherDuckCreateDiveEmbedSessionOperator(
        task_id="embed",
        dive_id="{{ params.dive }}",
        username="svc_a",
        session_name="kiosk",
        initial_state={"tab": "{{ params.window }}"},
        variable_key="md_contract_embed",
    )
