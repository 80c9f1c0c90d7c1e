"""The main job: run the example DAGs end to end against the bundled MotherDuck emulator.

Starts the emulator, points ``motherduck_default`` at it, runs each example DAG with
``airflow dags test`` in a throwaway AIRFLOW_HOME (SQLite), and prints, DAG by DAG, what it did
(the reconcile plan, the drift verdict, the audit findings, each rotation's new, kept and revoked
tokens with the reason, each onboarding's changes, the roles, shares, grants and attachments
given, the rows read through an attachment, the access report), then the users that changed. What it did is
read from the run's XComs and the task logs ``airflow dags test`` prints: token ids and names, never
a secret (XComs hold none, logs are masked). Run it with ``make demo``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from airflow_provider_motherduck.testing import JournalEntry, MotherDuckEmulator
from airflow_provider_motherduck.testing.dag_run import read_dag_run
from airflow_provider_motherduck.workflows.access_report import access_table

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".airflow-demo"
# The accounts the examples expect to exist already (each example creates only its own).
SEED = REPO / "example_dags" / "demo_seed.json"
# In the order a platform team lives them: onboard, give an account data to read, size, rotate,
# wait for compute, size down when idle (asset watchers: Airflow 3 only), audit the tokens, take
# the organisation over as code and check it for drift, offboard.
DAGS = (
    "example_motherduck_onboarding",
    "example_motherduck_data_access",
    "example_motherduck_bulk_onboarding",
    "example_motherduck_bulk_onboarding_one_task",
    "example_motherduck_sizing",
    "example_motherduck_token_rotation",
    "example_motherduck_temporary_account",
    "example_motherduck_wait_for_active",
    *(("example_motherduck_resize_when_idle",) if AIRFLOW_V_3 else ()),
    "example_motherduck_token_audit",
    "example_motherduck_org_as_code",
    "example_motherduck_drift_check",
    "example_motherduck_offboarding",
)


# The list of writes at the end leaves SQL reads out, and blanks each share URL's token.
SQL_READS = ("SELECT", "SHOW", "FROM", "DESCRIBE")
SHARE_URL = re.compile(r"(md:_share/[^/'\s]+/)[^'\s]+")
# How many days the emulator's clock runs behind: tokens seeded meanwhile look that old.
LAG = {"days": 0}


def earlier_rotations(emulator: MotherDuckEmulator) -> str:
    for LAG["days"] in (13, 6):
        emulator.add_token("dbt_prod", "airflow", ttl=35 * 86400)
    LAG["days"] = 0
    return "dbt_prod holds the 'airflow' tokens of the last two weekly rotations, 13 and 6 days old"


def start_query(emulator: MotherDuckEmulator) -> str:
    emulator.set_ducklings("etl_loader", [{"id": "rw", "type": "read_write", "status": "active"}])
    return "etl_loader runs a query: its read_write Duckling is active"


def notebooks_idle(emulator: MotherDuckEmulator) -> str:
    emulator.set_ducklings("notebook_runner", [])
    return "the analysts' notebooks are closed: notebook_runner has no Duckling running"


# What happens in MotherDuck between two DAGs (the emulator plays the organisation's users). The
# resize DAG runs as its asset watcher's event (notebook_runner going idle) would start it.
BEFORE = {
    "example_motherduck_token_rotation": earlier_rotations,
    "example_motherduck_wait_for_active": start_query,
    "example_motherduck_resize_when_idle": notebooks_idle,
}


def is_write(entry: JournalEntry) -> bool:
    """A request that may change MotherDuck: not a GET, and not a SQL read."""
    if entry.method == "SQL":
        return not entry.path.lstrip().upper().startswith(SQL_READS)
    return entry.method != "GET"


def without_share_urls(text: str) -> str:
    """``text`` with each share URL's token blanked (whoever holds a URL may attach the share)."""
    return SHARE_URL.sub(r"\1***", text)


