"""docs/getting-started.rst, run as a reader would: every shell command of the page, in order.

The project the page builds (its DAG file and its test file) is ``tests/docs/getting_started/``,
which the page includes; it is copied into a new directory and the page's commands run there in
one bash session, on this interpreter's Airflow. Three things differ from a reader's machine, and
only these: ``pip install`` is checked (the provider must already be installed here, at the
version of this checkout) instead of run, since the suite reaches no package registry; the
emulator, which the page starts in a second terminal, runs in the background (on a free port
instead of 8089) until the script ends; and the last section, "against MotherDuck", reaches the
emulator, its URL and token standing in for MotherDuck's and ``<admin token>``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.docs.test_docs_code import DOCS, _commands, parse

PAGE = DOCS / "getting-started.rst"
PROJECT = Path(__file__).resolve().parent / "getting_started"
TOKEN = "dev-admin-token"
WAIT_FOR_PORT = (
    'python -c "import socket, sys, time\n'
    "for _ in range(200):\n"
    "    try: socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close(); break\n"
    "    except OSError: time.sleep(0.05)\n"
    "else: sys.exit('the emulator did not start')\" {port}"
)


def page_commands() -> list[str]:
    """The page's shell commands, in order."""
    blocks = [b for b in parse(PAGE) if b.kind == "code-block" and b.argument == "bash"]
    return [command for block in blocks for command in _commands(block.body)]


def script(port: int) -> str:
    """The page's commands as one bash script, with the substitutions the module docstring lists."""
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for command in page_commands():
        command = command.replace("8089", str(port))
        if command.startswith("pip install "):
            assert "airflow-provider-motherduck" in command.split(), command
            continue  # checked by the test: the provider is installed
        if "airflow_provider_motherduck.testing serve" in command:
            lines += [_echo(command), f"{command} > emulator.out &", WAIT_FOR_PORT.format(port=port)]
            continue
        command = command.replace(
            '"password": "<admin token>"', f'"host": "http://127.0.0.1:{port}", "password": "{TOKEN}"'
        )
        lines += [_echo(command), command]
    return "\n".join(lines) + "\n"


def _echo(command: str) -> str:
    return f"printf '%s\\n' {shlex.quote('$ ' + command)}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_page_shows_each_step() -> None:
    commands = page_commands()
    for step in (
        "pip install apache-airflow==",
        "python -m airflow_provider_motherduck.testing serve",
        "export AIRFLOW_CONN_MOTHERDUCK_DEFAULT=",
        "airflow connections add motherduck_default",
        "AIRFLOW__CORE__TEST_CONNECTION=Enabled airflow connections test motherduck_default",
        "airflow dags test onboard_etl_loader",
        "python -m pytest",
    ):
        assert any(command.startswith(step) for command in commands), step


@pytest.mark.airflow_run
def test_every_command_of_the_page_runs(tmp_path: Path) -> None:
    assert metadata.version("airflow-provider-motherduck")  # what `pip install` would have given
    shutil.copytree(
        PROJECT, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("conftest.py", "__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MOTHERDUCK_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this Airflow's `airflow`
    result = subprocess.run(
        ["bash", "-c", script(_free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    printed = result.stdout + result.stderr
    assert result.returncode == 0, printed[-6000:]
    assert printed.count("Connection success!") == 2, printed[-3000:]  # the command exits 0 either way
    assert "1 passed" in result.stdout, printed[-3000:]
    assert (tmp_path / "emulator.out").read_text().count("AIRFLOW_CONN_MOTHERDUCK_DEFAULT=") == 1
