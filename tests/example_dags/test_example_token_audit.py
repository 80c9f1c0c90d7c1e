"""The nightly token audit example DAG, run for real with ``airflow dags test`` against the emulator."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import DagRunRecord, everything_printed, failure_excerpt, leaked_secrets
from tests.support import CONN_ENV, REPO_ROOT, connection_json, scans_dags_test_output_for_secrets

DAG_ID = "example_motherduck_token_audit"
DAY = 86_400

Runner = Callable[..., subprocess.CompletedProcess[str]]


@scans_dags_test_output_for_secrets
@pytest.mark.airflow_run
def test_nightly_audit_reports_violations_and_succeeds(airflow_dag_runner: Runner, airflow_db: str) -> None:
    age = {"days": 0}  # the emulator's clock runs this many days behind, to seed old tokens
    with MotherDuckEmulator(
        clock=lambda: datetime.now(timezone.utc) - timedelta(days=age["days"])
    ) as emulator:
        for name in ("etl_loader", "bi_dashboards", "ml_features", "legacy_bot"):
            emulator.add_user(name)
        emulator.add_user("jane", roles=["builder"])  # a human
        emulator.add_user("ops_admin", roles=["admin"], human=False)  # a service account with the Admin role
        emulator.add_user("gone_bot", deprovisioned=True)
        fine = emulator.add_token("etl_loader", "airflow", ttl=90 * DAY)
        soon = emulator.add_token("bi_dashboards", "airflow", ttl=7 * DAY, token_type="read_scaling")
        forever = emulator.add_token("ml_features", "notebook")
        left_out = [emulator.add_token(name, "laptop") for name in ("jane", "ops_admin", "gone_bot")]
        age["days"] = 200
        old = emulator.add_token("legacy_bot", "airflow", ttl=365 * DAY)
        age["days"] = 0

        result = airflow_dag_runner(
            DAG_ID,
            REPO_ROOT / "example_dags",
            {CONN_ENV: connection_json(emulator.url, emulator.admin_token)},
        )
        printed = everything_printed(result, airflow_db, DAG_ID)
        record = DagRunRecord(airflow_db, DAG_ID)
        assert record.states() == {("audit_tokens", -1): "success"}, failure_excerpt(printed)
        assert result.returncode == 0, failure_excerpt(printed)

        audit = record.xcom()[("audit_tokens", -1)]
        assert {row["id"]: row["breaks"] for row in audit["tokens"]} == {
            soon["id"]: ["expires_soon"],
            fine["id"]: [],
            old["id"]: ["too_old"],
            forever["id"]: ["never_expires"],
        }
        assert [row["username"] for row in audit["violations"]] == [
            "bi_dashboards",
            "legacy_bot",
            "ml_features",
        ]
        assert "Audited 4 token(s): 3 break a rule." in printed
        assert f"legacy_bot     {old['id']}  airflow   read_write" in printed  # the table, as logged
        assert "never_expires" in printed
        assert {e.method for e in emulator.journal} == {"GET"}
        listed = sorted(e.path for e in emulator.journal if e.path.endswith("/tokens"))
        assert listed == [
            f"/v1/users/{n}/tokens" for n in ("bi_dashboards", "etl_loader", "legacy_bot", "ml_features")
        ]
        secrets = [t["token"] for t in (fine, soon, forever, old, *left_out)] + [emulator.admin_token]
        assert leaked_secrets(printed + str(record.xcom_raw()), secrets) == []
