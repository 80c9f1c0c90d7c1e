"""Operators for the MotherDuck admin API, one per admin action."""

from __future__ import annotations

from airflow_provider_motherduck.operators.accounts import MotherDuckListActiveAccountsOperator
from airflow_provider_motherduck.operators.current_user import MotherDuckCurrentUserOperator
from airflow_provider_motherduck.operators.ducklings import (
    MotherDuckGetDucklingConfigOperator,
    MotherDuckSetDucklingConfigOperator,
)
from airflow_provider_motherduck.operators.onboarding import (
    MotherDuckBulkOnboardOperator,
    MotherDuckOffboardAccountOperator,
    MotherDuckOnboardAccountOperator,
)
from airflow_provider_motherduck.operators.organisation import (
    MotherDuckCreateDiveEmbedSessionOperator,
    MotherDuckListUsersOperator,
    MotherDuckTokenAuditOperator,
)
from airflow_provider_motherduck.operators.reconcile import MotherDuckReconcileOperator
from airflow_provider_motherduck.operators.rotation import MotherDuckRotateTokenOperator
from airflow_provider_motherduck.operators.tokens import (
    MotherDuckCreateTokenOperator,
    MotherDuckListTokensOperator,
    MotherDuckRevokeTokenOperator,
)
from airflow_provider_motherduck.operators.users import (
    MotherDuckCreateUserOperator,
    MotherDuckDeleteUserOperator,
)

# Re-exported where DAGs have always imported it; it lives with the other task groups.
from airflow_provider_motherduck.task_groups import offboard_account_group

__all__ = [
    "MotherDuckBulkOnboardOperator",
    "MotherDuckCreateDiveEmbedSessionOperator",
    "MotherDuckCreateTokenOperator",
    "MotherDuckCreateUserOperator",
    "MotherDuckCurrentUserOperator",
    "MotherDuckDeleteUserOperator",
    "MotherDuckGetDucklingConfigOperator",
    "MotherDuckListActiveAccountsOperator",
    "MotherDuckListTokensOperator",
    "MotherDuckListUsersOperator",
    "MotherDuckOffboardAccountOperator",
    "MotherDuckOnboardAccountOperator",
    "MotherDuckReconcileOperator",
    "MotherDuckRevokeTokenOperator",
    "MotherDuckRotateTokenOperator",
    "MotherDuckSetDucklingConfigOperator",
    "MotherDuckTokenAuditOperator",
    "offboard_account_group",
]
