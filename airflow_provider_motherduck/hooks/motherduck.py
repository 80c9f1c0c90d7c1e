"""MotherDuckHook: the admin token, the HTTP session and every call to the MotherDuck admin API."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote, urlencode, urlsplit

from airflow_provider_motherduck import CONN_FIELDS, DEFAULT_API_URL, UI_FIELD_BEHAVIOUR, __version__
from airflow_provider_motherduck._compat import AIRFLOW_VERSION, BaseHook, legacy_form_widgets, mask_secret
from airflow_provider_motherduck.arguments import (
    check_bool,
    check_count,
    check_hook_param,
    optional,
    unknown_keys,
)
from airflow_provider_motherduck.exceptions import (
    MotherDuckAPIError,
    MotherDuckAuthError,
    MotherDuckConfigError,
    MotherDuckNotFoundError,
    MotherDuckRouteNotFoundError,
    invalid,
)
from airflow_provider_motherduck.hooks._answers import Call, Where, decode, failure
from airflow_provider_motherduck.hooks.current_user import CurrentUser, read_current_user
from airflow_provider_motherduck.hooks.known_secrets import blank, remember
from airflow_provider_motherduck.hooks.retry import RetryPolicy, may_have_been_carried_out
from airflow_provider_motherduck.hooks.sql.admin import SQLAdminMixin
from airflow_provider_motherduck.hooks.sql.session import SQLSession, acting_as
from airflow_provider_motherduck.hooks.sql.transports import (
    DuckDBTransport,
    PostgresTransport,
    SQLSettings,
    Transport,
    sql_settings,
)
from airflow_provider_motherduck.hooks.transport import Answer, encode, is_loopback, new_session, send
from airflow_provider_motherduck.validation import (
    check_dive_id,
    check_duckling_config,
    check_duckling_half,
    check_embed_session,
    check_new_username,
    check_path_segment,
    check_token_id,
    check_token_name,
    check_token_type,
    check_username,
    fold_username,
    merge_duckling_config,
    parse_ttl,
)

if TYPE_CHECKING:
    import duckdb
    import requests

# requests is imported on first call, not at module import: DAG files import this module at
# every parse, and requests alone costs more than the rest of the provider.

__all__ = [
    "ActiveAccount",
    "CreatedToken",
    "CurrentUser",
    "DucklingConfig",
    "MotherDuckHook",
    "TokenInfo",
    "UserInfo",
    "UserList",
]

log = logging.getLogger(__name__)

TOKEN_ENV_VAR = "MOTHERDUCK_TOKEN"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRY_LIMIT = 3
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_MAX_RETRY_WAIT = 60.0
#: The connection extras the hook reads; any other is warned about (a misspelling is otherwise lost).
KNOWN_EXTRAS = (*CONN_FIELDS, "token")


class _TokenRequired(TypedDict):
    id: str
    name: str
    token_type: str
    read_only: bool
    created_ts: str


class TokenInfo(_TokenRequired, total=False):
    """An access token's metadata, as listed (never the secret). No ``expire_at``: never expires."""

    expire_at: str


class UserInfo(TypedDict):
    """A user of the organisation, as ``GET /v1/users`` lists it."""

    id: str
    username: str
    email: str | None
    first_name: str | None
    last_name: str | None
    is_service_account: bool
    is_deprovisioned: bool
    roles: list[str]


class UserList(list[UserInfo]):
    """Users as listed, with ``total_count``: how many MotherDuck says there are (``None``: not said)."""

    def __init__(self, users: Iterable[UserInfo] = (), total_count: int | None = None) -> None:
        super().__init__(users)
        self.total_count = total_count


class CreatedToken(TokenInfo, total=False):
    """The answer to creating a token: the metadata plus the secret ``token``, masked in logs."""

    token: str


class DucklingHalf(TypedDict, total=False):
    instance_size: str
    flock_size: int
    cooldown_seconds: int


