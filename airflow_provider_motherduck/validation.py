"""MotherDuck's rules: what the admin API accepts, checked before any request.

Only MotherDuck's rules live here; Airflow-side argument checks are in
:mod:`airflow_provider_motherduck.arguments`. ``check_*`` returns the checked value, ``parse_*``
converts it; each failure is the ``ValueError`` of :func:`~airflow_provider_motherduck.exceptions.invalid`,
naming the field, the problem and what is allowed. The API is a preview: the limits are the
constants below, so a change on MotherDuck's side is a one-line edit here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final, Literal, TypeAlias

import pendulum

from airflow_provider_motherduck.exceptions import invalid

USERNAME_MAX_LENGTH: Final = 255
TOKEN_NAME_MAX_LENGTH: Final = 255
#: Dive ids are UUIDs; longer values are refused unsent (the path would carry anything).
DIVE_ID_MAX_LENGTH: Final = 255
SESSION_NAME_MAX_LENGTH: Final = 255
TOKEN_TYPES: Final = ("read_write", "read_scaling")
TTL_MIN_SECONDS: Final = 300
TTL_MAX_SECONDS: Final = 31_536_000
INSTANCE_SIZES: Final = ("pulse", "standard", "jumbo", "mega", "giga")
FLOCK_SIZE_MIN: Final = 0
FLOCK_SIZE_MAX: Final = 64
COOLDOWN_MIN_SECONDS: Final = 60
COOLDOWN_MAX_SECONDS: Final = 86_400
#: Dive embed sessions: the most ``required_resources`` and ``initial_state`` may take, as compact JSON.
REQUIRED_RESOURCES_MAX_BYTES: Final = 8_192
INITIAL_STATE_MAX_BYTES: Final = 65_536
# The keys each half of a Duckling config accepts, in the order the API documents them.
DUCKLING_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "read_write": ("instance_size", "cooldown_seconds"),
    "read_scaling": ("instance_size", "flock_size", "cooldown_seconds"),
}
# Seconds in each unit of the R package's number-and-unit TTLs (month = 30 days, year = 365 days).
TTL_UNITS: Final[dict[str, int]] = {
    "second": 1,
    "minute": 60,
    "hour": 3_600,
    "day": 86_400,
    "week": 604_800,
    "month": 2_592_000,
    "year": 31_536_000,
}

TokenType: TypeAlias = Literal["read_write", "read_scaling"]
TTLInput: TypeAlias = "int | float | str | timedelta | None"

_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_NUMBER_UNIT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+?)s?", re.IGNORECASE)
_TTL_FORMS = (
    "None or 'never' (no expiry), seconds (300, '3600'), a timedelta, an ISO-8601 duration "
    "('PT1H', 'P30D') or a number and unit ('12 hours', '90 days'; units: " + ", ".join(TTL_UNITS) + ")"
)


def _require_str(field: str, value: Any, allowed: str) -> str:
    if not isinstance(value, str):
        raise invalid(field, value, f"expected a string, got {type(value).__name__}", allowed)
    return value


def _username(field: str, value: Any, allowed: str) -> str:
    name = _require_str(field, value, allowed)
    if not name:
        raise invalid(field, name, "it is empty", allowed)
    if len(name) > USERNAME_MAX_LENGTH:
        raise invalid(field, f"{name[:20]}...", f"it has {len(name)} characters", allowed)
    return name


def check_path_segment(value: Any, field: str) -> str:
    """Return ``value`` if it can be one segment of an API path: a string, not empty, ``.`` or ``..``.

    Percent-encoding leaves those three as they are, and HTTP clients drop or resolve them
    (``/v1/users/..`` becomes ``/v1/``), so the request would reach another route.
    """
    allowed = "a non-empty string other than '.' and '..'"
    if not isinstance(value, str):
        raise invalid(field, value, f"expected a string, got {type(value).__name__}", allowed)
    if value in ("", ".", ".."):
        raise invalid(field, value, "as a path segment it would reach another route", allowed)
    return value


def check_username(username: Any, field: str = "username") -> str:
    """Return ``username`` if it can name an existing user (the path segment is percent-encoded).

    Human users' names need not follow the service-account rule of :func:`check_new_username`.
    """
    allowed = (
        f"1 to {USERNAME_MAX_LENGTH} characters, no surrounding spaces or control characters, not '.' or '..'"
    )
    name = _username(field, username, allowed)
    if name != name.strip() or not name.isprintable():
        raise invalid(field, name, "it has surrounding spaces or control characters", allowed)
    return check_path_segment(name, field)


def check_new_username(username: Any, field: str = "username") -> str:
    """Return ``username`` if MotherDuck accepts it for a new service account."""
    allowed = f"1 to {USERNAME_MAX_LENGTH} characters, a letter first, then letters, digits or underscores"
    name = _username(field, username, allowed)
    if not name[0].isascii() or not name[0].isalpha():
        raise invalid(field, name, "it must start with a letter", allowed)
    if not _USERNAME_RE.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "_"))})
        raise invalid(field, name, f"it contains {''.join(bad)!r}", allowed)
    return name


def check_token_name(name: Any, field: str = "token_name") -> str:
    """Return ``name`` if it is a valid access token name (1 to 255 characters)."""
    allowed = f"a string of 1 to {TOKEN_NAME_MAX_LENGTH} characters, not only spaces, no control characters"
    return _check_name(field, name, TOKEN_NAME_MAX_LENGTH, allowed)


def _check_name(field: str, name: Any, longest: int, allowed: str) -> str:
    """A free-form name: a string, not blank, at most ``longest`` characters, no control characters
    (a newline or NUL reaches logs and headers where it should not)."""
    value = _require_str(field, name, allowed)
    if not value.strip():
        raise invalid(field, value, "it is empty or blank", allowed)
    if len(value) > longest:
        raise invalid(field, f"{value[:20]}...", f"it has {len(value)} characters", allowed)
    if not value.isprintable():
        bad = sorted({f"U+{ord(c):04X}" for c in value if not c.isprintable()})
        raise invalid(field, value, f"it contains control characters ({', '.join(bad)})", allowed)
    return value


def check_dive_id(dive_id: Any, field: str = "dive_id") -> str:
    """Return ``dive_id`` if it can name a Dive: a path segment of 1 to 255 printable characters
    (MotherDuck's Dive ids are UUIDs)."""
    allowed = (
        f"a Dive id (a UUID such as 123e4567-e89b-12d3-a456-426614174000), 1 to {DIVE_ID_MAX_LENGTH} "
        "characters, no spaces or control characters"
    )
    value = _require_str(field, dive_id, allowed)
    if len(value) > DIVE_ID_MAX_LENGTH:
        raise invalid(field, f"{value[:20]}...", f"it has {len(value)} characters", allowed)
    if not value.isprintable() or any(c.isspace() for c in value):
        raise invalid(field, value, "it contains spaces or control characters", allowed)
    return check_path_segment(value, field)


def check_token_type(token_type: Any, field: str = "token_type") -> TokenType:
    """Return ``token_type`` if it is ``read_write`` or ``read_scaling``."""
    if token_type not in TOKEN_TYPES:
        raise invalid(field, token_type, "unknown token type", " or ".join(TOKEN_TYPES))
    return token_type  # type: ignore[no-any-return]


def check_token_id(token_id: Any, field: str = "token_id") -> str:
    """Return ``token_id`` if it is a token id (a UUID, as listing and creating tokens return it).

    The value is not echoed in the error: passing the secret instead of the id (the R package's
    mistake) must not put the secret in a message.
    """
    allowed = (
        "a token id from listing or creating tokens, a UUID such as 123e4567-e89b-12d3-a456-426614174000"
    )
    if not isinstance(token_id, str) or not _UUID_RE.fullmatch(token_id):
        raise invalid(field, token_id, "it is not a UUID", allowed, show=False)
    return token_id


def parse_ttl(ttl: Any, field: str = "ttl") -> int | None:
    """Turn any accepted TTL form into whole seconds, or ``None`` for a token that never expires.

    Accepts ``None``/``"never"``, seconds (number or numeric string), ``timedelta`` (including
    ``pendulum.Duration``), ISO-8601 durations (``"P30D"``) and number-and-unit strings
    (``"90 days"``). The result must lie between 300 and 31,536,000 seconds (365 days).
    """
    seconds = _ttl_seconds(ttl, field)
    if seconds is None:
        return None
    if not math.isfinite(seconds):
        raise invalid(field, ttl, "it is not a finite duration", _TTL_FORMS)
    whole = round(seconds)
    if not TTL_MIN_SECONDS <= whole <= TTL_MAX_SECONDS:
        raise invalid(
            field,
            ttl,
            f"it is {whole} seconds, outside {TTL_MIN_SECONDS} to {TTL_MAX_SECONDS} (5 minutes to 365 days)",
            f"{TTL_MIN_SECONDS} to {TTL_MAX_SECONDS} seconds, or 'never'",
        )
    return whole


def _ttl_seconds(ttl: Any, field: str) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool):
        raise invalid(field, ttl, "a boolean is not a duration", _TTL_FORMS)
    if isinstance(ttl, (int, float)):
        return float(ttl)
    if isinstance(ttl, timedelta):
        return ttl.total_seconds()
    if not isinstance(ttl, str):
        raise invalid(field, ttl, f"unsupported type {type(ttl).__name__}", _TTL_FORMS)
    text = ttl.strip()
    if text.lower() == "never":
        return None
    if _NUMBER_RE.fullmatch(text):
        return float(text)
    if text[:1] in ("P", "p"):
        try:
            parsed = pendulum.parse(text.upper())
        except (ValueError, TypeError) as err:
            raise invalid(field, ttl, f"not an ISO-8601 duration ({err})", _TTL_FORMS) from None
        if not isinstance(parsed, timedelta):
            raise invalid(field, ttl, "not an ISO-8601 duration", _TTL_FORMS)
        return parsed.total_seconds()
    match = _NUMBER_UNIT_RE.fullmatch(text)
    if match and match.group(2).lower() in TTL_UNITS:
        return float(match.group(1)) * TTL_UNITS[match.group(2).lower()]
    raise invalid(field, ttl, "not a duration this provider understands", _TTL_FORMS)


