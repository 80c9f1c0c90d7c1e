"""The fault matrix: each fault the hook must survive, and what it must do for each HTTP method.

``tests/hooks/test_fault_matrix.py`` runs every fault against every endpoint of the hook, over
real HTTP to the emulator; ``docs/reliability.rst`` shows the same cases as a table, rendered by
:func:`rst_table` when the docs are built, so the page cannot drift from what is tested.
This module imports no test framework: the docs build imports it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_motherduck.exceptions import MotherDuckAPIError, MotherDuckRouteNotFoundError
from airflow_provider_motherduck.hooks.motherduck import DEFAULT_RETRY_LIMIT

METHODS = ("GET", "PUT", "DELETE", "POST")
#: The hook's timeout in the read-timeout cases, and how long the slow answer takes there.
TIMEOUT = 0.1
SLOW = 0.25
#: A secret-looking value inside broken answers: no message may quote it.
SECRET_IN_GARBAGE = "mdt_secret_in_a_broken_answer_0123456789"
OVER_LIMIT = "x" * (16 * 2**20 + 1)
#: A trickled answer: one byte every TRICKLE seconds, far within the per-read timeout, far past the deadline.
TRICKLE = 0.02
DEEP_JSON = "[" * 100_000 + "]" * 100_000
#: Every field an answer may carry, each of a wrong type.
WRONG_TYPES = {
    **dict.fromkeys(("username", "id", "token", "session"), 7),
    **dict.fromkeys(("tokens", "users", "accounts", "read_write", "read_scaling"), SECRET_IN_GARBAGE),
    "next_page_token": {"page": 2},
}

# What kind of failure a fault is, which decides what the hook does.
THROTTLED = "throttled"  # refused unread: any method is retried
SERVER_ERROR = "server error"  # may have been done: retried unless a POST
NOT_OFFERED = "not offered"  # 501: never retried
UNREACHABLE = "unreachable"  # nothing reached the server: retried, POST included
LOST_BEFORE = "lost before"  # sent, no answer, the server did nothing
LOST_AFTER = "lost after"  # sent, the server acted, the answer was lost
UNREADABLE = "unreadable"  # a success status with an answer that cannot be MotherDuck's
EMPTY = "empty"  # a success status with no body: fine for a DELETE only
NO_ROUTE = "no route"  # a plain-text 404
REFUSED = "refused"  # a 4xx: never retried, nothing done
REDIRECTED = "redirected"  # a 3xx: never followed, never retried

POST_NOT_REPEATED = "may have reached MotherDuck, so it was not repeated"


@dataclass(frozen=True)
class Fault:
    """One fault: how the emulator plays it (``inject``: the arguments of ``emulator.inject``)."""

    key: str
    title: str
    kind: str
    inject: Mapping[str, Any] | None  # None: nothing listens at the API URL
    #: ``Retry-After`` to send: a string as it is, a timedelta as an HTTP date that far from now.
    retry_after: str | timedelta | None = None
    #: How each retry waits: seconds, "date" (until the header's date) or "backoff".
    wait: float | str = "backoff"
    #: What the error message must say (what to do).
    says: str = ""
    #: The hook's timeout for this fault (seconds).
    timeout: float = 30.0

    @property
    def slow(self) -> bool:
        """Whether the emulator answers after the hook gave up (a read timeout)."""
        return self.inject is not None and (self.inject.get("delay", 0) > 0 or "trickle" in self.inject)


def _throttled(key: str, title: str, retry_after: str | timedelta | None, wait: float | str) -> Fault:
    return Fault(key, title, THROTTLED, {"status": 429}, retry_after=retry_after, wait=wait)


def _status(status: int, kind: str, says: str) -> Fault:
    return Fault(str(status), str(status), kind, {"status": status, "after": kind == SERVER_ERROR}, says=says)


def _garbage(
    key: str, title: str, body: str, kind: str = UNREADABLE, says: str = "probably not MotherDuck's API"
) -> Fault:
    return Fault(key, title, kind, {"status": 200, "body": body, "after": True}, says=says)


FAULTS: tuple[Fault, ...] = (
    _throttled("429-seconds", "429, ``Retry-After: 7``", "7", 7.0),
    _throttled("429-date", "429, ``Retry-After`` an HTTP date 30 s ahead", timedelta(seconds=30), "date"),
    _throttled("429-past-date", "429, ``Retry-After`` a past HTTP date", timedelta(hours=-1), 0.0),
    _throttled("429-garbage", "429, ``Retry-After: soon``", "soon", "backoff"),
    _throttled("429-absent", "429 without ``Retry-After``", None, "backoff"),
    _status(500, SERVER_ERROR, "try again later"),
    _status(501, NOT_OFFERED, "check the connection's API URL"),
    _status(502, SERVER_ERROR, "try again later"),
    _status(503, SERVER_ERROR, "try again later"),
    _status(504, SERVER_ERROR, "try again later"),
    Fault(
        "connect",
        "connection refused",
        UNREACHABLE,
        None,
        says="check the API URL of connection 'motherduck_default', the network and the proxy settings",
    ),
    Fault(
        "timeout-before",
        "read timeout, MotherDuck did nothing",
        LOST_BEFORE,
        {"delay": SLOW, "drop": True},
        says="raise the extra timeout of connection 'motherduck_default'",
        timeout=TIMEOUT,
    ),
    Fault(
        "timeout-after",
        "read timeout after MotherDuck acted",
        LOST_AFTER,
        {"delay": SLOW, "drop": True, "after": True},
        says="raise the extra timeout of connection 'motherduck_default'",
        timeout=TIMEOUT,
    ),
    Fault(
        "reset",
        "connection closed unanswered after MotherDuck acted",
        LOST_AFTER,
        {"drop": True, "after": True},
        says="try again later",
    ),
    _garbage("malformed-json", "200 with malformed JSON", f'{{"token": "{SECRET_IN_GARBAGE}", "id": '),
    _garbage("html", "200 with an HTML page (a captive portal)", f"<html><p>{SECRET_IN_GARBAGE}</p></html>"),
    Fault("plain-404", "plain-text 404", NO_ROUTE, {"status": 404, "body": "Not Found"}, says="API URL"),
    _garbage("empty", "200 with an empty body", "", EMPTY),
    _garbage("over-limit", "200 with a body over 16 MiB", OVER_LIMIT, says="larger than 16 MiB"),
    Fault(
        "redirect",
        "307 to another host",
        REDIRECTED,
        {"status": 307, "headers": {"Location": "https://elsewhere.example/v1/users/someone/tokens"}},
        says="redirected to the host 'elsewhere.example'",
    ),
    Fault(
        "trickle",
        f"the answer trickled a byte every {TRICKLE:g} s, past the deadline",
        LOST_AFTER,
        {"trickle": TRICKLE},
        says="raise the extra timeout of connection 'motherduck_default'",
        timeout=TIMEOUT,
    ),
    Fault(
        "echo",
        "400 whose error echoes the admin token and every secret issued",
        REFUSED,
        {"status": 400, "echo": True},
        says="***",
    ),
    _garbage("nested", "200 with JSON nested 100,000 deep", DEEP_JSON, says="nests too deep to read"),
    _garbage(
        "wrong-types",
        "200 with every known field of the wrong type",
        json.dumps(WRONG_TYPES),
        says="is not shaped as MotherDuck's",
    ),
)


@dataclass(frozen=True)
class Expected:
    """What the hook must do about a fault."""

    error: type[MotherDuckAPIError] | None  # None: the call succeeds
    retries: int
    maybe_carried_out: bool = False
    #: Whether the write is done afterwards (the emulator's state); None for a read.
    done: bool | None = None


def expected(fault: Fault, method: str) -> Expected:
    """The hook's duty for ``fault`` on a call with ``method``."""
    write = method != "GET"
    kind = fault.kind
    if kind == THROTTLED or (kind in (SERVER_ERROR, LOST_BEFORE, LOST_AFTER) and method != "POST"):
        return Expected(None, 1, done=True if write else None)
    if kind in (SERVER_ERROR, LOST_AFTER):  # a POST MotherDuck carried out, its answer lost
        return Expected(MotherDuckAPIError, 0, maybe_carried_out=True, done=True)
    if kind == LOST_BEFORE:  # a POST that may have been carried out, though it was not
        return Expected(MotherDuckAPIError, 0, maybe_carried_out=True, done=False)
    if kind == UNREACHABLE:
        return Expected(MotherDuckAPIError, DEFAULT_RETRY_LIMIT, done=False if write else None)
    if kind == EMPTY and method == "DELETE":
        return Expected(None, 0, done=True)
    if kind in (UNREADABLE, EMPTY):
        return Expected(MotherDuckAPIError, 0, maybe_carried_out=write, done=True if write else None)
    error = MotherDuckRouteNotFoundError if kind == NO_ROUTE else MotherDuckAPIError
    assert kind in (NO_ROUTE, NOT_OFFERED, REFUSED, REDIRECTED), kind
    return Expected(error, 0, done=False if write else None)


def _cell(fault: Fault, method: str) -> str:
    duty = expected(fault, method)
    if duty.error is None:
        if not duty.retries:
            return "succeeds"
        wait = fault.wait if isinstance(fault.wait, str) else f"{fault.wait:g} s"
        wait = {"date": "until the date", "backoff": "the backoff"}.get(wait, wait)
        return f"succeeds after 1 retry (waits {wait})"
    retried = f"after {duty.retries} retries" if duty.retries else "not retried"
    text = f"``{duty.error.__name__}``, {retried}"
    return text + ("; may have been carried out" if duty.maybe_carried_out else "")


def rst_table() -> list[str]:
    """The matrix as a reST list-table: one row per fault, one column per method."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 24 15 15 15 15 16",
        "",
        "   * - Fault",
        *(f"     - {method}" for method in METHODS),
        "     - The error says",
    ]
    for fault in FAULTS:
        lines.append(f"   * - {fault.title}")
        lines.extend(f"     - {_cell(fault, method)}" for method in METHODS)
        says = fault.says.replace("*", "\\*")  # reST: a literal asterisk
        lines.append(f"     - {says or '(no error)'}")
    return lines
