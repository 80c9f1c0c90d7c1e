"""The session of ``make e2e``: PostgreSQL, Redis and the emulator for both executors, and the report.

The emulator runs in this process (the Airflow processes reach it over HTTP on 127.0.0.1); the
tests change its state and inject its faults through its Python API. Whatever happens, every
process started is stopped at the end (``services.stop_all``), also on SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from e2e.deployment import Deployment
from e2e.issued import IssuedSecrets
from e2e.report import REPORT
from e2e.services import start_postgres, start_redis, stop_all


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds the fixtures, which stop the processes


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_all()  # whatever a fixture could not stop


@pytest.fixture(scope="session")
def run_dir() -> Iterator[Path]:
    """A fresh directory for everything the session writes; kept when something failed."""
    path = Path(tempfile.mkdtemp(prefix="motherduck-e2e-"))
    path.chmod(0o755)  # PostgreSQL runs as its own user
    failed_before = _failures()
    yield path
    if _failures() == failed_before and not os.environ.get("E2E_KEEP"):
        shutil.rmtree(path, ignore_errors=True)
    else:
        print(f"\ne2e files kept in {path}")


_FAILED: list[str] = []
_DEPLOYMENTS: list[Deployment] = []  # the one running, for the logs of a failed test


def _failures() -> int:
    return len(_FAILED)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        _FAILED.append(item.nodeid)
        for airflow in _DEPLOYMENTS:
            if airflow.components():
                report.sections.append(("end of the component logs", airflow.describe()))
    return report


@pytest.fixture(scope="session")
def emulator() -> Iterator[MotherDuckEmulator]:
    with MotherDuckEmulator() as md:
        yield md


@pytest.fixture(scope="session")
def issued(emulator: MotherDuckEmulator) -> IssuedSecrets:
    return IssuedSecrets(emulator)


@pytest.fixture(scope="session")
def deployment(run_dir: Path, emulator: MotherDuckEmulator, issued: IssuedSecrets) -> Iterator[Deployment]:
    """PostgreSQL, Redis and a migrated metadata database; the components start per executor."""
    started = time.monotonic()
    log_dir = run_dir / "services"
    postgres, db_url = start_postgres(run_dir, log_dir)
    redis, broker_url = start_redis(log_dir)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    airflow = Deployment(
        home=run_dir / "airflow",
        db_url=db_url,
        broker_url=broker_url,
        connection=emulator.airflow_connection(retry_delay=0.5, timeout=30),
        extra_env={
            "E2E_ROTATION_START": (now - timedelta(minutes=6)).isoformat(),
            "E2E_ROTATION_END": (now - timedelta(minutes=2)).isoformat(),
        },
    )
    airflow.install_dags()
    _DEPLOYMENTS.append(airflow)
    try:
        airflow.migrate()
        REPORT.phase("PostgreSQL, Redis, db migrate", started)
        yield airflow
    finally:
        airflow.stop()
        try:
            REPORT.runs = airflow.sql(
                "SELECT r.dag_id, r.run_id, r.state, EXTRACT(EPOCH FROM r.end_date - r.start_date), "
                "COUNT(ti.task_id), SUM(GREATEST(ti.try_number - 1, 0)), "
                "string_agg(DISTINCT ti.hostname, ' ') "
                "FROM dag_run r LEFT JOIN task_instance ti ON ti.dag_id = r.dag_id AND ti.run_id = r.run_id "
                "GROUP BY r.id ORDER BY r.start_date NULLS LAST, r.dag_id"
            )
        except Exception as err:  # the report must not hide the failure that got us here
            print(f"\n(DAG runs unreadable for the report: {err})")
        redis.stop()
        postgres.stop()


def _table(rows: Sequence[tuple[str, ...]], headers: tuple[str, ...]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return out


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write = terminalreporter.write_line
    terminalreporter.section("MotherDuck provider on a real Airflow deployment")
    runs = [
        (
            str(dag),
            str(run),
            str(state),
            "-" if seconds is None else f"{float(seconds):.1f} s",
            str(tasks),
            str(retries or 0),
            str(hosts or "-"),
        )
        for dag, run, state, seconds, tasks, retries, hosts in REPORT.runs
    ]
    for line in _table(runs, ("DAG", "run", "state", "duration", "tasks", "retries", "ran on")):
        write(line)
    write("")
    write(f"faults survived ({len(REPORT.faults)}):")
    for fault in REPORT.faults:
        write(f"  - {fault}")
    write("")
    write("secret scan:")
    for line in REPORT.secrets or ["  (not run)"]:
        write(f"  {line}")
    write("")
    for name, seconds in REPORT.phases:
        write(f"{name:<40} {seconds:7.1f} s")
    write(f"{'whole e2e session':<40} {time.monotonic() - REPORT.started:7.1f} s")