_DURATION_FORMS = (
    "seconds (3600, '3600'), a timedelta, an ISO-8601 duration ('PT1H', 'P7D') or a number and unit "
    "('12 hours', '7 days'; units: " + ", ".join(TTL_UNITS) + ")"
)


def parse_duration(value: Any, field: str) -> float:
    """A duration of 0 seconds or more in any form :func:`parse_ttl` reads, without its range or ``never``.

    For waits and grace periods rather than token lifetimes: ``"7 days"``, ``"PT12H"``, ``3600``, a
    ``timedelta``. Returns seconds.
    """
    try:
        seconds = None if value is None else _ttl_seconds(value, field)
    except ValueError:
        seconds = None
    if seconds is None:
        raise invalid(field, value, "not a duration", _DURATION_FORMS)
    if not math.isfinite(seconds):
        raise invalid(field, value, "it is not finite", _DURATION_FORMS)
    if seconds < 0:
        raise invalid(field, value, "it is negative", _DURATION_FORMS)
    return seconds


def _check_int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, value, f"expected an integer, got {type(value).__name__}", f"{low} to {high}")
    if not low <= value <= high:
        raise invalid(field, value, "out of range", f"{low} to {high}")
    return value


def check_duckling_half(half: str, values: Any, *, complete: bool) -> dict[str, Any]:
    """Check one half (``read_write`` or ``read_scaling``) of a Duckling config.

    ``complete=False`` accepts a partial update (any subset of the fields); ``complete=True``
    requires what a full write needs and checks the rules that span fields.
    """
    if half not in DUCKLING_FIELDS:
        raise invalid("config", half, "unknown Duckling type", " or ".join(DUCKLING_FIELDS))
    fields = DUCKLING_FIELDS[half]
    if not isinstance(values, Mapping):
        raise invalid(half, values, f"expected a mapping, got {type(values).__name__}", f"keys {fields}")
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise invalid(half, dict(values), f"unknown keys {unknown}", f"keys {', '.join(fields)}")
    out: dict[str, Any] = {}
    for key in fields:
        if key not in values or values[key] is None:
            continue
        value = values[key]
        if key == "instance_size" and value not in INSTANCE_SIZES:
            raise invalid(f"{half}.instance_size", value, "unknown instance size", ", ".join(INSTANCE_SIZES))
        if key == "flock_size":
            value = _check_int(f"{half}.flock_size", value, FLOCK_SIZE_MIN, FLOCK_SIZE_MAX)
        if key == "cooldown_seconds":
            value = _check_int(f"{half}.cooldown_seconds", value, COOLDOWN_MIN_SECONDS, COOLDOWN_MAX_SECONDS)
        out[key] = value
    if complete:
        required = ("instance_size", "flock_size") if half == "read_scaling" else ("instance_size",)
        missing = [key for key in required if key not in out]
        if missing:
            raise invalid(half, dict(values), f"missing {', '.join(missing)}", f"keys {', '.join(fields)}")
    if out.get("instance_size") == "pulse" and "cooldown_seconds" in out:
        raise invalid(
            f"{half}.cooldown_seconds",
            out["cooldown_seconds"],
            "pulse Ducklings take no cooldown",
            "leave cooldown_seconds out with pulse, or pick " + ", ".join(INSTANCE_SIZES[1:]),
        )
    return out


