"""``make demo``'s account of each run (``scripts/run_demo.py``), over a real run's XComs and logs.

One ``airflow dags test`` of a DAG that plans, applies and drift-checks a declaration, rotates a
token and audits the tokens: the account read back from its metadata database and logs shows
the plan table, the drift verdict, the audit findings and each rotated token's fate with its
reason, and no secret the emulator ever issued.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import SECRET_RE, everything_printed, failure_excerpt
from tests.support import CONN_ENV, REPO_ROOT, connection_json

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
DAG_FILE = f"""
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

from airflow_provider_motherduck.operators import (
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
    plan >> apply >> check >> rotate >> audit
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
    oldest, newest = (
        emulator.add_token(ROTATED, "airflow") for _ in range(2)
    )  # no expiry: the audit flags them
    result = airflow_dag_runner(
        DAG_ID, tmp_path, {CONN_ENV: connection_json(emulator.url, emulator.admin_token)}
    )
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
    # No secret the emulator ever issued.
    secrets = [s["secret"] for s in emulator.issued_secrets()]
    assert not SECRET_RE.search(text)
    assert [s for s in secrets if s in text] == []
