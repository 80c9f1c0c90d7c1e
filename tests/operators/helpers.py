"""Helpers for the operator and example-DAG tests: run an operator, read what a DAG run left behind."""

from __future__ import annotations

import configparser
import json
import re
import sqlite3
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from cryptography.fernet import Fernet, MultiFernet

from airflow_provider_motherduck._compat import BaseOperator, Context
from airflow_provider_motherduck.testing import MotherDuckEmulator

#: Any secret the emulator hands out (opaque on purpose: Airflow's log pipeline blanks JWT-like strings).
SECRET_RE = re.compile(r"mdt_[0-9a-f]{16,}")


def run(op: BaseOperator, params: dict[str, Any] | None = None) -> Any:
    """Render ``op``'s templates with ``params`` (real Jinja), then execute it with a minimal context."""
    context = cast(Context, {"params": params or {}})
    op.render_template_fields(context)
    return op.execute(context)


def requests_seen(emulator: MotherDuckEmulator) -> list[str]:
    """``"METHOD /path"`` of every request the emulator received."""
    return [f"{entry.method} {entry.path}" for entry in emulator.journal]


def writes_seen(emulator: MotherDuckEmulator) -> list[str]:
    """Only the requests that could change state (anything but GET)."""
    return [line for line in requests_seen(emulator) if not line.startswith("GET ")]


class DagRunRecord:
    """What the last run of a DAG left in the metadata database, read with plain SQL (2.11 and 3.x)."""

    def __init__(self, airflow_home: str, dag_id: str) -> None:
        self.db = Path(airflow_home) / "airflow.db"
        self.dag_id = dag_id
        rows = self._rows("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", dag_id)
        assert rows, f"no run of {dag_id} in the metadata database"
        self.run_id: str = rows[0][0]

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def _of_run(self, sql: str) -> list[tuple[Any, ...]]:
        return self._rows(sql + " WHERE dag_id = ? AND run_id = ?", self.dag_id, self.run_id)

    def states(self) -> dict[tuple[str, int], str]:
        """(task_id, map_index) -> state."""
        return {(t, m): s for t, m, s in self._of_run("SELECT task_id, map_index, state FROM task_instance")}

    def xcom_raw(self) -> dict[tuple[str, int], str]:
        """(task_id, map_index) -> the stored return value, as text (what the UI and the DB show)."""
        rows = self._of_run("SELECT task_id, map_index, key, value FROM xcom")
        return {
            (t, m): v.decode() if isinstance(v, bytes) else str(v)
            for t, m, k, v in rows
            if k == "return_value"
        }

    def xcom(self) -> dict[tuple[str, int], Any]:
        """(task_id, map_index) -> the decoded return value."""
        out: dict[tuple[str, int], Any] = {}
        for key, text in self.xcom_raw().items():
            value = json.loads(text)
            if isinstance(value, str):  # some versions store the JSON text as a JSON string
                value = json.loads(value)
            out[key] = value
        return out

    def rendered_fields(self) -> dict[tuple[str, int], dict[str, Any]]:
        """(task_id, map_index) -> rendered template fields, as stored for the UI."""
        rows = self._of_run("SELECT task_id, map_index, rendered_fields FROM rendered_task_instance_fields")
        return {(t, m): json.loads(f) if isinstance(f, (str, bytes)) else f for t, m, f in rows}


def variable(airflow_home: str, key: str) -> str | None:
    """An Airflow Variable's value from the metadata database (decrypted with the home's Fernet key)."""
    with sqlite3.connect(Path(airflow_home) / "airflow.db") as conn:
        row = conn.execute("SELECT val, is_encrypted FROM variable WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    value, encrypted = row
    if not encrypted:
        return str(value)
    # The key the subprocess used: the one written to this home's airflow.cfg.
    config = configparser.ConfigParser(interpolation=None)
    config.read(Path(airflow_home) / "airflow.cfg")
    keys = [Fernet(k.strip().encode()) for k in config.get("core", "fernet_key").split(",") if k.strip()]
    return MultiFernet(keys).decrypt(value.encode()).decode()


def set_variable(airflow_home: str, key: str, value: str | None) -> None:
    """Write an Airflow Variable straight into the metadata database (unencrypted); ``None`` deletes it."""
    with sqlite3.connect(Path(airflow_home) / "airflow.db") as conn:
        conn.execute("DELETE FROM variable WHERE key = ?", (key,))
        if value is not None:
            conn.execute("INSERT INTO variable (key, val, is_encrypted) VALUES (?, ?, 0)", (key, value))


def everything_printed(result: subprocess.CompletedProcess[str], airflow_home: str, dag_id: str) -> str:
    """The run's stdout and stderr plus any task log files of the DAG (the real log path)."""
    logs = Path(airflow_home) / "logs"
    files: Iterable[Path] = (p for p in logs.rglob("*") if p.is_file() and dag_id in str(p))
    return "\n".join([result.stdout, result.stderr, *(p.read_text(errors="replace") for p in files)])


def failure_excerpt(printed: str, limit: int = 6000) -> str:
    """The tracebacks in a run's output (what to read when a task failed unexpectedly)."""
    lines = printed.splitlines()
    keep: list[str] = []
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" in line or "Task failed with exception" in line:
            keep.extend(lines[i : i + 40])
    return "\n".join(keep)[-limit:] or printed[-limit:]


def leaked_secrets(text: str, secrets: Iterable[str] = ()) -> list[str]:
    """Every emulator secret visible in ``text``, known or not."""
    found = set(SECRET_RE.findall(text))
    found.update(s for s in secrets if s and s in text)
    return sorted(found)