def check_duckling_config(config: Any) -> dict[str, dict[str, Any]]:
    """Check a full Duckling config (both halves), as the instances PUT needs it."""
    if not isinstance(config, Mapping):
        raise invalid(
            "config", config, f"expected a mapping, got {type(config).__name__}", "read_write, read_scaling"
        )
    missing = [half for half in DUCKLING_FIELDS if half not in config]
    extra = sorted(set(config) - set(DUCKLING_FIELDS))
    if missing or extra:
        problem = f"missing {missing}" if missing else f"unknown keys {extra}"
        raise invalid("config", dict(config), problem, "exactly the keys read_write and read_scaling")
    return {half: check_duckling_half(half, config[half], complete=True) for half in DUCKLING_FIELDS}


def merge_duckling_config(
    current: Mapping[str, Any],
    *,
    read_write: Mapping[str, Any] | None = None,
    read_scaling: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Apply partial updates to a full config and return the validated result.

    When an update changes ``instance_size`` without giving ``cooldown_seconds``, the old cooldown
    is dropped so the new size's default applies (a cooldown valid for ``standard`` is refused
    with ``pulse``).
    """
    updates = {"read_write": read_write, "read_scaling": read_scaling}
    merged: dict[str, dict[str, Any]] = {}
    for half in DUCKLING_FIELDS:
        # Only the documented keys of what the server holds go back: the PUT refuses others.
        base = {k: v for k, v in (current.get(half) or {}).items() if k in DUCKLING_FIELDS[half]}
        update = updates[half]
        if update is not None:
            change = check_duckling_half(half, update, complete=False)
            if "instance_size" in change and change["instance_size"] != base.get("instance_size"):
                base.pop("cooldown_seconds", None)
            base.update(change)
        merged[half] = base
    return check_duckling_config(merged)


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def check_embed_session(
    username: Any,
    *,
    session_name: Any = None,
    version: Any = None,
    required_resources: Any = None,
    initial_state: Any = None,
) -> dict[str, Any]:
    """The body of a Dive embed-session request, checked; options left ``None`` are left out.

    ``username`` names a service account; ``version`` is 1 or more; ``required_resources`` is a
    list of ``{"url", "alias"?}`` of at most 8,192 bytes as compact JSON; ``initial_state`` is a
    JSON object of at most 64 KiB as compact JSON.
    """
    body: dict[str, Any] = {"username": check_username(username)}
    if session_name is not None:
        body["session_name"] = _check_name(
            "session_name",
            session_name,
            SESSION_NAME_MAX_LENGTH,
            f"a name of 1 to {SESSION_NAME_MAX_LENGTH} characters, no control characters, or None",
        )
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise invalid("version", version, "expected a whole number of 1 or more", "1, 2, ... or None")
        body["version"] = version
    if required_resources is not None:
        body["required_resources"] = _check_required_resources(required_resources)
    if initial_state is not None:
        allowed = f"a JSON object (a mapping) of at most {INITIAL_STATE_MAX_BYTES} bytes as JSON"
        if not isinstance(initial_state, Mapping):
            raise invalid(
                "initial_state",
                initial_state,
                f"expected a mapping, got {type(initial_state).__name__}",
                allowed,
                show=False,
            )
        _check_json_size("initial_state", initial_state, INITIAL_STATE_MAX_BYTES, allowed)
        body["initial_state"] = dict(initial_state)
    return body


def _check_required_resources(value: Any) -> list[dict[str, str]]:
    field = "required_resources"
    allowed = f"a list of {{'url': str, 'alias': str (optional)}}, at most {REQUIRED_RESOURCES_MAX_BYTES} bytes as JSON"
    if not isinstance(value, (list, tuple)):
        raise invalid(field, value, f"expected a list, got {type(value).__name__}", allowed)
    resources = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("url"), str) or not item["url"]:
            raise invalid(where, item, "expected a mapping with a non-empty 'url'", allowed)
        unknown = sorted(set(item) - {"url", "alias"})
        if unknown or not isinstance(item.get("alias", ""), str):
            raise invalid(
                where, dict(item), f"unknown keys {unknown}" if unknown else "alias is not a string", allowed
            )
        resources.append(dict(item))
    _check_json_size(field, resources, REQUIRED_RESOURCES_MAX_BYTES, allowed)
    return resources


def _check_json_size(field: str, value: Any, limit: int, allowed: str) -> None:
    """Refuse ``value`` unless it is JSON of at most ``limit`` bytes (compact, UTF-8)."""
    try:
        size = _json_bytes(value)
    except (TypeError, ValueError) as err:
        raise invalid(field, value, f"not JSON ({err})", allowed, show=False) from None
    if size > limit:
        raise invalid(
            field, value, f"it is {size} bytes as JSON, over the limit of {limit}", allowed, show=False
        )


# -- SQL administration: roles, shares, grantees, databases (motherduck-sql facts, sections 2 to 7) --

ROLE_NAME_MIN_LENGTH: Final = 3
ROLE_NAME_MAX_LENGTH: Final = 255
#: The preset roles: they can be granted, never created or dropped (Admin > Builder > Explorer).
PRESET_ROLES: Final = ("admin", "builder", "explorer")
SHARE_ACCESS: Final = ("organization", "restricted", "unrestricted")
SHARE_VISIBILITY: Final = ("discoverable", "hidden")
SHARE_UPDATE: Final = ("automatic", "manual")
INCLUDE_PATTERN_MAX_LENGTH: Final = 16_384
SHARE_URL_PREFIX: Final = "md:_share/"

ShareAccess: TypeAlias = Literal["organization", "restricted", "unrestricted"]
ShareVisibility: TypeAlias = Literal["discoverable", "hidden"]
ShareUpdate: TypeAlias = Literal["automatic", "manual"]

_ROLE_RE = re.compile(r"[a-z][a-z0-9_-]*")


def _sql_text(field: str, value: Any, allowed: str) -> str:
    """A non-empty string without surrounding spaces or control characters (NUL ends a SQL text)."""
    text = _require_str(field, value, allowed)
    if not text or text != text.strip():
        raise invalid(field, text, "it is empty or has surrounding spaces", allowed)
    if not text.isprintable():
        raise invalid(field, text, "it has control characters", allowed)
    return text


def check_role_name(name: Any, field: str = "role", *, new: bool = False) -> str:
    """Return ``name`` if it can name a role; ``new=True`` also refuses the preset roles.

    MotherDuck stores role names in lowercase: 3 to 255 characters, a letter first, then
    letters, digits, ``-`` or ``_``. A name in another case is refused rather than folded, so
    what a DAG says is what MotherDuck holds.
    """
    allowed = (
        f"{ROLE_NAME_MIN_LENGTH} to {ROLE_NAME_MAX_LENGTH} lowercase characters, a letter first, then "
        "letters, digits, '-' or '_'"
    )
    role = _sql_text(field, name, allowed)
    if not ROLE_NAME_MIN_LENGTH <= len(role) <= ROLE_NAME_MAX_LENGTH:
        raise invalid(field, role[:40], f"it has {len(role)} characters", allowed)
    if not _ROLE_RE.fullmatch(role):
        problem = (
            "it is not lowercase" if _ROLE_RE.fullmatch(role.lower()) else "it has a character not allowed"
        )
        raise invalid(field, role, problem, allowed)
    if new and role in PRESET_ROLES:
        raise invalid(field, role, "it is a preset role", f"{allowed}, other than {', '.join(PRESET_ROLES)}")
    return role


def check_object_name(name: Any, field: str) -> str:
    """Return ``name`` if it can name a share or a database: non-empty, no surrounding spaces, no dots."""
    allowed = "a non-empty name without surrounding spaces, control characters or dots"
    text = _sql_text(field, name, allowed)
    if "." in text:
        raise invalid(field, text, "it contains a dot", allowed)
    return text


def check_grantee(name: Any, field: str) -> str:
    """Return ``name`` if it can name a user granted a role or a share (email-style names allowed)."""
    return _sql_text(
        field, name, "a username (a service account's, or a user's email), no surrounding spaces"
    )


def check_alias(name: Any, field: str = "alias") -> str:
    """Return ``name`` if it can be the alias of an attached database (quoted, so any printable text)."""
    return _sql_text(field, name, "a non-empty name without surrounding spaces or control characters")


def check_table_path(path: Any, field: str = "table") -> tuple[str, str, str]:
    """``alias.schema.table`` (or ``alias.table``, schema ``main``) as its three parts, each checked.

    The parts are split at dots, so a part cannot hold one (an alias with a dot cannot be named here).
    """
    allowed = "alias.schema.table or alias.table, each part non-empty without surrounding spaces"
    text = _sql_text(field, path, allowed)
    parts = text.split(".")
    if len(parts) not in (2, 3) or any(not p or p != p.strip() for p in parts):
        raise invalid(field, text, "it is not two or three dotted parts", allowed)
    alias, schema, table = parts if len(parts) == 3 else (parts[0], "main", parts[1])
    return alias, schema, table


def check_share_url(url: Any, field: str = "url") -> str:
    """Return ``url`` if it has a share URL's form, ``md:_share/<database>/<share token>``."""
    allowed = f"{SHARE_URL_PREFIX}<database>/<share token>, as creating or listing a share gives it"
    text = _sql_text(field, url, allowed)
    database, _, token = text.removeprefix(SHARE_URL_PREFIX).partition("/")
    if not text.startswith(SHARE_URL_PREFIX) or not database or not token or "/" in token:
        raise invalid(field, text, "it is not a share URL", allowed)
    return text