def airflow(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run an Airflow CLI command; on failure show the end of its output. Returns its exit code and output."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        print("\n".join((done.stdout + done.stderr).splitlines()[-40:]), file=sys.stderr)
    return done.returncode, done.stdout + done.stderr


Row = tuple[str, str, str, str]


def organisation(emulator: MotherDuckEmulator) -> dict[str, Row]:
    """username -> (username, read_write size, read_scaling size x flock, live token names)."""
    rows = {}
    for username in emulator.users():
        config = emulator.duckling_config(username)
        rw, rs = config["read_write"], config["read_scaling"]
        tokens = ", ".join(sorted(t["name"] for t in emulator.tokens(username))) or "-"
        rows[username] = (username, rw["instance_size"], f"{rs['instance_size']} x{rs['flock_size']}", tokens)
    return rows


def describe(now: Mapping[str, Row], before: Mapping[str, Row]) -> str:
    """The users that are new or changed since ``before`` as a table, and the ones gone."""
    changed = [row for name, row in now.items() if before.get(name) != row]
    gone = [name for name in before if name not in now]
    lines = (
        table(("username", "read_write", "read_scaling", "tokens"), changed, indent="  ") if changed else []
    )
    lines += [f"  gone: {', '.join(gone)}"] if gone else []
    return "\n".join(lines) or "  (no change)"


# --- What each run did, read back from the metadata database and the printed task logs. ---

# A log line of `airflow dags test`: Airflow 3's console format (time, [level], message, [logger],
# key=value pairs) or Airflow 2's ([time] {file:line} LEVEL - message); other lines continue a message.
LOG_LINE = re.compile(r"^\S+ \[\s*[a-z]+\s*\] (.*)$|^\[[^\]]*\] \{[^}]*\} [A-Z]+ - (.*)$")
LOGGER_SUFFIX = re.compile(r" +\[[\w.]+\](?: [\w.]+=\S*)*$")  # Airflow 3's "[logger] key=value ..."
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
TOKEN_FATE = re.compile(r"^Token (\S+) of (\S+): (.+?)\.?$")  # rotation's "Token <id> of <user>: <why>."
SIZED = re.compile(r"^Duckling config of (\S+) is now ")  # the set-config operator's log line
DONE = re.compile(r"^Done: (\S+) (\S+) ?(.*)$")  # the reconcile engine's "Done: <action> <user> <detail>"


@dataclass(frozen=True)
class TaskRun:
    """One task instance of a run: its id, map index, state, return value and log messages."""

    task_id: str
    map_index: int
    state: str
    xcom: Any
    messages: tuple[str, ...]


def last_run(home: Path, dag_id: str, output: str) -> list[TaskRun]:
    """The task instances of ``dag_id``'s newest run in ``home``, in the order they started, each
    with its messages from ``output`` (what `airflow dags test` printed: it logs every task there)."""
    with closing(sqlite3.connect(home / "airflow.db")) as conn:
        row = conn.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,))
        (run_id,) = row.fetchone()
        tis = conn.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?"
            " ORDER BY start_date, task_id, map_index",
            (dag_id, run_id),
        ).fetchall()
    result = read_dag_run(home / "airflow.db", dag_id, run_id)
    said = task_messages(output)
    runs = []
    for task_id, map_index, state in tis:
        value = result.xcoms.get(task_id)
        if isinstance(value, list) and map_index >= 0:  # a mapped task's values, in map index order
            value = value[map_index] if map_index < len(value) else None
        runs.append(
            TaskRun(task_id, map_index, state or "none", value, tuple(said.get((task_id, map_index), ())))
        )
    return runs


