"""issue_token and the delivery record: exactly once across lost answers, retries and upgrades."""

from __future__ import annotations

import json
import pickle
from typing import Any, cast

import pytest

from airflow_provider_motherduck._compat import Context, redact, should_hide_value_for_key
from airflow_provider_motherduck.exceptions import MotherDuckAPIError, TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators import (
    MotherDuckCreateTokenOperator,
    MotherDuckOnboardAccountOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows import delivery
from airflow_provider_motherduck.workflows.delivery import (
    DeliveryRecord,
    SecretDestination,
    default_record_key,
    fingerprint,
    task_identity,
)
from airflow_provider_motherduck.workflows.issuing import issue_token
from tests.operators.helpers import run, writes_seen
from tests.support import FakeVariables, delivered_id

USER = "etl_bot"
KEY = "motherduck_token_etl_bot"
RECORD = default_record_key(variable_key=KEY)


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    fake = FakeVariables()
    monkeypatch.setattr(delivery, "Variable", fake)
    return fake


@pytest.fixture
def bot(emulator: MotherDuckEmulator, motherduck_conn: str) -> str:
    emulator.add_user(USER)
    return USER


def live_ids(emulator: MotherDuckEmulator) -> list[str]:
    return [t["id"] for t in emulator.tokens(USER)]


def test_a_retry_after_a_lost_create_answer_leaves_one_live_token(
    emulator: MotherDuckEmulator, bot: str, variables: FakeVariables
) -> None:
    """The first try's token was created but its answer lost: nobody holds its secret, so the retry revokes it."""
    emulator.inject("POST", f"/v1/users/{USER}/tokens", status=500, after=True)
    create = MotherDuckCreateTokenOperator(
        task_id="t", username=USER, token_name="airflow", variable_key=KEY, hook_params={"retry_limit": 0}
    )
    with pytest.raises(MotherDuckAPIError):
        run(create)
    (lost,) = live_ids(emulator)  # MotherDuck made it; the task never saw it

    result = run(create)["token"]  # Airflow's task retry

    assert live_ids(emulator) == [result["id"]]
    assert writes_seen(emulator)[-1] == f"DELETE /v1/users/{USER}/tokens/{lost}"
    assert emulator.is_valid_token(variables.values[KEY])
    assert delivered_id(variables.values[RECORD]) == result["id"]


def test_tokens_of_that_name_made_by_others_are_never_revoked(
    emulator: MotherDuckEmulator, bot: str, variables: FakeVariables, hook: MotherDuckHook
) -> None:
    theirs = emulator.add_token(USER, "airflow")
    emulator.inject("POST", f"/v1/users/{USER}/tokens", drop=True, after=True)
    with pytest.raises(MotherDuckAPIError):
        issue_token(hook, USER, "airflow", destination=SecretDestination(KEY))
    issued = issue_token(hook, USER, "airflow", destination=SecretDestination(KEY))
    assert live_ids(emulator) == [theirs["id"], issued.token["id"]]
    assert len(issued.replaced) == 1
    assert issued.secret not in repr(issued)


def test_a_delivery_whose_record_failed_is_recognised_by_its_fingerprint(
    emulator: MotherDuckEmulator, bot: str, variables: FakeVariables, hook: MotherDuckHook
) -> None:
    variables.refuse_write(RECORD, 3)
    destination = SecretDestination(KEY)
    with pytest.raises(TokenIssueError) as info:
        issue_token(hook, USER, "airflow", destination=destination)
    err = info.value
    assert (err.delivered, err.revoked) == (True, False)
    assert destination.delivered(emulator.tokens(USER), USER, "airflow", "read_write") is not None
    back = pickle.loads(pickle.dumps(err))
    assert (back.token_id, back.delivered, str(back)) == (err.token_id, True, str(err))
    assert variables.values[KEY] not in str(err)


def test_the_record_is_readable_in_airflow_ui(
    emulator: MotherDuckEmulator, bot: str, variables: FakeVariables, hook: MotherDuckHook
) -> None:
    """Airflow masks Variables and JSON fields named like secrets: the record avoids those names."""
    issued = issue_token(hook, USER, "airflow", destination=SecretDestination(KEY))
    assert should_hide_value_for_key(KEY)  # the secret's own Variable is masked, as it should be
    assert not should_hide_value_for_key(RECORD)
    shown = redact(json.loads(variables.values[RECORD]))
    assert shown["delivered"]["id"] == issued.token["id"]
    assert shown["delivered"]["fingerprint"] == fingerprint(issued.secret)
    assert shown["user"] == USER


def test_a_record_of_the_old_layout_is_read_then_replaced(
    emulator: MotherDuckEmulator, bot: str, variables: FakeVariables
) -> None:
    """After an upgrade, onboarding still recognises the token an older version delivered."""
    old = emulator.add_token(USER, "airflow")
    variables.values[KEY] = old["token"]
    legacy = KEY + "__delivery"
    variables.values[legacy] = json.dumps(
        {
            "token_id": old["id"],
            "username": USER,
            "token_name": "airflow",
            "fingerprint": fingerprint(old["token"]),
        }
    )
    declared: dict[str, Any] = {"username": USER, "token_name": "airflow", "variable_key": KEY}
    emulator.clear_journal()

    result = run(MotherDuckOnboardAccountOperator(task_id="onboard", **declared))

    assert (result["token_created"], result["token"]["id"]) == (False, old["id"])
    assert writes_seen(emulator) == []

    variables.values[KEY] = "overwritten by hand"  # forces a new token: the new layout replaces the old
    run(MotherDuckOnboardAccountOperator(task_id="onboard", **declared))
    assert legacy not in variables.values
    assert DeliveryRecord.parse(variables.values[RECORD]) is not None


def test_a_sink_without_record_key_gets_one_per_task(variables: FakeVariables) -> None:
    class TI:
        dag_id, task_id, map_index = "rotate_dag", "rotate", 3

    task = task_identity(cast(Context, {"ti": TI()}))
    assert task == "rotate_dag.rotate[3]"
    destination = SecretDestination(secret_sink=print, task=task)
    assert destination.record == default_record_key(task=task)
    assert destination.record != default_record_key(task="rotate_dag.rotate[4]")
    with pytest.raises(ValueError, match="secret_sink needs record_key outside a task"):
        SecretDestination(secret_sink=print)
