"""Create, delete and list tokens against the emulator: XCom shape, secrecy, TTLs, by-name deletes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum
import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3, redact
from airflow_provider_motherduck.exceptions import MotherDuckError, MotherDuckNotFoundError
from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckListTokensOperator,
    MotherDuckRevokeTokenOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import SECRET_RE, requests_seen, run, writes_seen

METADATA_KEYS = {"id", "name", "token_type", "expire_at", "created_ts", "read_only", "username"}

pytestmark = pytest.mark.usefixtures("motherduck_conn")


@pytest.fixture
def bot(emulator: MotherDuckEmulator) -> str:
    emulator.add_user("etl_bot")
    return "etl_bot"


#: A well-formed token id that no token has.
SOME_ID = "123e4567-e89b-12d3-a456-426614174000"


def _lifetime(token: dict[str, Any]) -> float:
    created = datetime.fromisoformat(token["created_ts"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(token["expire_at"].replace("Z", "+00:00"))
    return (expires - created).total_seconds()


def test_create_token_returns_metadata_only(emulator: MotherDuckEmulator, bot: str) -> None:
    returned = run(MotherDuckCreateTokenOperator(task_id="t", username=bot, token_name="airflow"))

    assert set(returned) == {"username", "token"}  # no "secret"
    assert not SECRET_RE.search(repr(returned))
    result = returned["token"]
    assert set(result) == METADATA_KEYS
    assert result["username"] == bot
    assert result["name"] == "airflow"
    assert (result["token_type"], result["read_only"], result["expire_at"]) == ("read_write", False, None)
    assert emulator.tokens(bot) == [{k: v for k, v in result.items() if k not in ("username", "expire_at")}]
    assert emulator.journal[0].body == {
        "name": "airflow",
        "token_type": "read_write",
    }  # no ttl: never expires


@pytest.mark.parametrize(
    "ttl", [7200, 7200.0, "7200", timedelta(hours=2), pendulum.duration(hours=2), "PT2H", "2 hours", "2 hour"]
)
def test_create_token_ttl_forms(emulator: MotherDuckEmulator, bot: str, ttl: Any) -> None:
    result = run(MotherDuckCreateTokenOperator(task_id="t", username=bot, token_name="n", ttl=ttl))["token"]
    assert emulator.journal[0].body["ttl"] == 7200
    assert _lifetime(result) == pytest.approx(7200, abs=1)


def test_create_read_scaling_token_with_never(emulator: MotherDuckEmulator, bot: str) -> None:
    op = MotherDuckCreateTokenOperator(
        task_id="t", username=bot, token_name="bi", token_type="read_scaling", ttl="never"
    )
    result = run(op)["token"]
    assert (result["token_type"], result["read_only"], result["expire_at"]) == ("read_scaling", True, None)
    assert "ttl" not in emulator.journal[0].body


def test_return_secret_puts_a_working_masked_secret_in_xcom(emulator: MotherDuckEmulator, bot: str) -> None:
    result = run(MotherDuckCreateTokenOperator(task_id="t", username=bot, token_name="n", return_secret=True))
    secret = result["secret"]
    assert set(result) == {"username", "token", "secret"}
    assert emulator.is_valid_token(secret)
    assert redact(f"secret={secret}") == "secret=***"  # registered with Airflow's masker at once


@pytest.mark.skipif(not AIRFLOW_V_3, reason="outside a task, Variable.set works on 2.11")
def test_no_token_is_created_where_no_secret_can_be_stored(emulator: MotherDuckEmulator, bot: str) -> None:
    """Variables need the task runner on Airflow 3: outside it, the record is read before any create."""
    op = MotherDuckCreateTokenOperator(task_id="t", username=bot, token_name="n", variable_key="md_secret")
    with pytest.raises(ImportError, match="SUPERVISOR_COMMS"):
        run(op)
    assert emulator.tokens(bot) == []  # no orphan token whose secret nobody knows
    assert writes_seen(emulator) == []


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"username": " x"}, "username=' x'"),
        ({"token_name": ""}, "token_name=''"),
        ({"token_name": "n" * 256}, "token_name="),
        ({"token_type": "admin"}, "token_type='admin'"),
        ({"ttl": "10 seconds"}, "ttl='10 seconds'"),
        ({"ttl": 400 * 86400}, "ttl=34560000"),
        ({"ttl": "soon"}, "ttl='soon'"),
        ({"ttl": True}, "ttl=True"),
        ({"variable_key": ""}, "variable_key=''"),
        ({"variable_key": " padded"}, "variable_key=' padded'"),
        ({"return_secret": "no"}, "return_secret='no'"),
    ],
)
def test_create_token_bad_literal_fails_at_parse_time(kwargs: dict[str, Any], named: str) -> None:
    args = {"username": "etl_bot", "token_name": "n", **kwargs}
    with pytest.raises(ValueError, match="MotherDuckCreateTokenOperator 't'") as info:
        MotherDuckCreateTokenOperator(task_id="t", **args)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("username", "etl_bot\n"), ("token_name", " "), ("token_type", "root"), ("ttl", "1 minute")],
)
def test_create_token_templated_values_are_checked_after_rendering(
    emulator: MotherDuckEmulator, bot: str, field: str, bad: str
) -> None:
    args: dict[str, Any] = {"username": bot, "token_name": "n", field: "{{ params.value }}"}
    op = MotherDuckCreateTokenOperator(task_id="t", **args)  # templated: accepted at parse time
    with pytest.raises(ValueError, match=f"{field}="):
        run(op, {"value": bad})
    assert emulator.journal == []


def test_templated_token_fields_render(emulator: MotherDuckEmulator, bot: str) -> None:
    op = MotherDuckCreateTokenOperator(
        task_id="t",
        username="{{ params.user }}",
        token_name="airflow-{{ params.env }}",
        token_type="{{ params.kind }}",
        ttl="{{ params.days }} days",
    )
    result = run(op, {"user": bot, "env": "prod", "kind": "read_scaling", "days": 30})["token"]
    assert (result["name"], result["token_type"]) == ("airflow-prod", "read_scaling")
    assert emulator.journal[0].body["ttl"] == 30 * 86400


def test_revoke_token_by_id_and_missing_ok(emulator: MotherDuckEmulator, bot: str) -> None:
    keep = emulator.add_token(bot, "keep")
    gone = emulator.add_token(bot, "gone")
    op = MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_id=gone["id"])
    assert run(op) == {"username": bot, "revoked_ids": [gone["id"]]}
    assert not emulator.is_valid_token(gone["token"])
    assert emulator.is_valid_token(keep["token"])

    again = MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_id=gone["id"], missing_ok=True)
    assert run(again) == {"username": bot, "revoked_ids": []}
    with pytest.raises(MotherDuckNotFoundError):
        run(MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_id=gone["id"]))
    gone_user = MotherDuckRevokeTokenOperator(
        task_id="d", username="nobody", token_id=SOME_ID, missing_ok=True
    )
    assert run(gone_user) == {"username": "nobody", "revoked_ids": []}


def test_revoke_token_by_name(emulator: MotherDuckEmulator, bot: str) -> None:
    target = emulator.add_token(bot, "airflow")
    other = emulator.add_token(bot, "dbt")
    op = MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_name="airflow")
    assert run(op) == {"username": bot, "revoked_ids": [target["id"]]}
    assert [t["id"] for t in emulator.tokens(bot)] == [other["id"]]
    assert requests_seen(emulator) == [
        f"GET /v1/users/{bot}/tokens",
        f"DELETE /v1/users/{bot}/tokens/{target['id']}",
    ]


def test_revoke_token_by_name_with_several_matches(emulator: MotherDuckEmulator, bot: str) -> None:
    first = emulator.add_token(bot, "airflow")
    second = emulator.add_token(bot, "airflow")
    other = emulator.add_token(bot, "dbt")

    op = MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_name="airflow")
    with pytest.raises(MotherDuckError, match="2 tokens named 'airflow'") as info:
        run(op)
    assert first["id"] in str(info.value)
    assert second["id"] in str(info.value)
    assert "all_matching=True" in str(info.value)
    assert writes_seen(emulator) == []  # nothing deleted

    every = MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_name="airflow", all_matching=True)
    assert run(every) == {"username": bot, "revoked_ids": [first["id"], second["id"]]}
    assert [t["id"] for t in emulator.tokens(bot)] == [other["id"]]


def test_revoke_token_by_name_without_match(emulator: MotherDuckEmulator, bot: str) -> None:
    with pytest.raises(MotherDuckError, match="no token named 'airflow'"):
        run(MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_name="airflow"))
    op = MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_name="airflow", missing_ok=True)
    assert run(op) == {"username": bot, "revoked_ids": []}
    with pytest.raises(MotherDuckNotFoundError):
        run(MotherDuckRevokeTokenOperator(task_id="d", username="nobody", token_name="airflow"))
    gone_user = MotherDuckRevokeTokenOperator(
        task_id="d", username="nobody", token_name="airflow", missing_ok=True
    )
    assert run(gone_user) == {"username": "nobody", "revoked_ids": []}
    assert writes_seen(emulator) == []


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "exactly one of token_id and token_name"),
        ({"token_id": SOME_ID, "token_name": "b"}, "exactly one of token_id and token_name"),
        ({"token_id": ""}, "token_id (a str of 0 characters, not shown"),
        ({"token_id": "mdt_secret_by_mistake"}, "is not a UUID"),
        ({"token_name": ""}, "token_name=''"),
        ({"token_id": SOME_ID, "missing_ok": "true"}, "missing_ok='true'"),
        ({"token_name": "a", "all_matching": None}, "all_matching=None"),
        ({"token_id": SOME_ID, "username": "x\ty"}, "username='x\\ty'"),
    ],
)
def test_revoke_token_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], problem: str) -> None:
    args = {"username": "etl_bot", **kwargs}
    with pytest.raises(ValueError, match="MotherDuckRevokeTokenOperator 'd'") as info:
        MotherDuckRevokeTokenOperator(task_id="d", **args)
    assert problem in str(info.value)


def test_revoke_token_templated_name_checked_after_rendering(emulator: MotherDuckEmulator, bot: str) -> None:
    emulator.add_token(bot, "airflow")
    op = MotherDuckRevokeTokenOperator(task_id="d", username=bot, token_name="{{ params.name }}")
    with pytest.raises(ValueError, match="token_name=''"):
        run(op, {"name": ""})
    assert emulator.journal == []


def test_list_tokens(emulator: MotherDuckEmulator, bot: str) -> None:
    forever = emulator.add_token(bot, "forever")
    short = emulator.add_token(bot, "short", ttl=600, token_type="read_scaling")
    result = run(MotherDuckListTokensOperator(task_id="l", username=bot))

    assert [t["id"] for t in result] == [forever["id"], short["id"]]
    assert all(set(t) == METADATA_KEYS and t["username"] == bot for t in result)
    assert result[0]["expire_at"] is None
    assert result[1]["expire_at"] == short["expire_at"]
    assert result[1]["read_only"] is True
    assert not SECRET_RE.search(repr(result))
    assert run(MotherDuckListTokensOperator(task_id="l", username="admin"))[0]["name"] == "emulator-admin"
    with pytest.raises(ValueError, match="username='no way '"):
        MotherDuckListTokensOperator(task_id="l", username="no way ")
