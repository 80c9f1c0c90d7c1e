"""Helpers of the browser tests: the throwaway Airflow installation, its API server, Chromium's flags."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from tests.support import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet on the network: without the background-networking flags Chromium keeps
# dialling out at start, and this machine's network is closed.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 180.0
COMMAND_TIMEOUT = 300


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not AIRFLOW_V_3:
        return "the browser tests drive Airflow 3's UI; this is Airflow 2"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: `make test-ui` installs Debian's chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (it is pinned in requirements/airflow-3.3.txt)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_env(home: Path) -> dict[str, str]:
    """The environment of every Airflow process of one throwaway installation.

    Starts from this process's environment without any ``AIRFLOW_*`` setting, so the outer test
    session's home, database and connections cannot leak in.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    return env


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@dataclass
class AirflowServer:
    """A running ``airflow api-server`` and the installation it serves."""

    url: str
    home: Path
    env: dict[str, str]
    log_path: Path

    def token(self) -> str:
        """A bearer token for the REST API (simple auth manager, every user an admin)."""
        response = requests.get(f"{self.url}/auth/token", timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the REST API with a fresh bearer token."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def airflow(self, *args: str, timeout: int = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """``airflow ARGS`` against this installation; output captured."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:  # pragma: no cover - the kernel did not deliver SIGKILL in time
        proc.kill()
        proc.wait(timeout=10)


def wait_healthy(proc: subprocess.Popen[bytes], url: str, server: AirflowServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"airflow api-server not healthy after {SERVER_START_TIMEOUT:.0f} s:\n{server.log_tail()}"
    )
