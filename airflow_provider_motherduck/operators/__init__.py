"""Operators for the MotherDuck admin API, one per admin action."""

from __future__ import annotations

from airflow_provider_motherduck.operators.accounts import MotherDuckListActiveAccountsOperator
from airflow_provider_motherduck.operators.ducklings import (
    MotherDuckGetDucklingConfigOperator,
    MotherDuckSetDucklingConfigOperator,
)
from airflow_provider_motherduck.operators.tokens import (
    MotherDuckCreateTokenOperator,
    MotherDuckDeleteTokenOperator,
    MotherDuckListTokensOperator,
)
from airflow_provider_motherduck.operators.users import (
    MotherDuckCreateUserOperator,
    MotherDuckDeleteUserOperator,
)

__all__ = [
    "MotherDuckCreateTokenOperator",
    "MotherDuckCreateUserOperator",
    "MotherDuckDeleteTokenOperator",
    "MotherDuckDeleteUserOperator",
    "MotherDuckGetDucklingConfigOperator",
    "MotherDuckListActiveAccountsOperator",
    "MotherDuckListTokensOperator",
    "MotherDuckSetDucklingConfigOperator",
]
