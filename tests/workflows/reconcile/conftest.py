"""Fixtures of the reconcile tests: the Variables in memory, a declaration and its runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore
from airflow_provider_motherduck.workflows.reconcile import check_declaration, reconcile_accounts

DESIRED: dict[str, Any] = {
    "name": "analytics",
    "service_accounts": [
        {
            "username": "etl_loader",
            "read_write": {"instance_size": "jumbo"},
            "read_scaling": {"flock_size": 2},
            "tokens": [{"name": "airflow", "ttl": "90 days", "variable_key": "md_etl"}],
        },
        {
            "username": "bi_dashboards",
            "tokens": [
                {"name": "dash", "token_type": "read_scaling", "variable_key": "md_bi"},
                {"name": "ops", "variable_key": "md_bi_ops", "ttl": "P30D"},
            ],
        },
        {"username": "ml_features", "read_scaling": {"instance_size": "pulse", "flock_size": 1}},
    ],
}
#: (account, token name) -> the Variable holding its secret.
TOKENS = {
    ("etl_loader", "airflow"): "md_etl",
    ("bi_dashboards", "dash"): "md_bi",
    ("bi_dashboards", "ops"): "md_bi_ops",
}
Reconcile = Callable[..., dict[str, Any]]


def new_hook() -> MotherDuckHook:
    return MotherDuckHook(retry_limit=0)


@pytest.fixture
def reconcile(motherduck_conn: Any, motherduck_variables: InMemoryVariableStore) -> Reconcile:
    """``reconcile(desired=DESIRED, **options)``: check, then reconcile against the emulator, the
    Variables in memory (the plugin's store)."""

    def run(desired: Any = DESIRED, **kwargs: Any) -> dict[str, Any]:
        return reconcile_accounts(check_declaration(desired), new_hook, motherduck_variables, **kwargs)

    return run
