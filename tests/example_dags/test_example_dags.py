"""The example DAGs, run end to end with ``airflow dags test`` against the emulator, and imported cleanly.

Each run checks the emulator's state afterwards (users, tokens, Duckling configs), the Variables
written, the XCom stored, and that no token secret shows in the run's output or logs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3_2
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import default_record_key
from tests.operators.helpers import (
    SECRET_RE,
    DagRunRecord,
    everything_printed,
    failure_excerpt,
    leaked_secrets,
    set_variable,
    variable,
)
from tests.support import CONN_ENV, REPO_ROOT, connection_json, scans_dags_test_output_for_secrets

EXAMPLES = REPO_ROOT / "example_dags"
MINE = (
    "example_motherduck_onboarding",
    "example_motherduck_token_rotation",
    "example_motherduck_offboarding",
    "example_motherduck_bulk_onboarding",
)

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _lifetime_days(token: dict[str, Any]) -> float:
    created, expires = (
        datetime.fromisoformat(token[k].replace("Z", "+00:00")) for k in ("created_ts", "expire_at")
    )
    return (expires - created).total_seconds() / 86400


def _run(
    dag_id: str, emulator: MotherDuckEmulator, runner: Runner, airflow_home: str
) -> tuple[DagRunRecord, str]:
    result = runner(dag_id, EXAMPLES, {CONN_ENV: connection_json(emulator.url, emulator.admin_token)})
    printed = everything_printed(result, airflow_home, dag_id)
    record = DagRunRecord(airflow_home, dag_id)
    failed = {key: state for key, state in record.states().items() if state != "success"}
    assert not failed, failure_excerpt(printed)
    assert result.returncode == 0, failure_excerpt(printed)
    return record, printed


def _no_secret_in_xcom(record: DagRunRecord) -> None:
    leaks = [key for key, text in record.xcom_raw().items() if SECRET_RE.search(text)]
    assert leaks == []


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_onboarding(emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str) -> None:
    emulator.add_user("bi_dashboards")  # onboarded before: the run must take it in its stride
    record, printed = _run("example_motherduck_onboarding", emulator, airflow_dag_runner, airflow_db)

    accounts = ["etl_loader", "bi_dashboards", "ml_features"]
    assert sorted(emulator.users()) == sorted(["admin", *accounts])
    xcom = record.xcom()
    assert [xcom[("create_user", i)]["created"] for i in range(3)] == [True, False, True]

    # Partial sizes merged into each account's config (pulse drops the cooldown).
    assert emulator.duckling_config("etl_loader") == {
        "read_write": {"instance_size": "jumbo", "cooldown_seconds": 60},
        "read_scaling": {"instance_size": "standard", "flock_size": 2, "cooldown_seconds": 60},
    }
    assert emulator.duckling_config("bi_dashboards")["read_scaling"]["flock_size"] == 8
    assert emulator.duckling_config("ml_features") == {
        "read_write": {"instance_size": "pulse"},
        "read_scaling": {"instance_size": "pulse", "flock_size": 1},
    }

    secrets = []
    for i, user in enumerate(accounts):
        (token,) = emulator.tokens(user)
        assert token["name"] == "airflow"
        assert _lifetime_days(token) == pytest.approx(90, abs=0.01)
        assert xcom[("create_token", i)]["token"]["id"] == token["id"]
        secret = variable(airflow_db, f"motherduck_token_{user}")
        assert secret is not None
        assert emulator.is_valid_token(secret)
        secrets.append(secret)
    assert len(set(secrets)) == 3

    _no_secret_in_xcom(record)
    assert leaked_secrets(printed, [*secrets, emulator.admin_token]) == []


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_token_rotation(airflow_dag_runner: Runner, airflow_db: str) -> None:
    """A weekly rotation whose run cannot revoke one old token, then a re-run of the same week."""
    dag_id = "example_motherduck_token_rotation"
    age = {"days": 0}  # the emulator's clock runs this many days behind, to seed earlier tokens
    with MotherDuckEmulator(
        clock=lambda: datetime.now(timezone.utc) - timedelta(days=age["days"])
    ) as emulator:
        emulator.add_user("dbt_prod")
        old = []
        for age["days"] in (20, 13, 6):  # made by three earlier weekly rotations
            old.append(emulator.add_token("dbt_prod", "airflow"))
        age["days"] = 0
        dbt = emulator.add_token("dbt_prod", "dbt")  # another name: left alone
        env = {CONN_ENV: connection_json(emulator.url, emulator.admin_token, retry_delay=0.01)}
        stuck = old[0]["id"]
        # The oldest token's revoke fails past the hook's 3 retries.
        emulator.inject("DELETE", f"/v1/users/dbt_prod/tokens/{stuck}", status=503, times=4)

        first = airflow_dag_runner(dag_id, EXAMPLES, env, logical_date="2025-01-06")
        printed = everything_printed(first, airflow_db, dag_id)
        assert DagRunRecord(airflow_db, dag_id).states() == {("rotate_token", -1): "failed"}, failure_excerpt(
            printed
        )
        assert f"still live: {stuck}" in printed
        (new,) = [t for t in emulator.tokens("dbt_prod") if t["name"] == "airflow@20250106T000000Z"]
        # Delivered before anything was revoked: the Variable holds the new, working secret.
        secret = variable(airflow_db, "motherduck_token_dbt_prod")
        assert secret is not None
        assert emulator.is_valid_token(secret)
        delivery = json.loads(
            variable(airflow_db, default_record_key(variable_key="motherduck_token_dbt_prod")) or "{}"
        )
        assert (delivery["delivered"]["id"], delivery["delivered"]["name"]) == (new["id"], new["name"])
        assert not SECRET_RE.search(json.dumps(delivery))
        # keep=2: the new token and the newest old one stay; the middle one went, the oldest is stuck.
        assert [t["id"] for t in emulator.tokens("dbt_prod")] == [stuck, old[2]["id"], dbt["id"], new["id"]]

        # Clearing the run (here: the same logical date again) finishes the job, creating nothing.
        second = airflow_dag_runner(dag_id, EXAMPLES, env, logical_date="2025-01-06")
        printed += everything_printed(second, airflow_db, dag_id)
        record = DagRunRecord(airflow_db, dag_id)
        assert record.states() == {("rotate_token", -1): "success"}, failure_excerpt(printed)
        summary = record.xcom()[("rotate_token", -1)]
        assert (summary["created"], summary["token"]["id"]) == (False, new["id"])
        assert (summary["revoked_ids"], summary["kept_ids"], summary["still_live_ids"]) == (
            [stuck],
            [new["id"], old[2]["id"]],
            [],
        )
        assert [e.method for e in emulator.journal].count("POST") == 1  # one new token in all
        assert [t["id"] for t in emulator.tokens("dbt_prod")] == [old[2]["id"], dbt["id"], new["id"]]
        assert _lifetime_days(new) == pytest.approx(35, abs=0.01)
        assert variable(airflow_db, "motherduck_token_dbt_prod") == secret
        assert emulator.is_valid_token(secret)
        assert emulator.is_valid_token(dbt["token"])

        _no_secret_in_xcom(record)
        known = [secret, dbt["token"], emulator.admin_token, *(t["token"] for t in old)]
        assert leaked_secrets(printed, known) == []


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_offboarding(emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str) -> None:
    emulator.load_seed(
        {"users": ["legacy_etl", "tableau_extracts", "busy_other"]}
    )  # churn_model_v1 is gone already
    emulator.set_ducklings("busy_other", [{"id": "rw", "type": "read_write", "status": "active"}])  # not ours
    legacy = [emulator.add_token("legacy_etl", "airflow") for _ in range(2)]
    dbt = emulator.add_token("legacy_etl", "dbt")
    extracts = emulator.add_token("tableau_extracts", "airflow")
    for user in (
        "tableau_extracts",
        "churn_model_v1",
    ):  # the metadata database is shared by the session's tests
        set_variable(airflow_db, f"motherduck_token_{user}", None)
        set_variable(airflow_db, default_record_key(variable_key=f"motherduck_token_{user}"), None)
    set_variable(airflow_db, "motherduck_token_legacy_etl", legacy[1]["token"])
    set_variable(airflow_db, default_record_key(variable_key="motherduck_token_legacy_etl"), "{}")
    record, printed = _run("example_motherduck_offboarding", emulator, airflow_dag_runner, airflow_db)

    assert emulator.users() == ["admin", "busy_other"]
    xcom = record.xcom()
    assert xcom[("offboard.wait_until_idle", -1)] == []
    assert [xcom[("offboard.offboard_account", i)] for i in range(3)] == [
        {
            "username": "legacy_etl",
            "revoked_ids": [t["id"] for t in [*legacy, dbt]],  # every token, whatever its name
            "deleted": True,
            "variables_deleted": [
                "motherduck_token_legacy_etl",
                default_record_key(variable_key="motherduck_token_legacy_etl"),
            ],
        },
        {
            "username": "tableau_extracts",
            "revoked_ids": [extracts["id"]],
            "deleted": True,
            "variables_deleted": [],
        },
        {"username": "churn_model_v1", "revoked_ids": [], "deleted": False, "variables_deleted": []},
    ]
    assert variable(airflow_db, "motherduck_token_legacy_etl") is None
    assert variable(airflow_db, default_record_key(variable_key="motherduck_token_legacy_etl")) is None

    deletes = sorted(e.path for e in emulator.journal if e.method == "DELETE")
    assert deletes == sorted(
        [
            *(f"/v1/users/legacy_etl/tokens/{t['id']}" for t in [*legacy, dbt]),
            f"/v1/users/tableau_extracts/tokens/{extracts['id']}",
            "/v1/users/legacy_etl",
            "/v1/users/tableau_extracts",
            "/v1/users/churn_model_v1",
        ]
    )
    assert not any(emulator.is_valid_token(t["token"]) for t in [*legacy, dbt, extracts])
    assert (
        leaked_secrets(printed, [emulator.admin_token, *(t["token"] for t in [*legacy, dbt, extracts])]) == []
    )


# Imports each file as the DAG processor would, recording every warning, then parses the folder
# with DagBag. Runs in a fresh interpreter so that module-level warnings fire again.
_IMPORT_CHECK = """
import importlib.util, json, sys, warnings
from pathlib import Path

import airflow
try:
    import airflow.sdk
except ImportError:
    pass

folder = Path(sys.argv[1])
files = {}
for path in sorted(folder.glob("*.py")):
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            spec = importlib.util.spec_from_file_location(f"_example_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
    deprecations = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
    ]
    files[path.name] = {"error": error, "deprecations": deprecations}

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=str(folder))  # examples off: AIRFLOW__CORE__LOAD_EXAMPLES=False
report = {"files": files, "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
          "dags": {dag_id: Path(dag.fileloc).name for dag_id, dag in bag.dags.items()}}
print("REPORT " + json.dumps(report))
"""


def test_every_example_imports_cleanly() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK, str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))

    assert report["import_errors"] == {}
    for name, found in report["files"].items():
        assert found["error"] is None, (name, found["error"])
        # On 3.0 and 3.1 `from airflow.sdk import task` warns by itself (the common-compat provider's
        # airflow.operators.branch), so the check that the examples use no deprecated name needs 3.2+.
        if AIRFLOW_V_3_2:
            assert found["deprecations"] == [], (name, found["deprecations"])
    for dag_id in MINE:
        assert report["dags"][dag_id] == f"{dag_id}.py"
