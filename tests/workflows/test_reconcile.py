"""Reconcile over real HTTP against the emulator: the declaration's checks, the pure plan and its
prune guards, apply / check / plan, a fault at each apply step followed by a converging re-run.

Airflow Variables are an in-memory store here; the real Variable path runs in
tests/example_dags/test_example_org_as_code.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows import delivery
from airflow_provider_motherduck.workflows.delivery import default_record_key
from airflow_provider_motherduck.workflows.reconcile import (
    AccountState,
    Declaration,
    OrgState,
    check_declaration,
    plan_reconcile,
    reconcile_accounts,
)
from tests.operators.helpers import SECRET_RE, writes_seen
from tests.support import FakeVariables, delivered_id

pytestmark = pytest.mark.usefixtures("motherduck_conn")

DESIRED: dict[str, Any] = {
    "service_accounts": [
        {
            "username": "etl_loader",
            "read_write": {"instance_size": "jumbo"},
            "read_scaling": {"flock_size": 2},
            "tokens": [{"name": "airflow", "ttl": "90 days", "variable_key": "md_etl"}],
        },
        {
            "username": "bi_dashboards",
            "tokens": [
                {"name": "dash", "token_type": "read_scaling", "variable_key": "md_bi"},
                {"name": "ops", "variable_key": "md_bi_ops", "ttl": "P30D"},
            ],
        },
        {"username": "ml_features", "read_scaling": {"instance_size": "pulse", "flock_size": 1}},
    ]
}
TOKENS = {
    ("etl_loader", "airflow"): "md_etl",
    ("bi_dashboards", "dash"): "md_bi",
    ("bi_dashboards", "ops"): "md_bi_ops",
}


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    fake = FakeVariables()
    monkeypatch.setattr(delivery, "Variable", fake)
    return fake


def new_hook() -> MotherDuckHook:
    return MotherDuckHook(retry_limit=0)


def run(desired: Any = DESIRED, **kwargs: Any) -> dict[str, Any]:
    return reconcile_accounts(check_declaration(desired), new_hook, **kwargs)


def assert_converged(emulator: MotherDuckEmulator, variables: FakeVariables) -> None:
    """Each declared token: exactly one live token of that name, its secret in its Variable."""
    for (user, name), key in TOKENS.items():
        (token,) = [t for t in emulator.tokens(user) if t["name"] == name]
        assert emulator.is_valid_token(variables.values[key])
        assert delivered_id(variables.values[default_record_key(variable_key=key)]) == token["id"]
    assert emulator.duckling_config("etl_loader")["read_write"]["instance_size"] == "jumbo"
    assert emulator.duckling_config("ml_features")["read_scaling"] == {
        "instance_size": "pulse",
        "flock_size": 1,
    }


# -- the declaration ---------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    bad = {
        "service_accounts": [
            {"username": "ok_bot", "tokens": [{"name": "a", "variable_key": "k1"}]},
            {"username": "1bad", "read_write": {"instance_size": "huge"}, "colour": "red"},
            {"username": "b", "read_scaling": {"flock_size": 99}},
            {
                "username": "c",
                "tokens": [
                    {"name": "t", "ttl": "1 second", "variable_key": "k2"},
                    {"name": "u"},
                    {"name": "v", "secret_sink": "vault"},
                    {"name": "w", "variable_key": "k1"},
                ],
            },
        ]
    }
    with pytest.raises(ValueError, match="problem") as caught:
        check_declaration(bad)
    message = str(caught.value)
    for path in (
        "service_accounts[1]={",  # the unknown key
        "service_accounts[1].username='1bad'",
        "service_accounts[1].read_write.instance_size='huge'",
        "service_accounts[2].read_scaling.flock_size=99",
        "service_accounts[3].tokens[0].ttl='1 second'",
        "service_accounts[3].tokens[1]=",
        "service_accounts[3].tokens[2].secret_sink='vault'",
        "service_accounts[3].tokens[2].record_key",
    ):
        assert path in message, path
    assert "problem(s)" in message


def test_duplicates_are_refused() -> None:
    twice = {
        "service_accounts": [
            {
                "username": "a",
                "tokens": [{"name": "t", "variable_key": "k"}, {"name": "t", "variable_key": "j"}],
            },
            {"username": "a"},
            {"username": "b", "tokens": [{"name": "t", "variable_key": "k"}]},
        ]
    }
    with pytest.raises(ValueError, match="declared twice") as caught:
        check_declaration(twice)
    assert "username declared twice: a" in str(caught.value)
    assert "token name of a declared twice: t" in str(caught.value)
    assert "Variable key declared twice: k" in str(caught.value)


def test_files_json_and_yaml_and_sinks_by_name(tmp_path: Path) -> None:
    yaml_file = tmp_path / "org.yaml"
    yaml_file.write_text(
        "service_accounts:\n"
        "  - username: etl_loader\n"
        "    tokens:\n"
        "      - {name: airflow, ttl: 90 days, secret_sink: vault, record_key: md_etl_record}\n"
    )
    json_file = tmp_path / "org.json"
    json_file.write_text(json.dumps(DESIRED))
    kept: list[str] = []
    from_yaml = check_declaration(str(yaml_file), secret_sinks={"vault": kept.append})
    (token,) = from_yaml.accounts[0].tokens or ()
    assert (token.name, token.ttl, token.destination.secret_sink) == ("airflow", 90 * 86400, kept.append)
    assert [a.username for a in check_declaration(json_file).accounts] == [
        "etl_loader",
        "bi_dashboards",
        "ml_features",
    ]
    with pytest.raises(ValueError, match="cannot be read"):
        check_declaration(str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match=r"desired=.*missing service_accounts"):
        check_declaration("accounts: []")


# -- the plan, pure ----------------------------------------------------------------------------


def user(
    name: str, *, roles: tuple[str, ...] = ("member",), sa: bool = True, gone: bool = False
) -> dict[str, Any]:
    return {"username": name, "roles": list(roles), "is_service_account": sa, "is_deprovisioned": gone}


def token(token_id: str, name: str) -> dict[str, Any]:
    return {"id": token_id, "name": name, "token_type": "read_write", "created_ts": "2026-01-01T00:00:00Z"}


def test_prune_spares_humans_admins_deprovisioned_and_protected() -> None:
    declared = check_declaration(
        {
            "service_accounts": [
                {"username": "kept_bot", "tokens": [{"name": "airflow", "variable_key": "k"}]},
                {"username": "svc_admin", "tokens": []},
            ]
        }
    )
    state = OrgState(
        users=(
            user("jane", roles=("admin",), sa=False),
            user("joe", sa=False),
            user("kept_bot"),
            user("svc_admin", roles=("admin",)),
            user("other_admin", roles=("admin",)),
            user("old_bot"),
            user("left_bot", gone=True),
            user("prod_loader"),
            user("keep_me"),
        ),
        accounts={
            "kept_bot": AccountState(
                tokens=(
                    token("t1", "airflow"),
                    token("t2", "airflow@20250101T000000Z"),
                    token("t3", "legacy"),
                ),
                delivered={"airflow": "t1"},
            ),
            "svc_admin": AccountState(tokens=(token("t4", "connection"),)),
        },
    )
    plan = plan_reconcile(declared, state, prune=True, protect=("prod_*", "keep_me"))

    assert [(a["action"], a["username"], a.get("token_id")) for a in plan.as_list()] == [
        ("revoke_token", "kept_bot", "t3"),  # a rotation of airflow (t2) is declared
        ("delete_user", "old_bot", None),
    ]
    assert dict(plan.spared) == {
        "svc_admin": "1 undeclared token(s) kept: Admin role",
        "other_admin": "not declared, kept: Admin role",
        "prod_loader": "not declared, kept: protected",
        "keep_me": "not declared, kept: protected",
    }
    assert plan.deletes == 2
    assert plan_reconcile(declared, state, prune=False).actions == ()


def test_a_declared_name_taken_by_a_human_or_deprovisioned_user_is_refused() -> None:
    declared = check_declaration({"service_accounts": [{"username": "jane"}, {"username": "left_bot"}]})
    state = OrgState((user("jane", sa=False), user("left_bot", gone=True)), {})
    with pytest.raises(MotherDuckReconcileError, match=r"jane \(a human user\), left_bot \(deprovisioned\)"):
        plan_reconcile(declared, state)


# -- apply, check, plan ------------------------------------------------------------------------


def test_apply_reaches_the_declaration_and_a_rerun_makes_no_write(
    emulator: MotherDuckEmulator, variables: FakeVariables
) -> None:
    emulator.add_user("bi_dashboards")
    emulator.add_token("bi_dashboards", "legacy")
    assert [a["action"] for a in run(mode="plan")["plan"]] == [
        "create_user",
        "update_duckling_config",
        "create_token",
        "create_token",
        "create_token",
        "create_user",
        "update_duckling_config",
    ]
    assert writes_seen(emulator) == []
    assert variables.writes == []

    summary = run()

    assert_converged(emulator, variables)
    assert len(summary["done"]) == 7
    assert summary["failed"] == {}
    assert len(emulator.tokens("bi_dashboards")) == 3  # legacy kept: no prune
    emulator.clear_journal()
    variables.writes.clear()

    again = run(prune=False)
    assert again["plan"] == []
    assert again["done"] == []
    assert writes_seen(emulator) == []
    assert variables.writes == []
    assert run(mode="check")["plan"] == []


def test_check_fails_on_drift_and_names_it(emulator: MotherDuckEmulator, variables: FakeVariables) -> None:
    run()
    emulator.set_duckling_config(
        "etl_loader",
        {
            "read_write": {"instance_size": "standard"},
            "read_scaling": {"instance_size": "standard", "flock_size": 2},
        },
    )
    del variables.values["md_bi"]  # the secret lost: a new token is due
    emulator.clear_journal()

    with pytest.raises(MotherDuckReconcileError, match="Drift") as caught:
        run(mode="check")

    assert "read_write.instance_size: standard -> jumbo" in str(caught.value)
    assert [(a["action"], a["username"]) for a in caught.value.summary["plan"]] == [
        ("update_duckling_config", "etl_loader"),
        ("create_token", "bi_dashboards"),
    ]
    assert writes_seen(emulator) == []


def test_prune_deletes_and_revokes_what_is_not_declared(
    emulator: MotherDuckEmulator, variables: FakeVariables
) -> None:
    run()
    emulator.add_user("old_bot")
    emulator.add_token("old_bot", "x")
    emulator.add_user("prod_keep")
    emulator.add_user("ops_admin", roles=["admin"], human=False)
    emulator.add_user("jane", roles=["member"], human=True)
    emulator.add_user("left_bot", deprovisioned=True)
    stray = emulator.add_token("etl_loader", "by_hand")
    emulator.clear_journal()

    summary = run(prune=True, protect=["prod_*"])

    assert sorted(emulator.users()) == sorted(
        ["admin", "etl_loader", "bi_dashboards", "ml_features", "prod_keep", "ops_admin", "jane", "left_bot"]
    )
    assert stray["id"] not in [t["id"] for t in emulator.tokens("etl_loader")]
    assert summary["deletes"] == 2
    assert {s["username"] for s in summary["spared"]} == {"prod_keep", "ops_admin"}
    assert_converged(emulator, variables)
    emulator.clear_journal()
    assert run(prune=True, protect=["prod_*"])["plan"] == []
    assert writes_seen(emulator) == []


def test_more_deletes_than_max_deletes_are_refused_before_any_write(
    emulator: MotherDuckEmulator, variables: FakeVariables
) -> None:
    for i in range(3):
        emulator.add_user(f"old_{i}")
    emulator.clear_journal()
    with pytest.raises(
        MotherDuckReconcileError, match=r"revokes or deletes 3 thing\(s\), more than max_deletes=2"
    ):
        run(prune=True, max_deletes=2)
    assert writes_seen(emulator) == []
    assert run(prune=True, mode="plan", max_deletes=2)["deletes"] == 3  # plan mode only warns


# -- a fault at each step, then a converging re-run ---------------------------------------------

Fault = Callable[[MotherDuckEmulator], None]
FAULTS: dict[str, Fault] = {
    "create user, answer lost": lambda e: e.inject("POST", "/v1/users", status=500, after=True),
    "create user refused": lambda e: e.inject("POST", "/v1/users", status=503),
    "read config": lambda e: e.inject("GET", "/v1/users/etl_loader/instances", status=500, times=2),
    "write config": lambda e: e.inject("PUT", "/v1/users/*/instances", status=500),
    "create token, answer lost": lambda e: e.inject(
        "POST", "/v1/users/bi_dashboards/tokens", status=500, after=True
    ),
    "create token, dropped after": lambda e: e.inject("POST", "/v1/users/*/tokens", drop=True, after=True),
    "revoke token": lambda e: e.inject("DELETE", "/v1/users/bi_dashboards/tokens/*", status=500),
    "delete user": lambda e: e.inject("DELETE", "/v1/users/old_bot", status=500),
    "list a user's tokens on delete": lambda e: e.inject("GET", "/v1/users/old_bot/tokens", status=500),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_part_way_then_a_rerun_converges(
    fault: str, emulator: MotherDuckEmulator, variables: FakeVariables, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.add_user("bi_dashboards")
    emulator.add_token("bi_dashboards", "legacy")
    emulator.add_user("old_bot")
    emulator.add_token("old_bot", "x")
    FAULTS[fault](emulator)
    caplog.set_level(logging.INFO)

    with pytest.raises(MotherDuckReconcileError) as caught:
        run(prune=True)
    assert caught.value.summary["failed"]
    emulator.clear_faults()
    run(prune=True)  # the re-run finishes

    assert_converged(emulator, variables)
    assert sorted(emulator.users()) == ["admin", "bi_dashboards", "etl_loader", "ml_features"]
    assert [t["name"] for t in emulator.tokens("bi_dashboards")] == ["dash", "ops"]
    emulator.clear_journal()
    assert run(prune=True)["plan"] == []
    assert writes_seen(emulator) == []
    secrets = [s["secret"] for s in emulator.issued_secrets()]
    assert not any(s in caplog.text for s in secrets)
    assert not SECRET_RE.search(json.dumps(caught.value.summary))
    assert not SECRET_RE.search(str(caught.value))


def test_no_secret_in_the_summary_or_logs(
    emulator: MotherDuckEmulator, variables: FakeVariables, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    summary = run()
    secrets = [s["secret"] for s in emulator.issued_secrets()]
    assert len(secrets) == 4  # the admin's and three new ones
    assert not SECRET_RE.search(json.dumps(summary))
    assert not any(s in caplog.text for s in secrets)
    assert "create_token" in caplog.text  # the plan table was logged


def test_declaration_object_is_reusable() -> None:
    declared = check_declaration(DESIRED)
    assert isinstance(declared, Declaration)
    assert declared.account("bi_dashboards") is not None
    assert declared.account("nobody") is None