def share_url_database(url: str) -> str:
    """The source database named in a share URL (the default alias when attaching it)."""
    return check_share_url(url).removeprefix(SHARE_URL_PREFIX).partition("/")[0]


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> Any:
    if not isinstance(value, str) or value.lower() not in choices:
        raise invalid(field, value, "unknown value", ", ".join(choices))
    return value.lower()


def check_share_access(value: Any, field: str = "access") -> ShareAccess:
    """Return ``value`` lowercased if it is a share's access: organization, restricted or unrestricted."""
    return _check_choice(field, value, SHARE_ACCESS)  # type: ignore[no-any-return]


def check_share_visibility(value: Any, field: str = "visibility") -> ShareVisibility:
    """Return ``value`` lowercased if it is a share's visibility: discoverable or hidden."""
    return _check_choice(field, value, SHARE_VISIBILITY)  # type: ignore[no-any-return]


def check_share_update(value: Any, field: str = "update") -> ShareUpdate:
    """Return ``value`` lowercased if it is a share's update mode: automatic or manual."""
    return _check_choice(field, value, SHARE_UPDATE)  # type: ignore[no-any-return]


def check_include_pattern(value: Any, field: str = "include") -> tuple[str, ...]:
    """Return the patterns of a filtered share (``'schema.table'``, ``'main.*'``) as a tuple.

    An empty list shares nothing; ``None`` (handled by the caller) shares the whole database.
    The patterns are joined with commas into one literal, so none may hold a comma outside
    double quotes, and the joined text is at most 16,384 characters.
    """
    allowed = (
        "a list of table patterns such as 'main.orders' or 'main.*', no comma outside double quotes, "
        f"at most {INCLUDE_PATTERN_MAX_LENGTH} characters joined"
    )
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise invalid(field, value, f"expected a list, got {type(value).__name__}", allowed)
    patterns = tuple(_sql_text(f"{field}[{i}]", p, allowed) for i, p in enumerate(value))
    for i, pattern in enumerate(patterns):
        if "," in re.sub(r'"[^"]*"', "", pattern):
            raise invalid(f"{field}[{i}]", pattern, "it has a comma outside double quotes", allowed)
    if len(",".join(patterns)) > INCLUDE_PATTERN_MAX_LENGTH:
        raise invalid(field, f"{len(patterns)} patterns", "they are too long joined", allowed)
    return patterns


def fold_username(username: str) -> str:
    """The form MotherDuck compares usernames in: ``ETL_Loader`` and ``etl_loader`` are one user.

    Every comparison of usernames goes through this; every output keeps MotherDuck's spelling.
    """
    return username.casefold()
