"""Who a token belongs to, over SQL: MotherDuck has no REST call for it.

A MotherDuck session is DuckDB with the ``motherduck`` extension on the database ``md:``;
``FROM md_user_info()`` answers one row about the token's user. Plain DuckDB has no such
function (its ``current_user`` is a local default user), so its answer is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from airflow_provider_motherduck.exceptions import MotherDuckConfigError, MotherDuckSQLError

if TYPE_CHECKING:
    import duckdb


class CurrentUser(TypedDict):
    """Who a token belongs to, as MotherDuck's ``md_user_info()`` tells it."""

    user_id: str
    username: str
    org_id: str
    org_name: str
    org_type: str
    region: str


CURRENT_USER_FIELDS = tuple(CurrentUser.__annotations__)


def current_user(token: str) -> CurrentUser:
    """The user of ``token``, read from a MotherDuck session that is opened and closed here.

    The token goes in the ``motherduck_token`` config option, never in the connection string.
    Needs the ``duckdb`` extra. Raises ``MotherDuckSQLError`` when the answer is not MotherDuck's.
    """
    try:
        import duckdb
    except ImportError:
        raise MotherDuckConfigError(
            "get_current_user needs DuckDB: pip install 'airflow-provider-motherduck[duckdb]'"
        ) from None
    try:
        con = duckdb.connect("md:", config={"motherduck_token": token})
    except duckdb.Error as err:
        raise MotherDuckSQLError(f"could not open a MotherDuck session: {type(err).__name__}") from None
    try:
        return read_user_info(con)
    finally:
        con.close()


def read_user_info(con: duckdb.DuckDBPyConnection) -> CurrentUser:
    """``FROM md_user_info()`` on an open connection, checked to be MotherDuck's one row."""
    import duckdb

    try:
        cursor = con.execute("FROM md_user_info()")
        columns = [d[0] for d in cursor.description or ()]
        rows = cursor.fetchall()
    except duckdb.Error:
        try:
            local = con.execute("SELECT current_user").fetchone()
        except duckdb.Error:
            local = None
        raise MotherDuckSQLError(
            "not a MotherDuck session: md_user_info() does not exist, so this DuckDB is not connected to "
            f"MotherDuck (its current_user, {local[0] if local else None!r}, is a local default user, "
            "not a MotherDuck user)"
        ) from None
    missing = [f for f in CURRENT_USER_FIELDS if f not in columns]
    if len(rows) != 1 or missing:
        raise MotherDuckSQLError(
            f"md_user_info() answered {len(rows)} row(s) with columns {columns}; expected one row with "
            f"{', '.join(CURRENT_USER_FIELDS)}"
        )
    info = dict(zip(columns, rows[0], strict=True))
    user: CurrentUser = {f: str(info[f]) for f in CURRENT_USER_FIELDS}  # type: ignore[assignment]
    return user
