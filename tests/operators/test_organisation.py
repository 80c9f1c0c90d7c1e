"""List users, token audit and Dive embed session operators against the emulator over real HTTP."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import (
    MotherDuckAuthError,
    MotherDuckError,
    MotherDuckRouteNotFoundError,
)
from airflow_provider_motherduck.operators import (
    MotherDuckCreateDiveEmbedSessionOperator,
    MotherDuckListUsersOperator,
    MotherDuckTokenAuditOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore
from tests.operators.helpers import (
    DagRunRecord,
    everything_printed,
    failure_excerpt,
    leaked_secrets,
    run,
    variable,
    writes_seen,
)
from tests.support import CONN_ENV, connection_json, scans_dags_test_output_for_secrets

pytestmark = pytest.mark.usefixtures("motherduck_conn")

DAGS = Path(__file__).parent / "dags"
DAG_ID = "md_organisation_contract"
Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def clock() -> dict[str, float]:
    """How many days the emulator's clock runs behind: tokens seeded meanwhile look that old."""
    return {"days": 0}


@pytest.fixture
def motherduck_emulator(clock: dict[str, float]) -> Iterator[MotherDuckEmulator]:
    """The plugin's emulator with a clock that can run behind (the connection fixtures use it)."""
    with MotherDuckEmulator(clock=lambda: datetime.now(timezone.utc) - timedelta(days=clock["days"])) as emu:
        yield emu


