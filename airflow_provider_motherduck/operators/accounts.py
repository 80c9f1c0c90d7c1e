"""Operator for the accounts that have running Ducklings."""

from __future__ import annotations

from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator


class MotherDuckListActiveAccountsOperator(MotherDuckBaseOperator):
    """List the accounts with running Ducklings (``active`` or ``cooldown``); not a list of users.

    XCom: ``[{"username": ..., "ducklings": [{"id", "type", "status"}, ...]}, ...]``.
    """

    writes = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_args(rendered=False)

    def execute_checked(self, context: Context) -> list[dict[str, Any]]:
        accounts = [dict(account) for account in self.hook.list_active_accounts()]
        self.log.info("%d account(s) with running Ducklings.", len(accounts))
        return accounts
