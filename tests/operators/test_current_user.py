"""MotherDuckCurrentUserOperator, offline: an in-memory DuckDB stands in for a MotherDuck session.

The same operator over the Postgres transport runs against the emulator in tests/operators/test_access.py.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckConfigError, MotherDuckSQLError
from airflow_provider_motherduck.operators import MotherDuckCurrentUserOperator
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import run
from tests.sql_standin import StandIn, booted
from tests.support import connection_json

duckdb = pytest.importorskip("duckdb")

pytestmark = pytest.mark.usefixtures("motherduck_conn")

# MotherDuck's md_user_info() as a table macro on a plain in-memory DuckDB.
USER_INFO_MACRO = (
    "CREATE MACRO md_user_info() AS TABLE SELECT 'u-1' AS user_id, 'etl_bot' AS username, "
    "'o-1' AS org_id, 'Acme' AS org_name, 'business' AS org_type, 'aws-us-east-1' AS region"
)
USER = {
    "user_id": "u-1",
    "username": "etl_bot",
    "org_id": "o-1",
    "org_name": "Acme",
    "org_type": "business",
    "region": "aws-us-east-1",
}


def _standin(standin: StandIn, motherduck: bool) -> StandIn:
    if motherduck:
        standin.setup.append(USER_INFO_MACRO)
    return standin


def test_returns_the_user_info_and_closes_the_session(
    emulator: MotherDuckEmulator,
    duckdb_standin: StandIn,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    opened = _standin(duckdb_standin, motherduck=True)
    with caplog.at_level(logging.DEBUG):
        result = run(MotherDuckCurrentUserOperator(task_id="who"))
    # Airflow 2 logs through logging (caplog); Airflow 3's task logger prints through structlog.
    logged = caplog.text + "".join(capfd.readouterr())

    assert result == USER
    assert all(type(v) is str for v in result.values())  # JSON-able XCom
    # One in-memory DuckDB per token; the token goes in as a setting, never in the connection
    # string; the session is closed when the task ends.
    [con] = opened.connections
    assert con.database == ":memory:"
    assert emulator.admin_token not in repr(con.config)
    assert con.sent == [*booted(emulator.admin_token), "FROM md_user_info()"]
    assert con.closed
    assert emulator.journal == []  # no REST call: there is no "who am I" endpoint
    assert "belongs to MotherDuck user etl_bot" in logged
    assert emulator.admin_token not in logged
    assert emulator.admin_token not in repr(result)


def test_plain_duckdb_is_reported_not_returned(emulator: MotherDuckEmulator, duckdb_standin: StandIn) -> None:
    """Without MotherDuck, DuckDB answers its local default user: that is an error, not a user."""
    opened = _standin(duckdb_standin, motherduck=False)
    with pytest.raises(MotherDuckSQLError, match="not a MotherDuck session") as info:
        run(MotherDuckCurrentUserOperator(task_id="who"))
    assert "local default user" in str(info.value)
    assert emulator.admin_token not in str(info.value)
    assert opened.connections[0].closed  # closed on failure too


def test_without_duckdb_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # as if the extra were not installed
    with pytest.raises(MotherDuckConfigError, match=r"airflow-provider-motherduck\[duckdb\]"):
        run(MotherDuckCurrentUserOperator(task_id="who"))


def test_connection_id_reaches_the_hook(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch, duckdb_standin: StandIn
) -> None:
    other_token = "mdt_" + "ab" * 24
    monkeypatch.setenv("AIRFLOW_CONN_MD_OTHER", connection_json(emulator.url, other_token))
    _standin(duckdb_standin, motherduck=True)
    assert run(MotherDuckCurrentUserOperator(task_id="who", motherduck_conn_id="md_other")) == USER
    assert f"SET motherduck_token = '{other_token}'" in duckdb_standin.sent


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"motherduck_conn_id": ""}, "motherduck_conn_id=''"),
        ({"hook_params": {"timout": 5}}, "unknown keys ['timout']"),
    ],
)
def test_bad_literal_fails_at_parse_time(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match="MotherDuckCurrentUserOperator 'who'") as info:
        MotherDuckCurrentUserOperator(task_id="who", **kwargs)
    assert named in str(info.value)


def test_nothing_is_opened_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Callable[..., Any]] = []
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: calls.append(a))
    op = MotherDuckCurrentUserOperator(task_id="who", motherduck_conn_id="md_nowhere")
    assert "hook" not in op.__dict__
    assert calls == []
