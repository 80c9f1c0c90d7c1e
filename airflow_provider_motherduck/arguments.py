"""Airflow-side argument checks shared by operators, the sensor, the trigger and the workflows.

MotherDuck's own rules are in :mod:`airflow_provider_motherduck.validation`; these are the rules
of Airflow and of this provider's arguments (connection ids, Variable keys, hook parameters,
booleans, counts). A check takes ``(value, field)`` and returns the checked value or raises the
``ValueError`` of :func:`~airflow_provider_motherduck.exceptions.invalid`.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, Final, TypeAlias

from airflow_provider_motherduck.exceptions import invalid

#: A check: ``(value, field) -> checked value``, raising ``ValueError`` on bad input.
Check: TypeAlias = Callable[[Any, str], Any]

#: Airflow refuses longer Variable keys.
VARIABLE_KEY_MAX_LENGTH: Final = 250
#: MotherDuckHook arguments an operator, sensor or trigger may pass on (plain numbers, serialisable).
HOOK_PARAMS: Final = ("timeout", "retry_limit", "retry_delay", "max_retry_wait")
#: The longest any one wait between retries may be: a longer one would hold a worker for nothing.
MAX_RETRY_WAIT_LIMIT: Final = 3600
#: What each hook parameter allows.
HOOK_PARAM_RULES: Final = {
    "timeout": "a finite number of seconds above 0",
    "retry_limit": "a whole number of 0 or more",
    "retry_delay": "a finite number of seconds of 0 or more",
    "max_retry_wait": f"a number of seconds from 0 to {MAX_RETRY_WAIT_LIMIT} (an hour)",
}

_JINJA_MARKERS = ("{{", "{%", "{#")


def is_literal(value: Any) -> bool:
    """Whether ``value`` is final as written in a DAG file: no Jinja, no XComArg or other lazy value.

    Only literal arguments can be checked when a DAG is parsed; the rest are checked after rendering.
    """
    if isinstance(value, str):
        return not any(marker in value for marker in _JINJA_MARKERS)
    if value is None or isinstance(value, (bool, int, float, timedelta)):
        return True
    if isinstance(value, Mapping):
        return all(is_literal(k) and is_literal(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_literal(v) for v in value)
    return False  # XComArg, MappedArgument, ...: only known at run time


def optional(check: Check) -> Check:
    """``check`` for a field that may also be ``None``."""

    def check_optional(value: Any, field: str) -> Any:
        return None if value is None else check(value, field)

    return check_optional


def check_name_list(value: Any, field: str, check: Check, allowed: str) -> list[str]:
    """A list of names (or its JSON text), each passed through ``check`` as ``field[i]``; names
    equal but for case are one (MotherDuck compares them so), in the first spelling given."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid(field, value[:40], "not a JSON list", allowed) from None
    if not isinstance(value, (list, tuple)):
        raise invalid(field, value, f"expected a list, got {type(value).__name__}", allowed)
    once: dict[str, str] = {}
    for i, name in enumerate(value):
        checked = check(name, f"{field}[{i}]")
        once.setdefault(checked.casefold(), checked)
    return list(once.values())


def check_bool(value: Any, field: str) -> bool:
    """``value`` if it is a real boolean (a string such as ``"false"`` would be truthy)."""
    if not isinstance(value, bool):
        raise invalid(field, value, "expected True or False", "True, False")
    return value


def check_count(value: Any, field: str, low: int, high: int | None = None) -> int:
    """``value`` if it is a whole number from ``low`` to ``high`` (no upper bound if ``None``)."""
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer of {low} or more"
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, value, f"expected an integer, got {type(value).__name__}", allowed)
    if value < low or (high is not None and value > high):
        raise invalid(field, value, "out of range", allowed)
    return value


