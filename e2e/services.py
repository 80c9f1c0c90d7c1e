"""Processes of the deployment: start each in its own process group, stop them all whatever happens.

Every wait is bounded; a wait that times out says what it waited for and shows the end of the
logs of the services involved.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

TAIL_LINES = 40
TAIL_WIDTH = 400


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(line[:TAIL_WIDTH] for line in text.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _children() -> dict[int, list[int]]:
    """Every live process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """The pids of every process below ``pid``, children first."""
    tree = _children()
    found: list[int] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(tree.get(child, []))
    return found


class Service:
    """One long-running process of the deployment, logging to its own file.

    It runs in a process group of its own (``start_new_session``), so a stop or a kill reaches
    its children too (Celery's pool, LocalExecutor's workers, task processes); processes that
    left the group are found through /proc.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_dir = log_dir
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        """The log file of the current (or last) start."""
        suffix = "" if self.starts <= 1 else f".{self.starts}"
        return self.log_dir / f"{self.name}{suffix}.log"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Service:
        if self.alive():
            raise RuntimeError(f"{self.name} is running already")
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        REGISTRY.append(self)
        return self

    def _signal_all(self, sig: int, pids: Iterable[int]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL the service and everything below it at once, as a crash would."""
        if self.proc is None:
            return
        self._signal_all(signal.SIGKILL, descendants(self.pid))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the service to stop; SIGKILL whatever is left after ``timeout`` seconds."""
        if self.proc is None:
            return
        below = descendants(self.pid)
        if self.proc.poll() is None:
            self._signal_all(self.stop_signal, [])
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self._signal_all(signal.SIGKILL, below + descendants(self.pid))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited ({self.proc.returncode if self.proc else '-'})"
        return f"--- {self.name} (pid {self.proc.pid if self.proc else '-'}, {state}), {self.log}:\n{tail(self.log)}"


#: Every service started, so that the session's end can stop whatever a test left running.
REGISTRY: list[Service] = []


def stop_all() -> None:
    """Stop every registered service, the last started first."""
    for service in reversed(REGISTRY):
        service.stop()


class WaitTimeout(AssertionError):
    """A bounded wait ran out."""


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    services: Sequence[Service] = (),
    details: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None or False; at most ``timeout`` s.

    On timeout, or when one of ``services`` dies meanwhile, raise with ``details()`` and the
    end of the services' logs.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        dead = [s for s in services if not s.alive()]
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(s.name for s in dead)} died" if dead else f"not within {timeout:.0f} s"
            parts = [f"waiting for {what}: {why}"]
            if details is not None:
                parts.append(details())
            parts.extend(s.describe() for s in services)
            raise WaitTimeout("\n".join(parts))
        time.sleep(interval)


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 300.0) -> str:
    """Run a command to completion; on failure raise with the end of its output."""
    done = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-TAIL_LINES:])
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{output}")
    return done.stdout


def as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` when we are root (PostgreSQL refuses to run as root)."""
    if user is None or os.geteuid() != 0:
        return list(argv)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("runuser (util-linux) is needed to start PostgreSQL as its own user")
    return [runuser, "-u", user, "--", *argv]


def postgres_bin(program: str) -> str:
    """A PostgreSQL server program from Debian's newest installed major version."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{program}"), key=lambda p: int(p.parts[-3].split(".")[0])
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (make e2e does)")
    return str(found[-1])


def start_postgres(run_dir: Path, log_dir: Path) -> tuple[Service, str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a database ``airflow``; its SQLAlchemy URL."""
    data = run_dir / "pgdata"
    sockets = run_dir / "pgsocket"
    data.mkdir()
    sockets.mkdir()
    owner = "postgres" if os.geteuid() == 0 else None
    if owner is not None:
        shutil.chown(data, owner, owner)
        shutil.chown(sockets, owner, owner)
    run(
        as_user(
            owner,
            [postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "-N"],
        )
    )
    port = free_port()
    server = Service(
        "postgres",
        as_user(
            owner,
            [
                postgres_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sockets}",
                "-c",
                "max_connections=400",
                # A test database: durability is not the point, speed is.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
        ),
        env=os.environ,
        log_dir=log_dir,
        stop_signal=signal.SIGINT,  # "fast" shutdown: do not wait for clients to leave
    ).start()
    isready = [postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    wait_for(
        "PostgreSQL to accept connections",
        lambda: subprocess.run(isready, capture_output=True, check=False, timeout=10).returncode == 0,
        timeout=60,
        interval=0.3,
        services=[server],
    )
    psql = str(Path(postgres_bin("pg_isready")).with_name("psql"))
    run([psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qc", "CREATE DATABASE airflow"])
    return server, f"postgresql+psycopg2://postgres@127.0.0.1:{port}/airflow"


def start_redis(log_dir: Path) -> tuple[Service, str]:
    """Redis on 127.0.0.1, in memory only; its URL for Celery's broker."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server (make e2e does)")
    port = free_port()
    server = Service(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        env=os.environ,
        log_dir=log_dir,
    ).start()

    def pong() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for("Redis to answer PING", pong, timeout=30, interval=0.2, services=[server])
    return server, f"redis://127.0.0.1:{port}/0"


def python_argv(*args: str) -> list[str]:
    """``python -m airflow ...`` of this virtualenv."""
    return [sys.executable, "-m", "airflow", *args]
