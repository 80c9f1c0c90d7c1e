"""Read and change Duckling configs against the emulator: merging, replace, idempotency, bad inputs."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError, MotherDuckNotFoundError
from airflow_provider_motherduck.operators import (
    MotherDuckGetDucklingConfigOperator,
    MotherDuckSetDucklingConfigOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import requests_seen, run, writes_seen
from tests.support import connection_json

NEW_USER = {
    "read_write": {"instance_size": "standard", "cooldown_seconds": 60},
    "read_scaling": {"instance_size": "standard", "flock_size": 4, "cooldown_seconds": 60},
}

pytestmark = pytest.mark.usefixtures("motherduck_conn")


@pytest.fixture
def bot(emulator: MotherDuckEmulator) -> str:
    emulator.add_user("etl_bot")
    return "etl_bot"


def test_get_config(emulator: MotherDuckEmulator, bot: str) -> None:
    assert run(MotherDuckGetDucklingConfigOperator(task_id="g", username=bot)) == NEW_USER
    with pytest.raises(MotherDuckNotFoundError):
        run(MotherDuckGetDucklingConfigOperator(task_id="g", username="nobody"))


def test_partial_update_merges_and_a_rerun_writes_nothing(emulator: MotherDuckEmulator, bot: str) -> None:
    op = MotherDuckSetDucklingConfigOperator(task_id="s", username=bot, read_scaling={"flock_size": 8})
    expected = {**NEW_USER, "read_scaling": {**NEW_USER["read_scaling"], "flock_size": 8}}
    assert run(op) == expected
    assert emulator.duckling_config(bot) == expected
    assert emulator.journal[-1].body == {"config": expected}

    emulator.clear_journal()
    again = MotherDuckSetDucklingConfigOperator(task_id="s", username=bot, read_scaling={"flock_size": 8})
    assert run(again) == expected
    assert requests_seen(emulator) == [f"GET /v1/users/{bot}/instances"]  # idempotent: no PUT


def test_new_size_drops_the_old_cooldown(emulator: MotherDuckEmulator, bot: str) -> None:
    op = MotherDuckSetDucklingConfigOperator(
        task_id="s",
        username=bot,
        read_write={"instance_size": "pulse"},
        read_scaling={"instance_size": "mega"},
    )
    result = run(op)
    assert result["read_write"] == {"instance_size": "pulse"}
    assert result["read_scaling"] == {"instance_size": "mega", "flock_size": 4, "cooldown_seconds": 300}
    assert emulator.duckling_config(bot) == result


def test_replace_writes_the_whole_config(emulator: MotherDuckEmulator, bot: str) -> None:
    config = {
        "read_write": {"instance_size": "giga", "cooldown_seconds": 900},
        "read_scaling": {"instance_size": "jumbo", "flock_size": 16},
    }
    op = MotherDuckSetDucklingConfigOperator(task_id="s", username=bot, replace=True, **config)
    result = run(op)
    assert requests_seen(emulator) == [f"PUT /v1/users/{bot}/instances"]  # no read first
    assert emulator.journal[0].body == {"config": config}
    assert result == emulator.duckling_config(bot)
    assert result["read_scaling"] == {"instance_size": "jumbo", "flock_size": 16, "cooldown_seconds": 60}


def test_plan_limits_from_motherduck_surface() -> None:
    with MotherDuckEmulator(max_flock_size=8) as emu, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MOTHERDUCK_DEFAULT", connection_json(emu.url, emu.admin_token))
        emu.add_user("etl_bot")
        op = MotherDuckSetDucklingConfigOperator(
            task_id="s", username="etl_bot", read_scaling={"flock_size": 16}
        )
        with pytest.raises(MotherDuckAPIError, match="Invalid config for tier"):
            run(op)
        assert emu.duckling_config("etl_bot") == NEW_USER


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "give read_write and/or read_scaling"),
        ({"read_write": {"instance_size": "huge"}}, "read_write.instance_size='huge'"),
        ({"read_scaling": {"flock_size": 65}}, "read_scaling.flock_size=65"),
        ({"read_scaling": {"flock_size": "8"}}, "expected an integer"),
        ({"read_write": {"flock_size": 2}}, "unknown keys ['flock_size']"),
        (
            {"read_write": {"instance_size": "pulse", "cooldown_seconds": 60}},
            "pulse Ducklings take no cooldown",
        ),
        ({"read_write": ["jumbo"]}, "expected a mapping"),
        (
            {"read_write": {"instance_size": "jumbo"}, "replace": True},
            "needs both read_write and read_scaling",
        ),
        (
            {
                "read_write": {"instance_size": "jumbo"},
                "read_scaling": {"instance_size": "jumbo"},
                "replace": True,
            },
            "missing flock_size",
        ),
        ({"read_write": {"instance_size": "jumbo"}, "replace": "yes"}, "replace='yes'"),
        ({"read_write": {"instance_size": "jumbo"}, "username": " etl_bot"}, "username=' etl_bot'"),
    ],
)
def test_bad_literal_config_fails_at_parse_time(kwargs: dict[str, Any], problem: str) -> None:
    args = {"username": "etl_bot", **kwargs}
    with pytest.raises(ValueError, match="MotherDuckSetDucklingConfigOperator 's'") as info:
        MotherDuckSetDucklingConfigOperator(task_id="s", **args)
    assert problem in str(info.value)


def test_templated_config_is_rendered_then_checked(emulator: MotherDuckEmulator, bot: str) -> None:
    op = MotherDuckSetDucklingConfigOperator(
        task_id="s", username="{{ params.user }}", read_write={"instance_size": "{{ params.size }}"}
    )
    assert op.template_fields_renderers == {"read_write": "json", "read_scaling": "json"}
    with pytest.raises(ValueError, match=r"read_write\.instance_size='tiny'"):
        run(op, {"user": bot, "size": "tiny"})
    assert emulator.journal == []

    op = MotherDuckSetDucklingConfigOperator(
        task_id="s", username="{{ params.user }}", read_write={"instance_size": "{{ params.size }}"}
    )
    assert run(op, {"user": bot, "size": "jumbo"})["read_write"] == {
        "instance_size": "jumbo",
        "cooldown_seconds": 60,
    }
    assert writes_seen(emulator) == [f"PUT /v1/users/{bot}/instances"]
