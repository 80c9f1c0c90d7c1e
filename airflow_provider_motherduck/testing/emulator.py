"""``MotherDuckEmulator``: an in-memory MotherDuck admin API on a local port."""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any

from airflow_provider_motherduck.testing.control import ControlApi
from airflow_provider_motherduck.testing.server import EmulatorHTTPServer
from airflow_provider_motherduck.testing.state import (
    FLOCK_MAX,
    FLOCK_MIN,
    MAX_PAGE_SIZE,
    ApiError,
    Json,
    State,
    User,
    check_config,
    check_create_token,
    check_roles,
    fold,
    new_secret,
    utc_now,
)
from airflow_provider_motherduck.testing.traffic import Fault, JournalEntry, Traffic

SEED_KEYS = ("users", "duckling_configs", "ducklings")
SEED_USER_KEYS = ("username", "admin", "roles", "human", "email", "first_name", "last_name", "deprovisioned")
ANSWERABLE = frozenset(s.value for s in HTTPStatus if s >= 200)


class MotherDuckEmulator:
    """MotherDuck's admin endpoints (the ten of the API notes), served from memory with faults.

    Use it as a context manager (or ``start()``/``stop()``); ``url`` and ``admin_token``
    then point a client at an organisation whose Admin is ``admin_username`` (a human).

    ``max_page_size`` is the largest ``limit`` that ``GET /v1/users`` accepts;
    ``user_listing=False`` plays an older API without that route (plain-text 404);
    ``business_plan=False`` makes embed sessions a 403. The three are also settable
    attributes. ``control_key`` protects the control API under ``/_emulator/`` (generated if
    left out; see :class:`~airflow_provider_motherduck.testing.EmulatorControl`).
    """

    def __init__(
        self,
        *,
        admin_username: str = "admin",
        admin_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_flock_size: int = 64,
        duplicate_user_status: int = 400,
        clock: Callable[[], datetime] | None = None,
        max_page_size: int = MAX_PAGE_SIZE,
        user_listing: bool = True,
        business_plan: bool = True,
        control_key: str | None = None,
    ) -> None:
        if not FLOCK_MIN <= max_flock_size <= FLOCK_MAX:
            raise ValueError(f"max_flock_size must be between {FLOCK_MIN} and {FLOCK_MAX}")
        if duplicate_user_status not in (400, 409):
            raise ValueError("duplicate_user_status must be 400 or 409")
        for name, key in (("admin_token", admin_token), ("control_key", control_key)):
            if key is not None and (not key or key != key.strip()):
                raise ValueError(f"{name} must be non-empty, without surrounding whitespace")
        self.admin_username = admin_username
        self.admin_token = admin_token or new_secret()
        self.control_key = control_key or "ctl_" + secrets.token_hex(16)
        self._host = host
        self._port = port
        self._state = State(
            max_flock_size=max_flock_size,
            duplicate_user_status=duplicate_user_status,
            clock=clock or utc_now,
            max_page_size=_check_times(max_page_size, "max_page_size"),
            user_listing=_check_switch(user_listing, "user_listing"),
            business_plan=_check_switch(business_plan, "business_plan"),
        )
        self._traffic = Traffic()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_user(admin_username, admin=True)
        self._state.add_token(admin_username, "emulator-admin", None, "read_write", self.admin_token)

    # lifecycle

    @property
    def url(self) -> str:
        """Base URL of the running server, without a trailing slash."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() or use it in a with block")
        host = self._server.server_name
        return f"http://{host}:{self._server.server_port}"

    def start(self) -> None:
        """Bind, listen and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._server = EmulatorHTTPServer(
            self._host, self._port, self._state, self._traffic, ControlApi(self, self.control_key)
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="motherduck-emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections and release the port (state is kept)."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MotherDuckEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # seeding

    def add_user(
        self,
        username: str,
        *,
        admin: bool = False,
        roles: Sequence[str] | None = None,
        human: bool | None = None,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        deprovisioned: bool = False,
    ) -> None:
        """Add a user; ValueError if the name is taken or an argument is wrong.

        - ``add_user("etl_bot")``: a service account with the member role, as
          ``POST /v1/users`` creates one.
        - ``add_user("jane", admin=True)``: a human Admin (``admin=True`` is ``roles=["admin"]``).
        - ``roles``: any of ``admin``, ``builder``, ``explorer``, ``member``.
        - ``human``: defaults to True unless the roles are ``["member"]`` alone; pass
          ``human=False`` for a service account with other roles, ``human=True`` for a human
          member.
        - ``email`` (humans default to ``<username>@example.com``; service accounts to None),
          ``first_name``, ``last_name``: what ``GET /v1/users`` shows.
        - ``deprovisioned=True``: listed as such; its tokens no longer authenticate (401).

        Names are not checked, so tests can seed names a client must percent-encode.
        """
        if not self._state.add_user(
            _new_user(username, admin, roles, human, email, first_name, last_name, deprovisioned)
        ):
            raise ValueError(f"user {username!r} already exists")

    def add_token(
        self, username: str, name: str, *, ttl: int | None = None, token_type: str = "read_write"
    ) -> dict[str, Any]:
        """Create a token for any existing user; the answer includes the ``token`` secret."""
        body: Json = {"name": name, "token_type": token_type}
        if ttl is not None:
            body["ttl"] = ttl
        with self._state.lock, _seeding():
            self._user(username)
            name, ttl_s, kind = check_create_token(body)
            token = self._state.add_token(username, name, ttl_s, kind, new_secret())
            return {"token": token.secret, **token.metadata()}

    def set_duckling_config(self, username: str, config: dict[str, Any]) -> None:
        """Replace a user's Duckling config (validated like a PUT; defaults filled in)."""
        with _seeding():
            checked = check_config(config, [], self._state.max_flock_size)
        with self._state.lock:
            self._user(username).config = checked

    def set_ducklings(self, username: str, ducklings: list[dict[str, str]]) -> None:
        """Set the running Ducklings shown by active_accounts; ``[]`` clears them."""
        if not isinstance(ducklings, list) or not all(
            isinstance(d, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in d.items())
            for d in ducklings
        ):
            raise ValueError("ducklings must be a list of objects with string values")
        with self._state.lock:
            self._user(username).ducklings = copy.deepcopy(ducklings)

    def load_seed(self, seed: dict[str, Any]) -> None:
        """Apply ``{"users": [...], "duckling_configs": {user: cfg}, "ducklings": {user: [...]}}``.

        A user is a name (a service account) or an object with ``username`` and any of the
        other ``add_user`` arguments: ``admin``, ``roles``, ``human``, ``email``,
        ``first_name``, ``last_name``, ``deprovisioned``.
        """
        if not isinstance(seed, dict):
            raise ValueError("a seed is a JSON object")
        unknown = sorted(set(seed) - set(SEED_KEYS))
        if unknown:
            raise ValueError(f"unknown seed keys: {unknown}; expected {list(SEED_KEYS)}")
        users = seed.get("users", [])
        configs = seed.get("duckling_configs", {})
        ducklings = seed.get("ducklings", {})
        if not isinstance(users, list) or not isinstance(configs, dict) or not isinstance(ducklings, dict):
            raise ValueError("seed users is a list; duckling_configs and ducklings map users to values")
        for user in users:
            if isinstance(user, str):
                self.add_user(user)
            elif isinstance(user, dict) and isinstance(user.get("username"), str):
                unknown_keys = sorted(set(user) - set(SEED_USER_KEYS))
                if unknown_keys:
                    raise ValueError(
                        f"unknown seed user keys {unknown_keys}; expected {list(SEED_USER_KEYS)}"
                    )
                self.add_user(**user)
            else:
                raise ValueError(f"a seed user is a name or an object with a username, not {user!r}")
        for username, config in configs.items():
            self.set_duckling_config(username, config)
        for username, running in ducklings.items():
            self.set_ducklings(username, running)

    # reading state

    def users(self) -> list[str]:
        """Every username, the Admin first."""
        return self._state.usernames()

    def describe_users(self) -> list[dict[str, Any]]:
        """Every user in creation order: the ``GET /v1/users`` fields plus ``tokens`` (metadata),
        ``duckling_config`` and ``ducklings``."""
        with self._state.lock:
            return [
                {
                    **user.listing(),
                    "tokens": [t.metadata() for t in user.tokens.values()],
                    "duckling_config": copy.deepcopy(user.config),
                    "ducklings": copy.deepcopy(user.ducklings),
                }
                for user in map(self._state.user, self._state.usernames())
            ]

    def tokens(self, username: str) -> list[dict[str, Any]]:
        """A user's tokens as the list endpoint shows them (no secrets)."""
        with self._state.lock:
            return [t.metadata() for t in self._user(username).tokens.values()]

    def duckling_config(self, username: str) -> dict[str, Any]:
        """A copy of a user's Duckling config."""
        with self._state.lock:
            return copy.deepcopy(self._user(username).config)

    def is_valid_token(self, secret: str) -> bool:
        """Whether this secret authenticates now (exists, not deleted, not expired)."""
        return self._state.live_token(secret) is not None

    def embed_sessions(self) -> list[dict[str, Any]]:
        """Every embed session issued, oldest first: ``dive_id``, ``username``, ``session_name``
        (``session_hint`` folded in), ``version``, ``required_resources``, ``initial_state``,
        ``created_ts``, ``expire_at`` and the ``secret`` itself."""
        return [s for s in self._state.issued() if s["kind"] == "embed_session"]

    def issued_secrets(self) -> list[dict[str, Any]]:
        """Every secret this emulator ever issued, oldest first, revoked and expired ones included
        (for a scan of logs and databases): ``{"kind": "token", "username", "id", "name",
        "secret"}`` for the admin token and every token created (by the API or ``add_token``),
        and the ``embed_sessions()`` records with ``"kind": "embed_session"``."""
        return self._state.issued()

    # switches

    @property
    def max_page_size(self) -> int:
        """The largest ``limit`` that ``GET /v1/users`` accepts (a larger one is a 400 naming it)."""
        return self._state.max_page_size

    @max_page_size.setter
    def max_page_size(self, value: int) -> None:
        self._state.max_page_size = _check_times(value, "max_page_size")

    @property
    def user_listing(self) -> bool:
        """False plays an older API: ``GET /v1/users`` answers the plain-text 404 of no route."""
        return self._state.user_listing

    @user_listing.setter
    def user_listing(self, value: bool) -> None:
        self._state.user_listing = _check_switch(value, "user_listing")

    @property
    def business_plan(self) -> bool:
        """False plays an organisation without the Business plan: embed sessions get 403."""
        return self._state.business_plan

    @business_plan.setter
    def business_plan(self, value: bool) -> None:
        self._state.business_plan = _check_switch(value, "business_plan")

    @property
    def journal(self) -> list[JournalEntry]:
        """Every request received, oldest first (no headers, token fields redacted)."""
        return self._traffic.journal()

    def clear_journal(self) -> None:
        """Forget the requests received so far."""
        self._traffic.clear_journal()

    # faults

    def inject(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        retry_after: str | None = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
        body: Any = None,
        after: bool = False,
    ) -> None:
        """Misbehave on the next ``times`` requests matching ``method`` and ``path``.

        ``method`` is case-insensitive, ``*`` matches any; ``path`` is compared with the raw
        request path (query string removed), exactly or as an ``fnmatch`` glob.

        ``status`` answers that status (a MotherDuck-shaped JSON error, or ``body``: a ``str`` is
        sent as text, anything else as JSON) without touching state; ``retry_after`` adds that
        header; ``delay`` sleeps first (alone, it only adds latency); ``drop`` closes the
        connection unanswered; ``after=True`` applies the request to state before the status
        or drop, as if the answer were lost on the way back.
        """
        if status is not None and status not in ANSWERABLE:
            raise ValueError(f"status must be a known HTTP status of 200 or more, not {status}")
        if status is not None and drop:
            raise ValueError("a fault either answers a status or drops the connection, not both")
        if (retry_after is not None or body is not None) and status is None:
            raise ValueError("retry_after and body need a status")
        if after and status is None and not drop:
            raise ValueError("after=True needs a status or drop")
        if status is None and not drop and delay <= 0:
            raise ValueError("a fault needs a status, drop=True or a positive delay")
        _check_times(times)
        if delay < 0:
            raise ValueError("delay must not be negative")
        self._traffic.add_fault(
            Fault(method.upper(), path, status, retry_after, delay, drop, times, body, after)
        )

    def repeat_listing_cursor(self, times: int = 1) -> None:
        """Make the next ``times`` ``GET /v1/users`` answers to a request carrying a ``page_token``
        give that same token back as ``next_page_token`` (a server caught in a loop)."""
        _check_times(times)
        self._traffic.repeat_cursor(times)

    def add_user_during_listing(self, username: str, *, after_pages: int = 1, **user: Any) -> None:
        """Add a user (``add_user`` arguments) right after the next ``after_pages`` list-users
        pages have been answered: a user inserted mid-walk.

        Pages are offset-based, so a name that sorts before the page boundary shifts the rest:
        the next page then repeats the last user of the previous one.
        """
        _check_times(after_pages, "after_pages")
        if fold(username) in map(fold, self._state.usernames()):
            raise ValueError(f"user {username!r} already exists")
        new = _new_user(username, **user)

        def insert() -> None:
            self._state.add_user(new)  # a name taken meanwhile: the walk simply sees no insertion

        self._traffic.after_listing_pages(after_pages, insert)

    def clear_faults(self) -> None:
        """Forget every pending fault, repeated cursor and mid-walk user."""
        self._traffic.clear_faults()

    def _user(self, username: str) -> User:
        try:
            return self._state.user(username)
        except ApiError:
            raise KeyError(f"no user {username!r}") from None


def _new_user(
    username: str,
    admin: bool = False,
    roles: Sequence[str] | None = None,
    human: bool | None = None,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    deprovisioned: bool = False,
) -> User:
    """A ``User`` from ``add_user``'s arguments (see there), checked."""
    if not isinstance(username, str) or not username:
        raise ValueError("username must be a non-empty string")
    if roles is None:
        roles = ["admin"] if admin else ["member"]
    elif admin:
        raise ValueError("give admin=True or roles, not both")
    checked = check_roles(roles)
    for name, value in (("email", email), ("first_name", first_name), ("last_name", last_name)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string or None, not {value!r}")
    if human is None:
        human = checked != ("member",)
    human = _check_switch(human, "human")
    if email is None and human:
        email = f"{username.lower()}@example.com"
    return User(
        username,
        checked,
        service_account=not human,
        email=email,
        first_name=first_name,
        last_name=last_name,
        deprovisioned=_check_switch(deprovisioned, "deprovisioned"),
    )


def _check_switch(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def _check_times(value: Any, name: str = "times") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer of at least 1, not {value!r}")
    return value


@contextmanager
def _seeding() -> Iterator[None]:
    """Turn a server-side 400 into the ValueError a seeding method raises."""
    try:
        yield
    except ApiError as err:
        raise ValueError(err.message) from None
