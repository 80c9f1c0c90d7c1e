"""The access operators: parse-time checks, templates, XCom, over the emulator's Postgres endpoint and in a real DAG run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_motherduck.hooks.sql import is_session_token
from airflow_provider_motherduck.operators import (
    MotherDuckAttachShareOperator,
    MotherDuckCreateDatabaseOperator,
    MotherDuckCreateRoleOperator,
    MotherDuckCreateShareOperator,
    MotherDuckCurrentUserOperator,
    MotherDuckDetachShareOperator,
    MotherDuckDropDatabaseOperator,
    MotherDuckDropRoleOperator,
    MotherDuckDropShareOperator,
    MotherDuckGrantRoleOperator,
    MotherDuckGrantShareOperator,
    MotherDuckRevokeRoleOperator,
    MotherDuckRevokeShareOperator,
    MotherDuckSetShareIncludeOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import DagRunRecord, everything_printed, failure_excerpt, leaked_secrets, run
from tests.support import CONN_ENV, scans_dags_test_output_for_secrets

DAGS = Path(__file__).parent / "dags"
OWNER, READER = "share_owner", "etl_bot"
Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def org(emulator: MotherDuckEmulator, sql_conn: str) -> MotherDuckEmulator:
    for name in (OWNER, READER):
        emulator.add_user(name)
    emulator.add_database(OWNER, "orders", tables={"orders": 3})
    return emulator


def _session_tokens(emulator: MotherDuckEmulator) -> list[str]:
    return [t["name"] for u in (OWNER, READER) for t in emulator.tokens(u) if is_session_token(t["name"])]


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (
            lambda: MotherDuckCreateRoleOperator(task_id="t", role="Analysts"),
            "role='Analysts' is invalid: it is not lowercase",
        ),
        (
            lambda: MotherDuckDropRoleOperator(task_id="t", role="admin"),
            "role='admin' is invalid: it is a preset role",
        ),
        (
            lambda: MotherDuckGrantRoleOperator(task_id="t", role="analysts"),
            "to_user/to_role=(None, None) is invalid",
        ),
        (
            lambda: MotherDuckGrantRoleOperator(task_id="t", role="analysts", to_user="a", to_role="bcd"),
            "exactly one",
        ),
        (
            lambda: MotherDuckRevokeRoleOperator(task_id="t", role="analysts", from_role="X"),
            "grantee_role='X'",
        ),
        (
            lambda: MotherDuckCreateShareOperator(task_id="t", share="s", database="d", access="public"),
            "access='public'",
        ),
        (
            lambda: MotherDuckCreateShareOperator(task_id="t", share="s", database="d", include="main.*"),
            "include='main.*'",
        ),
        (
            lambda: MotherDuckSetShareIncludeOperator(task_id="t", share="s", include=["a,b"]),
            "include[0]='a,b'",
        ),
        (
            lambda: MotherDuckDropShareOperator(task_id="t", share="a.b"),
            "share='a.b' is invalid: it contains a dot",
        ),
        (lambda: MotherDuckGrantShareOperator(task_id="t", share="s", to_user=" x"), "grantee_user=' x'"),
        (
            lambda: MotherDuckRevokeShareOperator(task_id="t", share="s", from_user="x", as_user=""),
            "as_user=''",
        ),
        (lambda: MotherDuckAttachShareOperator(task_id="t", url="md:orders", as_user="x"), "url='md:orders'"),
        (lambda: MotherDuckDetachShareOperator(task_id="t", alias="", as_user="x"), "alias=''"),
        (lambda: MotherDuckCreateDatabaseOperator(task_id="t", database="a.b"), "database='a.b'"),
        (
            lambda: MotherDuckDropDatabaseOperator(task_id="t", database="d", missing_ok="yes"),
            "missing_ok='yes'",
        ),
    ],
)
def test_bad_literals_fail_at_parse_time(build: Callable[[], Any], named: str) -> None:
    with pytest.raises(ValueError, match=r"MotherDuck\w+Operator 't'") as info:
        build()
    assert named in str(info.value)


def test_templates_are_checked_only_after_rendering() -> None:
    op = MotherDuckGrantShareOperator(
        task_id="t", share="{{ params.s }}", to_user="{{ params.u }}", as_user="{{ params.o }}"
    )
    assert {"share", "grantee_user", "grantee_role", "as_user", "motherduck_conn_id"} <= set(
        op.template_fields
    )


def test_roles_and_role_grants(org: MotherDuckEmulator) -> None:
    assert run(MotherDuckCreateRoleOperator(task_id="t", role="{{ params.r }}"), {"r": "analysts"}) == {
        "role": "analysts",
        "created": True,
    }
    assert run(MotherDuckCreateRoleOperator(task_id="t", role="analysts"))["created"] is False
    granted = run(MotherDuckGrantRoleOperator(task_id="t", role="analysts", to_user=READER))
    assert granted == {"role": "analysts", "grantee": READER, "grantee_type": "user", "granted": True}
    assert (
        run(MotherDuckGrantRoleOperator(task_id="t", role="explorer", to_role="analysts"))["grantee_type"]
        == "role"
    )
    assert (
        run(MotherDuckRevokeRoleOperator(task_id="t", role="analysts", from_user=READER))["revoked"] is True
    )
    assert (
        run(MotherDuckRevokeRoleOperator(task_id="t", role="analysts", from_user=READER))["revoked"] is False
    )
    assert run(MotherDuckDropRoleOperator(task_id="t", role="analysts")) == {
        "role": "analysts",
        "deleted": True,
    }
    assert run(MotherDuckDropRoleOperator(task_id="t", role="analysts"))["deleted"] is False


def test_shares_grants_attachments_databases(org: MotherDuckEmulator) -> None:
    db = run(MotherDuckCreateDatabaseOperator(task_id="t", database="staging", as_user=OWNER))
    assert db == {"database": "staging", "username": OWNER, "created": True}
    created = run(
        MotherDuckCreateShareOperator(task_id="t", share="orders_share", database="orders", as_user=OWNER)
    )
    share = created
    assert created["created"] is True
    assert created["username"] == OWNER
    assert set(share) == {
        "share",
        "database",
        "username",
        "created",
        "access",
        "visibility",
        "update",
        "url",
        "include",
        "created_at",
    }
    assert (share["access"], share["visibility"], share["update"], share["include"]) == (
        "restricted",
        "hidden",
        "automatic",
        None,
    )
    json.dumps(created)  # JSON-able XCom
    narrowed = run(
        MotherDuckSetShareIncludeOperator(
            task_id="t", share="orders_share", include=["main.{{ params.table }}"], as_user=OWNER
        ),
        {"table": "orders"},
    )
    assert set(narrowed) == set(created) - {"created"} | {"changed"}
    assert (narrowed["include"], narrowed["url"], narrowed["changed"]) == (
        ["main.orders"],
        share["url"],
        True,
    )
    grant = run(
        MotherDuckGrantShareOperator(task_id="t", share="orders_share", to_user=READER, as_user=OWNER)
    )
    assert grant == {
        "share": "orders_share",
        "grantee": READER,
        "grantee_type": "user",
        "username": OWNER,
        "granted": True,
    }
    attach = run(MotherDuckAttachShareOperator(task_id="t", url=share["url"], as_user=READER))
    assert attach == {"username": READER, "alias": "orders", "created": True}
    assert run(MotherDuckDetachShareOperator(task_id="t", alias="orders", as_user=READER))["deleted"] is True
    assert (
        run(
            MotherDuckRevokeShareOperator(task_id="t", share="orders_share", from_user=READER, as_user=OWNER)
        )["revoked"]
        is True
    )
    assert (
        run(MotherDuckDropShareOperator(task_id="t", share="orders_share", as_user=OWNER))["deleted"] is True
    )
    assert (
        run(MotherDuckDropDatabaseOperator(task_id="t", database="staging", as_user=OWNER))["deleted"] is True
    )
    assert _session_tokens(org) == []


def test_the_current_user_over_postgres(org: MotherDuckEmulator) -> None:
    assert run(MotherDuckCurrentUserOperator(task_id="who"))["username"] == "admin"


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_access_as_code_in_a_real_dag_run(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str
) -> None:
    for name in (OWNER, READER):
        emulator.add_user(name)
    conn = json.dumps(emulator.airflow_connection())
    result = airflow_dag_runner("md_access_contract", DAGS, {CONN_ENV: conn})
    record = DagRunRecord(airflow_db, "md_access_contract")
    printed = everything_printed(result, airflow_db, "md_access_contract")
    failed = {task for (task, _), state in record.states().items() if state != "success"}
    assert failed == {"bad_role"}, failure_excerpt(printed)
    assert "role='ANALYSTS' is invalid: it is not lowercase" in printed
    xcom = {task: value for (task, _), value in record.xcom().items()}
    assert xcom["grant_role"]["granted"] is True
    assert xcom["share"]["url"].startswith("md:_share/orders/")
    assert xcom["attach"] == {"username": READER, "alias": "orders_in", "created": True}
    assert xcom["drop"]["deleted"] is True
    # Every short-lived token was revoked, and none was ever printed.
    issued = [i["secret"] for i in emulator.issued_secrets() if is_session_token(i["name"])]
    assert len(issued) == 7
    assert _session_tokens(emulator) == []
    assert leaked_secrets(printed, [*issued, emulator.admin_token]) == []