def printed(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything logged (Airflow 3 logs tasks to stdout, 2.11 through logging)."""
    return caplog.text + "".join(capfd.readouterr())


# -- list users ------------------------------------------------------------------------------------


def test_list_users_xcom_and_filters(emulator: MotherDuckEmulator) -> None:
    emulator.add_user("etl_bot")
    emulator.add_user("jane", roles=["explorer"])
    emulator.add_user("gone_bot", deprovisioned=True)

    everyone = run(MotherDuckListUsersOperator(task_id="users"))
    bots = run(MotherDuckListUsersOperator(task_id="bots", service_accounts=True, deprovisioned=None))

    assert [u["username"] for u in everyone] == ["admin", "etl_bot", "jane"]
    assert set(everyone[1]) == {
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "is_service_account",
        "is_deprovisioned",
        "roles",
    }
    assert [(u["username"], u["is_deprovisioned"]) for u in bots] == [("etl_bot", False), ("gone_bot", True)]
    sent = parse_qs(urlsplit(emulator.journal[-1].path).query)
    assert sent["is_service_account"] == ["true"]
    assert "is_deprovisioned" not in sent


def test_list_users_on_an_api_without_the_listing_says_so(emulator: MotherDuckEmulator) -> None:
    emulator.user_listing = False
    with pytest.raises(MotherDuckRouteNotFoundError, match="offers no user listing"):
        run(MotherDuckListUsersOperator(task_id="users"))
    with pytest.raises(MotherDuckRouteNotFoundError, match="offers no user listing"):
        run(MotherDuckTokenAuditOperator(task_id="audit"))  # its default selection lists users


# -- token audit -----------------------------------------------------------------------------------


@pytest.fixture
def fleet(emulator: MotherDuckEmulator, clock: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Tokens of four service accounts (fresh, expiring, old, never expiring) and a human's."""
    for name in ("bi_bot", "etl_bot", "ml_bot", "old_bot"):
        emulator.add_user(name)
    emulator.add_user("jane", roles=["builder"])
    made = {
        "fresh": emulator.add_token("etl_bot", "airflow", ttl=90 * 86_400),
        "soon": emulator.add_token("bi_bot", "dashboards", ttl=3 * 86_400, token_type="read_scaling"),
        "forever": emulator.add_token("ml_bot", "notebook"),
        "human": emulator.add_token("jane", "laptop"),  # human: not in the default audit
    }
    clock["days"] = 200
    made["old"] = emulator.add_token("old_bot", "legacy", ttl=365 * 86_400)
    clock["days"] = 0
    return made


def test_audit_flags_each_rule_and_logs_a_table(
    emulator: MotherDuckEmulator,
    fleet: dict[str, dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    audit = MotherDuckTokenAuditOperator(
        task_id="audit", expiring_within="14 days", max_age="P180D", require_expiry=True, max_workers=2
    )
    with caplog.at_level(logging.INFO):
        result = run(audit)
    shown = printed(caplog, capfd)

    assert set(result) == {"tokens", "violations"}
    found = {row["id"]: row["breaks"] for row in result["tokens"]}
    assert found == {
        fleet["soon"]["id"]: ["expires_soon"],
        fleet["fresh"]["id"]: [],
        fleet["forever"]["id"]: ["never_expires"],
        fleet["old"]["id"]: ["too_old"],
    }
    assert [row["id"] for row in result["violations"]] == [fleet[k]["id"] for k in ("soon", "forever", "old")]
    forever = next(row for row in result["tokens"] if row["id"] == fleet["forever"]["id"])
    assert forever["expire_at"] is None
    soon = next(row for row in result["tokens"] if row["id"] == fleet["soon"]["id"])
    assert (soon["username"], soon["name"], soon["token_type"]) == ("bi_bot", "dashboards", "read_scaling")

    assert "Audited 4 token(s): 3 break a rule." in shown
    assert re.search(r"username\s+id\s+name\s+type\s+created\s+expires\s+breaks", shown)
    assert re.search(
        rf"bi_bot\s+{fleet['soon']['id']}\s+dashboards\s+read_scaling\s+\S+\s+\S+\s+expires_soon", shown
    )
    assert re.search(
        rf"ml_bot\s+{fleet['forever']['id']}\s+notebook\s+read_write\s+\S+\s+never\s+never_expires", shown
    )
    assert re.search(rf"etl_bot\s+{fleet['fresh']['id']}\s+airflow\s+read_write\s+\S+\s+\S+\s+-", shown)
    assert leaked_secrets(shown + repr(result), [t["token"] for t in fleet.values()]) == []
    assert writes_seen(emulator) == []


def test_fail_on_violation_lists_ids_and_names_only(
    emulator: MotherDuckEmulator, fleet: dict[str, dict[str, Any]]
) -> None:
    audit = MotherDuckTokenAuditOperator(
        task_id="audit",
        usernames=["bi_bot", "ml_bot", "etl_bot"],
        expiring_within=7 * 86_400,
        fail_on_violation=True,
    )
    with pytest.raises(MotherDuckError) as info:
        run(audit)
    assert str(info.value) == (
        "1 of 3 token(s) break the audit rules:\n"
        f"  - bi_bot: token {fleet['soon']['id']} ('dashboards'): expires_soon"
    )
    compliant = MotherDuckTokenAuditOperator(
        task_id="audit", usernames=["etl_bot"], expiring_within="7 days", fail_on_violation=True
    )
    assert run(compliant)["violations"] == []


def test_audit_arguments_are_rendered_then_checked(
    emulator: MotherDuckEmulator, fleet: dict[str, dict[str, Any]]
) -> None:
    audit = MotherDuckTokenAuditOperator(
        task_id="audit",
        usernames="{{ params.users | tojson }}",
        expiring_within="{{ params.window }}",
        max_age="{{ params.age }}",
    )
    result = run(audit, {"users": ["old_bot", "ml_bot", "old_bot"], "window": "30 days", "age": "PT2400H"})
    assert (audit.usernames, audit.expiring_within, audit.max_age) == (
        ["old_bot", "ml_bot"],
        2_592_000,
        8_640_000,
    )
    assert [row["breaks"] for row in result["tokens"]] == [["too_old"], []]

    emulator.clear_journal()
    bad = MotherDuckTokenAuditOperator(task_id="bad", max_age="{{ params.age }}")
    with pytest.raises(
        ValueError, match=r"MotherDuckTokenAuditOperator 'bad': max_age='fortnight' is invalid"
    ):
        run(bad, {"age": "fortnight"})
    assert emulator.journal == []  # refused before any request


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expiring_within": "soon"}, "expiring_within='soon' is invalid: not a duration"),
        ({"max_age": -5}, "max_age=-5 is invalid: it is negative"),
        ({"require_expiry": "yes"}, "require_expiry='yes' is invalid"),
        ({"fail_on_violation": 1}, "fail_on_violation=1 is invalid"),
        ({"max_workers": 0}, "max_workers=0 is invalid: out of range"),
        ({"usernames": "etl_bot"}, "usernames='etl_bot' is invalid: not a JSON list"),
        ({"usernames": ["etl_bot", ""]}, r"usernames\[1\]='' is invalid: it is empty"),
        ({"usernames": {"etl_bot": 1}}, "usernames={'etl_bot': 1} is invalid: expected a list"),
    ],
)
def test_bad_audit_arguments_fail_at_parse_time(
    emulator: MotherDuckEmulator, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"MotherDuckTokenAuditOperator 'audit': {message}"):
        MotherDuckTokenAuditOperator(task_id="audit", **kwargs)
    assert emulator.journal == []


def test_bad_list_users_arguments_fail_at_parse_time() -> None:
    with pytest.raises(
        ValueError, match="MotherDuckListUsersOperator 'u': service_accounts='true' is invalid"
    ):
        MotherDuckListUsersOperator(task_id="u", service_accounts="true")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deprovisioned=0 is invalid"):
        MotherDuckListUsersOperator(task_id="u", deprovisioned=0)  # type: ignore[arg-type]


# -- Dive embed sessions ---------------------------------------------------------------------------


@pytest.fixture
def embed_bot(emulator: MotherDuckEmulator) -> str:
    emulator.add_user("embed_bot")
    return "embed_bot"


def test_embed_session_goes_to_the_variable_masked_never_to_xcom_or_logs(
    emulator: MotherDuckEmulator,
    embed_bot: str,
    motherduck_variables: InMemoryVariableStore,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    op = MotherDuckCreateDiveEmbedSessionOperator(
        task_id="embed",
        dive_id="{{ params.dive }}",
        username=embed_bot,
        session_name="kiosk",
        version=3,
        required_resources=[{"url": "md:sales", "alias": "sales"}],
        initial_state={"tab": "revenue"},
        variable_key="md_embed_kiosk",
    )
    with caplog.at_level(logging.DEBUG):
        result = run(op, {"dive": "dive-42"})
    shown = printed(caplog, capfd)

    (issued,) = emulator.embed_sessions()
    secret = issued["secret"]
    assert motherduck_variables == {
        "md_embed_kiosk": secret
    }  # no delivery record: nothing to recognise later
    assert result == {
        "dive_id": "dive-42",
        "username": "embed_bot",
        "session_name": "kiosk",
        "destination": "Airflow Variable md_embed_kiosk",
    }
    assert (issued["dive_id"], issued["session_name"], issued["version"]) == ("dive-42", "kiosk", 3)
    assert issued["initial_state"] == {"tab": "revenue"}
    assert redact(f"session={secret}") == "session=***"
    assert "Airflow Variable md_embed_kiosk" in shown
    assert leaked_secrets(shown + repr(result) + repr(op), [secret, emulator.admin_token]) == []


def test_embed_session_to_a_sink(
    emulator: MotherDuckEmulator, embed_bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    kept: list[str] = []

    def to_vault(secret: str) -> None:
        kept.append(secret)

    result = run(
        MotherDuckCreateDiveEmbedSessionOperator(
            task_id="embed", dive_id="d1", username=embed_bot, secret_sink=to_vault
        )
    )
    assert kept == [emulator.embed_sessions()[0]["secret"]]
    assert result["destination"] == "secret_sink to_vault"
    assert motherduck_variables.writes == []  # no record beside a sink either


def test_embed_session_without_business_plan_explains_the_403(
    emulator: MotherDuckEmulator, embed_bot: str, motherduck_variables: InMemoryVariableStore
) -> None:
    emulator.business_plan = False
    op = MotherDuckCreateDiveEmbedSessionOperator(
        task_id="embed", dive_id="d1", username=embed_bot, variable_key="md_embed"
    )
    with pytest.raises(MotherDuckAuthError) as info:
        run(op)
    assert info.value.status_code == 403
    assert "requires the Business plan" in str(info.value)  # MotherDuck's message, kept
    assert "need MotherDuck's Business plan" in str(info.value)  # the hook's explanation
    assert motherduck_variables == {}
    assert emulator.embed_sessions() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variable_key": None}, "give exactly one destination"),
        ({"secret_sink": print}, "give exactly one destination"),
        ({"version": 0}, "version=0 is invalid"),
        ({"session_name": " "}, "session_name=' ' is invalid"),
        ({"required_resources": [{"alias": "x"}]}, r"required_resources\[0\]=.* is invalid"),
        (
            {"required_resources": [{"url": "md:" + "x" * 9000}]},
            "required_resources .* is invalid: it is 9015 bytes as JSON, over the limit of 8192",
        ),
        ({"initial_state": ["not", "an", "object"]}, "initial_state .* is invalid: expected a mapping"),
        ({"dive_id": ".."}, "dive_id='..' is invalid"),
        ({"username": ""}, "username='' is invalid"),
        ({"variable_key": " padded"}, "variable_key=' padded' is invalid"),
    ],
)
def test_bad_embed_arguments_fail_at_parse_time(
    emulator: MotherDuckEmulator, kwargs: dict[str, Any], message: str
) -> None:
    args = {"dive_id": "d1", "username": "embed_bot", "variable_key": "md_embed", **kwargs}
    with pytest.raises(ValueError, match=f"MotherDuckCreateDiveEmbedSessionOperator 'embed': .*{message}"):
        MotherDuckCreateDiveEmbedSessionOperator(task_id="embed", **args)
    assert emulator.journal == []


# -- in a real DAG run -----------------------------------------------------------------------------


@scans_dags_test_output_for_secrets
@pytest.mark.airflow_run
def test_the_operators_in_a_real_dag_run(
    emulator: MotherDuckEmulator, airflow_dag_runner: Runner, airflow_db: str, tmp_path: Path
) -> None:
    for name in ("svc_a", "svc_b", "svc_c"):
        emulator.add_user(name)
    emulator.add_user("jane", roles=["builder"])
    soon = emulator.add_token("svc_a", "airflow", ttl=10 * 86_400)
    forever = emulator.add_token("svc_b", "airflow")
    fine = emulator.add_token("svc_c", "airflow", ttl=90 * 86_400)
    shutil.copy(DAGS / f"{DAG_ID}.py", tmp_path)  # a folder holding only this DAG

    result = airflow_dag_runner(
        DAG_ID, tmp_path, {CONN_ENV: connection_json(emulator.url, emulator.admin_token)}
    )
    shown = everything_printed(result, airflow_db, DAG_ID)
    record = DagRunRecord(airflow_db, DAG_ID)
    failed = {key for key, state in record.states().items() if state != "success"}
    assert failed == {("audit_strict", -1), ("bad_age", -1)}, failure_excerpt(shown)
    assert {m for t, m in record.states() if t in ("list_users", "audit")} == {0, 1}

    xcom = record.xcom()
    assert [[u["username"] for u in xcom[("list_users", i)]] for i in (0, 1)] == [
        ["svc_a", "svc_b", "svc_c"],
        ["admin", "jane"],
    ]
    assert {row["id"]: row["breaks"] for row in xcom[("audit", 0)]["tokens"]} == {
        soon["id"]: ["expires_soon"],
        forever["id"]: ["never_expires"],
        fine["id"]: [],
    }
    (admins,) = xcom[("audit", 1)]["tokens"]  # the admin's own token; jane has none
    assert (admins["username"], admins["breaks"]) == ("admin", ["never_expires"])

    assert (
        f"1 of 3 token(s) break the audit rules:\n  - svc_b: token {forever['id']} ('airflow'): never_expires"
        in shown
    )
    assert "MotherDuckTokenAuditOperator 'bad_age': max_age='fortnight' is invalid" in shown

    (session,) = emulator.embed_sessions()
    assert (session["dive_id"], session["initial_state"]) == ("dive-7", {"tab": "30 days"})
    assert variable(airflow_db, "md_contract_embed") == session["secret"]
    assert xcom[("embed", -1)] == {
        "dive_id": "dive-7",
        "username": "svc_a",
        "session_name": "kiosk",
        "destination": "Airflow Variable md_contract_embed",
    }
    secrets = [session["secret"], emulator.admin_token, *(t["token"] for t in (soon, forever, fine))]
    stored = str(record.xcom_raw()) + json.dumps(list(record.rendered_fields().values()))
    assert leaked_secrets(shown + stored, secrets) == []
