"""MotherDuck's rules, re-stated on the server side, and the organisation they apply to.

Nothing here imports the client package: the emulator states every limit itself, from the
API notes, so that a client bug cannot be mirrored by the server.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

# Limits, one line each (the API is a "Preview": a change is a one-line edit).
USERNAME_MAX = 255
USERNAME_FIRST = re.compile(r"[A-Za-z]")
USERNAME_REST = re.compile(r"[A-Za-z0-9_]*")
TOKEN_NAME_MAX = 255
TTL_MIN = 300
TTL_MAX = 31_536_000
TOKEN_TYPES = ("read_write", "read_scaling")
INSTANCE_SIZES = ("pulse", "standard", "jumbo", "mega", "giga")
FLOCK_MIN = 0
FLOCK_MAX = 64
COOLDOWN_MIN = 60
COOLDOWN_MAX = 86_400
DEFAULT_COOLDOWN = {"standard": 60, "jumbo": 60, "mega": 300, "giga": 600}
NEW_USER_CONFIG: dict[str, Any] = {
    "read_write": {"instance_size": "standard", "cooldown_seconds": 60},
    "read_scaling": {"instance_size": "standard", "flock_size": 4, "cooldown_seconds": 60},
}
DUPLICATE_USER_MESSAGE = 'duplicate key value violates unique constraint "users_username_key"'
ROLES = ("admin", "builder", "explorer", "member")
MEMBER_VIEWERS = frozenset({"admin", "builder", "explorer"})  # member_management.view_all_members
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
SESSION_NAME_MAX = 255
REQUIRED_RESOURCES_MAX_BYTES = 8_192
INITIAL_STATE_MAX_BYTES = 65_536
EMBED_SESSION_LIFETIME = timedelta(hours=24)

Json = dict[str, Any]


def fold(username: str) -> str:
    """MotherDuck compares usernames ignoring case: ``ETL_Loader`` and ``etl_loader`` are one user."""
    return username.casefold()


class ApiError(Exception):
    """An error answer in MotherDuck's shape."""

    def __init__(self, status: int, code: str, message: str, issues: list[Json] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.issues = issues

    def body(self, procedure: str | None) -> Json:
        """The JSON error body, ``data.path`` naming the procedure when known."""
        data: Json = {"code": self.code, "httpStatus": self.status}
        if procedure is not None:
            data["path"] = procedure
        out: Json = {"code": self.code, "message": self.message, "data": data}
        if self.issues is not None:
            out["issues"] = self.issues
        return out


def unauthorized(message: str) -> ApiError:
    """401 UNAUTHORIZED."""
    return ApiError(401, "UNAUTHORIZED", message)


def forbidden(message: str) -> ApiError:
    """403 FORBIDDEN."""
    return ApiError(403, "FORBIDDEN", message)


def not_found(message: str) -> ApiError:
    """404 NOT_FOUND (JSON: a real missing object, unlike an unknown route)."""
    return ApiError(404, "NOT_FOUND", message)


def bad_request(message: str) -> ApiError:
    """400 BAD_REQUEST without field issues."""
    return ApiError(400, "BAD_REQUEST", message)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Issues:
    """Collects field-level problems, zod style, and raises them as one 400."""

    def __init__(self) -> None:
        self.items: list[Json] = []

    def add(self, code: str, path: list[str], message: str) -> None:
        self.items.append({"code": code, "path": path, "message": message})

    def error(self) -> ApiError:
        return ApiError(400, "BAD_REQUEST", self.items[0]["message"], self.items)

    def raise_any(self) -> None:
        if self.items:
            raise self.error()

    def body(self, value: Any, allowed: tuple[str, ...]) -> Json:
        """A request body that must be an object; anything else is a 400 at once."""
        obj = self.object(value, [], allowed)
        if obj is None:
            raise self.error()
        return obj

    def object(self, value: Any, path: list[str], allowed: tuple[str, ...]) -> Json | None:
        """``value`` as an object with only ``allowed`` keys, or None after recording why not."""
        if not isinstance(value, dict):
            got = "undefined" if value is _MISSING else _type_name(value)
            self.add(
                "invalid_type", path, "Required" if got == "undefined" else f"Expected object, received {got}"
            )
            return None
        unknown = [k for k in value if k not in allowed]
        if unknown:
            keys = ", ".join(f"'{k}'" for k in unknown)
            self.add("unrecognized_keys", path, f"Unrecognized key(s) in object: {keys}")
        return value

    def string(self, value: Any, path: list[str], label: str, max_len: int) -> str | None:
        if value is _MISSING:
            self.add("invalid_type", path, "Required")
        elif not isinstance(value, str):
            self.add("invalid_type", path, f"Expected string, received {_type_name(value)}")
        elif not value:
            self.add("too_small", path, f"{label} must contain at least 1 character(s)")
        elif len(value) > max_len:
            self.add("too_big", path, f"{label} must contain at most {max_len} character(s)")
        else:
            return value
        return None

    def enum(self, value: Any, path: list[str], options: tuple[str, ...]) -> str | None:
        if value is _MISSING:
            self.add("invalid_type", path, "Required")
        elif value not in options or not isinstance(value, str):
            expected = " | ".join(f"'{o}'" for o in options)
            self.add(
                "invalid_enum_value", path, f"Invalid enum value. Expected {expected}, received {value!r}"
            )
        else:
            return value
        return None

    def number(self, value: Any, path: list[str], low: int, high: int, *, integer: bool) -> float | None:
        if value is _MISSING:
            self.add("invalid_type", path, "Required")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            self.add("invalid_type", path, f"Expected number, received {_type_name(value)}")
        elif integer and isinstance(value, float):
            self.add("invalid_type", path, "Expected integer, received float")
        elif value < low:
            self.add("too_small", path, f"Number must be greater than or equal to {low}")
        elif value > high:
            self.add("too_big", path, f"Number must be less than or equal to {high}")
        else:
            return value
        return None


_MISSING: Any = object()  # an absent key, unlike an explicit JSON null


def check_create_user(body: Any) -> str:
    """The username of a valid create-user body."""
    issues = _Issues()
    obj = issues.body(body, ("username",))
    name = issues.string(obj.get("username", _MISSING), ["username"], "Username", USERNAME_MAX)
    if name is not None:
        if not USERNAME_FIRST.match(name):
            issues.add("invalid_string", ["username"], "Username must start with an alphabetic character")
        elif not USERNAME_REST.fullmatch(name, 1):
            issues.add(
                "invalid_string",
                ["username"],
                "Username may only contain letters, digits and underscores",
            )
    issues.raise_any()
    assert name is not None
    return name


def check_create_token(body: Any) -> tuple[str, float | None, str]:
    """Name, ttl (None: never expires) and token type of a valid create-token body."""
    issues = _Issues()
    obj = issues.body(body, ("name", "ttl", "token_type"))
    name = issues.string(obj.get("name", _MISSING), ["name"], "Name", TOKEN_NAME_MAX)
    ttl: float | None = None
    if "ttl" in obj:
        ttl = issues.number(obj["ttl"], ["ttl"], TTL_MIN, TTL_MAX, integer=False)
    token_type = issues.enum(obj.get("token_type", "read_write"), ["token_type"], TOKEN_TYPES)
    issues.raise_any()
    assert name is not None
    assert token_type is not None
    return name, ttl, token_type


def check_config(config: Any, path: list[str], max_flock_size: int) -> Json:
    """A valid Duckling config, normalised (cooldown defaults filled in)."""
    issues = _Issues()
    halves = {
        "read_write": ("instance_size", "cooldown_seconds"),
        "read_scaling": ("instance_size", "flock_size", "cooldown_seconds"),
    }
    obj = issues.object(config, path, tuple(halves))
    if obj is None:
        raise issues.error()
    out: Json = {}
    for half, keys in halves.items():
        where = [*path, half]
        part = issues.object(obj.get(half, _MISSING), where, keys)
        if part is None:
            continue
        size = issues.enum(part.get("instance_size", _MISSING), [*where, "instance_size"], INSTANCE_SIZES)
        normal: Json = {"instance_size": size}
        if "flock_size" in keys:
            normal["flock_size"] = issues.number(
                part.get("flock_size", _MISSING), [*where, "flock_size"], FLOCK_MIN, FLOCK_MAX, integer=True
            )
        if "cooldown_seconds" in part:
            cooldown = issues.number(
                part["cooldown_seconds"],
                [*where, "cooldown_seconds"],
                COOLDOWN_MIN,
                COOLDOWN_MAX,
                integer=True,
            )
            if size == "pulse":
                issues.add(
                    "custom", [*where, "cooldown_seconds"], "cooldown_seconds is not accepted with pulse"
                )
            normal["cooldown_seconds"] = cooldown
        elif size in DEFAULT_COOLDOWN:
            normal["cooldown_seconds"] = DEFAULT_COOLDOWN[size]
        out[half] = normal
    issues.raise_any()
    flock = out["read_scaling"]["flock_size"]
    if flock > max_flock_size:
        raise bad_request(
            f"Invalid config for tier: flock_size {flock} is over this plan's limit of {max_flock_size}"
        )
    return out


def check_config_body(body: Any, max_flock_size: int) -> Json:
    """The normalised config of a valid ``{"config": {...}}`` PUT body."""
    issues = _Issues()
    obj = issues.body(body, ("config",))
    issues.raise_any()
    return check_config(obj.get("config", _MISSING), ["config"], max_flock_size)


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: the measure of the embed-session size limits."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@dataclass(frozen=True)
class UsersQuery:
    """A checked ``GET /v1/users`` query; a filter of None is not applied."""

    limit: int
    page_token: str | None
    offset: int
    service_account: bool | None
    deprovisioned: bool | None


def _query_int(issues: _Issues, raw: str | None, name: str, low: int, high: int | None) -> int | None:
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]+", raw.strip()):
        issues.add("invalid_type", [name], f"{name} must be an integer, received {raw!r}")
        return None
    value = int(raw)
    if value < low:
        issues.add("too_small", [name], f"{name} must be greater than or equal to {low}")
    elif high is not None and value > high:
        issues.add("too_big", [name], f"{name} must be less than or equal to {high}")
    return value


