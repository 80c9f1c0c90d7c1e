"""Create and delete users against the emulator: results, exists_ok/missing_ok, bad inputs, hook_params."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import (
    MotherDuckAPIError,
    MotherDuckConflictError,
    MotherDuckNotFoundError,
)
from airflow_provider_motherduck.operators import MotherDuckCreateUserOperator, MotherDuckDeleteUserOperator
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import requests_seen, run, writes_seen
from tests.support import connection_json


@pytest.mark.usefixtures("motherduck_conn")
def test_create_user_and_exists_ok_rerun(emulator: MotherDuckEmulator) -> None:
    assert run(MotherDuckCreateUserOperator(task_id="c", username="etl_bot")) == {
        "username": "etl_bot",
        "created": True,
    }
    assert emulator.users() == ["admin", "etl_bot"]

    again = MotherDuckCreateUserOperator(task_id="c", username="etl_bot", exists_ok=True)
    assert run(again) == {"username": "etl_bot", "created": False}

    with pytest.raises(MotherDuckConflictError, match="unique constraint"):
        run(MotherDuckCreateUserOperator(task_id="c", username="etl_bot"))
    assert emulator.users() == ["admin", "etl_bot"]
    assert requests_seen(emulator) == ["POST /v1/users"] * 3


def test_exists_ok_with_409_conflicts() -> None:
    """Some deployments answer a duplicate user with 409 instead of 400: exists_ok covers both."""
    with MotherDuckEmulator(duplicate_user_status=409) as emu, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MOTHERDUCK_DEFAULT", connection_json(emu.url, emu.admin_token))
        emu.add_user("etl_bot")
        op = MotherDuckCreateUserOperator(task_id="c", username="etl_bot", exists_ok=True)
        assert run(op) == {"username": "etl_bot", "created": False}


@pytest.mark.usefixtures("motherduck_conn")
def test_delete_user_and_missing_ok_rerun(emulator: MotherDuckEmulator) -> None:
    emulator.add_user("old_bot")
    emulator.add_token("old_bot", "airflow")
    assert run(MotherDuckDeleteUserOperator(task_id="d", username="old_bot")) == {
        "username": "old_bot",
        "deleted": True,
    }
    assert emulator.users() == ["admin"]

    again = MotherDuckDeleteUserOperator(task_id="d", username="old_bot", missing_ok=True)
    assert run(again) == {"username": "old_bot", "deleted": False}
    with pytest.raises(MotherDuckNotFoundError, match="old_bot"):
        run(MotherDuckDeleteUserOperator(task_id="d", username="old_bot"))
    assert requests_seen(emulator) == ["DELETE /v1/users/old_bot"] * 3


@pytest.mark.usefixtures("motherduck_conn")
def test_refusals_from_motherduck_are_not_swallowed(emulator: MotherDuckEmulator) -> None:
    """missing_ok covers a missing user only: deleting the Admin itself (403) still fails."""
    op = MotherDuckDeleteUserOperator(task_id="d", username="admin", missing_ok=True)
    with pytest.raises(MotherDuckAPIError, match="403"):
        run(op)
    assert "admin" in emulator.users()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"username": "1bot"}, "username='1bot'"),
        ({"username": "etl-bot"}, "username='etl-bot'"),
        ({"username": ""}, "username=''"),
        ({"username": "ok", "exists_ok": "yes"}, "exists_ok='yes'"),
        ({"username": "ok", "motherduck_conn_id": ""}, "motherduck_conn_id=''"),
        ({"username": "ok", "hook_params": {"timout": 5}}, "unknown keys ['timout']"),
        ({"username": "ok", "hook_params": {"retry_limit": -1}}, "hook_params.retry_limit=-1"),
    ],
)
def test_create_user_bad_literal_fails_at_parse_time(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match="MotherDuckCreateUserOperator 'c'") as info:
        MotherDuckCreateUserOperator(task_id="c", **kwargs)
    assert named in str(info.value)


def test_delete_user_bad_literal_fails_at_parse_time() -> None:
    with pytest.raises(ValueError, match=r"username='a b '.*Allowed"):
        MotherDuckDeleteUserOperator(task_id="d", username="a b ")
    with pytest.raises(ValueError, match="missing_ok=1"):
        MotherDuckDeleteUserOperator(task_id="d", username="ok", missing_ok=1)  # type: ignore[arg-type]


@pytest.mark.usefixtures("motherduck_conn")
def test_templated_username_is_checked_after_rendering(emulator: MotherDuckEmulator) -> None:
    create = MotherDuckCreateUserOperator(task_id="c", username="{{ params.name }}")  # no error at parse time
    with pytest.raises(ValueError, match="username='9lives'"):
        run(create, {"name": "9lives"})
    delete = MotherDuckDeleteUserOperator(task_id="d", username="{{ params.name }}")
    with pytest.raises(ValueError, match="username=' a'"):
        run(delete, {"name": " a"})
    assert emulator.journal == []  # refused before any request

    good = MotherDuckCreateUserOperator(task_id="c", username="{{ params.name }}_bot")
    assert run(good, {"name": "etl"}) == {"username": "etl_bot", "created": True}


def test_hook_params_and_conn_id_reach_the_hook(
    emulator: MotherDuckEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MD_OTHER", connection_json(emulator.url, emulator.admin_token))
    op = MotherDuckCreateUserOperator(
        task_id="c",
        username="etl_bot",
        motherduck_conn_id="md_other",
        hook_params={"timeout": 7, "retry_limit": 0, "retry_delay": 0.01},
    )
    assert op.hook.motherduck_conn_id == "md_other"
    assert (op.hook.settings.timeout, op.hook.settings.retry_limit) == (7.0, 0)

    # retry_limit=0: a throttled create is not retried, so the 429 surfaces at once.
    emulator.inject("POST", "/v1/users", status=429)
    with pytest.raises(MotherDuckAPIError, match="429"):
        run(op)
    emulator.inject("POST", "/v1/users", status=429)
    retrying = MotherDuckCreateUserOperator(
        task_id="c", username="etl_bot", motherduck_conn_id="md_other", hook_params={"retry_delay": 0.01}
    )
    assert run(retrying)["created"] is True
    assert writes_seen(emulator) == ["POST /v1/users"] * 3


def test_nothing_is_looked_up_at_parse_time(emulator: MotherDuckEmulator) -> None:
    """Building the operator reads no connection (DAG parsing stays cheap); running it does."""
    op = MotherDuckCreateUserOperator(task_id="c", username="etl_bot", motherduck_conn_id="md_nowhere")
    assert "hook" not in op.__dict__
    with pytest.raises(Exception, match="md_nowhere"):
        run(op)
    assert emulator.journal == []
