"""Operator telling who the connection's token belongs to (MotherDuck's ``md_user_info()``, over SQL)."""

from __future__ import annotations

from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator


class MotherDuckCurrentUserOperator(MotherDuckBaseOperator):
    """Who the token of ``motherduck_conn_id`` belongs to: the R package's ``show_current_user``.

    There is no REST call for this: the hook opens DuckDB on ``md:`` with the token in the
    ``motherduck_token`` config option (never in a connection string), runs
    ``FROM md_user_info()`` and closes the connection. Needs the ``duckdb`` extra
    (``pip install 'airflow-provider-motherduck[duckdb]'``); without it the task fails with
    ``MotherDuckConfigError`` naming the extra. A DuckDB that is not connected to MotherDuck
    (no ``md_user_info()``) fails with ``MotherDuckSQLError`` instead of passing off its local
    default user as a MotherDuck user. ``hook_params`` do not apply (no HTTP call is made).

    XCom: ``{"user_id", "username", "org_id", "org_name", "org_type", "region"}`` (no token).
    """

    writes = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_args(rendered=False)

    def execute_checked(self, context: Context) -> dict[str, Any]:
        user = dict(self.hook.get_current_user())
        self.log.info(
            "The token of connection %s belongs to MotherDuck user %s (id %s) of organisation %s "
            "(%s, %s), region %s.",
            self.motherduck_conn_id,
            user["username"],
            user["user_id"],
            user["org_name"],
            user["org_id"],
            user["org_type"],
            user["region"],
        )
        return user
