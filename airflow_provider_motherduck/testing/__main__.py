"""``python -m airflow_provider_motherduck.testing serve``: run the emulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import re
import shlex
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType

from airflow_provider_motherduck.testing.emulator import MotherDuckEmulator


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader polling for ``path`` never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _connection_line(conn_id: str, emulator: MotherDuckEmulator) -> str:
    """``AIRFLOW_CONN_<ID>='{...}'``: the connection Airflow reads from the environment, shell-quoted
    (both sides: the REST API and the Postgres endpoint)."""
    return f"AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(emulator.airflow_connection()))}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_motherduck.testing",
        description="An in-memory MotherDuck admin API emulator.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve until SIGTERM or SIGINT")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (loopback unless --allow-remote)")
    serve.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    serve.add_argument(
        "--pg-port", type=int, default=0, help="port of the Postgres endpoint (0: any free port)"
    )
    serve.add_argument("--admin-token", help="secret of the Admin's token (generated if left out)")
    serve.add_argument(
        "--conn-id",
        default="motherduck_default",
        help="the Airflow connection id of the AIRFLOW_CONN_<ID> line printed (default: motherduck_default)",
    )
    serve.add_argument("--seed", type=Path, help="JSON file: users, duckling_configs, ducklings, databases")
    serve.add_argument(
        "--info-file", type=Path, help='write {"url", "admin_token", "control_key"} here once listening'
    )
    serve.add_argument("--control-key", help="key of the /_emulator/ control API (generated if left out)")
    serve.add_argument("--max-flock-size", type=int, default=64, help="the plan's flock_size limit")
    serve.add_argument("--max-page-size", type=int, default=500, help="the largest limit list-users accepts")
    serve.add_argument("--no-user-listing", action="store_true", help="play an API without GET /v1/users")
    serve.add_argument("--no-business-plan", action="store_true", help="embed sessions answer 403")
    serve.add_argument(
        "--duplicate-user-status",
        type=int,
        choices=(400, 409),
        default=400,
        help="answer to a duplicate user",
    )
    serve.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve until a stop signal, then shut down cleanly."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.allow_remote and not _is_loopback(args.host):
        parser.error(f"--host {args.host} is not a loopback address; add --allow-remote to bind it anyway")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.conn_id):
        parser.error(
            f"--conn-id {args.conn_id} is invalid: it must name an environment variable. "
            "Allowed: letters, digits and underscores, not starting with a digit"
        )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emulator = MotherDuckEmulator(
            admin_token=args.admin_token,
            host=args.host,
            port=args.port,
            max_flock_size=args.max_flock_size,
            duplicate_user_status=args.duplicate_user_status,
            max_page_size=args.max_page_size,
            user_listing=not args.no_user_listing,
            business_plan=not args.no_business_plan,
            control_key=args.control_key,
            pg_port=args.pg_port,
        )
        if args.seed is not None:
            emulator.load_seed(json.loads(args.seed.read_text(encoding="utf-8")))
        emulator.start()
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            parser.error(str(err))
        parser.error(
            f"port {args.port} on {args.host} is in use: pick another --port, or --port 0 for any free one"
        )
    except (ValueError, KeyError) as err:
        parser.error(str(err))
    try:
        print(f"MOTHERDUCK_EMULATOR_URL={emulator.url}", flush=True)
        print(f"MOTHERDUCK_EMULATOR_ADMIN_TOKEN={emulator.admin_token}", flush=True)
        print(f"MOTHERDUCK_EMULATOR_CONTROL_KEY={emulator.control_key}", flush=True)
        print(f"MOTHERDUCK_EMULATOR_POSTGRES_PORT={emulator.postgres_port}", flush=True)
        print(_connection_line(args.conn_id, emulator), flush=True)
        if args.info_file is not None:
            info = {
                "url": emulator.url,
                "admin_token": emulator.admin_token,
                "control_key": emulator.control_key,
                "postgres_port": emulator.postgres_port,
            }
            _write_atomically(args.info_file, json.dumps(info))
        stop.wait()
    finally:
        emulator.stop()
        if args.info_file is not None:
            args.info_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