def check_conn_id(value: Any, field: str = "motherduck_conn_id") -> str:
    """``value`` if it can name an Airflow connection."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, value, "expected a connection id", "a non-empty string")
    return value


def check_variable_key(value: Any, field: str) -> str:
    """``value`` if Airflow accepts it as a Variable key."""
    allowed = f"a string of 1 to {VARIABLE_KEY_MAX_LENGTH} characters, no surrounding spaces"
    if not isinstance(value, str):
        raise invalid(field, value, f"expected a string, got {type(value).__name__}", allowed)
    if not value or value != value.strip() or len(value) > VARIABLE_KEY_MAX_LENGTH:
        raise invalid(field, value, "empty, padded or too long", allowed)
    return value


def check_hook_param(key: str, value: Any, field: str | None = None) -> int | float:
    """``value`` if it suits the hook parameter ``key`` (see :data:`HOOK_PARAM_RULES`); a whole
    ``retry_limit`` written as a float (``2.0``) comes back as an int, ``1.7`` is refused."""
    field = field or key
    allowed = HOOK_PARAM_RULES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(field, value, f"expected a number, got {type(value).__name__}", allowed)
    if (
        not math.isfinite(value)
        or value < 0
        or (key == "timeout" and value == 0)
        or (key == "max_retry_wait" and value > MAX_RETRY_WAIT_LIMIT)
    ):
        raise invalid(field, value, "out of range", allowed)
    if key == "retry_limit":
        if value != int(value):
            raise invalid(field, value, "not a whole number", allowed)
        return int(value)
    return value


def check_hook_params(value: Any, field: str = "hook_params") -> dict[str, Any]:
    """A copy of ``value`` without ``None`` entries, if it holds only plain-number hook arguments."""
    allowed = f"a mapping with keys among {', '.join(HOOK_PARAMS)}"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(field, value, f"expected a mapping, got {type(value).__name__}", allowed)
    unknown = sorted(str(k) for k in value if k not in HOOK_PARAMS)
    if unknown:
        raise invalid(field, dict(value), f"unknown keys {unknown}", allowed)
    return {
        key: check_hook_param(key, number, f"{field}.{key}")
        for key, number in value.items()
        if number is not None
    }


def unknown_keys(given: Iterable[str], known: Iterable[str], what: str) -> str | None:
    """A warning for keys of ``given`` not among ``known`` (a misspelt setting is otherwise silently
    ignored): each with its closest known key, if any is close. ``None`` if all are known."""
    choices = list(known)
    unknown = sorted(str(key) for key in given if key not in choices)
    if not unknown:
        return None
    guesses = []
    for key in unknown:
        close = difflib.get_close_matches(key, choices, n=1)
        guesses.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return f"{what}: unknown {', '.join(guesses)} ignored. Known: {', '.join(choices)}."


#: Words that make Airflow mask a Variable's value in the UI and logs when its key contains one
#: (the union of Airflow 2.11's and 3.x's default sensitive fields).
MASKED_KEY_WORDS: Final = (
    "access_key",
    "access_token",
    "api_key",
    "apikey",
    "auth_header",
    "authorization",
    "bearer",
    "connection_string",
    "dsn",
    "keyfile_dict",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "proxies",
    "proxy",
    "secret",
    "service_account",
    "service_key",
    "token",
    "webhook_url",
)


def check_unmasked_name(value: Any, field: str, *, max_length: int = 100) -> str:
    """``value`` if it can end a Variable key that Airflow shows unmasked: letters, digits, ``_``,
    ``-``, ``.``, and none of :data:`MASKED_KEY_WORDS`."""
    allowed = (
        f"1 to {max_length} letters, digits, '_', '-' or '.', without the words {', '.join(MASKED_KEY_WORDS)}"
    )
    if not isinstance(value, str):
        raise invalid(field, value, f"expected a string, got {type(value).__name__}", allowed)
    if (
        not value
        or len(value) > max_length
        or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in value)
    ):
        raise invalid(field, value[:40], "empty, too long or has other characters", allowed)
    masked = [w for w in MASKED_KEY_WORDS if w in value.lower()]
    if masked:
        raise invalid(field, value, f"contains {masked[0]!r}, so Airflow would mask the record", allowed)
    return value
