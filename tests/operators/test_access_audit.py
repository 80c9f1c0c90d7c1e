"""The access audit operator: parse-time checks, XCom and log over the emulator's Postgres endpoint, and a real DAG run."""

from __future__ import annotations

from datetime import datetime

import pytest

from airflow_provider_motherduck._compat import DAG
from airflow_provider_motherduck.exceptions import MotherDuckError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql import is_session_token
from airflow_provider_motherduck.operators import MotherDuckAccessAuditOperator
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.testing.pytest_plugin import DagRunner
from tests.operators.helpers import run

OWNER, READER, OPS = "share_owner", "etl_bot", "ops_bot"


@pytest.fixture
def org(emulator: MotherDuckEmulator, sql_hook: MotherDuckHook) -> MotherDuckEmulator:
    """A reader granted a restricted share and attaching it, an open share, a service account that is an Admin."""
    for name in (OWNER, READER):
        emulator.add_user(name)
    emulator.add_user(OPS, roles=["admin"], human=False)
    emulator.add_database(OWNER, "orders", tables={"orders": 3})
    options = {"visibility": "hidden", "update": "manual", "as_user": OWNER}
    orders = sql_hook.create_share("orders", "orders", access="restricted", **options)
    sql_hook.create_share("open_orders", "orders", access="organization", **options)
    sql_hook.grant_share("orders", to_user=READER, as_user=OWNER)
    sql_hook.attach_share(orders.url, "orders_in", as_user=READER)
    return emulator


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        (
            {"restricted_shares": ["main.orders"]},
            r"restricted_shares\[0\]='main.orders' is invalid: it contains a dot",
        ),
        ({"shares": "orders"}, r"shares='orders' is invalid: not a JSON list"),
        ({"usernames": [" etl_bot"]}, r"usernames\[0\]=' etl_bot' is invalid"),
        ({"read_attachments": "yes"}, r"read_attachments='yes' is invalid: expected True or False"),
    ],
)
def test_bad_literals_fail_at_parse_time(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=f"MotherDuckAccessAuditOperator 't': {named}"):
        MotherDuckAccessAuditOperator(task_id="t", **kwargs)  # type: ignore[arg-type]


def test_templates_are_checked_after_rendering(org: MotherDuckEmulator) -> None:
    op = MotherDuckAccessAuditOperator(task_id="t", restricted_shares="{{ params.shares }}")
    with pytest.raises(ValueError, match=r"restricted_shares\[0\]='a.b' is invalid"):
        run(op, {"shares": '["a.b"]'})


def test_the_report_as_xcom_and_as_a_table(
    org: MotherDuckEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    op = MotherDuckAccessAuditOperator(
        task_id="t", restricted_shares=["open_orders"], shares=["orders"], read_attachments=True
    )
    with caplog.at_level("INFO"):
        report = run(op)
    rows = {row["username"]: row for row in report["accounts"]}
    assert rows[READER]["shares"] == [
        {"share": "open_orders", "owner": OWNER, "via": "organization", "role": None},
        {"share": "orders", "owner": OWNER, "via": "user", "role": None},
    ]
    assert rows[READER]["attached"] == [{"alias": "orders_in", "database": "orders"}]
    assert report["violations"] == [
        {"rule": "service_account_admin", "username": OPS, "share": None},
        {"rule": "restricted_share_open", "username": None, "share": "open_orders"},
    ]
    # Airflow 2 logs through logging (caplog); Airflow 3's task logger prints through structlog.
    logged = caplog.text + "".join(capfd.readouterr())
    assert "Access of 4 account(s) over 2 share(s): 2 violation(s)." in logged
    words = {" ".join(line.split()) for line in logged.splitlines()}  # the table's rows, spaces folded
    assert any(
        f"{READER} service - open_orders via organization, orders via user orders_in -" in line
        for line in words
    )
    assert any(
        f"{OPS} service admin, builder*, explorer* open_orders via organization" in line for line in words
    )
    assert not any(is_session_token(t["name"]) for u in (OWNER, READER, OPS) for t in org.tokens(u))


def test_fail_on_violation_names_each_one(org: MotherDuckEmulator) -> None:
    op = MotherDuckAccessAuditOperator(task_id="t", restricted_shares=["open_orders"], fail_on_violation=True)
    with pytest.raises(MotherDuckError, match="2 access violation") as raised:
        run(op)
    assert str(raised.value).splitlines()[1:] == [
        f"  - service_account_admin: {OPS}",
        "  - restricted_share_open: open_orders",
    ]
    quiet = MotherDuckAccessAuditOperator(task_id="t", usernames=[READER], fail_on_violation=True)
    assert run(quiet)["violations"] == []  # the open share is not declared restricted here


@pytest.mark.airflow_run
def test_the_audit_in_a_real_dag_run(org: MotherDuckEmulator, motherduck_dag_run: DagRunner) -> None:
    with DAG("md_access_audit", schedule=None, start_date=datetime(2025, 1, 1)) as dag:
        MotherDuckAccessAuditOperator(
            task_id="audit", restricted_shares=["open_orders"], shares=["orders"], read_attachments=True
        )
        MotherDuckAccessAuditOperator(
            task_id="strict", restricted_shares=["open_orders"], fail_on_violation=True
        )
    result = motherduck_dag_run(dag)
    assert result.states == {"audit": "success", "strict": "failed"}
    report = result.xcoms["audit"]
    assert [(v["rule"], v["username"] or v["share"]) for v in report["violations"]] == [
        ("service_account_admin", OPS),
        ("restricted_share_open", "open_orders"),
    ]
    assert {row["username"]: row["attached"] for row in report["accounts"]}[READER] == [
        {"alias": "orders_in", "database": "orders"}
    ]
