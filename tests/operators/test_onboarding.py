"""Onboarding and offboarding against the emulator: declared state, idempotence, faults mid-way, secrecy.

Airflow Variables are replaced by an in-memory store here (on Airflow 3 they need a task runner);
the real Variable path runs in tests/example_dags/test_example_bulk_onboarding.py.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any, cast

import pytest

from airflow_provider_motherduck._compat import DAG, Context
from airflow_provider_motherduck.exceptions import MotherDuckAPIError, MotherDuckError, TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators import (
    MotherDuckBulkOnboardOperator,
    MotherDuckCreateTokenOperator,
    MotherDuckOffboardAccountOperator,
    MotherDuckOnboardAccountOperator,
    offboard_account_group,
)
from airflow_provider_motherduck.operators.rotation import MotherDuckRotateTokenOperator
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import (
    Delivered,
    InMemoryVariableStore,
    default_record_key,
    fingerprint,
)
from airflow_provider_motherduck.workflows.onboarding import check_account, onboard_accounts
from tests.operators.helpers import SECRET_RE, requests_seen, run, writes_seen
from tests.support import (
    CONN_ENV,
    ROLES,
    SHARES,
    connection_json,
    count_as,
    delivered,
    delivered_id,
    session_tokens,
    sql_writes,
)

pytestmark = pytest.mark.usefixtures("motherduck_conn")

NO_RETRY = {"retry_limit": 0}
USER = "etl_loader"
KEY = "motherduck_token_etl_loader"
RECORD = default_record_key(variable_key=KEY)
DECLARED: dict[str, Any] = {
    "username": USER,
    "token_name": "airflow",
    "variable_key": KEY,
    "read_write": {"instance_size": "jumbo"},
    "read_scaling": {"flock_size": 2},
    "ttl": "90 days",
}


def onboard(**overrides: Any) -> MotherDuckOnboardAccountOperator:
    return MotherDuckOnboardAccountOperator(
        task_id="onboard", hook_params=NO_RETRY, **{**DECLARED, **overrides}
    )


def test_reaches_the_declared_state(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    result = run(onboard())

    assert emulator.users() == ["admin", USER]
    assert emulator.duckling_config(USER) == {
        "read_write": {"instance_size": "jumbo", "cooldown_seconds": 60},
        "read_scaling": {"instance_size": "standard", "flock_size": 2, "cooldown_seconds": 60},
    }
    (token,) = emulator.tokens(USER)
    secret = motherduck_variables[KEY]
    assert emulator.is_valid_token(secret)
    assert delivered(motherduck_variables[RECORD]) == Delivered(token["id"], "airflow", fingerprint(secret))
    assert result["created"] is True
    assert result["token_created"] is True
    assert result["token"]["id"] == token["id"]
    assert result["duckling_config"] == emulator.duckling_config(USER)
    assert result["other_token_ids"] == []
    assert secret not in json.dumps(result)
    assert writes_seen(emulator) == [
        "POST /v1/users",
        f"PUT /v1/users/{USER}/instances",
        f"POST /v1/users/{USER}/tokens",
    ]
    assert emulator.journal[-2].body == {"name": "airflow", "token_type": "read_write", "ttl": 90 * 86400}


def test_rerun_with_the_same_declaration_only_reads(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    first = run(onboard())
    emulator.clear_journal()
    motherduck_variables.writes.clear()

    again = run(onboard())

    assert requests_seen(emulator) == [f"GET /v1/users/{USER}/tokens", f"GET /v1/users/{USER}/instances"]
    assert motherduck_variables.writes == []
    assert again["token"] == first["token"]
    assert (again["created"], again["token_created"]) == (False, False)


def test_existing_account_is_brought_into_line(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    emulator.add_user(USER)
    emulator.set_duckling_config(
        USER,
        {
            "read_write": {"instance_size": "jumbo"},
            "read_scaling": {"instance_size": "standard", "flock_size": 2},
        },
    )
    other = emulator.add_token(USER, "airflow")  # same name, but its secret was never delivered here

    result = run(onboard())

    assert writes_seen(emulator) == [f"POST /v1/users/{USER}/tokens"]  # config already as declared
    assert result["created"] is False
    assert result["other_token_ids"] == [other["id"]]
    assert emulator.is_valid_token(other["token"])  # reported, not revoked


@pytest.mark.parametrize(
    "loss", ["variable overwritten", "variable deleted", "token revoked", "record garbled"]
)
def test_a_lost_delivery_is_redone(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore, hook: MotherDuckHook, loss: str
) -> None:
    first = run(onboard())
    if loss == "variable overwritten":
        motherduck_variables[KEY] = "mdt_0123456789abcdef0123"
    elif loss == "variable deleted":
        del motherduck_variables[KEY]
    elif loss == "token revoked":
        hook.revoke_token(USER, first["token"]["id"])
    else:
        motherduck_variables[RECORD] = "{not json"
    emulator.clear_journal()

    again = run(onboard())

    assert again["token_created"] is True
    assert writes_seen(emulator) == [f"POST /v1/users/{USER}/tokens"]
    assert emulator.is_valid_token(motherduck_variables[KEY])
    assert delivered_id(motherduck_variables[RECORD]) == again["token"]["id"]


def test_an_expired_token_is_replaced(
    motherduck_variables: InMemoryVariableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_ago = datetime(2020, 1, 1, tzinfo=timezone.utc)  # the token expires 90 days later, long past
    with MotherDuckEmulator(clock=lambda: long_ago) as emu:
        monkeypatch.setenv(CONN_ENV, connection_json(emu.url, emu.admin_token))
        first = run(onboard())
        again = run(onboard())
    assert again["token_created"] is True
    assert again["token"]["id"] != first["token"]["id"]


def test_a_rotated_token_still_counts_as_delivered(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    """Onboard, rotate (the real rotation operator), onboard again: the rotated token is the declared one."""
    first = run(onboard())
    rotate = MotherDuckRotateTokenOperator(
        task_id="rotate", username=USER, token_name="airflow", ttl="35 days", variable_key=KEY
    )
    rotate.render_template_fields(cast(Context, {"params": {}}))
    rotated = rotate.execute(
        cast(
            Context, {"params": {}, "run_id": "r", "logical_date": datetime(2025, 1, 6, tzinfo=timezone.utc)}
        )
    )
    assert rotated["revoked_ids"] == [first["token"]["id"]]
    emulator.clear_journal()

    again = run(onboard())

    assert writes_seen(emulator) == []
    assert again["token"]["id"] == rotated["token"]["id"]
    assert again["token"]["name"] == "airflow@20250106T000000Z"
    assert again["token_created"] is False


def test_changed_token_type_gets_a_new_token(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    run(onboard())
    again = run(onboard(token_type="read_scaling"))
    assert again["token_created"] is True
    assert again["token"]["token_type"] == "read_scaling"


@pytest.mark.parametrize(
    ("method", "path", "done_before"),
    [
        ("POST", "/v1/users", []),
        ("PUT", f"/v1/users/{USER}/instances", ["user"]),
        ("POST", f"/v1/users/{USER}/tokens", ["user", "config"]),
    ],
)
def test_a_fault_mid_way_is_finished_by_a_rerun(
    emulator: MotherDuckEmulator,
    motherduck_variables: InMemoryVariableStore,
    method: str,
    path: str,
    done_before: list[str],
) -> None:
    emulator.inject(method, path, status=500)
    with pytest.raises(MotherDuckAPIError) as info:
        run(onboard())
    assert info.value.status_code == 500
    assert (USER in emulator.users()) == ("user" in done_before)
    if "user" in done_before:
        assert emulator.tokens(USER) == []
    assert KEY not in motherduck_variables
    assert delivered_id(motherduck_variables.get(RECORD)) is None

    run(onboard())
    (token,) = emulator.tokens(USER)
    assert emulator.duckling_config(USER)["read_write"]["instance_size"] == "jumbo"
    assert delivered_id(motherduck_variables[RECORD]) == token["id"]
    assert emulator.is_valid_token(motherduck_variables[KEY])

    emulator.clear_journal()
    run(onboard())
    assert writes_seen(emulator) == []
    assert not SECRET_RE.search(str(info.value))


def test_a_token_whose_answer_was_lost_is_revoked_by_the_retry(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    """Nobody holds the first token's secret: once the retry delivered its own, the first goes."""
    emulator.add_token(USER if USER in emulator.users() else emulator.add_user(USER) or USER, "airflow")
    (by_hand,) = emulator.tokens(USER)  # someone's token of the same name: reported, never revoked
    emulator.inject("POST", f"/v1/users/{USER}/tokens", drop=True, after=True)
    with pytest.raises(MotherDuckAPIError, match="not repeated"):
        run(onboard())
    orphan = emulator.tokens(USER)[-1]  # created, but its secret never reached us

    result = run(onboard())

    assert result["other_token_ids"] == [by_hand["id"]]
    assert [t["id"] for t in emulator.tokens(USER)] == [by_hand["id"], result["token"]["id"]]
    assert writes_seen(emulator)[-1] == f"DELETE /v1/users/{USER}/tokens/{orphan['id']}"
    assert delivered_id(motherduck_variables[RECORD]) == result["token"]["id"]


