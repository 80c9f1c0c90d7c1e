"""The emulator's control API, for tests in another process than the emulator's.

A standalone emulator (``python -m airflow_provider_motherduck.testing serve``) serves, beside
MotherDuck's routes, a small JSON API under ``/_emulator/``: a path MotherDuck never uses. Every
call needs the header ``X-Emulator-Control-Key`` with the emulator's ``control_key`` (printed by
``serve`` and written to its ``--info-file``); the admin token does not open it, and the key does
not open MotherDuck's routes. Control calls are neither journaled nor subject to faults.

``EmulatorControl`` is the client: the same method names as ``MotherDuckEmulator``.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from airflow_provider_motherduck.testing.server import CONTROL_KEY_HEADER, CONTROL_PREFIX
from airflow_provider_motherduck.testing.traffic import JournalEntry

if TYPE_CHECKING:
    from airflow_provider_motherduck.testing.emulator import MotherDuckEmulator

Json = dict[str, Any]
SETTINGS = ("max_page_size", "user_listing", "business_plan")


def _object(body: Any) -> Json:
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


def _field(body: Any, name: str) -> Any:
    obj = _object(body)
    if name not in obj:
        raise ValueError(f"the request body needs {name!r}")
    return obj[name]


class ControlApi:
    """The server side: ``(method, path below /_emulator/, query, body, key) -> (status, JSON)``."""

    def __init__(self, emulator: MotherDuckEmulator, key: str) -> None:
        self._emulator = emulator
        self._key = key
        md = emulator
        # (method, path pattern with {} for a percent-encoded username) -> action(params, body)
        self._routes: dict[tuple[str, tuple[str, ...]], Callable[[list[str], Any], Json | None]] = {
            ("GET", ("users",)): lambda p, b: {"users": md.describe_users()},
            ("GET", ("access",)): lambda p, b: md.describe_access(),
            ("POST", ("users",)): lambda p, b: md.add_user(**_object(b)),
            ("POST", ("seed",)): lambda p, b: md.load_seed(_object(b)),
            ("POST", ("users", "{}", "tokens")): lambda p, b: md.add_token(p[0], **_object(b)),
            ("PUT", ("users", "{}", "ducklings")): lambda p, b: md.set_ducklings(
                p[0], _field(b, "ducklings")
            ),
            ("PUT", ("users", "{}", "duckling_config")): lambda p, b: md.set_duckling_config(
                p[0], _field(b, "config")
            ),
            ("POST", ("faults",)): lambda p, b: md.inject(**_object(b)),
            ("POST", ("faults", "sql")): lambda p, b: md.inject_sql(**_object(b)),
            ("POST", ("users", "{}", "databases")): lambda p, b: md.add_database(p[0], **_object(b)),
            ("DELETE", ("faults",)): lambda p, b: md.clear_faults(),
            ("POST", ("faults", "repeat_listing_cursor")): lambda p, b: md.repeat_listing_cursor(
                **_object(b or {})
            ),
            ("POST", ("faults", "user_during_listing")): lambda p, b: md.add_user_during_listing(
                **_object(b)
            ),
            ("GET", ("journal",)): lambda p, b: {"journal": [dataclasses.asdict(e) for e in md.journal]},
            ("DELETE", ("journal",)): lambda p, b: md.clear_journal(),
            ("GET", ("secrets",)): lambda p, b: {"secrets": md.issued_secrets()},
            ("GET", ("settings",)): lambda p, b: self._settings(),
            ("PUT", ("settings",)): self._configure,
        }

    def __call__(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, key: str | None
    ) -> tuple[int, Json]:
        """Answer one control request."""
        if key is None or not hmac.compare_digest(key.encode(), self._key.encode()):
            return 401, {"error": f"the control API needs the {CONTROL_KEY_HEADER} header of this emulator"}
        segments = path.split("/")
        for (want_method, pattern), action in self._routes.items():
            if want_method != method or len(pattern) != len(segments):
                continue
            pairs = list(zip(pattern, segments, strict=True))
            if all(g if w == "{}" else w == g for w, g in pairs):
                params = [unquote(g) for w, g in pairs if w == "{}"]
                try:
                    return 200, action(params, body) or {}
                except KeyError as err:
                    return 404, {"error": str(err.args[0]) if err.args else "not found"}
                except (ValueError, TypeError) as err:
                    return 400, {"error": str(err)}
        return 404, {"error": f"no control route {method} {CONTROL_PREFIX}{path}"}

    def _settings(self) -> Json:
        return {name: getattr(self._emulator, name) for name in SETTINGS}

    def _configure(self, params: list[str], body: Any) -> Json:
        changes = _object(body)
        unknown = sorted(set(changes) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; expected some of {list(SETTINGS)}")
        for name, value in changes.items():
            setattr(self._emulator, name, value)
        return self._settings()


class EmulatorControl:
    """Drive a running emulator from another process through its control API.

    ``EmulatorControl(url, control_key)``, or ``EmulatorControl.from_info_file(path)`` for the
    file ``serve --info-file`` writes. Methods mirror ``MotherDuckEmulator``'s and raise the
    same ``ValueError`` (bad input) and ``KeyError`` (no such user); ``PermissionError`` means a
    wrong key.
    """

    def __init__(
        self, url: str, control_key: str, *, timeout: float = 10.0, postgres_port: int | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.postgres_port = postgres_port  # the Postgres endpoint's port, when known
        self._key = control_key
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"EmulatorControl({self.url!r})"

    @classmethod
    def from_info_file(cls, path: str | Path, *, timeout: float = 10.0) -> EmulatorControl:
        """The control of the emulator that wrote ``path`` (``{"url", "control_key",
        "postgres_port", ...}``)."""
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(info["url"], info["control_key"], timeout=timeout, postgres_port=info.get("postgres_port"))

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + CONTROL_PREFIX + path, data=data, method=method)
        request.add_header(CONTROL_KEY_HEADER, self._key)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            with err:
                message = json.loads(err.read() or b"{}").get("error", err.reason)
            error = {400: ValueError, 401: PermissionError, 404: KeyError}.get(err.code, RuntimeError)
            raise error(message) from None

    # seeding and state

    def users(self) -> list[Json]:
        """Every user, as ``MotherDuckEmulator.describe_users()`` gives them."""
        return list(self._call("GET", "users")["users"])

    def describe_access(self) -> Json:
        """The SQL side, as ``MotherDuckEmulator.describe_access()`` gives it."""
        return dict(self._call("GET", "access"))

    def add_user(self, username: str, **user: Any) -> None:
        """Add a user: the keyword arguments of ``MotherDuckEmulator.add_user``."""
        self._call("POST", "users", {"username": username, **user})

    def load_seed(self, seed: Json) -> None:
        """Apply a seed in the ``--seed`` format."""
        self._call("POST", "seed", seed)

    def add_token(self, username: str, name: str, **options: Any) -> Json:
        """Create a token (``ttl``, ``token_type``); the answer holds its secret."""
        return dict(self._call("POST", f"users/{quote(username, safe='')}/tokens", {"name": name, **options}))

    def add_database(self, username: str, name: str, *, tables: dict[str, int] | None = None) -> None:
        """Give a user a database with tables and row counts (``MotherDuckEmulator.add_database``)."""
        self._call("POST", f"users/{quote(username, safe='')}/databases", {"name": name, "tables": tables})

    def set_ducklings(self, username: str, ducklings: list[dict[str, str]]) -> None:
        """Set the running Ducklings that active accounts shows; ``[]`` clears them."""
        self._call("PUT", f"users/{quote(username, safe='')}/ducklings", {"ducklings": ducklings})

    def set_duckling_config(self, username: str, config: Json) -> None:
        """Replace a user's Duckling config (checked like a PUT)."""
        self._call("PUT", f"users/{quote(username, safe='')}/duckling_config", {"config": config})

    def settings(self) -> Json:
        """``max_page_size``, ``user_listing`` and ``business_plan``."""
        return dict(self._call("GET", "settings"))

    def configure(self, **settings: Any) -> Json:
        """Change some of the settings; the answer is all of them."""
        return dict(self._call("PUT", "settings", settings))

    # faults

    def inject(self, method: str, path: str, **options: Any) -> None:
        """A fault, with the keyword arguments of ``MotherDuckEmulator.inject``."""
        self._call("POST", "faults", {"method": method, "path": path, **options})

    def inject_sql(self, pattern: str, **options: Any) -> None:
        """A SQL fault, with the keyword arguments of ``MotherDuckEmulator.inject_sql``."""
        self._call("POST", "faults/sql", {"pattern": pattern, **options})

    def repeat_listing_cursor(self, times: int = 1) -> None:
        """See ``MotherDuckEmulator.repeat_listing_cursor``."""
        self._call("POST", "faults/repeat_listing_cursor", {"times": times})

    def add_user_during_listing(self, username: str, *, after_pages: int = 1, **user: Any) -> None:
        """See ``MotherDuckEmulator.add_user_during_listing``."""
        self._call(
            "POST", "faults/user_during_listing", {"username": username, "after_pages": after_pages, **user}
        )

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._call("DELETE", "faults")

    # what happened

    def journal(self) -> list[JournalEntry]:
        """Every MotherDuck request received, oldest first."""
        return [JournalEntry(**entry) for entry in self._call("GET", "journal")["journal"]]

    def clear_journal(self) -> None:
        """Empty the journal."""
        self._call("DELETE", "journal")

    def issued_secrets(self) -> list[Json]:
        """Every secret issued (``MotherDuckEmulator.issued_secrets``): handle them as secrets."""
        return list(self._call("GET", "secrets")["secrets"])
