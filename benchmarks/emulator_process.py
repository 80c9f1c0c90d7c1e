"""The emulator in a process of its own, for the benchmarks: the client's CPU is measured apart
from the server's.

The script given prints one JSON line once it serves (its URL, admin token, ...), then answers
each line it reads on standard input with one JSON line; closing standard input stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class EmulatorProcess:
    """A running emulator script: ``info`` is its first line; :meth:`ask` sends one command."""

    def __init__(self, script: str, *args: str, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=None if env is None else dict(env),
        )
        self.info: dict[str, Any] = self._read()

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def ask(self, command: str) -> Any:
        """Send ``command``, return the script's answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Stop the script (standard input closed; killed if it takes over 30 s)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