class DucklingConfig(TypedDict):
    """One user's Duckling (instance) settings."""

    read_write: DucklingHalf
    read_scaling: DucklingHalf


class Duckling(TypedDict):
    id: str
    type: str
    status: str


DUCKLING_HALVES = tuple(DucklingConfig.__annotations__)


class ActiveAccount(TypedDict):
    """An account with running Ducklings."""

    username: str
    ducklings: list[Duckling]


@dataclass(frozen=True)
class _Settings:
    base_url: str
    token: str = field(repr=False)
    timeout: float
    retry_limit: int
    retry_delay: float
    sql: SQLSettings = field(default_factory=SQLSettings)


class MotherDuckHook(SQLAdminMixin, BaseHook):
    """Talks to the MotherDuck admin REST API with the admin token of an Airflow connection.

    The token is the connection's password, else its extra ``token``, else the environment
    variable ``MOTHERDUCK_TOKEN``. The host defaults to ``https://api.motherduck.com``. Nothing
    is looked up until the first call. The SQL methods (roles, shares, grants, attachments,
    databases; :class:`~airflow_provider_motherduck.hooks.sql.admin.SQLAdminMixin`) run over the
    transport the extra ``sql_transport`` names (``duckdb`` or ``postgres``).

    :param motherduck_conn_id: the Airflow connection to use.
    :param timeout: seconds one attempt may take, connecting and reading the whole answer included
        (default: extra ``timeout``, else 30). A call with retries ends within :attr:`longest_call`.
    :param retry_limit: retries after 429, 5xx and network errors (default: extra, else 3).
    :param retry_delay: first backoff in seconds, doubled on each retry (default: extra, else 1).
    :param max_retry_wait: cap on any one wait, ``Retry-After`` included.
    :param sleep: how to wait between retries (tests pass a fake clock).
    """

    conn_name_attr = "motherduck_conn_id"
    default_conn_name = "motherduck_default"
    conn_type = "motherduck"
    hook_name = "MotherDuck"

    def __init__(
        self,
        motherduck_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_limit: int | None = None,
        retry_delay: float | None = None,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.motherduck_conn_id = motherduck_conn_id
        # How messages name the connection; the UI's Test button runs under a random id (see test_connection).
        self._conn_label = f"connection {motherduck_conn_id!r}"
        self._timeout = timeout
        self._retry_limit = retry_limit
        self._retry_delay = retry_delay
        self.max_retry_wait = check_hook_param("max_retry_wait", max_retry_wait)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(motherduck_conn_id={self.motherduck_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow < 3.2 (newer versions read the provider metadata)."""
        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields for Airflow < 3.2 (newer versions read the provider metadata)."""
        return legacy_form_widgets(CONN_FIELDS)

    # -- set-up -------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> _Settings:
        """Where and how to call, read once from the connection."""
        conn = self.get_connection(self.motherduck_conn_id)
        extra = conn.extra_dejson
        # Stripped: a pasted token often brings a newline, which no HTTP header can carry.
        token = str(conn.password or extra.get("token") or os.environ.get(TOKEN_ENV_VAR) or "").strip()
        if not token:
            raise MotherDuckConfigError(
                f"No MotherDuck token for {self._conn_label}: looked in its password, "
                f"its extra 'token' and the environment variable {TOKEN_ENV_VAR}. Put the read/write "
                "token of an Admin user in the connection's password."
            )
        mask_secret(token)
        remember([token])
        if not token.isprintable() or any(c.isspace() for c in token) or not token.isascii():
            raise MotherDuckConfigError(
                f"The MotherDuck token of {self._conn_label} contains spaces, control characters or "
                "non-ASCII characters (not shown). Allowed: the token as MotherDuck shows it, on one line."
            )
        warning = unknown_keys(extra, KNOWN_EXTRAS, f"The extras of {self._conn_label}")
        if warning:
            log.warning("%s", warning)
        allow_http = _as_bool(
            extra.get("allow_insecure_http", False), "allow_insecure_http", self._conn_label
        )
        pick = partial(_pick, conn_label=self._conn_label)
        return _Settings(
            base_url=_base_url(conn.host, conn.port, allow_http, self._conn_label),
            token=token,
            timeout=float(pick(self._timeout, extra.get("timeout"), DEFAULT_TIMEOUT, "timeout")),
            retry_limit=int(
                pick(self._retry_limit, extra.get("retry_limit"), DEFAULT_RETRY_LIMIT, "retry_limit")
            ),
            retry_delay=float(
                pick(self._retry_delay, extra.get("retry_delay"), DEFAULT_RETRY_DELAY, "retry_delay")
            ),
            sql=sql_settings(extra, self._conn_label),
        )

    @cached_property
    def session(self) -> requests.Session:
        """One keep-alive session per hook, with the auth and identity headers set.

        Proxy and CA bundle settings are read from the environment once, when the session opens
        (see :func:`~airflow_provider_motherduck.hooks.transport.new_session`); ``close()`` and
        the next call read them again.
        """
        headers = {
            "Authorization": f"Bearer {self.settings.token}",
            "Accept": "application/json",
            "User-Agent": f"airflow-provider-motherduck/{__version__} apache-airflow/{AIRFLOW_VERSION}",
        }
        return new_session(self.settings.base_url, headers)

    def close(self) -> None:
        """Close the HTTP session and the SQL session (new ones open on the next call)."""
        if "session" in self.__dict__:
            self.__dict__.pop("session").close()
        if "_own_sql" in self.__dict__:
            self.__dict__.pop("_own_sql").close()

    # -- the one SQL path -----------------------------------------------------------------------

    @contextmanager
    def sql_session(self, *, as_user: str | None = None) -> Iterator[SQLSession]:
        """A SQL session as the connection's account (kept until :meth:`close`), or as ``as_user``.

        ``as_user`` names a service account: a token of 300 s is minted for it over REST, masked,
        used for the statements of the block and revoked when the block ends, however it ends.
        Blocks nest: inside a block as ``as_user``, every SQL call as that account on this hook
        (``hook.attach_share(..., as_user=...)``) runs in the block's session, one token for all.
        """
        if as_user is None:
            yield self._own_sql
            return
        acting: dict[str, SQLSession] = self.__dict__.setdefault("_acting", {})
        key = fold_username(as_user)
        if key in acting:
            yield acting[key]
            return
        with acting_as(
            as_user,
            mint=lambda user, name, ttl: self.create_token(user, name, ttl=ttl),
            revoke=lambda user, token_id: self.revoke_token(user, token_id, missing_ok=True),
            session=self._new_sql_session,
        ) as session:
            acting[key] = session
            try:
                yield session
            finally:
                del acting[key]

    @cached_property
    def _own_sql(self) -> SQLSession:
        return self._new_sql_session(self.settings.token, None)

    def _new_sql_session(self, token: str, username: str | None) -> SQLSession:
        return SQLSession(
            lambda: self._open_transport(token),
            transport=self.settings.sql.transport,
            username=username,
            sleep=self._sleep,
        )

    def _open_transport(self, token: str) -> Transport:
        settings = self.settings
        if settings.sql.transport == "postgres":
            return PostgresTransport(token, settings.sql.postgres_target(), settings.timeout)
        return DuckDBTransport.open(token)

    # -- the one request path -------------------------------------------------------------------

    @property
    def retry_policy(self) -> RetryPolicy:
        """When and how long to wait before another try (from the settings and ``max_retry_wait``)."""
        settings = self.settings
        return RetryPolicy(settings.retry_limit, settings.retry_delay, self.max_retry_wait)

    @property
    def longest_call(self) -> float:
        """The most seconds one call can take, retries included: each of ``retry_limit + 1`` attempts
        ends within ``timeout`` (connecting and the whole answer), each wait within ``max_retry_wait``."""
        settings = self.settings
        return (settings.retry_limit + 1) * settings.timeout + settings.retry_limit * self.max_retry_wait

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        expect: tuple[str, ...] = (),
        if_maybe_done: str = "",
    ) -> Any:
        """Send one API call with retries; return the decoded JSON answer or raise a MotherDuck error.

        ``expect``: keys the answer must have; ``if_maybe_done``: how to find out whether a failed
        POST was carried out.
        """
        call = Call(method, path, expect, if_maybe_done)
        data = None if body is None else encode(body)
        url = self.settings.base_url + path
        policy = self.retry_policy
        attempt = 0
        carried_out = False  # whether an earlier attempt may have been carried out
        while True:
            attempt += 1
            outcome = self._send(method, url, path, data)
            if isinstance(outcome, Answer) and outcome.status < 300:
                return decode(call, outcome)
            wait = policy.wait_before_retry(method, attempt, outcome, carried_out)
            if wait is None:
                error = failure(call, outcome, attempt, carried_out, self._where)
                if method == "DELETE" and carried_out and isinstance(error, MotherDuckNotFoundError):
                    # The earlier attempt deleted it and only its answer was lost.
                    log.info(
                        "MotherDuck DELETE %s: gone on retry, so the earlier attempt was carried out", path
                    )
                    return None
                raise error
            log.warning(
                "MotherDuck %s %s failed (%s); retry %d of %d in %.2f s",
                method,
                path,
                _cause(outcome),
                attempt,
                policy.retry_limit,
                wait,
            )
            self._sleep(wait)
            carried_out = carried_out or may_have_been_carried_out(outcome)

    def _send(
        self, method: str, url: str, path: str, body: bytes | None
    ) -> Answer | requests.RequestException:
        started = time.monotonic()
        outcome = send(self.session, method, url, body, self.settings.timeout)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "MotherDuck %s %s -> %s in %.0f ms",
                method,
                path,
                _cause(outcome),
                (time.monotonic() - started) * 1000,
            )
        return outcome

    @property
    def _where(self) -> Where:
        settings = self.settings
        return Where(self._conn_label, settings.base_url, settings.timeout)

    # -- endpoints ----------------------------------------------------------------------------

    def create_user(self, username: str) -> dict[str, str]:
        """Create a service account. Raises ``MotherDuckConflictError`` if it exists already."""
        name = check_new_username(username)
        result: dict[str, str] = self._request(
            "POST",
            "/v1/users",
            {"username": name},
            expect=("username",),
            if_maybe_done=(
                f"the user {name!r} may have been created: list its tokens or the users to find out "
                "(creating it again fails with a conflict; operators take exists_ok=True)"
            ),
        )
        return result

    def delete_user(self, username: str, *, missing_ok: bool = False) -> bool:
        """Delete a user and all their data (irreversible). ``False`` if missing and ``missing_ok``."""
        return self._delete(_user_path(username), missing_ok)

    def create_token(
        self,
        username: str,
        name: str,
        *,
        ttl: Any = None,
        token_type: str = "read_write",
    ) -> CreatedToken:
        """Create an access token; the secret (``token``) is registered with Airflow's masker.

        ``ttl`` takes any form :func:`~airflow_provider_motherduck.validation.parse_ttl` accepts;
        ``None`` or ``"never"`` makes a token that never expires.
        """
        body: dict[str, Any] = {
            "name": check_token_name(name),
            "token_type": check_token_type(token_type),
        }
        seconds = parse_ttl(ttl)
        if seconds is not None:
            body["ttl"] = seconds
        user = check_username(username)
        result: CreatedToken = self._request(
            "POST",
            _user_path(user, "tokens"),
            body,
            expect=("id",),
            if_maybe_done=(
                f"the token may have been created: list the tokens of {user!r} and look for one named "
                f"{body['name']!r} (its secret is lost: revoke it by its id) before creating another"
            ),
        )
        return result

    def list_tokens(self, username: str) -> list[TokenInfo]:
        """Every token of a user (metadata only: MotherDuck never shows a secret twice)."""
        answer = self._request("GET", _user_path(username, "tokens"), expect=("tokens",))
        tokens: list[TokenInfo] = answer["tokens"]
        return tokens

    def revoke_token(self, username: str, token_id: str, *, missing_ok: bool = False) -> bool:
        """Revoke a token by its id. ``False`` if it was missing and ``missing_ok``."""
        return self._delete(
            _user_path(username, "tokens", _seg(check_token_id(token_id), "token_id")),
            missing_ok,
        )

    def get_duckling_config(self, username: str) -> DucklingConfig:
        """A user's Duckling settings (instance sizes, flock size, cooldowns)."""
        config: DucklingConfig = self._request(
            "GET", _user_path(username, "instances"), expect=DUCKLING_HALVES
        )
        return config

    def set_duckling_config(self, username: str, config: Mapping[str, Any]) -> DucklingConfig:
        """Replace a user's whole Duckling config (both halves needed)."""
        body = {"config": check_duckling_config(config)}
        result: DucklingConfig = self._request(
            "PUT",
            _user_path(username, "instances"),
            body,
            expect=DUCKLING_HALVES,
        )
        return result

    def update_duckling_config(
        self,
        username: str,
        *,
        read_write: Mapping[str, Any] | None = None,
        read_scaling: Mapping[str, Any] | None = None,
    ) -> DucklingConfig:
        """Change some fields: read, merge, write. No write when nothing would change."""
        for half, change in (("read_write", read_write), ("read_scaling", read_scaling)):
            if change is not None:  # refuse a bad change before reading anything
                check_duckling_half(half, change, complete=False)
        current = self.get_duckling_config(username)
        merged = merge_duckling_config(current, read_write=read_write, read_scaling=read_scaling)
        if merged == merge_duckling_config(current):
            return current
        return self.set_duckling_config(username, merged)

    def list_active_accounts(self) -> list[ActiveAccount]:
        """Accounts with running Ducklings (``active`` or ``cooldown``); not a list of users."""
        accounts: list[ActiveAccount] = self._request("GET", "/v1/active_accounts", expect=("accounts",))[
            "accounts"
        ]
        return accounts

    def list_users(
        self,
        *,
        service_accounts: bool | None = None,
        deprovisioned: bool | None = False,
        page_size: int = 100,
    ) -> UserList:
        """Every user of the organisation, walking all pages of ``GET /v1/users``.

        ``service_accounts``: ``None`` all users, ``True`` only service accounts, ``False`` only
        humans. ``deprovisioned``: ``False`` only active users, ``True`` only deprovisioned ones,
        ``None`` both. Both are sent as MotherDuck's filters and applied to the answer too.
        ``page_size`` is sent as ``limit``. A user seen on two pages (one added during the walk)
        is listed once; a page token seen twice raises (the pagination is looping). The list's
        ``total_count`` is the last page's (how many users MotherDuck says match). Needs the
        ``member_management.view_all_members`` privilege (admin, builder, explorer roles).
        """
        filters = {"is_service_account": service_accounts, "is_deprovisioned": deprovisioned}
        for name, value in (("service_accounts", service_accounts), ("deprovisioned", deprovisioned)):
            optional(check_bool)(value, name)
        query = {"limit": str(check_count(page_size, "page_size", 1))}
        query.update({key: str(value).lower() for key, value in filters.items() if value is not None})
        users: dict[str, UserInfo] = {}
        tokens_seen: set[str] = set()
        while True:
            page = self._users_page(query, page_size)
            for user in page["users"]:
                if all(value is None or user.get(key) == value for key, value in filters.items()):
                    users.setdefault(user["username"], user)
            token = page.get("next_page_token")
            if not token:
                total = page.get("total_count")
                return UserList(
                    users.values(), total if isinstance(total, int) and not isinstance(total, bool) else None
                )
            if token in tokens_seen:
                raise MotherDuckAPIError(
                    f"the user listing gave the page token {blank(token)!r} twice, after {len(tokens_seen) + 1} pages: "
                    "MotherDuck's pagination is looping. Try again later.",
                    status_code=200,
                    method="GET",
                    path="/v1/users",
                )
            tokens_seen.add(token)
            query["page_token"] = token

    def _users_page(self, query: Mapping[str, str], page_size: int) -> Any:
        try:
            return self._request("GET", f"/v1/users?{urlencode(query)}", expect=("users",))
        except MotherDuckRouteNotFoundError as err:
            raise err.with_advice(
                "This MotherDuck API offers no user listing (GET /v1/users): it is older than the "
                "listing, or the connection's API URL is not MotherDuck's."
            ) from None
        except MotherDuckAPIError as err:
            if err.status_code == 400 and _names_limit(err):
                raise err.with_advice(
                    f"page_size={page_size} was sent as limit; MotherDuck accepts fewer per page: "
                    "pass a smaller page_size."
                ) from None
            raise

    def create_dive_embed_session(
        self,
        dive_id: str,
        username: str,
        *,
        session_name: str | None = None,
        version: int | None = None,
        required_resources: Sequence[Mapping[str, str]] | None = None,
        initial_state: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A short-lived session credential for embedding a Dive, for the service account ``username``.

        The answer's ``session`` is a secret (backed by a read-scaling token of ``username`` for
        about a day) and is registered with Airflow's masker at once. ``required_resources``
        (``[{"url", "alias"?}]``, at most 8,192 bytes as JSON) and ``initial_state`` (a JSON
        object, at most 64 KiB) are checked before sending. Needs MotherDuck's Business plan.
        """
        path = f"/v1/dives/{_seg(check_dive_id(dive_id), 'dive_id')}/embed-session"
        body = check_embed_session(
            username,
            session_name=session_name,
            version=version,
            required_resources=required_resources,
            initial_state=initial_state,
        )
        try:
            result: dict[str, Any] = self._request(
                "POST",
                path,
                body,
                expect=("session",),
                if_maybe_done=(
                    "a session may have been issued; it expires by itself within about a day, so asking "
                    "for another is safe"
                ),
            )
        except MotherDuckAuthError as err:
            if err.status_code != 403:
                raise
            raise err.with_advice(
                "Dive embed sessions need MotherDuck's Business plan, and username must be an active "
                f"service account ({body['username']!r} may be a human user)."
            ) from None
        return result

    def get_current_user(
        self, connection: duckdb.DuckDBPyConnection | None = None, *, as_user: str | None = None
    ) -> CurrentUser:
        """Who the token belongs to: the R package's ``show_current_user``, over SQL (there is no REST call).

        Runs ``FROM md_user_info()`` over the connection's SQL transport (the token is a setting
        or a password, never in a connection string), or as the service account ``as_user``. A
        caller may pass an open DuckDB ``connection`` instead; it is left open. Raises
        ``MotherDuckSQLError`` when the answer does not come from MotherDuck. See
        :mod:`~airflow_provider_motherduck.hooks.current_user`.
        """
        if connection is not None:
            lent = SQLSession(
                lambda: DuckDBTransport(connection, owned=False), transport="duckdb", sleep=self._sleep
            )
            return read_current_user(lent)
        with self.sql_session(as_user=as_user) as session:
            return read_current_user(session)

    def test_connection(self) -> tuple[bool, str]:
        """Check the token with a cheap read-only admin call; used by the UI's Test button."""
        # The Test button tests a copy of the form under a random connection id: naming it would confuse.
        self._conn_label = "this connection"
        try:
            accounts = self.list_active_accounts()
        except (MotherDuckAPIError, MotherDuckConfigError, ValueError) as err:
            return False, str(err)
        return True, (
            f"Connected to {self.settings.base_url} with an admin token "
            f"({len(accounts)} account(s) with running Ducklings)."
        )

    def _delete(self, path: str, missing_ok: bool) -> bool:
        try:
            self._request("DELETE", path)
        except MotherDuckNotFoundError:
            if missing_ok:
                return False
            raise
        return True