def _query_bool(issues: _Issues, raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw in ("true", "false"):
        return raw == "true"
    issues.add("invalid_type", [name], f"{name} must be true or false, received {raw!r}")
    return None


def check_users_query(query: dict[str, list[str]], max_page_size: int) -> UsersQuery:
    """The list-users query (first value of each parameter; unknown parameters ignored), or 400."""
    first = {name: values[0] for name, values in query.items() if values}
    issues = _Issues()
    limit = _query_int(issues, first.get("limit"), "limit", 1, max_page_size)
    offset = _query_int(issues, first.get("offset"), "offset", 0, None)
    service_account = _query_bool(issues, first.get("is_service_account"), "is_service_account")
    deprovisioned = _query_bool(issues, first.get("is_deprovisioned"), "is_deprovisioned")
    page_token = first.get("page_token") or None
    issues.raise_any()
    return UsersQuery(
        limit=min(DEFAULT_PAGE_SIZE, max_page_size) if limit is None else limit,
        page_token=page_token,
        offset=offset or 0,
        service_account=service_account,
        deprovisioned=deprovisioned,
    )


@dataclass(frozen=True)
class EmbedRequest:
    """A checked embed-session body (``session_hint`` already folded into ``session_name``)."""

    username: str
    session_name: str | None
    version: int | None
    required_resources: list[Json] | None
    initial_state: Json | None


def check_embed_session(body: Any) -> EmbedRequest:
    """A valid ``POST /v1/dives/{id}/embed-session`` body, or 400 listing every problem."""
    issues = _Issues()
    obj = issues.body(
        body, ("username", "session_name", "session_hint", "version", "required_resources", "initial_state")
    )
    username = issues.string(obj.get("username", _MISSING), ["username"], "Username", USERNAME_MAX)
    session_name: str | None = None
    if "session_name" in obj and "session_hint" in obj:
        issues.add("custom", ["session_hint"], "session_hint is a deprecated alias of session_name: send one")
    for key in ("session_name", "session_hint"):
        if key in obj:
            session_name = issues.string(obj[key], [key], "Session name", SESSION_NAME_MAX)
    version = None
    if "version" in obj:
        version = issues.number(obj["version"], ["version"], 1, 2**31 - 1, integer=True)
    resources = obj.get("required_resources")
    if "required_resources" in obj:
        if not isinstance(resources, list):
            issues.add(
                "invalid_type", ["required_resources"], f"Expected array, received {_type_name(resources)}"
            )
        else:
            for i, item in enumerate(resources):
                where = ["required_resources", str(i)]
                part = issues.object(item, where, ("url", "alias"))
                if part is not None:
                    issues.string(
                        part.get("url", _MISSING), [*where, "url"], "url", REQUIRED_RESOURCES_MAX_BYTES
                    )
                    if "alias" in part:
                        issues.string(part["alias"], [*where, "alias"], "alias", REQUIRED_RESOURCES_MAX_BYTES)
            if json_size(resources) > REQUIRED_RESOURCES_MAX_BYTES:
                issues.add(
                    "too_big",
                    ["required_resources"],
                    f"required_resources must be at most {REQUIRED_RESOURCES_MAX_BYTES} bytes as JSON",
                )
    initial_state = obj.get("initial_state")
    if "initial_state" in obj:
        if not isinstance(initial_state, dict):
            issues.add(
                "invalid_type", ["initial_state"], f"Expected object, received {_type_name(initial_state)}"
            )
        elif json_size(initial_state) > INITIAL_STATE_MAX_BYTES:
            issues.add(
                "too_big",
                ["initial_state"],
                f"initial_state must be at most {INITIAL_STATE_MAX_BYTES} bytes as JSON",
            )
    issues.raise_any()
    assert username is not None
    return EmbedRequest(
        username,
        session_name,
        None if version is None else int(version),
        copy.deepcopy(resources),
        copy.deepcopy(initial_state),
    )


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as MotherDuck writes timestamps."""
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc_now() -> datetime:
    """The real time, in UTC."""
    return datetime.now(timezone.utc)


@dataclass
class Token:
    """One access token; ``secret`` never leaves the state except on creation."""

    id: str
    name: str
    secret: str
    token_type: str
    username: str
    created: datetime
    expires: datetime | None

    def metadata(self) -> Json:
        """The token as the list endpoint shows it (no secret)."""
        out: Json = {
            "id": self.id,
            "name": self.name,
            "token_type": self.token_type,
            "read_only": self.token_type == "read_scaling",
            "created_ts": iso_utc(self.created),
        }
        if self.expires is not None:
            out["expire_at"] = iso_utc(self.expires)
        return out


@dataclass
class User:
    """A user: a human or a service account, with roles out of ``ROLES``."""

    username: str
    roles: tuple[str, ...]
    service_account: bool
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    deprovisioned: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    config: Json = field(default_factory=lambda: copy.deepcopy(NEW_USER_CONFIG))
    ducklings: list[dict[str, str]] = field(default_factory=list)
    tokens: dict[str, Token] = field(default_factory=dict)

    @property
    def admin(self) -> bool:
        """Whether the user holds the Admin role."""
        return "admin" in self.roles

    def listing(self) -> Json:
        """The user as ``GET /v1/users`` shows it."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "is_service_account": self.service_account,
            "is_deprovisioned": self.deprovisioned,
            "roles": list(self.roles),
        }


