"""MotherDuck's rules, re-stated on the server side, and the organisation they apply to.

Nothing here imports the client package: the emulator states every limit itself, from the
API notes, so that a client bug cannot be mirrored by the server.
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import uuid
from collections.abc import Callable
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

Json = dict[str, Any]


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
    """A user: a human Admin, or a service account (a Member)."""

    username: str
    admin: bool
    config: Json = field(default_factory=lambda: copy.deepcopy(NEW_USER_CONFIG))
    ducklings: list[dict[str, str]] = field(default_factory=list)
    tokens: dict[str, Token] = field(default_factory=dict)


class State:
    """The organisation: users, their tokens, Duckling configs and running Ducklings.

    Every method that reads or writes takes ``lock``; callers may also hold it (it is
    re-entrant) to make authentication and the action one step.
    """

    def __init__(
        self, *, max_flock_size: int, duplicate_user_status: int, clock: Callable[[], datetime]
    ) -> None:
        self.lock = threading.RLock()
        self.max_flock_size = max_flock_size
        self.duplicate_user_status = duplicate_user_status
        self.clock = clock
        self._users: dict[str, User] = {}
        self._by_secret: dict[str, Token] = {}

    def user(self, username: str) -> User:
        """The user, or 404."""
        with self.lock:
            found = self._users.get(username)
            if found is None:
                raise not_found(f"User {username} not found")
            return found

    def usernames(self) -> list[str]:
        """Every username, in creation order."""
        with self.lock:
            return list(self._users)

    def add_user(self, username: str, *, admin: bool) -> bool:
        """Create a user; False if the name is taken."""
        with self.lock:
            if username in self._users:
                return False
            self._users[username] = User(username, admin)
            return True

    def delete_user(self, username: str) -> None:
        """Remove a user with all their tokens, config and Ducklings (404 if missing)."""
        with self.lock:
            gone = self.user(username)
            for token in gone.tokens.values():
                del self._by_secret[token.secret]
            del self._users[username]

    def add_token(self, username: str, name: str, ttl: float | None, token_type: str, secret: str) -> Token:
        """Create a token for an existing user."""
        with self.lock:
            owner = self.user(username)
            created = self.clock()
            expires = None if ttl is None else created + timedelta(seconds=ttl)
            token = Token(str(uuid.uuid4()), name, secret, token_type, username, created, expires)
            owner.tokens[token.id] = token
            self._by_secret[secret] = token
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
        """The Admin behind a ``Bearer`` header, or 401/403."""
        scheme, _, secret = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise unauthorized("Missing or malformed bearer token")
        with self.lock:
            token = self.live_token(secret.strip())
            if token is None:
                raise unauthorized("Invalid or expired token")
            if token.token_type != "read_write":
                raise forbidden("A read_scaling token cannot use the admin API")
            caller = self._users[token.username]
            if not caller.admin:
                raise forbidden("The Admin role is required")
            return caller

    def active_accounts(self) -> list[Json]:
        """Users with running Ducklings."""
        with self.lock:
            return [
                {"username": u.username, "ducklings": copy.deepcopy(u.ducklings)}
                for u in self._users.values()
                if u.ducklings
            ]


def new_secret() -> str:
    """An opaque token secret (deliberately not a JWT)."""
    return "mdt_" + secrets.token_hex(24)
