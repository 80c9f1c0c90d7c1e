"""The multi-step work of the provider, as plain functions over a :class:`MotherDuckHook`.

No ``BaseOperator`` here: operators are thin shells over these functions, and DAG authors and
tests can call them directly. Modules: :mod:`.naming` (run markers, the logical name),
:mod:`.tokens` (a token's metadata and timestamps), :mod:`.delivery` (secret destinations and
delivery records), :mod:`.issuing` (``issue_token``, the one create-deliver-record transaction),
:mod:`.rotation`, :mod:`.onboarding`, :mod:`.offboarding`, :mod:`.audit` (the token audit),
:mod:`.loading` (a declaration read, bounded) and :mod:`.reconcile` (the organisation as code).
Their errors are in :mod:`airflow_provider_motherduck.exceptions`.
"""

from __future__ import annotations

from airflow_provider_motherduck.workflows.audit import AuditRules, audit_tokens, judge_tokens
from airflow_provider_motherduck.workflows.delivery import (
    DeliveryRecord,
    SecretDestination,
    SecretSink,
    default_record_key,
    fingerprint,
    forget,
)
from airflow_provider_motherduck.workflows.issuing import IssuedToken, issue_token
from airflow_provider_motherduck.workflows.offboarding import offboard_account
from airflow_provider_motherduck.workflows.onboarding import (
    check_account,
    check_accounts,
    onboard_account,
    onboard_accounts,
)
from airflow_provider_motherduck.workflows.reconcile import (
    Declaration,
    OrgState,
    ReconcilePlan,
    apply_plan,
    check_declaration,
    plan_reconcile,
    read_state,
    reconcile_accounts,
)
from airflow_provider_motherduck.workflows.rotation import (
    RotationPlan,
    plan_rotation,
    rotate_token,
)

__all__ = [
    "AuditRules",
    "Declaration",
    "DeliveryRecord",
    "IssuedToken",
    "OrgState",
    "ReconcilePlan",
    "RotationPlan",
    "SecretDestination",
    "SecretSink",
    "apply_plan",
    "audit_tokens",
    "check_account",
    "check_accounts",
    "check_declaration",
    "default_record_key",
    "fingerprint",
    "forget",
    "issue_token",
    "judge_tokens",
    "offboard_account",
    "onboard_account",
    "onboard_accounts",
    "plan_reconcile",
    "plan_rotation",
    "read_state",
    "reconcile_accounts",
    "rotate_token",
]
