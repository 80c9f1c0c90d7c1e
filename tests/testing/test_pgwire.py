"""The emulator's Postgres endpoint over the real wire protocol: psycopg (simple and extended
query protocols, text and binary results) and psql when it is installed."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.testing.support import Clock, Sql

PSQL = shutil.which("psql")


@pytest.fixture
def sql(pg: Callable[..., Sql]) -> Sql:
    return pg()


def test_a_token_opens_a_session_as_its_user(md: MotherDuckEmulator) -> None:
    token = md.add_token("etl_bot", "sql")["token"]
    with psycopg.connect(md.postgres_conninfo(), password=token, autocommit=True) as conn:
        assert conn.execute("SELECT md_user()").fetchone() == ("etl_bot",)
        assert conn.info.parameter_status("client_encoding") == "UTF8"
        assert conn.info.parameter_status("integer_datetimes") == "on"
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
        assert conn.info.backend_pid > 0


def test_the_simple_and_the_extended_protocol_answer_alike(
    sql: Sql,
) -> None:
    simple = sql.execute("SELECT md_user(), current_database(), 1", prepare=False).fetchall()
    with sql.cursor() as cur:
        cur.execute("SELECT md_user(), current_database(), %s", [1])
        extended = cur.fetchall()
    assert simple == extended == [("admin", "my_db", 1)]


def test_parameters_are_bound_as_literals_never_as_sql(sql: Sql) -> None:
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


def test_binary_results(sql: Sql) -> None:
    sql.execute("CREATE ROLE readers")
    with sql.cursor(binary=True) as cur:
        cur.execute("SHOW ALL ROLES")
        rows = {r[0]: r for r in cur.fetchall()}
    assert rows["admin"][1:3] == ("preset", ["builder"])
    assert rows["readers"][1:3] == ("custom", [])
    assert rows["readers"][3].tzinfo is not None


def test_prepared_statements_run_again(sql: Sql) -> None:
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


def test_errors_carry_a_sqlstate_and_the_session_goes_on(sql: Sql) -> None:
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


def test_an_expired_token_cannot_open_a_session(md: MotherDuckEmulator, clock: Clock) -> None:
    issued = md.add_token("etl_bot", "short", ttl=300)
    with psycopg.connect(md.postgres_conninfo(), password=issued["token"]) as conn:
        clock.now += timedelta(seconds=301)
        assert conn.execute("SELECT md_user()").fetchone() == ("etl_bot",)  # checked when opening
    with pytest.raises(psycopg.OperationalError, match="Invalid MotherDuck token"):
        psycopg.connect(md.postgres_conninfo(), password=issued["token"])


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
        sock.sendall(struct.pack(">ii", 8, 80877104))  # GSSENCRequest
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


def test_a_pipeline_skips_to_sync_after_an_error(sql: Sql) -> None:
    cursors: list[psycopg.Cursor[tuple[Any, ...]]] = []

    def batch() -> None:
        with sql.pipeline():
            cursors.append(sql.execute("SELECT %s::VARCHAR", ["one"]))
            sql.execute('DROP ROLE "missing"')
            sql.execute('CREATE ROLE "never_made"')

    with pytest.raises(psycopg.errors.UndefinedObject):
        batch()
    assert cursors[0].fetchall() == [("one",)]
    assert "never_made" not in [r[0] for r in sql.execute("SHOW ALL ROLES").fetchall()]


def _startup(md: MotherDuckEmulator) -> socket.socket:
    """A raw session: startup and cleartext password, up to the first ReadyForQuery."""
    sock = _raw(md)
    body = struct.pack(">i", 196608) + b"user\0postgres\0database\0md:\0\0"
    sock.sendall(struct.pack(">i", len(body) + 4) + body)
    assert _read(sock)[0] == b"R"
    password = md.admin_token.encode() + b"\0"
    sock.sendall(b"p" + struct.pack(">i", len(password) + 4) + password)
    while _read(sock)[0] != b"Z":
        pass
    return sock


def _read(sock: socket.socket) -> tuple[bytes, bytes]:
    head = b""
    while len(head) < 5:
        head += sock.recv(5 - len(head))
    (length,) = struct.unpack(">i", head[1:])
    body = b""
    while len(body) < length - 4:
        body += sock.recv(length - 4 - len(body))
    return head[:1], body


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">i", len(body) + 4) + body


def test_execute_with_a_row_limit_suspends_the_portal_and_binary_parameters(md: MotherDuckEmulator) -> None:
    md.add_database("admin", "analytics")
    with _startup(md) as sock:
        query = b"SELECT name FROM MD_INFORMATION_SCHEMA.DATABASES ORDER BY name LIMIT $1\0"
        parse = _message(b"P", b"\0" + query + struct.pack(">hi", 1, 20))
        bind = _message(b"B", b"\0\0" + struct.pack(">hhhi", 1, 1, 1, 8) + struct.pack(">q", 5) + b"\0\0")
        execute = _message(b"E", b"\0" + struct.pack(">i", 1))
        sock.sendall(parse + bind + execute + execute + _message(b"S", b""))
        kinds = []
        while (reply := _read(sock))[0] != b"Z":
            kinds.append((reply[0], reply[1] if reply[0] == b"D" else b""))
        sock.sendall(_message(b"X", b""))
    assert kinds == [
        (b"1", b""),
        (b"2", b""),
        (b"D", struct.pack(">hi", 1, 9) + b"analytics"),
        (b"s", b""),
        (b"D", struct.pack(">hi", 1, 5) + b"my_db"),
        (b"C", b""),
    ]


def test_describing_a_prepared_statement_runs_only_reads(md: MotherDuckEmulator) -> None:
    read = b"SELECT name, transient FROM MD_INFORMATION_SCHEMA.DATABASES WHERE name = $1\0"
    write = b'CREATE ROLE "described"\0'
    with _startup(md) as sock:
        for name, query in ((b"read\0", read), (b"write\0", write)):
            sock.sendall(_message(b"P", name + query + struct.pack(">h", 0)) + _message(b"D", b"S" + name))
        sock.sendall(_message(b"C", b"Sread\0") + _message(b"H", b""))
        sock.sendall(_message(b"B", b"\0read\0" + struct.pack(">hhh", 0, 0, 0)) + _message(b"S", b""))
        replies = []
        while (reply := _read(sock))[0] != b"Z":
            replies.append(reply)
        sock.sendall(_message(b"X", b""))
    assert [kind for kind, _ in replies] == [b"1", b"t", b"T", b"1", b"t", b"n", b"3", b"E"]
    assert b'prepared statement "read" does not exist' in replies[-1][1]
    assert replies[1][1] == struct.pack(">hi", 1, 25)  # one parameter, sent as text
    fields = replies[2][1]
    assert fields.startswith(struct.pack(">h", 2) + b"name\0")
    assert b"transient\0" in fields
    assert replies[4][1] == struct.pack(">h", 0)
    assert "described" not in [row["role_name"] for row in _roles(md)]


def _roles(md: MotherDuckEmulator) -> list[dict[str, object]]:
    with (
        psycopg.connect(md.postgres_conninfo(), password=md.admin_token) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        return cur.execute("SHOW ALL ROLES").fetchall()


def test_a_malformed_message_ends_the_session_with_a_protocol_violation(md: MotherDuckEmulator) -> None:
    with _startup(md) as sock:
        sock.sendall(_message(b"B", b"no terminator"))
        kind, body = _read(sock)
        assert sock.recv(10) == b""
    assert kind == b"E"
    assert b"08P01" in body
