"""``make demo``'s account of each run (``scripts/run_demo.py``), over a real run's XComs and logs.

One ``airflow dags test`` of a DAG that plans, applies and drift-checks a declaration, rotates a
token, audits the tokens, and gives an account data to read (a role, a share, its grant and
attachment, a count through it, the access report): the account read back from its metadata
database and logs shows the plan table, the drift verdict, the audit findings, each rotated
token's fate with its reason, the access given and read, and no secret the emulator ever issued
(the short-lived SQL session tokens included).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from airflow_provider_motherduck.hooks.sql import is_session_token
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import SECRET_RE, everything_printed, failure_excerpt
from tests.support import CONN_ENV, REPO_ROOT, session_tokens

DAG_ID = "demo_story"
ROTATED = "demo_story_rotated_service_account"  # longer than any column's header: the tables widen
DECLARATION = """
name: demo_story
service_accounts:
  - username: demo_story_loader
    read_write: {instance_size: jumbo}
    tokens:
      - {name: airflow, ttl: 90 days, variable_key: demo_story_token_loader}
"""
OWNER = "demo_story_owner"  # owns the database demo_story_db (table orders: 42 rows)
READER = "demo_story_reader"
DAG_FILE = f"""
from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators import (
    MotherDuckAccessAuditOperator,
    MotherDuckCreateRoleOperator,
    MotherDuckCreateShareOperator,
    MotherDuckGrantRoleOperator,
    MotherDuckOnboardAccountOperator,
    MotherDuckReconcileOperator,
    MotherDuckRotateTokenOperator,
    MotherDuckTokenAuditOperator,
)

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
    plan = MotherDuckReconcileOperator(task_id="plan", desired="declaration.yaml", mode="plan")
    apply = MotherDuckReconcileOperator(task_id="apply", desired="declaration.yaml", mode="apply")
    check = MotherDuckReconcileOperator(task_id="check", desired="declaration.yaml", mode="check")
    rotate = MotherDuckRotateTokenOperator(
        task_id="rotate", username="{ROTATED}", token_name="airflow", ttl="35 days",
        variable_key="demo_story_token_rotated", keep=2,
    )
    audit = MotherDuckTokenAuditOperator(task_id="audit", require_expiry=True)
    role = MotherDuckCreateRoleOperator(task_id="role", role="story_readers")
    nest = MotherDuckGrantRoleOperator(task_id="nest", role="explorer", to_role="story_readers")
    share = MotherDuckCreateShareOperator(
        task_id="share", share="story_share", database="demo_story_db", include=["main.orders"],
        as_user="{OWNER}",
    )
    onboard = MotherDuckOnboardAccountOperator(
        task_id="onboard", username="{READER}", token_name="airflow", ttl="90 days",
        variable_key="demo_story_token_reader", roles=["story_readers"],
        shares=[{{"share": "story_share", "owner": "{OWNER}", "alias": "story_in"}}],
    )

    @task
    def count() -> dict[str, object]:
        hook = MotherDuckHook()
        rows = hook.count_rows("story_in.main.orders", as_user="{READER}")
        hook.close()
        return {{"username": "{READER}", "table": "story_in.main.orders", "row_count": rows}}

    access = MotherDuckAccessAuditOperator(
        task_id="access", usernames=["{READER}"], restricted_shares=["story_share"], read_attachments=True
    )
    plan >> apply >> check >> rotate >> audit >> role >> nest >> share >> onboard >> count() >> access
"""


def _run_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_demo", REPO_ROOT / "scripts" / "run_demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.airflow_run
def test_story_of_a_run(
    emulator: MotherDuckEmulator,
    airflow_dag_runner: Callable[..., subprocess.CompletedProcess[str]],
    airflow_db: str,
    tmp_path: Path,
) -> None:
    (tmp_path / "declaration.yaml").write_text(DECLARATION)
    (tmp_path / "demo_story_dag.py").write_text(DAG_FILE)
    emulator.add_user(ROTATED)
    emulator.add_user(OWNER)
    emulator.add_database(OWNER, "demo_story_db", tables={"orders": 42})
    oldest, newest = (
        emulator.add_token(ROTATED, "airflow") for _ in range(2)
    )  # no expiry: the audit flags them
    result = airflow_dag_runner(DAG_ID, tmp_path, {CONN_ENV: json.dumps(emulator.airflow_connection())})
    printed = everything_printed(result, airflow_db, DAG_ID)
    assert result.returncode == 0, failure_excerpt(printed)

    demo = _run_demo()
    text = "\n".join(demo.story(demo.last_run(Path(airflow_db), DAG_ID, result.stdout + result.stderr)))
    print(text)  # shown when an assertion fails

    # The plan, as a table, then the drift verdict once applied.
    assert "plan of 'demo_story' (prune=False): 3 action(s)" in text
    assert ["create_user", "demo_story_loader", "new", "service", "account"] in [
        line.split() for line in text.splitlines()
    ]
    assert "drift check of 'demo_story': no drift" in text
    assert "applied 3 of 3; failed: none" in text
    # The rotation: the new token and the newest old one kept (keep=2), the oldest revoked, each with its reason.
    (new,) = [t for t in emulator.tokens(ROTATED) if t["id"] not in (oldest["id"], newest["id"])]
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("    ") and line.split()}
    assert rows[new["id"]].split()[1:] == ["kept", "the", "new", "token"]
    assert rows[newest["id"]].split()[1:] == ["kept", "among", "the", "2", "newest", "(keep=2)"]
    assert rows[oldest["id"]].split()[1:] == ["revoked", "past", "keep"]
    # The audit findings: the two tokens with no expiry.
    findings = [line.split() for line in text.splitlines() if "never_expires" in line]
    assert [f[:2] for f in findings if f[1] == newest["id"]] == [[ROTATED, newest["id"]]]
    # The access given, the rows read through the attachment, and the access report.
    assert "role: role story_readers created" in text
    assert "nest: role explorer to the role story_readers: granted" in text
    assert (
        "share: share story_share of demo_story_db (restricted, hidden; main.orders), "
        f"owned by {OWNER}: created" in text
    )
    assert (
        "    access: roles granted: story_readers; read granted by each share's owner: story_share; "
        "attached as the account itself: story_in" in text
    )
    assert f"count: {READER} reads 42 row(s) of story_in.main.orders" in text
    assert "access: access of 1 account(s), 0 finding(s) (* = held through another role)" in text
    row = f"{READER} service explorer*, story_readers story_share via user story_in -"
    assert row.split() in [line.split() for line in text.splitlines()]
    # No secret the emulator ever issued, the short-lived SQL session tokens among them (none left live).
    issued = emulator.issued_secrets()
    assert any(is_session_token(s["name"]) for s in issued)
    assert session_tokens(emulator) == []
    secrets = [s["secret"] for s in issued]
    assert not SECRET_RE.search(text)
    assert [s for s in secrets if s in text] == []
    assert "md:_share/" not in text  # nor a share's URL