def test_failed_delivery_revokes_the_new_token(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    motherduck_variables.refuse_write(KEY, None)
    with pytest.raises(MotherDuckError, match=r"RuntimeError: .*refused.*revoked again"):
        run(onboard())
    assert emulator.tokens(USER) == []  # no orphan whose secret nobody holds
    assert delivered_id(motherduck_variables[RECORD]) is None
    assert writes_seen(emulator)[-1].startswith(f"DELETE /v1/users/{USER}/tokens/")

    motherduck_variables.allow_write(KEY)
    assert run(onboard())["token_created"] is True


def test_failed_record_keeps_the_delivered_token(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    """The secret is out: revoking it would break its users. The re-run recognises it."""
    motherduck_variables.refuse_write(
        RECORD, 3
    )  # the intent and the delivering note pass, the final record fails
    with pytest.raises(TokenIssueError, match="could not write its delivery record") as info:
        run(onboard())
    (first,) = emulator.tokens(USER)
    assert info.value.delivered
    assert not info.value.revoked
    assert emulator.is_valid_token(motherduck_variables[KEY])  # still works for whoever read it

    emulator.clear_journal()
    again = run(onboard())
    assert (again["token_created"], again["token"]["id"]) == (False, first["id"])
    assert writes_seen(emulator) == []


def test_a_token_from_the_create_operator_is_recognised(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    """MotherDuckCreateTokenOperator leaves a delivery record, so onboarding adopts its token."""
    emulator.add_user(USER)
    created = run(
        MotherDuckCreateTokenOperator(task_id="t", username=USER, token_name="airflow", variable_key=KEY)
    )["token"]
    assert delivered_id(motherduck_variables[RECORD]) == created["id"]

    result = run(onboard())

    assert (result["token_created"], result["token"]["id"]) == (False, created["id"])
    assert [t["id"] for t in emulator.tokens(USER)] == [created["id"]]


def test_create_operator_succeeds_when_only_its_record_fails(
    emulator: MotherDuckEmulator,
    motherduck_variables: InMemoryVariableStore,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emulator.add_user(USER)
    motherduck_variables.refuse_write(RECORD, 3)
    create = MotherDuckCreateTokenOperator(task_id="t", username=USER, token_name="n", variable_key=KEY)
    with caplog.at_level(logging.WARNING):
        created = run(create)["token"]
    printed = caplog.text + "".join(capfd.readouterr())  # Airflow 3 logs to stdout, 2.11 to logging
    secret = motherduck_variables[KEY]
    assert emulator.is_valid_token(secret)
    assert [t["id"] for t in emulator.tokens(USER)] == [created["id"]]
    assert f"could not write its delivery record to Variable {RECORD}" in printed
    assert "the Variable backend refused" in printed
    assert secret not in printed


def test_secret_sink_destination(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    vault: dict[str, str] = {}

    def sink(secret: str) -> None:
        vault["etl"] = secret

    op = onboard(variable_key=None, secret_sink=sink, record_key="etl_token_record")
    result = run(op)
    assert emulator.is_valid_token(vault["etl"])
    assert delivered(motherduck_variables["etl_token_record"]) == Delivered(
        result["token"]["id"], "airflow", None
    )
    assert set(motherduck_variables) == {"etl_token_record"}  # the secret went only to the sink

    emulator.clear_journal()
    vault.clear()
    assert (
        run(onboard(variable_key=None, secret_sink=sink, record_key="etl_token_record"))["token_created"]
        is False
    )
    assert writes_seen(emulator) == []
    assert vault == {}


def test_nothing_secret_in_logs_xcom_or_errors(
    emulator: MotherDuckEmulator,
    motherduck_variables: InMemoryVariableStore,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        results = [run(onboard())]
        motherduck_variables[KEY] = "stale"  # forces a new token...
        emulator.inject("POST", f"/v1/users/{USER}/tokens", status=503)  # ...whose creation fails
        with pytest.raises(MotherDuckAPIError) as api_error:
            run(onboard())
        errors.append(api_error.value)
        motherduck_variables.refuse_write(KEY, None)  # then one whose delivery fails
        with pytest.raises(MotherDuckError, match="Could not deliver") as store_error:
            run(onboard())
        errors.append(store_error.value)
        motherduck_variables.allow_write(KEY)
        results.append(run(onboard()))
        results.append(run(MotherDuckOffboardAccountOperator(task_id="off", username=USER, variable_key=KEY)))
    printed = caplog.text + "".join(capfd.readouterr())

    assert "delivered the secret" in printed.lower()  # the log path was captured
    assert len({r["token"]["id"] for r in results[:2]}) == 2
    everything = printed + json.dumps(results) + "".join(map(str, errors))
    assert not SECRET_RE.search(everything)
    assert emulator.admin_token not in everything


def test_no_secret_in_logs_when_delivery_and_its_undo_both_fail(
    emulator: MotherDuckEmulator,
    motherduck_variables: InMemoryVariableStore,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The sink's error quotes the secret; the revoke fails too: nothing may print the secret."""
    seen: list[str] = []

    def leaky_sink(secret: str) -> None:
        seen.append(secret)
        raise RuntimeError(f"vault refused INSERT ('etl', '{secret}')")

    emulator.inject("DELETE", f"/v1/users/{USER}/tokens/*", status=503)
    with caplog.at_level(logging.DEBUG), pytest.raises(MotherDuckError, match="still live") as info:
        run(onboard(variable_key=None, secret_sink=leaky_sink, record_key="etl_record"))
    printed = caplog.text + "".join(capfd.readouterr())

    assert "Could not revoke token" in printed
    (secret,) = seen
    assert emulator.is_valid_token(secret)  # live, and reported as such
    assert secret not in printed
    assert secret not in str(info.value)


def test_offboarding_revokes_deletes_and_is_rerunnable(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    run(onboard())
    extra = emulator.add_token(USER, "dbt")
    secret = motherduck_variables[KEY]
    emulator.clear_journal()
    op = MotherDuckOffboardAccountOperator(task_id="off", username=USER, variable_key=KEY)

    result = run(op)

    assert result["deleted"] is True
    assert len(result["revoked_ids"]) == 2
    assert result["variables_deleted"] == [KEY, RECORD]
    assert emulator.users() == ["admin"]
    assert not emulator.is_valid_token(secret)
    assert not emulator.is_valid_token(extra["token"])
    assert [w.split("/tokens/")[0] for w in writes_seen(emulator)] == [
        f"DELETE /v1/users/{USER}",
        f"DELETE /v1/users/{USER}",
        f"DELETE /v1/users/{USER}",
    ]
    assert motherduck_variables == {}

    again = run(MotherDuckOffboardAccountOperator(task_id="off", username=USER, variable_key=KEY))
    assert again == {"username": USER, "revoked_ids": [], "deleted": False, "variables_deleted": []}


def test_offboarding_after_a_failed_user_delete(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    run(onboard())
    emulator.inject("DELETE", f"/v1/users/{USER}", status=500)
    op = MotherDuckOffboardAccountOperator(task_id="off", username=USER, hook_params=NO_RETRY)
    with pytest.raises(MotherDuckAPIError):
        run(op)
    assert emulator.tokens(USER) == []  # revoked before the failure
    assert run(MotherDuckOffboardAccountOperator(task_id="off", username=USER))["deleted"] is True


# -- bulk ---------------------------------------------------------------------------------------


def _accounts(n: int) -> list[dict[str, Any]]:
    return [
        {"username": f"svc_{i:03d}", "variable_key": f"md_svc_{i:03d}", "read_scaling": {"flock_size": i % 5}}
        for i in range(n)
    ]


def test_bulk_onboarding_converges_and_reruns_read_only(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    accounts = _accounts(24)
    emulator.add_user("svc_003")
    emulator.inject("PUT", "/v1/users/svc_007/instances", status=500)
    emulator.inject("POST", "/v1/users/svc_011/tokens", status=500)
    bulk = MotherDuckBulkOnboardOperator(
        task_id="bulk",
        accounts=json.dumps(accounts),
        defaults={"token_name": "airflow", "ttl": "30 days"},
        max_workers=8,
        hook_params=NO_RETRY,
    )
    with pytest.raises(MotherDuckError, match="2 of 24 account") as info:
        run(bulk)
    assert "svc_007" in str(info.value)
    assert "svc_011" in str(info.value)

    summary = run(bulk)
    assert summary["account_count"] == 24
    assert summary["created_usernames"] == []
    assert summary["token_created_usernames"] == ["svc_007", "svc_011"]
    for i, account in enumerate(accounts):
        (token,) = emulator.tokens(account["username"])
        assert summary["token_ids"][account["username"]] == token["id"]
        assert emulator.duckling_config(account["username"])["read_scaling"]["flock_size"] == i % 5
        assert emulator.is_valid_token(motherduck_variables[account["variable_key"]])

    emulator.clear_journal()
    motherduck_variables.writes.clear()
    assert run(bulk)["token_created_usernames"] == []
    assert writes_seen(emulator) == []
    assert motherduck_variables.writes == []
    assert not SECRET_RE.search(json.dumps(summary))


def test_bulk_stops_early_when_every_account_would_fail(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    emulator.inject("GET", "/v1/users/*/tokens", status=401, times=1)
    bulk = MotherDuckBulkOnboardOperator(
        task_id="bulk", accounts=[{**a, "token_name": "t"} for a in _accounts(40)], max_workers=1
    )
    with pytest.raises(MotherDuckError, match="40 of 40") as info:
        run(bulk)
    assert str(info.value).count("skipped") == 39
    assert len(emulator.journal) == 1


def test_bulk_goes_on_after_a_403_that_concerns_one_account(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    emulator.add_user("human", admin=True)  # not a service account: its token cannot be made (403)
    accounts = [{"username": "human", "variable_key": "md_human"}, *_accounts(5)]
    bulk = MotherDuckBulkOnboardOperator(
        task_id="bulk", accounts=accounts, defaults={"token_name": "t"}, max_workers=1
    )
    with pytest.raises(MotherDuckError, match="1 of 6 account") as info:
        run(bulk)
    assert "human: MotherDuckAuthError" in str(info.value)
    assert all(len(emulator.tokens(a["username"])) == 1 for a in accounts[1:])


def test_bulk_uses_one_hook_per_worker_thread(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    emulator.inject("*", "*", delay=0.01, times=10**6)
    made: list[tuple[MotherDuckHook, int]] = []

    def new_hook() -> MotherDuckHook:
        hook = MotherDuckHook()
        made.append((hook, threading.get_ident()))
        return hook

    accounts = [check_account({**a, "token_name": "t"}) for a in _accounts(30)]
    results, failed = onboard_accounts(accounts, new_hook, max_workers=6)

    assert failed == {}
    assert len(results) == 30
    assert 1 < len(made) <= 6
    assert len({thread for _, thread in made}) == len(made)
    assert all("session" not in hook.__dict__ for hook, _ in made)  # closed afterwards


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"variable_key": None}, "exactly one destination for the new secret, variable_key or secret_sink"),
        ({"secret_sink": print}, "exactly one destination for the new secret, variable_key or secret_sink"),
        ({"username": "1x"}, "username='1x'"),
        ({"read_write": {"instance_size": "huge"}}, "read_write.instance_size='huge'"),
        ({"read_scaling": {"flock": 2}}, "unknown keys ['flock']"),
        ({"ttl": "1 minute"}, "ttl='1 minute'"),
        ({"token_type": "admin"}, "token_type='admin'"),
        ({"variable_key": " padded"}, "variable_key=' padded'"),
        ({"variable_key": None, "secret_sink": "print", "record_key": "r"}, "secret_sink='print'"),
    ],
)
def test_bad_onboarding_arguments_fail_at_parse_time(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match="MotherDuckOnboardAccountOperator 'onboard'") as info:
        MotherDuckOnboardAccountOperator(task_id="onboard", **{**DECLARED, **kwargs})
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("accounts", "named"),
    [
        ([], "non-empty list"),
        ("[{", "not JSON"),
        ([{"username": "a", "variable_key": "k"}], "accounts[0].token_name=None is invalid: missing"),
        (
            [{"username": "a", "token_name": "t", "variable_key": "k", "role": "x"}],
            "accounts[0].role='x' is invalid: unknown key",
        ),
        (
            [{"username": "a", "token_name": "t", "variable_key": "k", "ttl": 1}],
            "accounts[0].ttl=1 is invalid",
        ),
        (
            [{"username": "a", "token_name": "t", "variable_key": k} for k in "kl"],
            "accounts[1].username='a' is invalid: username declared twice (also at accounts[0].username)",
        ),
        (
            [{"username": u, "token_name": "t", "variable_key": "k"} for u in "ab"],
            "accounts[1].variable_key='k' is invalid: Variable key declared twice",
        ),
        (
            [
                {"username": "a", "token_name": "t", "variable_key": "k", "record_key": "rec"},
                {"username": "b", "token_name": "t", "variable_key": "rec"},
            ],
            "accounts[1].variable_key='rec' is invalid: Variable key declared twice (also at accounts[0].record_key)",
        ),
        (
            [{"username": "a", "token_name": "t", "variable_key": "k", "record_key": "k"}],
            "accounts[0]: record_key='k' is invalid: it is the variable_key",
        ),
    ],
)
def test_bad_bulk_declarations_fail_at_parse_time(accounts: Any, named: str) -> None:
    with pytest.raises(ValueError, match="MotherDuckBulkOnboardOperator 'bulk'") as info:
        MotherDuckBulkOnboardOperator(task_id="bulk", accounts=accounts)
    assert named in str(info.value)


def test_bulk_templated_defaults_are_checked_after_rendering(
    emulator: MotherDuckEmulator, motherduck_variables: InMemoryVariableStore
) -> None:
    accounts = [{"username": "a1", "variable_key": "k_a1"}]
    defaults = {"token_name": "airflow", "ttl": "{{ params.ttl }}"}

    def bulk() -> MotherDuckBulkOnboardOperator:  # accepted at parse time: ttl is not known yet
        return MotherDuckBulkOnboardOperator(task_id="bulk", accounts=accounts, defaults=defaults)

    with pytest.raises(ValueError, match=r"accounts\[0\]\.ttl='soon' is invalid"):
        run(bulk(), {"ttl": "soon"})
    assert emulator.journal == []
    run(bulk(), {"ttl": "30 days"})
    assert emulator.journal[-2].body == {"name": "airflow", "token_type": "read_write", "ttl": 30 * 86400}


@pytest.mark.parametrize("workers", [0, 129, "8", True])
def test_bulk_max_workers_is_bounded(workers: Any) -> None:
    with pytest.raises(ValueError, match="max_workers="):
        MotherDuckBulkOnboardOperator(task_id="bulk", accounts=[{**DECLARED}], max_workers=workers)


def test_offboard_group_waits_for_idle_then_offboards_each_account() -> None:
    with DAG("g", schedule=None) as dag:
        offboard_account_group(
            [USER, {"username": "bi", "variable_key": "k_bi", "token_name": "ignored"}], poke_interval=5
        )
        offboard_account_group("solo", group_id="one")
    wait: Any = dag.get_task("offboard.wait_until_idle")
    assert (wait.usernames, wait.expect_active, wait.statuses) == (
        [USER, "bi"],
        False,
        ("active", "cooldown"),
    )
    assert wait.mode == "reschedule"
    mapped = dag.get_task("offboard.offboard_account")
    assert wait.downstream_task_ids == {"offboard.offboard_account"}
    assert type(mapped).__name__ == "MappedOperator"
    single: Any = dag.get_task("one.offboard_account")
    assert single.username == "solo"
    with pytest.raises(ValueError, match="accounts\\[0\\]"):
        offboard_account_group(["bad-name "])


# -- access: roles and shares (the SQL path on the emulator's Postgres endpoint) ----------------


def test_the_operator_grants_and_attaches_and_reports_it(
    access_org: MotherDuckEmulator, sql_conn: str, motherduck_variables: InMemoryVariableStore
) -> None:
    op = onboard(roles="{{ params.roles }}", shares=json.dumps(SHARES), read_write=None, read_scaling=None)
    result = run(op, {"roles": json.dumps(ROLES)})
    assert (result["granted_roles"], result["granted_shares"], result["attached_aliases"]) == (
        ROLES,
        ["orders_share", "customers_share"],
        ["orders_in", "customers_in"],
    )
    assert count_as(access_org, motherduck_variables[KEY], "orders") == 3
    assert session_tokens(access_org) == []

    access_org.clear_journal()
    again = run(onboard(roles=ROLES, shares=SHARES, read_write=None, read_scaling=None))
    assert (again["granted_roles"], again["granted_shares"], again["attached_aliases"]) == ([], [], [])
    assert sql_writes(access_org) == []


def test_bulk_onboarding_with_access_reports_per_account(
    access_org: MotherDuckEmulator, sql_conn: str, motherduck_variables: InMemoryVariableStore
) -> None:
    accounts = [{"username": f"reader_{i}", "variable_key": f"motherduck_reader_{i}"} for i in range(3)]
    defaults = {"token_name": "airflow", "roles": ROLES[:1], "shares": SHARES[:1]}
    op = MotherDuckBulkOnboardOperator(
        task_id="bulk", accounts=accounts, defaults=defaults, max_workers=2, hook_params=NO_RETRY
    )
    result = run(op)
    usernames = [a["username"] for a in accounts]
    assert result["granted_roles"] == {u: ROLES[:1] for u in usernames}
    assert result["granted_shares"] == {u: ["orders_share"] for u in usernames}
    assert result["attached_aliases"] == {u: ["orders_in"] for u in usernames}
    assert count_as(access_org, motherduck_variables["motherduck_reader_2"], "orders") == 3
    assert session_tokens(access_org) == []
    again = run(op)
    assert (again["granted_roles"], again["granted_shares"], again["attached_aliases"]) == ({}, {}, {})


def test_access_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match=r"roles\[0\]='Analysts' is invalid: it is not lowercase"):
        onboard(roles=["Analysts"])
    with pytest.raises(ValueError, match=r"shares\[0\]\.owner=None is invalid: missing"):
        onboard(shares=[{"share": "orders_share"}])
    onboard(roles="{{ params.roles }}")  # a template is checked once rendered


def test_offboarding_reports_the_access_the_account_had(
    access_org: MotherDuckEmulator, sql_conn: str, motherduck_variables: InMemoryVariableStore
) -> None:
    run(onboard(roles=ROLES, shares=SHARES, read_write=None, read_scaling=None))
    result = run(MotherDuckOffboardAccountOperator(task_id="off", username=USER, report_access=True))
    access = result["access"]
    assert sorted(g["role"] for g in access["roles"] if g["direct"]) == ROLES
    assert sorted(a["alias"] for a in access["attached"] if a["type"] == "motherduck share") == [
        "customers_in",
        "orders_in",
    ]
    assert list(access["not_read"]) == ["shares"]
    assert result["deleted"] is True
    assert session_tokens(access_org) == []
