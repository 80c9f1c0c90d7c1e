"""Acting as a service account: a short-lived token minted over REST, used, and revoked however the block ends.

The REST side is the emulator; the SQL side is the DuckDB stand-in (the Postgres side, where a
revoked token can no longer open a session, is in test_admin.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAuthError, MotherDuckSQLError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql import (
    SESSION_TOKEN_PREFIX,
    SESSION_TOKEN_TTL,
    is_session_token,
    session_token_name,
)
from airflow_provider_motherduck.hooks.sql.statements import show_all_roles
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.sql_standin import StandIn
from tests.support import connection_json

BOT = "etl_bot"


@pytest.fixture
def bot(emulator: MotherDuckEmulator) -> str:
    emulator.add_user(BOT)
    return BOT


def _session_tokens(emulator: MotherDuckEmulator, username: str) -> list[dict[str, str]]:
    return [t for t in emulator.tokens(username) if is_session_token(t["name"])]


def _set_tokens(standin: StandIn) -> list[str]:
    return [sql for sql in standin.sent if sql.startswith("SET motherduck_token")]


def test_a_session_token_is_minted_used_and_revoked(
    hook: MotherDuckHook,
    emulator: MotherDuckEmulator,
    duckdb_standin: StandIn,
    bot: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    duckdb_standin.answer("SHOW ALL ROLES", ("role_name", "role_type"), [("admin", "preset")])
    with caplog.at_level(logging.DEBUG), hook.sql_session(as_user=bot) as session:
        [token] = _session_tokens(emulator, bot)
        created = datetime.fromisoformat(token["created_ts"].replace("Z", "+00:00"))
        expires = datetime.fromisoformat(token["expire_at"].replace("Z", "+00:00"))
        assert expires - created == timedelta(seconds=300)
        assert token["token_type"] == "read_write"
        session.run(show_all_roles())
        session.run(show_all_roles())
    assert _session_tokens(emulator, bot) == []
    [secret] = [i["secret"] for i in emulator.issued_secrets() if i["name"] == token["name"]]
    assert _set_tokens(duckdb_standin) == [f"SET motherduck_token = '{secret}'"]
    assert len(duckdb_standin.connections) == 1
    assert duckdb_standin.connections[0].closed
    assert secret not in caplog.text
    assert f"Acting as {bot} through the session token {token['id']}" in caplog.text


def test_revoked_after_a_failure_too(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, duckdb_standin: StandIn, bot: str
) -> None:
    with pytest.raises(MotherDuckSQLError), hook.sql_session(as_user=bot) as session:
        session.run(show_all_roles())  # the plain DuckDB behind the stand-in has no SHOW ALL ROLES
    assert _session_tokens(emulator, bot) == []
    assert duckdb_standin.connections[0].closed


def test_a_hook_method_as_user_leaves_no_token(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, duckdb_standin: StandIn, bot: str
) -> None:
    duckdb_standin.answer(
        "SELECT * FROM MD_INFORMATION_SCHEMA.DATABASES ORDER BY name",
        ("name", "type", "transient"),
        [("my_db", "motherduck", False)],
    )
    assert [d.name for d in hook.list_databases(as_user=bot)] == ["my_db"]
    assert [d.name for d in hook.list_databases(as_user=bot)] == ["my_db"]
    assert _session_tokens(emulator, bot) == []
    assert len(_set_tokens(duckdb_standin)) == 2  # one token, one DuckDB per block
    assert len(set(_set_tokens(duckdb_standin))) == 2


def test_a_human_cannot_be_acted_as(
    hook: MotherDuckHook, emulator: MotherDuckEmulator, duckdb_standin: StandIn
) -> None:
    emulator.add_user("jane", human=True)
    with pytest.raises(MotherDuckAuthError, match="a human user cannot be acted as") as info:
        hook.list_shares(as_user="jane")
    assert "motherduck_conn_id" in str(info.value)
    assert emulator.tokens("jane") == []
    assert duckdb_standin.connections == []


def test_the_name_rule() -> None:
    name = session_token_name(datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc))
    assert name.startswith(f"{SESSION_TOKEN_PREFIX}20261207T050000Z-")
    assert is_session_token(name)
    assert not is_session_token("etl_bot-2026-12-07")
    assert session_token_name() != session_token_name()


def test_a_killed_worker_leaves_a_token_that_expires_within_five_minutes() -> None:
    """The worker dies inside the block (no ``finally`` runs): the token outlives it by at most its TTL."""
    now = [datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc)]
    with MotherDuckEmulator(clock=lambda: now[0]) as md:
        md.add_user(BOT)
        code = (
            "import os\n"
            "from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook\n"
            f"with MotherDuckHook().sql_session(as_user={BOT!r}):\n"
            "    os._exit(9)\n"
        )
        env = {**os.environ, "AIRFLOW_CONN_MOTHERDUCK_DEFAULT": connection_json(md.url, md.admin_token)}
        died = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=120, check=False
        )
        assert died.returncode == 9, died.stderr[-2000:]
        [left] = [i for i in md.issued_secrets() if is_session_token(i["name"])]
        assert md.is_valid_token(left["secret"])
        now[0] += timedelta(seconds=SESSION_TOKEN_TTL)
        assert not md.is_valid_token(left["secret"])