def task_messages(output: str) -> dict[tuple[str, int], list[str]]:
    """(task id, map index) -> the log messages printed while it ran (a message continued over
    several lines kept as one, the logger and its key=value pairs left out)."""
    found: dict[tuple[str, int], list[str]] = {}
    messages: list[str] = []
    for line in output.splitlines():
        started = TASK_START.search(line)
        if started:
            messages = found.setdefault((started.group(1), int(started.group(2))), [])
            continue
        match = LOG_LINE.match(line)
        if match:
            messages.append(LOGGER_SUFFIX.sub("", match.group(1) or match.group(2)))
        elif messages:
            messages[-1] += "\n" + LOGGER_SUFFIX.sub("", line)
    return found


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "    ") -> list[str]:
    """``rows`` under ``header``, each column as wide as its widest cell (long usernames fit)."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, indent + "  ".join("-" * w for w in widths))
    return lines


def describe_reconcile(run: TaskRun, shown_plan: Any = None) -> list[str]:
    """The plan as a table (``the plan above`` when it is ``shown_plan``, the one just printed)."""
    summary: Mapping[str, Any] = run.xcom
    plan = summary["plan"]
    mode = summary["mode"]
    rows = [(a["action"], a["subject"], a.get("detail", "")) for a in plan]
    if mode == "check":
        verdict = (
            "no drift: MotherDuck matches the declaration" if not plan else f"DRIFT: {len(plan)} action(s)"
        )
        lines = [f"  {run.task_id}: drift check of {summary['name']!r}: {verdict}"]
    else:
        lines = [
            f"  {run.task_id}: {mode} of {summary['name']!r} (prune={summary['prune']}): {len(plan)} action(s)"
        ]
    if plan and shown_plan == plan:
        lines.append("    the plan above")
    elif plan:
        lines += table(("action", "subject", "what"), rows)
    lines += [f"    not pruned: {s['username']} ({s['reason']})" for s in summary.get("spared", [])]
    lines += [f"    applying would be refused: {reason}" for reason in summary.get("unsafe", [])]
    if mode == "apply":
        lines.append(
            f"    applied {len(summary.get('done', []))} of {len(plan)}; failed: "
            f"{', '.join(summary.get('failed') or []) or 'none'}"
        )
    return lines


def describe_audit(run: TaskRun) -> list[str]:
    tokens, violations = run.xcom["tokens"], run.xcom["violations"]
    lines = [f"  {run.task_id}: audited {len(tokens)} token(s), {len(violations)} break a rule"]
    if violations:
        rows = [(v["username"], v["id"], v["name"], ", ".join(v["breaks"])) for v in violations]
        lines += table(("username", "token id", "name", "breaks"), rows)
    return lines


def describe_rotation(run: TaskRun) -> list[str]:
    summary: Mapping[str, Any] = run.xcom
    new = summary.get("token") or {}
    username = summary["username"]
    why = {
        m.group(1): m.group(3) for m in map(TOKEN_FATE.match, run.messages) if m and m.group(2) == username
    }
    fates = [
        *((i, "kept") for i in summary.get("kept_ids") or []),
        *((i, "in grace") for i in summary.get("in_grace_ids") or []),
        *((i, "spared") for i in summary.get("spared_ids") or []),
        *((i, "revoked") for i in summary.get("revoked_ids") or []),
        *((i, "STILL LIVE") for i in summary.get("still_live_ids") or []),
    ]
    made = "created" if summary.get("created") else "made by this run before"
    lines = [
        f"  {run.task_id}: {username}'s {summary['token_name']!r} token into {summary['destination']}",
        f"    new token {new.get('name')} ({new.get('id')}): {made}",
    ]
    reasons = [
        why.get(i, "kept: the new token" if i == new.get("id") else fate).split(": ", 1) for i, fate in fates
    ]
    rows = [(i, *reason, "")[:3] for (i, _), reason in zip(fates, reasons, strict=True)]
    return lines + table(("token id", "fate", "why"), rows)


def describe_onboarding(run: TaskRun) -> list[str]:
    summary: Mapping[str, Any] = run.xcom
    created = summary.get("created")
    token = summary.get("token") or {}
    changes = [
        m.group(3)
        for m in map(DONE.match, run.messages)
        if m and m.group(1) == "update_duckling_config" and m.group(2) == summary["username"]
    ]
    access = [
        f"{what}: {', '.join(summary[key])}"
        for key, what in (
            ("granted_roles", "roles granted"),
            ("granted_shares", "read granted by each share's owner"),
            ("attached_aliases", "attached as the account itself"),
        )
        if summary.get(key)
    ]
    return [
        f"  {run.task_id}: {summary['username']}: user {'created' if created else 'adopted (it existed)'}",
        f"    Ducklings: {'; '.join(changes) or 'unchanged'}",
        f"    token {token.get('name')} ({token.get('id')}): "
        f"{'issued' if summary.get('token_created') else 'kept (its destination holds it)'}",
        *([f"    access: {'; '.join(access)}"] if access else []),
    ]


def describe_share(run: TaskRun) -> list[str]:
    """A share made or found (never its URL: whoever holds it may attach the share)."""
    share: Mapping[str, Any] = run.xcom
    include = ", ".join(share.get("include") or []) or "every table"
    return [
        f"  {run.task_id}: share {share['share']} of {share['database']} ({share['access']}, "
        f"{share['visibility']}; {include}), owned by {share.get('username') or 'the connection'}: "
        f"{'created' if share['created'] else 'existed already'}"
    ]


def describe_access_report(run: TaskRun) -> list[str]:
    """The report's table, as the operator logs it: per account its roles (``*``: through another
    role), the shares it reads and through which grant, what it attached, the rules it breaks."""
    report: Mapping[str, Any] = run.xcom
    return [
        f"  {run.task_id}: access of {len(report['accounts'])} account(s), {len(report['violations'])} "
        "finding(s) (* = held through another role)",
        *(f"    {line}" for line in access_table(report).splitlines()),
    ]


def describe_bulk(run: TaskRun) -> list[str]:
    summary: Mapping[str, Any] = run.xcom
    users = summary.get("created_usernames") or []
    tokens = summary.get("token_created_usernames") or []
    done = [m.groups() for m in map(DONE.match, run.messages) if m]
    return [
        f"  {run.task_id}: {summary['account_count']} account(s), {len(users)} user(s) created, "
        f"{len(tokens)} token(s) issued",
        *(table(("action", "username", "what"), done) if done else []),
    ]


def describe_failure(run: TaskRun) -> list[str]:
    """A failed task: the messages that say why (a drift check's drift is its failure)."""
    said = [m[m.find(key) :] for m in run.messages for key in ("Drift:", "Refusing to write") if key in m]
    shown = "\n".join(said[:2] or ["(its log above says why)"])
    return [f"  {run.task_id}: FAILED", *(f"    {line}" for line in shown.splitlines())]


def describe_task(run: TaskRun) -> list[str]:
    """What one task did, by the shape of its XCom (the keys the operators return)."""
    value = run.xcom
    if run.state == "failed" or (run.state != "success" and value is None):
        return describe_failure(run) if run.state == "failed" else []
    if not isinstance(value, dict):
        return []
    if "plan" in value and "mode" in value:
        return describe_reconcile(run)
    if "violations" in value and "tokens" in value:
        return describe_audit(run)
    if "destination" in value and "token_name" in value:
        return describe_rotation(run)
    if "token_created" in value:
        return describe_onboarding(run)
    if "accounts" in value and "violations" in value and "missing_shares" in value:
        return describe_access_report(run)
    if "share" in value and "url" in value:
        return describe_share(run)
    if value.keys() == {"role", "created"}:
        return [
            f"  {run.task_id}: role {value['role']} {'created' if value['created'] else 'existed already'}"
        ]
    if {"role", "grantee", "granted"} <= value.keys():
        done = "granted" if value["granted"] else "held already"
        return [
            f"  {run.task_id}: role {value['role']} to the {value['grantee_type']} {value['grantee']}: {done}"
        ]
    if value.keys() == {"username", "table", "row_count"}:
        return [f"  {run.task_id}: {value['username']} reads {value['row_count']} row(s) of {value['table']}"]
    if value.keys() == {"username", "created"}:
        return [
            f"  {run.task_id}: user {value['username']} {'created' if value['created'] else 'existed already'}"
        ]
    if value.keys() == {"read_write", "read_scaling"}:  # a Duckling config set: its log names the account
        rw, rs = value["read_write"], value["read_scaling"]
        now = f"read_write {rw.get('instance_size')}, read_scaling {rs.get('instance_size')} x{rs.get('flock_size')}"
        return [
            f"  {run.task_id}: {m.group(1)}'s Ducklings now {now}"
            for m in map(SIZED.match, run.messages)
            if m
        ]
    token = value.get("token") if isinstance(value.get("token"), dict) else value  # vocab: {username, token}
    if {"id", "name", "expire_at"} <= token.keys() and "username" in value:
        return [f"  {run.task_id}: token {token['name']} ({token['id']}) issued for {value['username']}"]
    if value.keys() == {"username", "deleted"}:
        return [
            f"  {run.task_id}: user {value['username']} {'deleted' if value['deleted'] else 'gone already'}"
        ]
    if "deleted" in value and ("revoked" in value or "revoked_ids" in value):
        revoked = value.get("revoked_ids") or []
        return [
            f"  {run.task_id}: {value['username']}: {len(revoked)} token(s) revoked, "
            f"user {'deleted' if value['deleted'] else 'gone already'}"
        ]
    if "accounts" in value and ("tokens_created" in value or "token_created_usernames" in value):
        return describe_bulk(run)
    return []


def story(runs: Sequence[TaskRun]) -> list[str]:
    """What a run did, task by task (tasks whose XCom tells no story are left out)."""
    lines: list[str] = []
    shown_plan = None
    for run in runs:
        if (
            isinstance(run.xcom, dict)
            and "plan" in run.xcom
            and "mode" in run.xcom
            and run.state == "success"
        ):
            lines += describe_reconcile(run, shown_plan)
            shown_plan = run.xcom["plan"]
        else:
            lines += describe_task(run)
    return lines


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir()
    with MotherDuckEmulator(
        clock=lambda: datetime.now(timezone.utc) - timedelta(days=LAG["days"])
    ) as emulator:
        if SEED.exists():
            emulator.load_seed(json.loads(SEED.read_text()))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
            "AIRFLOW_CONN_MOTHERDUCK_DEFAULT": json.dumps(emulator.airflow_connection()),
        }
        print(f"MotherDuck emulator at {emulator.url}; throwaway Airflow home {HOME}; its users:")
        state = organisation(emulator)
        print(describe(state, {}))
        if airflow("db", "migrate", env=env)[0] != 0:
            print("airflow db migrate failed", file=sys.stderr)
            return 1
        results = []
        for dag_id in DAGS:
            print(f"\n=== airflow dags test {dag_id} ===", flush=True)
            if dag_id in BEFORE:
                print(f"(meanwhile in MotherDuck: {BEFORE[dag_id](emulator)})")
            started = time.monotonic()
            rc, output = airflow("dags", "test", dag_id, env=env)
            results.append((dag_id, rc, time.monotonic() - started))
            print(f"{'succeeded' if rc == 0 else 'FAILED'}; what it did:")
            print(
                "\n".join(story(last_run(HOME, dag_id, output)))
                or "  (nothing to tell: the changes are below)"
            )
            print("the organisation's users that changed:")
            state, before = organisation(emulator), state
            print(describe(state, before))
        writes = [
            f"{e.method} {without_share_urls(e.path)} -> {e.status}" for e in emulator.journal if is_write(e)
        ]
    print(f"\n=== {len(writes)} writes reached MotherDuck ===")
    print("\n".join(f"  {w}" for w in writes))
    print("\n=== summary ===")
    for dag_id, rc, seconds in results:
        print(f"  {'ok    ' if rc == 0 else 'FAILED'} {dag_id:<44} {seconds:6.1f} s")
    return 1 if any(rc for _, rc, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
