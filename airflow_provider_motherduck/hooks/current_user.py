"""Who a token belongs to, over SQL: MotherDuck has no REST call for it.

In a MotherDuck session, over either transport, ``FROM md_user_info()`` answers one row about
the token's user. Plain DuckDB has no such function (its ``current_user`` is a local default
user), so a session without it is refused rather than passed off as a MotherDuck user.
"""

from __future__ import annotations

from typing import Any, TypedDict

from airflow_provider_motherduck.exceptions import MotherDuckSQLError
from airflow_provider_motherduck.hooks.sql.session import SQLSession
from airflow_provider_motherduck.hooks.sql.statements import local_user, user_info


class CurrentUser(TypedDict):
    """Who a token belongs to, as MotherDuck's ``md_user_info()`` tells it."""

    user_id: str
    username: str
    org_id: str
    org_name: str
    org_type: str
    region: str


CURRENT_USER_FIELDS = tuple(CurrentUser.__annotations__)


def read_current_user(session: SQLSession) -> CurrentUser:
    """``FROM md_user_info()`` in ``session``, checked to be MotherDuck's one row."""
    statement = user_info()
    try:
        rows = session.run(statement)
    except MotherDuckSQLError as err:
        if err.statement != statement.shown:  # the session did not open: say why as it is
            raise
        raise MotherDuckSQLError(
            "not a MotherDuck session: md_user_info() does not exist or failed, so this session is "
            f"not connected to MotherDuck (its current_user, {_local_user(session)!r}, is a local "
            f"default user, not a MotherDuck user): {err.message}"
        ) from None
    return _user(rows)


def _local_user(session: SQLSession) -> str | None:
    try:
        rows = session.run(local_user())
    except MotherDuckSQLError:
        return None
    return str(next(iter(rows[0].values()))) if rows else None


def _user(rows: list[dict[str, Any]]) -> CurrentUser:
    columns = list(rows[0]) if rows else []
    missing = [f for f in CURRENT_USER_FIELDS if f not in columns]
    if len(rows) != 1 or missing:
        raise MotherDuckSQLError(
            f"md_user_info() answered {len(rows)} row(s) with columns {columns}; expected one row with "
            f"{', '.join(CURRENT_USER_FIELDS)}"
        )
    user: CurrentUser = {f: str(rows[0][f]) for f in CURRENT_USER_FIELDS}  # type: ignore[assignment]
    return user