# -- helpers -----------------------------------------------------------------------------------


def _names_limit(err: MotherDuckAPIError) -> bool:
    """Whether a 400 is about the ``limit`` query parameter (the page size)."""
    return "limit" in err.message.lower() or any("limit" in (issue.get("path") or []) for issue in err.issues)


def _user_path(username: str, *more: str) -> str:
    """``/v1/users/{username}``, the name checked and percent-encoded, then ``more`` segments."""
    return "/".join(("/v1/users", _seg(check_username(username), "username"), *more))


def _seg(value: str, field: str) -> str:
    """One path segment, checked (not empty, ``.`` or ``..``) and percent-encoded (``/`` included)."""
    return quote(check_path_segment(value, field), safe="")


def _as_bool(value: Any, field: str, conn_label: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    problem = invalid(field, value, "not a boolean", "true or false")
    raise MotherDuckConfigError(f"{problem} (an extra of {conn_label})")


def _pick(arg: Any, extra: Any, default: Any, key: str, *, conn_label: str) -> int | float:
    """Hook argument, else connection extra (a number, or a number written as text), else default;
    checked by :func:`~airflow_provider_motherduck.arguments.check_hook_param`."""
    value = arg if arg is not None else extra if extra not in (None, "") else default
    number = value
    if isinstance(value, str):
        with suppress(ValueError):
            number = float(value.strip())
    try:
        return check_hook_param(key, number)
    except ValueError as err:
        where = "an argument of the hook" if arg is not None else f"an extra of {conn_label}"
        raise MotherDuckConfigError(f"{err} ({where})") from None


def _base_url(host: str | None, port: int | None, allow_http: bool, conn_label: str) -> str:
    """The API root from the connection's host (default MotherDuck's); a bare host means https."""
    raw = (host or "").strip().rstrip("/") or DEFAULT_API_URL
    # Not echoed when refused: credentials, a query or a pasted token would end up in the message.
    problem = (
        "contains whitespace or control characters"
        if not raw.isprintable() or any(c.isspace() for c in raw)
        else "carries a query or a fragment ('?', '#')"
        if "?" in raw or "#" in raw
        else ""
    )
    if "://" not in raw:
        raw = f"https://{raw}"
    parts = urlsplit(raw)
    if not problem and "@" in parts.netloc:
        problem = "carries credentials ('user:password@'); the token goes in the connection's password"
    if problem:
        raise MotherDuckConfigError(
            f"The API URL of {conn_label} {problem} (not shown). Allowed: https://host[:port][/path]."
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise MotherDuckConfigError(f"The host {host!r} of {conn_label} is not an http(s) URL.")
    try:
        in_url = parts.port
    except ValueError:
        in_url = -1
    for given in (in_url, port):
        if given is not None and (
            isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= 65535
        ):
            shown = "in the API URL" if given is in_url else f"port={port!r}"
            raise MotherDuckConfigError(
                f"The port ({shown}) of {conn_label} is invalid: not a number from 1 to 65535. "
                "Allowed: a port from 1 to 65535, or none (443 for https)."
            )
    if parts.scheme == "http" and not (allow_http or is_loopback(parts.hostname)):
        raise MotherDuckConfigError(
            f"Refusing to send the token of {conn_label} over plain http to {parts.hostname}. "
            "Use https, or set the extra allow_insecure_http to true if you really mean it."
        )
    if port and not in_url:
        raw = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return raw


def _cause(outcome: Answer | requests.RequestException) -> str:
    """How an attempt ended, for a log line: the status, or the error's class."""
    return str(outcome.status) if isinstance(outcome, Answer) else type(outcome).__name__
