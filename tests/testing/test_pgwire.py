"""The emulator's Postgres endpoint over the real wire protocol: psycopg (simple and extended
query protocols, text and binary results) and psql when it is installed."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator

PSQL = shutil.which("psql")


@pytest.fixture
def sql(md: MotherDuckEmulator) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(md.postgres_conninfo(), password=md.admin_token, autocommit=True) as conn:
        yield conn


def test_a_token_opens_a_session_as_its_user(md: MotherDuckEmulator) -> None:
    token = md.add_token("etl_bot", "sql")["token"]
    with psycopg.connect(md.postgres_conninfo(), password=token, autocommit=True) as conn:
        assert conn.execute("SELECT md_user()").fetchone() == ("etl_bot",)
        assert conn.info.parameter_status("client_encoding") == "UTF8"
        assert conn.info.parameter_status("integer_datetimes") == "on"
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
        assert conn.info.backend_pid > 0


def test_the_simple_and_the_extended_protocol_answer_alike(
    sql: psycopg.Connection[tuple[object, ...]],
) -> None:
    simple = sql.execute("SELECT md_user(), current_database(), 1", prepare=False).fetchall()
    with sql.cursor() as cur:
        cur.execute("SELECT md_user(), current_database(), %s", [1])
        extended = cur.fetchall()
    assert simple == extended == [("admin", "my_db", 1)]


def test_parameters_are_bound_as_literals_never_as_sql(sql: psycopg.Connection[tuple[object, ...]]) -> None:
    hostile = "x' OR '1'='1"
    assert sql.execute("SELECT %s::VARCHAR, %s, %s", [hostile, True, None]).fetchone() == (
        hostile,
        True,
        None,
    )
    rows = sql.execute(
        "SELECT name FROM MD_INFORMATION_SCHEMA.DATABASES WHERE name = %s", [hostile]
    ).fetchall()
    assert rows == []


def test_binary_results(sql: psycopg.Connection[tuple[object, ...]]) -> None:
    sql.execute("CREATE ROLE readers")
    with sql.cursor(binary=True) as cur:
        cur.execute("SHOW ALL ROLES")
        rows = {r[0]: r for r in cur.fetchall()}
    assert rows["admin"][1:3] == ("preset", ["builder"])
    assert rows["readers"][1:3] == ("custom", [])
    assert rows["readers"][3].tzinfo is not None


def test_prepared_statements_run_again(sql: psycopg.Connection[tuple[object, ...]]) -> None:
    for _ in range(3):
        assert sql.execute("SELECT md_user()", prepare=True).fetchone() == ("admin",)
    assert sql.execute("SELECT %s::VARCHAR", ["a"], prepare=True).fetchone() == ("a",)


def test_a_transaction_block_is_accepted(md: MotherDuckEmulator) -> None:
    with psycopg.connect(md.postgres_conninfo(), password=md.admin_token) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.commit()
        with pytest.raises(psycopg.errors.UndefinedObject):
            conn.execute("DROP ROLE nobody")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_errors_carry_a_sqlstate_and_the_session_goes_on(sql: psycopg.Connection[tuple[object, ...]]) -> None:
    with pytest.raises(psycopg.Error) as raised:
        sql.execute("VACUUM")
    assert raised.value.sqlstate == "0A000"
    assert "not supported" in str(raised.value)
    with pytest.raises(psycopg.errors.SyntaxError, match="syntax error at or near"):
        sql.execute("SELECT (", prepare=False)
    assert sql.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("password", ["", "mdt_unknown"], ids=["empty", "unknown"])
def test_an_unknown_token_cannot_open_a_session(md: MotherDuckEmulator, password: str) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"(Invalid MotherDuck token|no password)"):
        psycopg.connect(md.postgres_conninfo(), password=password or None)


def test_a_revoked_token_cannot_open_a_session(md: MotherDuckEmulator) -> None:
    issued = md.add_token("etl_bot", "short")
    with psycopg.connect(md.postgres_conninfo(), password=issued["token"]) as conn:
        conn.execute("SELECT 1")
    md._state.delete_token("etl_bot", issued["id"])
    with pytest.raises(psycopg.OperationalError, match="Invalid MotherDuck token") as raised:
        psycopg.connect(md.postgres_conninfo(), password=issued["token"])
    assert issued["token"] not in str(raised.value)


def test_the_user_must_be_postgres(md: MotherDuckEmulator) -> None:
    conninfo = md.postgres_conninfo().replace("user=postgres", "user=admin")
    with pytest.raises(psycopg.OperationalError, match='connect as user "postgres"'):
        psycopg.connect(conninfo, password=md.admin_token)


def test_the_database_must_exist(md: MotherDuckEmulator) -> None:
    with pytest.raises(psycopg.OperationalError, match="no database/share named 'nowhere'"):
        psycopg.connect(md.postgres_conninfo("nowhere"), password=md.admin_token)
    md.add_database("admin", "analytics")
    for database in ("analytics", "md:analytics"):
        with psycopg.connect(md.postgres_conninfo(database), password=md.admin_token) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("analytics",)


def test_tls_is_refused_and_required_tls_fails(md: MotherDuckEmulator) -> None:
    conninfo = md.postgres_conninfo().replace("sslmode=disable", "sslmode=require")
    with pytest.raises(psycopg.OperationalError, match=r"(?i)ssl"):
        psycopg.connect(conninfo, password=md.admin_token)
    prefer = md.postgres_conninfo().replace("sslmode=disable", "sslmode=prefer")
    with psycopg.connect(prefer, password=md.admin_token) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _raw(md: MotherDuckEmulator) -> socket.socket:
    return socket.create_connection((md.postgres_host, md.postgres_port), timeout=5)


def test_an_sslrequest_is_answered_n_and_a_bad_protocol_is_fatal(md: MotherDuckEmulator) -> None:
    with _raw(md) as sock:
        sock.sendall(struct.pack(">ii", 8, 80877103))
        assert sock.recv(1) == b"N"
        sock.sendall(struct.pack(">ii", 8, 2 << 16))
        reply = sock.recv(1000)
    assert reply[:1] == b"E"
    assert b"unsupported frontend protocol 2.0" in reply


def test_connections_are_bounded_and_idle_ones_closed(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start(pg_max_connections=1, pg_idle_timeout=0.3)
    with _raw(md) as idle:
        received = b""
        while chunk := idle.recv(1000):  # no startup message: closed after the idle timeout
            received += chunk
    assert b"57P05" in received
    assert b"idle-session timeout" in received
    with psycopg.connect(md.postgres_conninfo(), password=md.admin_token) as first:
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            psycopg.connect(md.postgres_conninfo(), password=md.admin_token)
        assert first.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.skipif(PSQL is None, reason="psql is not installed")
def test_psql_runs_statements(md: MotherDuckEmulator) -> None:
    assert PSQL is not None
    env = {**os.environ, "PGPASSWORD": md.admin_token}
    command = [PSQL, md.postgres_conninfo(), "-At", "-c", "SELECT md_user()", "-c", "SHOW ALL ROLES"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "admin"
    assert lines[1].startswith("admin|preset|{builder}|")
