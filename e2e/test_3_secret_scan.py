"""After both executors: no secret the emulator issued is anywhere but in the Variables meant for it.

The secrets are every one the emulator issued, the short-lived SQL session tokens of ``as_user``
included (at least one was issued, and none is still live at the end). Searched: every file the
deployment wrote (component and task logs, the triggerer's trigger logs,
Celery's and PostgreSQL's logs) and every row of every table of the metadata database (xcom,
rendered fields, task instances, DAG runs and their conf, the audit log, connections, Variables,
and the trigger rows, which are deleted once a trigger fires, as copied while the sensors were
deferred), with each value Airflow stored Fernet-encrypted decrypted first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken

from e2e.deployment import Deployment
from e2e.issued import IssuedSecrets
from e2e.report import REPORT

# The Variables that are a destination: they hold a token's secret by design (not their records).
DESTINATION = re.compile(r"motherduck_token_\w+")
SKIPPED_DIRS = ("pgdata", "pgsocket")  # the database is searched through SQL, decrypted


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _plain(airflow: Deployment, text: str) -> list[str]:
    """The text, and its decryption if it is a Fernet token of this deployment."""
    if not text.startswith("gAAAA"):
        return [text]
    try:
        return [text, airflow.decrypt(text)]
    except (InvalidToken, ValueError):
        return [text]


def _scan_files(root: Path, pattern: re.Pattern[bytes]) -> tuple[int, int, Counter[str]]:
    files = size = 0
    hits: Counter[str] = Counter()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part in SKIPPED_DIRS for part in path.relative_to(root).parts):
            continue
        data = path.read_bytes()
        files += 1
        size += len(data)
        found = len(pattern.findall(data))
        if found:
            hits[str(path.relative_to(root))] = found
    return files, size, hits


def _rows(airflow: Deployment) -> tuple[int, list[tuple[str, Any]]]:
    """Every row of every table, as JSON, and the trigger rows copied while they existed."""
    tables = airflow.sql(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    rows = [(t, row) for (t,) in tables for (row,) in airflow.sql(f'SELECT to_jsonb(t) FROM "{t}" t')]
    return len(tables), rows + airflow.snapshots


def _scan_tables(
    airflow: Deployment, pattern: re.Pattern[bytes]
) -> tuple[int, int, Counter[str], Counter[str]]:
    tables, rows = _rows(airflow)
    leaks: Counter[str] = Counter()
    destinations: Counter[str] = Counter()
    for table, row in rows:
        found = sum(len(pattern.findall(p.encode())) for s in _strings(row) for p in _plain(airflow, s))
        if not found:
            continue
        if table == "variable" and DESTINATION.fullmatch(str(row["key"])):
            destinations[str(row["key"])] += found
        else:
            leaks[f"variable {row['key']}" if table == "variable" else table] += found
    return tables, len(rows), leaks, destinations


def test_no_issued_secret_outside_its_destination(
    deployment: Deployment, issued: IssuedSecrets, run_dir: Path
) -> None:
    secrets = sorted(set(issued.all()), key=len, reverse=True)
    assert len(secrets) > 100, "the e2e run issued the secrets it is meant to search for"
    sessions = issued.session_tokens()
    assert sessions, "the SQL examples acted as service accounts through short-lived session tokens"
    assert set(sessions) <= set(secrets)
    pattern = re.compile(b"|".join(re.escape(s.encode()) for s in secrets))
    files, size, in_files = _scan_files(run_dir, pattern)
    tables, rows, in_tables, in_destinations = _scan_tables(deployment, pattern)
    REPORT.secrets = [
        f"{len(secrets)} secrets issued (the admin token and every created token, revoked ones included; "
        f"{len(sessions)} short-lived SQL session tokens, {issued.live_session_tokens()} still live)",
        f"searched {files} files ({size / 1e6:.1f} MB) and {rows} rows of {tables} tables "
        f"({len(deployment.snapshots)} copied while short-lived; encrypted values decrypted)",
        f"found in log files: {sum(in_files.values())}",
        f"found in tables outside destination Variables: {sum(in_tables.values())}",
        f"found in destination Variables (allowed): {sum(in_destinations.values())} in {len(in_destinations)} Variables",
    ]
    assert not in_files, f"secrets in files: {dict(in_files)}"
    assert not in_tables, f"secrets in the metadata database: {dict(in_tables)}"
    # The search itself works: it finds the delivered secrets where they belong.
    assert len(in_destinations) >= 100
    assert issued.live_session_tokens() == 0, "a short-lived SQL session token outlived its task"
