"""The operators in a real ``airflow dags test`` run: mapping, rendering, Variables, XCom and log secrecy.

One DAG run (about 10 s or more) carries all of it, so the assertions are grouped here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.operators.helpers import (
    SECRET_RE,
    DagRunRecord,
    everything_printed,
    failure_excerpt,
    leaked_secrets,
    variable,
)
from tests.support import CONN_ENV, connection_json, scans_dags_test_output_for_secrets

DAGS = Path(__file__).parent / "dags"
DAG_ID = "md_operator_contract"
USERS = ["svc_a", "svc_b", "svc_c"]

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _lifetime(token: dict[str, str]) -> float:
    created, expires = (
        datetime.fromisoformat(token[k].replace("Z", "+00:00")) for k in ("created_ts", "expire_at")
    )
    return (expires - created).total_seconds()


@pytest.mark.airflow_run
@scans_dags_test_output_for_secrets
def test_operators_in_a_real_dag_run(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str
) -> None:
    emulator.add_user("svc_b")  # exists already: exists_ok=True must let the mapped task pass
    result = airflow_dag_runner(DAG_ID, DAGS, {CONN_ENV: connection_json(emulator.url, emulator.admin_token)})
    record = DagRunRecord(airflow_db, DAG_ID)
    states = record.states()
    printed = everything_printed(result, airflow_db, DAG_ID)

    # Every task ran as planned; only the two with badly rendered values failed.
    failed = {key for key, state in states.items() if state != "success"}
    assert failed == {("bad_username", -1), ("bad_ttl", -1)}, failure_excerpt(printed)
    for task in ("create_users", "size", "create_tokens", "list_tokens", "get_config", "revoke_revealed"):
        assert {m for t, m in states if t == task} == {0, 1, 2}, task

    # Rendered bad values were refused before any request, with the field named.
    assert "username='9lives' is invalid" in printed
    assert "ttl='1 minute' is invalid" in printed
    posted = [(e.path, e.body) for e in emulator.journal if e.method == "POST"]
    assert all(body.get("username") != "9lives" and body.get("name") != "never_created" for _, body in posted)

    # Mapped create-user over three names, one of which existed.
    xcom = record.xcom()
    assert [xcom[("create_users", i)] for i in range(3)] == [
        {"username": "svc_a", "created": True},
        {"username": "svc_b", "created": False},
        {"username": "svc_c", "created": True},
    ]
    assert sorted(emulator.users()) == ["admin", *USERS]

    # Templated dict under mapping: every account got the rendered size, the rest merged.
    for i, user in enumerate(USERS):
        config = emulator.duckling_config(user)
        assert config["read_write"] == {"instance_size": "jumbo", "cooldown_seconds": 60}
        assert config["read_scaling"]["flock_size"] == 4
        assert xcom[("get_config", i)] == config

    # Tokens: templated name and TTL, metadata-only XCom, secret in the Variable and nowhere else.
    secrets = []
    for i, user in enumerate(USERS):
        assert set(xcom[("create_tokens", i)]) == {"username", "token"}
        meta = xcom[("create_tokens", i)]["token"]
        assert set(meta) == {"id", "name", "token_type", "expire_at", "created_ts", "read_only", "username"}
        assert (meta["username"], meta["name"]) == (user, "nightly")
        assert _lifetime(meta) == pytest.approx(7200, abs=1)
        secret = variable(airflow_db, f"md_contract_{user}")
        assert secret is not None
        assert emulator.is_valid_token(secret)
        secrets.append(secret)
        assert [t["id"] for t in emulator.tokens(user) if t["name"] == "nightly"] == [meta["id"]]
    assert len(set(secrets)) == 3

    # list_tokens was mapped over create_users' XCom and saw the tokens made upstream.
    for i, user in enumerate(USERS):
        names = sorted(t["name"] for t in xcom[("list_tokens", i)])
        assert names == (["nightly", "revealed"] if user == "svc_a" else ["nightly"])

    # Positive control: return_secret=True does put a real secret in the XCom table ...
    revealed = xcom[("reveal", -1)]["secret"]
    assert SECRET_RE.fullmatch(revealed)
    raw = record.xcom_raw()
    assert [key for key, text in raw.items() if SECRET_RE.search(text)] == [("reveal", -1)]
    # ... and it was revoked by name afterwards (missing_ok on the accounts without one).
    assert [xcom[("revoke_revealed", i)]["revoked_ids"] for i in range(3)][1:] == [[], []]
    assert not emulator.is_valid_token(revealed)

    # No secret in the task logs or the run's output, not even the revealed one (masked),
    # and none in the rendered template fields the UI shows.
    assert leaked_secrets(printed, [*secrets, revealed, emulator.admin_token]) == []
    rendered = record.rendered_fields()
    assert rendered[("create_tokens", 0)]["ttl"] == "2 hours"
    assert rendered[("create_tokens", 2)]["variable_key"] == "md_contract_svc_c"
    assert rendered[("bad_username", -1)]["username"] == "9lives"
    assert not SECRET_RE.search(json.dumps(list(rendered.values())))
