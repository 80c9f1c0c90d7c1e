"""The example DAGs, run end to end with ``airflow dags test`` against the emulator, and imported cleanly.

Each run checks the emulator's state afterwards (users, tokens, Duckling configs), the Variables
written, the XCom stored, and that no token secret shows in the run's output or logs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import (
    SECRET_RE,
    DagRunRecord,
    everything_printed,
    failure_excerpt,
    leaked_secrets,
    variable,
)
from tests.support import CONN_ENV, REPO_ROOT, connection_json

EXAMPLES = REPO_ROOT / "example_dags"
MINE = (
    "example_motherduck_onboarding",
    "example_motherduck_token_rotation",
    "example_motherduck_offboarding",
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
        assert xcom[("create_token", i)]["id"] == token["id"]
        secret = variable(airflow_db, f"motherduck_token_{user}")
        assert secret is not None
        assert emulator.is_valid_token(secret)
        secrets.append(secret)
    assert len(set(secrets)) == 3

    _no_secret_in_xcom(record)
    assert leaked_secrets(printed, [*secrets, emulator.admin_token]) == []


@pytest.mark.airflow_run
def test_token_rotation(emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str) -> None:
    emulator.add_user("etl_loader")
    old = [emulator.add_token("etl_loader", "airflow") for _ in range(2)]
    dbt = emulator.add_token("etl_loader", "dbt")  # another name: left alone
    record, printed = _run("example_motherduck_token_rotation", emulator, airflow_dag_runner, airflow_db)

    xcom = record.xcom()
    new_id = xcom[("create_token", -1)]["id"]
    assert sorted(xcom[("older_token_ids", -1)]) == sorted(t["id"] for t in old)
    assert sorted(xcom[("revoke_token", i)]["deleted"][0] for i in range(2)) == sorted(t["id"] for t in old)

    tokens = {t["name"]: t for t in emulator.tokens("etl_loader")}
    assert sorted(tokens) == ["airflow", "dbt"]
    assert tokens["airflow"]["id"] == new_id
    assert _lifetime_days(tokens["airflow"]) == pytest.approx(35, abs=0.01)
    assert not any(emulator.is_valid_token(t["token"]) for t in old)
    assert emulator.is_valid_token(dbt["token"])

    secret = variable(airflow_db, "motherduck_token_etl_loader")
    assert secret is not None
    assert emulator.is_valid_token(secret)  # the only live "airflow" token is the new one

    _no_secret_in_xcom(record)
    known = [secret, dbt["token"], emulator.admin_token, *(t["token"] for t in old)]
    assert leaked_secrets(printed, known) == []


@pytest.mark.airflow_run
def test_offboarding(emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str) -> None:
    emulator.load_seed({"users": ["etl_loader", "bi_dashboards"]})  # ml_features is gone already
    etl = [emulator.add_token("etl_loader", "airflow") for _ in range(2)]
    dbt = emulator.add_token("etl_loader", "dbt")
    bi = emulator.add_token("bi_dashboards", "airflow")
    record, printed = _run("example_motherduck_offboarding", emulator, airflow_dag_runner, airflow_db)

    assert emulator.users() == ["admin"]
    xcom = record.xcom()
    assert [xcom[("revoke_tokens", i)] for i in range(3)] == [
        {"username": "etl_loader", "deleted": [t["id"] for t in etl]},
        {"username": "bi_dashboards", "deleted": [bi["id"]]},
        {"username": "ml_features", "deleted": []},
    ]
    assert [xcom[("delete_user", i)]["deleted"] for i in range(3)] == [True, True, False]

    deletes = sorted(e.path for e in emulator.journal if e.method == "DELETE")
    assert deletes == sorted(
        [
            *(f"/v1/users/etl_loader/tokens/{t['id']}" for t in etl),
            f"/v1/users/bi_dashboards/tokens/{bi['id']}",
            "/v1/users/etl_loader",
            "/v1/users/bi_dashboards",
            "/v1/users/ml_features",
        ]
    )
    assert not any(emulator.is_valid_token(t["token"]) for t in [*etl, dbt, bi])
    assert leaked_secrets(printed, [emulator.admin_token, *(t["token"] for t in [*etl, dbt, bi])]) == []


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
        if AIRFLOW_V_3:
            assert found["deprecations"] == [], (name, found["deprecations"])
    for dag_id in MINE:
        assert report["dags"][dag_id] == f"{dag_id}.py"