def check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    """Roles as a tuple: at least one, each out of ``ROLES``, none twice; ValueError otherwise."""
    if isinstance(roles, str) or not roles or len(set(roles)) != len(roles):
        raise ValueError(f"roles must be a non-empty list of distinct roles out of {list(ROLES)}")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown roles {unknown}; expected roles out of {list(ROLES)}")
    return tuple(roles)


def require_admin(caller: User, params: list[str]) -> None:
    """Most of the admin API: the Admin role."""
    if not caller.admin:
        raise forbidden("The Admin role is required")


def require_member_viewer(caller: User, params: list[str]) -> None:
    """Listing users: the ``member_management.view_all_members`` privilege."""
    if not MEMBER_VIEWERS.intersection(caller.roles):
        raise forbidden(
            "The member_management.view_all_members privilege is required (Admin, Builder or Explorer role)"
        )


def require_self_or_admin(caller: User, params: list[str]) -> None:
    """A Duckling config: the Admin role, or the user's own (``params[0]``)."""
    if fold(params[0]) != fold(caller.username):
        require_admin(caller, params)


class State:
    """The organisation: users, their tokens, Duckling configs and running Ducklings.

    Every method that reads or writes takes ``lock``; callers may also hold it (it is
    re-entrant) to make authentication and the action one step. The switches (``user_listing``,
    ``business_plan``, ``max_page_size``) may be changed at any time.
    """

    def __init__(
        self,
        *,
        max_flock_size: int,
        duplicate_user_status: int,
        clock: Callable[[], datetime],
        max_page_size: int = MAX_PAGE_SIZE,
        user_listing: bool = True,
        business_plan: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.max_flock_size = max_flock_size
        self.duplicate_user_status = duplicate_user_status
        self.clock = clock
        self.max_page_size = max_page_size
        self.user_listing = user_listing
        self.business_plan = business_plan
        self._users: dict[str, User] = {}  # by folded username: paths find a user whatever the case
        self._by_secret: dict[str, Token] = {}
        self._cursors: dict[str, int] = {}
        self._issued: list[Json] = []

    def user(self, username: str) -> User:
        """The user, or 404."""
        with self.lock:
            found = self._users.get(fold(username))
            if found is None:
                raise not_found(f"User {username} not found")
            return found

    def usernames(self) -> list[str]:
        """Every username, in creation order."""
        with self.lock:
            return [u.username for u in self._users.values()]

    def add_user(self, user: User) -> bool:
        """Add a user; False if the name is taken, whatever its case."""
        with self.lock:
            if fold(user.username) in self._users:
                return False
            self._users[fold(user.username)] = user
            return True

    def delete_user(self, username: str) -> None:
        """Remove a user with all their tokens, config and Ducklings (404 if missing)."""
        with self.lock:
            gone = self.user(username)
            for token in gone.tokens.values():
                del self._by_secret[token.secret]
            del self._users[fold(gone.username)]

    def add_token(self, username: str, name: str, ttl: float | None, token_type: str, secret: str) -> Token:
        """Create a token for an existing user (recorded among the issued secrets)."""
        with self.lock:
            owner = self.user(username)
            created = self.clock()
            expires = None if ttl is None else created + timedelta(seconds=ttl)
            token = Token(str(uuid.uuid4()), name, secret, token_type, owner.username, created, expires)
            owner.tokens[token.id] = token
            self._by_secret[secret] = token
            self._issued.append(
                {"kind": "token", "username": owner.username, "id": token.id, "name": name, "secret": secret}
            )
            return token

    def delete_token(self, username: str, token_id: str) -> None:
        """Invalidate a token by id (404 if the user or the id is unknown)."""
        with self.lock:
            token = self.user(username).tokens.pop(token_id, None)
            if token is None:
                raise not_found(f"Token {token_id} not found")
            del self._by_secret[token.secret]

    def live_token(self, secret: str) -> Token | None:
        """The token with this secret if it exists and has not expired."""
        with self.lock:
            token = self._by_secret.get(secret)
            if token is None or (token.expires is not None and token.expires <= self.clock()):
                return None
            return token

    def authenticate(self, authorization: str | None) -> User:
        """The active user behind a read/write ``Bearer`` token, or 401/403 (roles are the route's)."""
        scheme, _, secret = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise unauthorized("Missing or malformed bearer token")
        with self.lock:
            token = self.live_token(secret.strip())
            if token is None:
                raise unauthorized("Invalid or expired token")
            caller = self._users[fold(token.username)]
            if caller.deprovisioned:
                raise unauthorized(f"User {caller.username} is deprovisioned")
            if token.token_type != "read_write":
                raise forbidden("A read_scaling token cannot use the admin API")
            return caller

    def active_accounts(self) -> list[Json]:
        """Users with running Ducklings."""
        with self.lock:
            return [
                {"username": u.username, "ducklings": copy.deepcopy(u.ducklings)}
                for u in self._users.values()
                if u.ducklings
            ]

    def list_users(self, query: UsersQuery) -> Json:
        """One page of users, ordered by username; the cursor is an offset kept server-side."""
        with self.lock:
            if query.page_token is None:
                start = query.offset
            elif query.page_token in self._cursors:
                start = self._cursors[query.page_token]
            else:
                raise ApiError(
                    400,
                    "BAD_REQUEST",
                    "Invalid page_token",
                    [{"code": "custom", "path": ["page_token"], "message": "Invalid page_token"}],
                )
            matching = [
                u
                for _, u in sorted(self._users.items())
                if query.service_account in (None, u.service_account)
                and query.deprovisioned in (None, u.deprovisioned)
            ]
            end = start + query.limit
            cursor = None
            if end < len(matching):
                cursor = "pt_" + secrets.token_urlsafe(12)
                self._cursors[cursor] = end
            return {
                "users": [u.listing() for u in matching[start:end]],
                "total_count": len(matching),
                "next_page_token": cursor,
            }

    def add_embed_session(self, dive_id: str, request: EmbedRequest) -> str:
        """Issue an embed session for a service account (404/403 otherwise); returns the secret."""
        with self.lock:
            target = self.user(request.username)
            if not target.service_account:
                raise forbidden(f"User {request.username} is not a service account")
            if target.deprovisioned:
                raise forbidden(f"User {request.username} is deprovisioned")
            secret = "mds_" + secrets.token_hex(24)
            created = self.clock()
            self._issued.append(
                {
                    "kind": "embed_session",
                    "username": target.username,
                    "dive_id": dive_id,
                    "session_name": request.session_name,
                    "version": request.version,
                    "required_resources": copy.deepcopy(request.required_resources),
                    "initial_state": copy.deepcopy(request.initial_state),
                    "created_ts": iso_utc(created),
                    "expire_at": iso_utc(created + EMBED_SESSION_LIFETIME),
                    "secret": secret,
                }
            )
            return secret

    def issued(self) -> list[Json]:
        """Every secret issued so far, oldest first (revoked and expired ones included)."""
        with self.lock:
            return copy.deepcopy(self._issued)


def new_secret() -> str:
    """An opaque token secret (deliberately not a JWT)."""
    return "mdt_" + secrets.token_hex(24)
