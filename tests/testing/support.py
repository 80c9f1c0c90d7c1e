"""Helpers of the emulator tests: a hand-moved clock, a session on one emulator, error checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import requests

from airflow_provider_motherduck.testing import MotherDuckEmulator

ROOT = Path(__file__).resolve().parents[2]
Sql = psycopg.Connection[tuple[Any, ...]]  # a connection to the emulator's Postgres endpoint


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


class Api:
    """A requests session bound to one emulator and one token."""

    def __init__(self, md: MotherDuckEmulator, token: str | None) -> None:
        self.md = md
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.md.url + path, timeout=5, **kwargs)


def as_api(md: MotherDuckEmulator, token: str | None) -> Api:
    """A session on ``md`` with another token (None: no Authorization header)."""
    return Api(md, token)


def assert_error(response: requests.Response, status: int, code: str, procedure: str) -> dict[str, Any]:
    """Check a MotherDuck-shaped JSON error and return its body."""
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["data"] == {"code": code, "httpStatus": status, "path": procedure}
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def serve(*args: str) -> subprocess.Popen[str]:
    """``python -m airflow_provider_motherduck.testing serve ARGS`` with its output piped."""
    command = [sys.executable, "-m", "airflow_provider_motherduck.testing", "serve", *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_info(process: subprocess.Popen[str], info_file: Path) -> dict[str, Any]:
    """The info file ``serve`` writes once listening (bounded wait; fails if the process ends)."""
    deadline = time.monotonic() + 10
    while not info_file.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    info: dict[str, Any] = json.loads(info_file.read_text())
    return info
