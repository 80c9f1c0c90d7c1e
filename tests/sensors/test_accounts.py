"""MotherDuckActiveAccountsSensor against the emulator: the matching rules, the three modes, bad inputs."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from airflow_provider_motherduck._compat import (
    AirflowRescheduleException,
    AirflowSensorTimeout,
    Context,
    PokeReturnValue,
    TaskDeferred,
)
from airflow_provider_motherduck.exceptions import MotherDuckError
from airflow_provider_motherduck.sensors import MotherDuckActiveAccountsSensor
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsTrigger
from tests.support import ACTIVE_ACCOUNTS_PATH, after_polls, polls

PATH = ACTIVE_ACCOUNTS_PATH
RW_ACTIVE = {"id": "rw", "type": "read_write", "status": "active"}
RS_COOLDOWN = {"id": "rs.0", "type": "read_scaling", "status": "cooldown"}
RS_ACTIVE = {"id": "rs.0", "type": "read_scaling", "status": "active"}
RW_COOLDOWN = {"id": "rw", "type": "read_write", "status": "cooldown"}
_counter = iter(range(1_000_000))


def sensor(**kwargs: Any) -> MotherDuckActiveAccountsSensor:
    kwargs.setdefault("task_id", f"wait_{next(_counter)}")
    kwargs.setdefault("hook_params", {"retry_delay": 0.01})
    return MotherDuckActiveAccountsSensor(**kwargs)


def context(**values: Any) -> Context:
    return cast(Context, values)


@pytest.fixture
def seeded(emulator: MotherDuckEmulator, motherduck_conn: str) -> MotherDuckEmulator:
    """etl_bot: rw active + rs cooldown; bi_bot: rs active; cool_bot: rw cooldown; idle_bot: nothing."""
    for name in ("etl_bot", "bi_bot", "cool_bot", "idle_bot"):
        emulator.add_user(name)
    emulator.set_ducklings("etl_bot", [RW_ACTIVE, RS_COOLDOWN])
    emulator.set_ducklings("bi_bot", [RS_ACTIVE])
    emulator.set_ducklings("cool_bot", [RW_COOLDOWN])
    return emulator


# -- the matching rules, one real request each -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "done", "found"),
    [
        pytest.param({}, True, ["etl_bot", "bi_bot"], id="any-account"),
        pytest.param({"usernames": ["idle_bot"]}, False, [], id="idle-user"),
        pytest.param({"usernames": "idle_bot, etl_bot"}, True, ["etl_bot"], id="any-of-two"),
        pytest.param(
            {"usernames": ["idle_bot", "etl_bot"], "match": "all"}, False, ["etl_bot"], id="all-missing-one"
        ),
        pytest.param(
            {"usernames": ["etl_bot", "bi_bot"], "match": "all"}, True, ["etl_bot", "bi_bot"], id="all-met"
        ),
        pytest.param({"usernames": ["bi_bot"], "duckling_type": "read_write"}, False, [], id="wrong-type"),
        pytest.param(
            {"usernames": ["bi_bot"], "duckling_type": "read_scaling"}, True, ["bi_bot"], id="right-type"
        ),
        pytest.param({"usernames": ["cool_bot"]}, False, [], id="cooldown-not-counted"),
        pytest.param(
            {"usernames": ["cool_bot"], "statuses": "cooldown"}, True, ["cool_bot"], id="cooldown-counted"
        ),
        pytest.param(
            {"usernames": ["etl_bot", "cool_bot"], "match": "all", "statuses": ["active", "cooldown"]},
            True,
            ["etl_bot", "cool_bot"],
            id="all-with-cooldown",
        ),
        pytest.param(
            {"duckling_type": "read_scaling", "statuses": ["cooldown"]},
            True,
            ["etl_bot"],
            id="type-and-status",
        ),
        pytest.param({"usernames": ["idle_bot"], "expect_active": False}, True, [], id="idle-done"),
        pytest.param(
            {"usernames": ["cool_bot"], "expect_active": False}, True, [], id="idle-cooldown-ignored"
        ),
        pytest.param(
            {"usernames": ["cool_bot"], "expect_active": False, "statuses": ["active", "cooldown"]},
            False,
            ["cool_bot"],
            id="idle-cooldown-counted",
        ),
        pytest.param(
            {"usernames": ["idle_bot", "etl_bot"], "expect_active": False},
            False,
            ["etl_bot"],
            id="idle-one-busy",
        ),
        pytest.param({"expect_active": False}, False, ["etl_bot", "bi_bot"], id="idle-any-account-busy"),
        pytest.param(
            {"expect_active": False, "duckling_type": "read_write", "usernames": ["bi_bot"]},
            True,
            [],
            id="idle-other-type-ignored",
        ),
    ],
)
def test_poke(seeded: MotherDuckEmulator, kwargs: dict[str, Any], done: bool, found: list[str]) -> None:
    result = sensor(**kwargs).poke(context())
    assert isinstance(result, PokeReturnValue)
    assert result.is_done is done
    assert [a["username"] for a in result.xcom_value] == found
    assert polls(seeded) == [200]


def test_poke_returns_only_the_matching_ducklings(seeded: MotherDuckEmulator) -> None:
    result = sensor(usernames=["etl_bot"], statuses=["active", "cooldown"]).poke(context())
    assert result.xcom_value == [{"username": "etl_bot", "ducklings": [RW_ACTIVE, RS_COOLDOWN]}]
    result = sensor(usernames=["etl_bot"], duckling_type="read_scaling", statuses="cooldown").poke(context())
    assert result.xcom_value == [{"username": "etl_bot", "ducklings": [RS_COOLDOWN]}]


def test_wait_for_no_account_at_all(seeded: MotherDuckEmulator) -> None:
    for name in ("etl_bot", "bi_bot", "cool_bot"):
        seeded.set_ducklings(name, [])
    result = sensor(expect_active=False, statuses=["active", "cooldown"]).poke(context())
    assert (result.is_done, result.xcom_value) == (True, [])


# -- bad inputs: at construction, or after rendering before any request --------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"usernames": "etl_bot, " + "x" * 256}, "it has 256 characters"),
        ({"usernames": ["etl_bot", "etl_bot "]}, "usernames='etl_bot '"),
        ({"usernames": []}, "usernames=\\[\\]"),
        ({"usernames": 42}, "usernames=42"),
        ({"usernames": " , "}, "usernames="),
        ({"duckling_type": "jumbo"}, "duckling_type='jumbo'.*read_write or read_scaling"),
        ({"statuses": []}, "statuses=.*active, cooldown"),
        ({"statuses": ["active", "stopped"]}, "statuses=.*'stopped'"),
        ({"match": "most"}, "match='most'.*any or all"),
        ({"match": "all"}, "match='all'.*needs usernames"),
        ({"expect_active": "false"}, "expect_active='false'.*True or False"),
        ({"hook_params": {"sleep": 0}}, "hook_params=.*unknown keys"),
        ({"hook_params": {"timeout": -1}}, "hook_params.timeout=-1"),
        ({"motherduck_conn_id": ""}, "motherduck_conn_id=''"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field) as info:
        sensor(**kwargs)
    assert "Allowed" in str(info.value)
    assert re.match(r"MotherDuckActiveAccountsSensor 'wait_\d+': ", str(info.value))


def test_templates_wait_for_rendering(seeded: MotherDuckEmulator) -> None:
    sensor(usernames="{{ params.users }}")
    sensor(usernames=["{{ params.user }}", "etl_bot"], match="all")
    with pytest.raises(ValueError, match="usernames='bad name '"):
        sensor(usernames=["{{ params.user }}", "bad name "])

    task = sensor(usernames=["{{ params.user }}", "etl_bot"], match="all")
    task.render_template_fields(context(params={"user": "bi_bot"}))
    assert task.usernames == ["bi_bot", "etl_bot"]
    assert task.poke(context()).is_done is True

    task = sensor(usernames="{{ params.users }}")
    task.render_template_fields(context(params={"users": '["idle_bot", "bi_bot"]'}))
    assert [a["username"] for a in task.poke(context()).xcom_value] == ["bi_bot"]

    seeded.clear_journal()
    task = sensor(usernames=["{{ params.user }}"])
    task.render_template_fields(context(params={"user": "bad name "}))
    with pytest.raises(ValueError, match="usernames='bad name '"):
        task.execute(context())
    assert seeded.journal == []  # refused before any request


# -- poke and reschedule modes: Airflow's own sensor loop ---------------------------------------


def test_done_names_the_accounts_it_matched(
    seeded: MotherDuckEmulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    task = sensor(usernames=["etl_bot", "bi_bot", "idle_bot"])
    with caplog.at_level("INFO"):
        assert task.poke(context()).is_done
        task.execute_complete(context(), {"status": "success", "accounts": [{"username": "bi_bot"}]})
    logged = caplog.text + capsys.readouterr().out  # Airflow 2 logs through logging, 3 through structlog
    wait = "Done waiting for a Duckling active for one of etl_bot, bi_bot, idle_bot: "
    found = re.findall(re.escape(wait) + r"[\w, ]+?(?= \[|$)", logged, flags=re.MULTILINE)
    assert list(dict.fromkeys(found)) == [  # 2.11 prints it too
        wait + "etl_bot, bi_bot",
        wait + "bi_bot",
    ]


def test_poke_mode_waits_until_active(seeded: MotherDuckEmulator) -> None:
    flip = after_polls(seeded, 2, lambda: seeded.set_ducklings("idle_bot", [RW_ACTIVE]))
    task = sensor(usernames=["idle_bot"], mode="poke", poke_interval=0.05, timeout=10)
    assert task.execute(context()) == [{"username": "idle_bot", "ducklings": [RW_ACTIVE]}]
    flip.join()
    assert len(polls(seeded)) >= 3
    assert "hook" not in task.__dict__  # the HTTP session is closed after the run


def test_poke_mode_waits_until_idle(seeded: MotherDuckEmulator) -> None:
    flip = after_polls(seeded, 2, lambda: seeded.set_ducklings("etl_bot", []))
    task = sensor(usernames=["etl_bot"], expect_active=False, poke_interval=0.05, timeout=10)
    assert task.execute(context()) == []
    flip.join()
    assert len(polls(seeded)) >= 3


def test_poke_mode_times_out(seeded: MotherDuckEmulator) -> None:
    # How many pokes fit in the timeout depends on the machine; that the sensor polls again is
    # shown by the waiting tests above. Here: the timeout ends the wait, after at least one poke.
    task = sensor(usernames=["idle_bot"], poke_interval=0.05, timeout=0.2)
    with pytest.raises(AirflowSensorTimeout):
        task.execute(context())
    assert polls(seeded)
    assert set(polls(seeded)) == {200}


def test_poke_mode_survives_503s(seeded: MotherDuckEmulator) -> None:
    seeded.inject("GET", PATH, status=503, times=2)
    task = sensor(usernames=["bi_bot"], poke_interval=0.05, timeout=10)
    assert [a["username"] for a in task.execute(context())] == ["bi_bot"]
    assert polls(seeded) == [503, 503, 200]


def _reschedule_context() -> Context:
    ti = SimpleNamespace(
        get_first_reschedule_date=lambda _context: None,
        dag_id="d",
        task_id="t",
        run_id="r",
        map_index=-1,
        max_tries=0,
        try_number=1,
    )
    return context(ti=ti)


def test_reschedule_mode_frees_the_slot_until_done(seeded: MotherDuckEmulator, airflow_db: str) -> None:
    # airflow_db: on Airflow 2.11 the sensor loop reads the first reschedule date from the database.
    task = sensor(usernames=["idle_bot"], mode="reschedule", poke_interval=30, timeout=600)
    with pytest.raises(AirflowRescheduleException) as info:
        task.execute(_reschedule_context())
    assert info.value.reschedule_date is not None
    assert polls(seeded) == [200]  # one poke, no sleeping in the worker

    seeded.set_ducklings("idle_bot", [RW_ACTIVE])
    assert task.execute(_reschedule_context()) == [{"username": "idle_bot", "ducklings": [RW_ACTIVE]}]


# -- deferrable ---------------------------------------------------------------------------------


def test_deferrable_returns_at_once_when_done(seeded: MotherDuckEmulator) -> None:
    task = sensor(usernames=["bi_bot"], deferrable=True)
    assert [a["username"] for a in task.execute(context())] == ["bi_bot"]
    assert polls(seeded) == [200]


def test_deferrable_defers_to_a_round_tripping_trigger(seeded: MotherDuckEmulator) -> None:
    task = sensor(
        usernames=["idle_bot", "etl_bot"],
        match="all",
        duckling_type="read_write",
        statuses=["active", "cooldown"],
        deferrable=True,
        poke_interval=timedelta(seconds=20),
        timeout=timedelta(minutes=5),
        hook_params={"timeout": 5, "retry_limit": 4},
    )
    with pytest.raises(TaskDeferred) as info:
        task.execute(context())
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert timedelta(minutes=4) < deferred.timeout <= timedelta(minutes=5)
    trigger = deferred.trigger
    assert isinstance(trigger, MotherDuckActiveAccountsTrigger)
    classpath, kwargs = trigger.serialize()
    assert kwargs == {
        "motherduck_conn_id": "motherduck_default",
        "usernames": ["idle_bot", "etl_bot"],
        "duckling_type": "read_write",
        "statuses": ["active", "cooldown"],
        "match": "all",
        "expect_active": True,
        "poke_interval": 20.0,
        "hook_params": {"timeout": 5, "retry_limit": 4},
    }
    assert seeded.admin_token not in repr(kwargs)
    assert MotherDuckActiveAccountsTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert polls(seeded) == [200]  # poked once before deferring


def test_execute_complete(seeded: MotherDuckEmulator) -> None:
    task = sensor(usernames=["etl_bot"], deferrable=True)
    accounts = [{"username": "etl_bot", "ducklings": [RW_ACTIVE]}]
    assert task.execute_complete(context(), {"status": "success", "accounts": accounts}) == accounts
    with pytest.raises(MotherDuckError, match=r"HTTP 401.*token was rejected") as info:
        task.execute_complete(context(), {"status": "error", "message": "HTTP 401: the token was rejected"})
    assert re.match(
        r"MotherDuckActiveAccountsSensor 'wait_\d+': waiting for active accounts on connection "
        r"'motherduck_default' failed",
        str(info.value),
    )
    with pytest.raises(MotherDuckError, match="unexpected trigger event"):
        task.execute_complete(context(), None)
