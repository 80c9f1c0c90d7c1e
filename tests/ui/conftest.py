"""Fixtures for the browser tests: a real Airflow 3 API server, the emulator and headless Chromium.

Every server started here runs in its own process group on a free 127.0.0.1 port and is stopped
(the whole group) when the module's tests end, pass or fail.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.ui.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    COMMAND_TIMEOUT,
    AirflowServer,
    airflow_env,
    free_port,
    stop_group,
    wait_healthy,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """A migrated SQLite installation in a throwaway home and its API server on a free port."""
    home = tmp_path_factory.mktemp("airflow-ui-home")
    (home / "dags").mkdir()
    env = airflow_env(home)
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-4000:]

    attempts = 3  # another process may take the free port between choosing and binding it
    for attempt in range(1, attempts + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = AirflowServer(url=url, home=home, env=env, log_path=home / f"api-server-{port}.log")
        with server.log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        try:
            try:
                wait_healthy(proc, url, server)
            except RuntimeError:
                if attempt < attempts and "address already in use" in server.log_tail().lower():
                    continue
                raise
            yield server
            return
        finally:
            stop_group(proc)


@pytest.fixture(scope="module")
def ui_emulator() -> Iterator[MotherDuckEmulator]:
    """One emulator for the module, with an account that has a running Duckling."""
    with MotherDuckEmulator() as emulator:
        emulator.add_user("etl_bot")
        emulator.set_ducklings("etl_bot", [{"id": "rw", "type": "read_write", "status": "active"}])
        yield emulator


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """A page of headless Debian Chromium (fresh profile), driven by Playwright; closed at the end."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    playwright = sync_playwright().start()
    try:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 720},
        )
        try:
            tab = context.pages[0] if context.pages else context.new_page()
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            context.close()
    finally:
        playwright.stop()
