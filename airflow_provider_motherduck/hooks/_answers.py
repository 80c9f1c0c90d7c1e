"""What an answer (or its absence) means: the decoded result, or the error a caller gets.

Every error says what happened, what to do about it, and whether a write may have been carried
out (``MotherDuckAPIError.maybe_carried_out``). No message quotes a success answer's body, which
may hold a secret; a secret in a decoded answer is masked before anything can log it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from airflow_provider_motherduck._compat import mask_secrets
from airflow_provider_motherduck.exceptions import (
    MotherDuckAPIError,
    MotherDuckAuthError,
    MotherDuckConflictError,
    MotherDuckNotFoundError,
    MotherDuckRouteNotFoundError,
)
from airflow_provider_motherduck.hooks.known_secrets import blank, remember
from airflow_provider_motherduck.hooks.retry import may_have_been_carried_out, may_have_reached_server
from airflow_provider_motherduck.hooks.transport import Answer, is_loopback

if TYPE_CHECKING:
    import requests

#: Fields of an answer that hold a secret: a new token, a Dive embed session.
SECRET_FIELDS = ("token", "session")
#: How deep an answer may nest; MotherDuck's nest four levels at most.
MAX_DEPTH = 32
_NONE = type(None)
#: The types each known field of an answer must have, wherever it appears (MotherDuck's API notes).
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("username", "id", "name", "token", "session", "token_type", "created_ts"), (str,)),
    **dict.fromkeys(("instance_size", "type", "status"), (str,)),
    **dict.fromkeys(("expire_at", "next_page_token", "email", "first_name", "last_name"), (str, _NONE)),
    **dict.fromkeys(("read_only", "is_service_account", "is_deprovisioned"), (bool,)),
    **dict.fromkeys(("flock_size", "cooldown_seconds", "total_count"), (int,)),
    **dict.fromkeys(("tokens", "users", "accounts", "ducklings", "roles"), (list,)),
    **dict.fromkeys(("read_write", "read_scaling"), (dict,)),
}
#: Lists whose items are objects, and the keys each item must have.
OBJECT_LISTS: dict[str, tuple[str, ...]] = {
    "tokens": ("id",),
    "users": ("username",),
    "accounts": ("username",),
    "ducklings": (),
}


@dataclass(frozen=True)
class Call:
    """One API call as the caller sees it, and what its errors should say.

    :param expect: keys a success answer must have (none: any JSON object, or nothing for a DELETE).
    :param if_maybe_done: how to find out whether a failed write was carried out.
    """

    method: str
    path: str
    expect: tuple[str, ...] = ()
    if_maybe_done: str = ""


@dataclass(frozen=True)
class Where:
    """What messages name: the connection and its API URL, and the timeout in force."""

    conn_label: str
    base_url: str
    timeout: float


def decode(call: Call, answer: Answer) -> Any:
    """The JSON of a success answer, its secrets masked; raises if it is not what ``call`` expects."""
    if answer.over_limit is not None:
        raise _unreadable(
            call, answer, f"the answer is larger than {_size(answer.over_limit)}, so it was not read"
        )
    if not answer.body and call.method == "DELETE" and not call.expect:
        return {}  # MotherDuck answers {} or nothing to a delete
    if not answer.body:
        raise _unreadable(call, answer, "the answer is empty")
    try:
        decoded = json.loads(answer.body)
    except ValueError:
        raise _unreadable(call, answer, f"the answer is not JSON ({_describe_body(answer)})") from None
    except RecursionError:
        raise _unreadable(
            call, answer, f"the answer nests too deep to read ({_describe_body(answer)})"
        ) from None
    if not isinstance(decoded, dict):
        raise _unreadable(call, answer, f"the answer is JSON but not an object ({_describe_body(answer)})")
    # Masked before anything can log it; cheap for a bulk task's hundreds of new secrets.
    secrets = [decoded[name] for name in SECRET_FIELDS if isinstance(decoded.get(name), str)]
    if secrets:
        mask_secrets(secrets)
        remember(secrets)
    missing = [key for key in call.expect if key not in decoded]
    if missing:
        raise _unreadable(call, answer, f"the answer has no {', '.join(missing)}")
    problem = shape_problem(decoded)
    if problem:
        raise _unreadable(call, answer, f"the answer is not shaped as MotherDuck's: {problem}")
    return decoded


def shape_problem(answer: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a decoded answer (a known field of the wrong type, an
    object list holding something else, nesting deeper than :data:`MAX_DEPTH`), or ``None``.

    Names where and which types, never a value (it may be a secret).
    """
    stack: list[tuple[Any, str, int]] = [(answer, "", 1)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"it nests deeper than {MAX_DEPTH} levels"
        items = node.items() if isinstance(node, dict) else ((f"[{i}]", v) for i, v in enumerate(node))
        for key, value in items:
            at = (
                f"{where}{key}"
                if isinstance(node, list)
                else f"{where}.{_name(key)}"
                if where
                else _name(key)
            )
            want = FIELD_TYPES.get(key) if isinstance(node, dict) else None
            if want is not None and not _has_type(value, want):
                return f"{at} is {_kind(value)}, expected {' or '.join(_kind_name(t) for t in want)}"
            if isinstance(node, dict) and key in OBJECT_LISTS:
                for i, item in enumerate(value):
                    if not isinstance(item, dict):
                        return f"{at}[{i}] is {_kind(item)}, expected an object"
                    missing = [k for k in OBJECT_LISTS[key] if k not in item]
                    if missing:
                        return f"{at}[{i}] has no {', '.join(missing)}"
            if isinstance(value, (dict, list)):
                stack.append((value, at, depth + 1))
    return None


def _name(key: str) -> str:
    return key if key in FIELD_TYPES else blank(key)[:40]


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # a boolean is an int to Python, not to MotherDuck
    return isinstance(value, types)


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "a boolean", list: "an array", dict: "an object"}.get(
        kind, "null"
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number"
    return next((_kind_name(t) for t in (bool, str, int, list, dict) if isinstance(value, t)), "a value")


def failure(
    call: Call, outcome: Answer | requests.RequestException, attempts: int, carried_out: bool, where: Where
) -> MotherDuckAPIError:
    """The error of a call whose last attempt failed with ``outcome``, after ``attempts`` attempts."""
    maybe_done = call.method != "GET" and (carried_out or may_have_been_carried_out(outcome))
    if isinstance(outcome, Answer):
        cls, message, fields = _answer_error(outcome, where)
        if outcome.status == 429:
            message += (
                f" | MotherDuck throttled this call {_times(attempts)}: try again later, or make fewer "
                "calls at once (raise retry_limit or retry_delay to wait longer)."
            )
        elif outcome.status == 501:
            message += " | MotherDuck does not offer this call there: check the connection's API URL."
        elif outcome.status >= 500:
            message += f" | A server error on MotherDuck's side {_times(attempts)}: try again later."
    else:
        cls, message, fields = MotherDuckAPIError, _network_message(outcome, attempts, where), {}
    if maybe_done:
        message += _maybe_done_hint(call)
    return cls(message, method=call.method, path=call.path, maybe_carried_out=maybe_done, **fields)


def _unreadable(call: Call, answer: Answer, problem: str) -> MotherDuckAPIError:
    """A success status with an answer that cannot be MotherDuck's: wrong host, proxy or login page."""
    maybe_done = call.method != "GET"
    message = (
        f"{problem}: the connection's API URL is probably not MotherDuck's API (a proxy or a login "
        "page answered?), or the API changed"
    )
    if maybe_done:
        message += _maybe_done_hint(call)
    return MotherDuckAPIError(
        message, status_code=answer.status, method=call.method, path=call.path, maybe_carried_out=maybe_done
    )


def _maybe_done_hint(call: Call) -> str:
    if call.method == "POST":
        return (
            " | The request may have reached MotherDuck, so it was not repeated: "
            f"{call.if_maybe_done or 'check what it created before running it again'}."
        )
    return " | It may have been carried out; repeating it is safe."


def _times(attempts: int) -> str:
    return "once" if attempts == 1 else f"on all {attempts} attempts"


def _answer_error(answer: Answer, where: Where) -> tuple[type[MotherDuckAPIError], str, dict[str, Any]]:
    """The class, message and fields of an error answer."""
    status = answer.status
    fields: dict[str, Any] = {"status_code": status}
    if status < 400:
        return MotherDuckAPIError, _redirect_message(answer, where), fields
    payload = _decode_error(answer)
    code: str | None = None
    issues: list[dict[str, Any]] = []
    if answer.over_limit is not None:
        message = f"{blank(answer.reason)} (an error answer larger than {_size(answer.over_limit)}, not read)"
    elif payload is None:  # not MotherDuck's JSON: a proxy, a gateway, or the wrong host
        # Blanked before it is cut short: a cut could leave half a secret that no longer matches.
        message = blank(answer.body.decode("utf-8", "replace")).strip()[:200] or blank(answer.reason)
        if status == 404:
            return (
                MotherDuckRouteNotFoundError,
                f"no such route ({message!r}): the connection's API URL {where.base_url!r} is "
                "probably wrong, or this endpoint is not offered there",
                fields,
            )
    else:
        code, message, issues = payload
        fields.update(code=code, issues=issues)
    if status == 401:
        message += (
            f" | The token of {where.conn_label} was rejected: it is wrong, expired or revoked. "
            "Put a valid read/write token of an Admin user in the connection's password."
        )
        return MotherDuckAuthError, message, fields
    if status == 403:
        message += (
            f" | The token of {where.conn_label} is valid but not allowed to do this: admin calls need "
            "a read/write (not read_scaling) token of a user with the Admin role, and an admin may only "
            "manage service accounts and itself."
        )
        return MotherDuckAuthError, message, fields
    if status == 404 and code == "NOT_FOUND":
        return MotherDuckNotFoundError, message, fields
    if code is not None and (status == 409 or (status == 400 and _names_duplicate(message, issues))):
        return MotherDuckConflictError, message, fields
    return MotherDuckAPIError, message, fields


def _redirect_message(answer: Answer, where: Where) -> str:
    """A 3xx: where it points (the host only: the rest may carry anything), and that it was not followed."""
    location = answer.headers.get("Location")
    try:
        host = urlsplit(urljoin(where.base_url + "/", location or "")).hostname if location else None
    except ValueError:
        host = None
    target = f"redirected to the host {blank(host)!r}" if host else "redirected without a readable target"
    return (
        f"{target} ({blank(answer.reason) or 'redirect'}), and redirects are never followed (the token is not "
        f"sent on, a POST is not replayed): check the API URL of {where.conn_label} ({where.base_url!r}); "
        "MotherDuck's API does not redirect"
    )


def _decode_error(answer: Answer) -> tuple[str, str, list[dict[str, Any]]] | None:
    """MotherDuck's ``code``, ``message`` and ``issues``, or ``None`` if the body is not its JSON.

    Whatever the shape, only strings and numbers are kept (nested values are named, not quoted),
    and every known secret in them is blanked.
    """
    try:
        body = json.loads(answer.body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or not ("code" in body or "message" in body):
        return None
    raw_issues = body.get("issues") or []
    if not isinstance(raw_issues, list):
        raw_issues = [f"(issues sent as a {type(raw_issues).__name__}, not a list)"]
    issues = [_issue(issue) for issue in raw_issues]
    message = _text(body.get("message")) or blank(answer.reason or "")
    return _text(body.get("code")), message, issues


def _text(value: Any) -> str:
    """A server's scalar as text with every known secret blanked; a nested value only by its type."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return f"(a JSON {'object' if isinstance(value, dict) else 'array'})"
    return blank(value if isinstance(value, str) else str(value))


def _issue(issue: Any) -> dict[str, Any]:
    """One of MotherDuck's ``issues``, kept to its documented fields, their secrets blanked."""
    if not isinstance(issue, dict):
        return {"message": _text(issue)}
    path = issue.get("path")
    kept: dict[str, Any] = {
        "path": [_text(p) for p in path] if isinstance(path, list) else [],
        "message": _text(issue.get("message")),
    }
    if "code" in issue:
        kept["code"] = _text(issue["code"])
    return kept


def _names_duplicate(message: str, issues: list[dict[str, Any]]) -> bool:
    text = " ".join([message, *(str(i.get("message", "")) for i in issues)]).lower()
    return "unique constraint" in text or "already exists" in text


def _size(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"


def _describe_body(answer: Answer) -> str:
    """Its type and size, never its content (a success answer may hold a secret)."""
    return f"{answer.content_type or 'no content type'}, {len(answer.body)} bytes"


def _network_message(err: requests.RequestException, attempts: int, where: Where) -> str:
    import requests

    kind = type(err).__name__ if attempts == 1 else f"{type(err).__name__}, {attempts} attempts"
    if isinstance(err, requests.exceptions.SSLError):
        host = urlsplit(where.base_url).hostname or ""
        if is_loopback(host):
            return (
                f"the TLS handshake with {where.base_url} failed ({kind}): a local server such as the "
                f"emulator speaks plain http, so put http://{urlsplit(where.base_url).netloc} in the API URL "
                f"of {where.conn_label}"
            )
        return (
            f"the TLS handshake with {where.base_url} failed ({kind}): check the CA bundle "
            f"(REQUESTS_CA_BUNDLE), any TLS-inspecting proxy and the API URL of {where.conn_label}"
        )
    if not may_have_reached_server(err):
        return (
            f"could not connect to {where.base_url} ({kind}): check the API URL of {where.conn_label}, "
            "the network and the proxy settings (HTTPS_PROXY, NO_PROXY)"
        )
    if isinstance(err, requests.Timeout):
        return (
            f"no answer within the timeout of {where.timeout:g} s ({kind}): try again later, or "
            f"raise the extra timeout of {where.conn_label}"
        )
    return (
        f"the connection broke before the answer arrived ({kind}): try again later; if it keeps "
        f"happening, check any proxy between Airflow and MotherDuck ({where.conn_label})"
    )
