"""Operators for the MotherDuck admin API, one per admin action."""

from __future__ import annotations

from airflow_provider_motherduck.operators.access import (
    MotherDuckAttachShareOperator,
    MotherDuckCreateDatabaseOperator,
    MotherDuckCreateRoleOperator,
    MotherDuckCreateShareOperator,
    MotherDuckDetachShareOperator,
    MotherDuckDropDatabaseOperator,
    MotherDuckDropRoleOperator,
    MotherDuckDropShareOperator,
    MotherDuckGrantRoleOperator,
    MotherDuckGrantShareOperator,
    MotherDuckRevokeRoleOperator,
    MotherDuckRevokeShareOperator,
    MotherDuckSetShareIncludeOperator,
)
from airflow_provider_motherduck.operators.access_audit import MotherDuckAccessAuditOperator
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
    "MotherDuckAccessAuditOperator",
    "MotherDuckAttachShareOperator",
    "MotherDuckBulkOnboardOperator",
    "MotherDuckCreateDatabaseOperator",
    "MotherDuckCreateDiveEmbedSessionOperator",
    "MotherDuckCreateRoleOperator",
    "MotherDuckCreateShareOperator",
    "MotherDuckCreateTokenOperator",
    "MotherDuckCreateUserOperator",
    "MotherDuckCurrentUserOperator",
    "MotherDuckDeleteUserOperator",
    "MotherDuckDetachShareOperator",
    "MotherDuckDropDatabaseOperator",
    "MotherDuckDropRoleOperator",
    "MotherDuckDropShareOperator",
    "MotherDuckGetDucklingConfigOperator",
    "MotherDuckGrantRoleOperator",
    "MotherDuckGrantShareOperator",
    "MotherDuckListActiveAccountsOperator",
    "MotherDuckListTokensOperator",
    "MotherDuckListUsersOperator",
    "MotherDuckOffboardAccountOperator",
    "MotherDuckOnboardAccountOperator",
    "MotherDuckReconcileOperator",
    "MotherDuckRevokeRoleOperator",
    "MotherDuckRevokeShareOperator",
    "MotherDuckRevokeTokenOperator",
    "MotherDuckRotateTokenOperator",
    "MotherDuckSetDucklingConfigOperator",
    "MotherDuckSetShareIncludeOperator",
    "MotherDuckTokenAuditOperator",
    "offboard_account_group",
]
