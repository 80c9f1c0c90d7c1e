"""The DuckDB transport through the hook, with a stand-in for MotherDuck's client; the SQL extras.

MotherDuck cannot be reached from here, so what is checked is what the DuckDB transport sends
(the boot, one in-memory DuckDB per token, the statements), the retry rule and the error
mapping. The Postgres transport runs for real against the emulator in test_admin.py.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import duckdb
import pytest

from airflow_provider_motherduck.exceptions import (
    MotherDuckConfigError,
    MotherDuckSQLError,
    MotherDuckSQLNotFoundError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql.answers import Role
from airflow_provider_motherduck.hooks.sql.transports import PostgresTarget, SQLSettings, sql_settings
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.sql_standin import StandIn, booted
from tests.support import FakeSleep, connection_json

ROLES = (
    ("role_name", "role_type", "included_roles", "created_at"),
    [("admin", "PRESET", ["builder"], None), ("analysts", "CUSTOM", [], "2026-12-01 10:00:00")],
)
UNAVAILABLE = duckdb.IOException("rpc error: code = Unavailable desc = connection reset")


def test_one_in_memory_duckdb_per_token_booted_with_the_token_as_a_setting(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, duckdb_standin: StandIn
) -> None:
    duckdb_standin.answer("SHOW ALL ROLES", *ROLES)
    assert hook.list_roles() == [
        Role("admin", "preset", ("builder",)),
        Role("analysts", "custom", (), "2026-12-01 10:00:00"),
    ]
    assert [r.name for r in hook.list_roles()] == ["admin", "analysts"]  # the same session again
    [con] = duckdb_standin.connections
    assert con.database == ":memory:"
    assert emulator.admin_token not in repr(con.config)
    assert con.sent == [*booted(emulator.admin_token), "SHOW ALL ROLES", "SHOW ALL ROLES"]
    hook.close()
    assert con.closed
    assert emulator.journal == []  # SQL only: no REST call


def test_a_transient_failure_of_a_read_is_retried_in_a_new_session(
    hook: MotherDuckHook, duckdb_standin: StandIn, fake_sleep: FakeSleep, caplog: pytest.LogCaptureFixture
) -> None:
    duckdb_standin.answer("SHOW ALL ROLES", *ROLES)
    duckdb_standin.fail("SHOW ALL ROLES", UNAVAILABLE, UNAVAILABLE)
    with caplog.at_level(logging.WARNING):
        assert len(hook.list_roles()) == 2
    assert fake_sleep.waits == [2.0, 2.0]
    assert [c.closed for c in duckdb_standin.connections] == [True, True, False]
    assert "retry 1 of 3" in caplog.text


def test_a_read_gives_up_after_four_attempts(
    hook: MotherDuckHook, duckdb_standin: StandIn, fake_sleep: FakeSleep
) -> None:
    duckdb_standin.fail("SHOW ALL ROLES", *[UNAVAILABLE] * 4)
    with pytest.raises(MotherDuckSQLError, match="Unavailable") as info:
        hook.list_roles()
    assert info.value.statement == "SHOW ALL ROLES"
    assert len(fake_sleep.waits) == 3


def test_a_create_is_never_retried(
    hook: MotherDuckHook, duckdb_standin: StandIn, fake_sleep: FakeSleep
) -> None:
    duckdb_standin.answer("SHOW ALL ROLES", *ROLES)
    duckdb_standin.fail('CREATE ROLE "readers"', UNAVAILABLE)
    with pytest.raises(MotherDuckSQLError, match="Unavailable") as info:
        hook.create_role("readers")
    assert info.value.statement == 'CREATE ROLE "readers"'
    assert fake_sleep.waits == []
    assert duckdb_standin.work().count('CREATE ROLE "readers"') == 1


def test_a_drop_and_a_revoke_are_retried(
    hook: MotherDuckHook, duckdb_standin: StandIn, fake_sleep: FakeSleep
) -> None:
    duckdb_standin.answer("SHOW ALL ROLES", *ROLES)
    duckdb_standin.answer('DROP ROLE IF EXISTS "analysts"', (), [])
    duckdb_standin.fail('DROP ROLE IF EXISTS "analysts"', UNAVAILABLE)
    duckdb_standin.answer(
        'SHOW ROLES TO USER "etl_bot"',
        ("role_name", "role_type", "is_direct", "granted_at"),
        [("analysts", "custom", "true", None)],
    )
    duckdb_standin.answer('REVOKE ROLE "analysts" FROM USER "etl_bot"', (), [])
    duckdb_standin.fail('REVOKE ROLE "analysts" FROM USER "etl_bot"', UNAVAILABLE)
    assert hook.revoke_role("analysts", from_user="etl_bot") is True
    assert hook.drop_role("analysts") is True
    assert fake_sleep.waits == [2.0, 2.0]


def test_errors_map_and_never_show_the_token(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, duckdb_standin: StandIn
) -> None:
    duckdb_standin.fail(
        "SELECT * FROM MD_LIST_SHARE_GRANTEES('gone') ORDER BY grantee_type, grantee_name",
        duckdb.CatalogException(
            f"Catalog Error: Database share gone not found (session {emulator.admin_token})"
        ),
    )
    with pytest.raises(MotherDuckSQLNotFoundError, match="share gone not found") as info:
        hook.share_grants("gone")
    assert emulator.admin_token not in str(info.value)
    assert info.value.transport == "duckdb"


def test_a_refused_token_is_named_by_its_statement_only(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, duckdb_standin: StandIn
) -> None:
    duckdb_standin.fail(
        f"SET motherduck_token = '{emulator.admin_token}'",
        duckdb.InvalidInputException(f"Invalid Input Error: token {emulator.admin_token} is invalid"),
    )
    with pytest.raises(MotherDuckSQLError) as info:
        hook.list_roles()
    assert emulator.admin_token not in str(info.value)
    assert "SET motherduck_token" in str(info.value)
    assert duckdb_standin.connections[0].closed


def test_the_current_user_over_the_lent_connection(hook: MotherDuckHook) -> None:
    con = duckdb.connect(":memory:")
    con.execute(
        "CREATE MACRO md_user_info() AS TABLE SELECT 'u' AS user_id, 'bot' AS username, 'o' AS org_id, 'Org' AS org_name, 'lite' AS org_type, 'aws-eu' AS region"
    )
    assert hook.get_current_user(con)["username"] == "bot"
    assert con.execute("SELECT 1").fetchone() == (1,)  # left open


@pytest.mark.parametrize(
    ("module", "extra", "transport"), [("duckdb", "duckdb", "duckdb"), ("psycopg", "postgres", "postgres")]
)
def test_a_missing_client_names_the_extra(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch, module: str, extra: str, transport: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MD_SQL",
        connection_json(
            emulator.url, emulator.admin_token, sql_transport=transport, postgres_host="127.0.0.1"
        ),
    )
    with pytest.raises(MotherDuckConfigError, match=rf"airflow-provider-motherduck\[{extra}\]"):
        MotherDuckHook("md_sql").list_roles()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"sql_transport": "jdbc"}, "sql_transport='jdbc'"),
        ({"postgres_host": "pg.example/x"}, "postgres_host='pg.example/x'"),
        ({"postgres_host": "user@pg.example"}, "postgres_host='user@pg.example'"),
        ({"postgres_host": "pg.example:5432"}, "postgres_host='pg.example:5432'"),
        ({"postgres_port": "70000"}, "postgres_port='70000'"),
        ({"postgres_port": True}, "postgres_port=True"),
        ({"region": "us east"}, "region='us east'"),
    ],
)
def test_bad_sql_extras_are_refused(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(MotherDuckConfigError, match="Allowed") as info:
        sql_settings(extra, "connection 'x'")
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("extra", "target"),
    [
        (
            {"postgres_host": "127.0.0.1", "postgres_port": "6543"},
            PostgresTarget("127.0.0.1", 6543, "prefer"),
        ),
        ({"postgres_host": "::1"}, PostgresTarget("::1", 5432, "prefer")),
        ({"postgres_host": "localhost"}, PostgresTarget("localhost", 5432, "prefer")),
        (
            {"postgres_host": "pg.us-east-1-aws.motherduck.com"},
            PostgresTarget("pg.us-east-1-aws.motherduck.com", 5432, "verify-full"),
        ),
        (
            {"region": "eu-central-1-aws"},
            PostgresTarget("pg.eu-central-1-aws.motherduck.com", 5432, "verify-full"),
        ),
        ({"region": "us-east-1"}, PostgresTarget("pg.us-east-1-aws.motherduck.com", 5432, "verify-full")),
        (
            {"region": "westeurope-azure"},
            PostgresTarget("pg.westeurope-azure.motherduck.com", 5432, "verify-full"),
        ),
    ],
)
def test_plain_tcp_only_to_loopback(extra: dict[str, Any], target: PostgresTarget) -> None:
    settings = sql_settings({"sql_transport": "postgres", **extra}, "connection 'x'")
    assert settings.postgres_target() == target
    kwargs = target.kwargs()
    assert ("sslrootcert" in kwargs) == (target.sslmode == "verify-full")
    assert "password" not in kwargs


def test_the_postgres_endpoint_must_be_named() -> None:
    with pytest.raises(MotherDuckConfigError, match=r"postgres_host .* or region"):
        SQLSettings("postgres").postgres_target()
