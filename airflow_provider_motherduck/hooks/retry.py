"""When a failed MotherDuck call is tried again, and after how long.

One rule, :meth:`RetryPolicy.wait_before_retry`, decides for every failed attempt. A throttled
answer (429) was not carried out, so any call may be repeated. A server error or a network
error may have been carried out, so only calls that are safe to repeat (GET, PUT, DELETE) are
repeated then; a POST (create a user, a token, a session) is repeated only while no attempt of
it can have reached MotherDuck.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypeAlias

from airflow_provider_motherduck.hooks.transport import Answer

if TYPE_CHECKING:
    import requests

#: What one attempt ended with when it did not succeed: an answer, or the error of sending it.
Outcome: TypeAlias = "Answer | requests.RequestException"

#: Methods that give the same result when repeated.
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})
#: Answers worth another try: throttled, or a server error that may pass.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_DELTA_SECONDS = re.compile(r"[+-]?\d+(\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    :param retry_limit: retries after the first attempt (0: none).
    :param retry_delay: the first backoff in seconds; retry ``n`` waits between half and all of
        ``retry_delay * 2 ** (n - 1)``.
    :param max_retry_wait: cap on any one wait, ``Retry-After`` included.
    """

    retry_limit: int
    retry_delay: float
    max_retry_wait: float
    jitter: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    clock: Callable[[], datetime] = field(
        default=lambda: datetime.now(timezone.utc), repr=False, compare=False
    )

    def wait_before_retry(
        self, method: str, attempt: int, outcome: Outcome, carried_out: bool
    ) -> float | None:
        """Seconds to wait before trying again, or ``None`` to give up.

        :param method: the HTTP method of the call.
        :param attempt: the number of the attempt that just failed, from 1.
        :param outcome: its error answer, or the error raised while sending it.
        :param carried_out: whether an earlier attempt may have been carried out.
        """
        if attempt > self.retry_limit or not is_retryable(outcome):
            return None
        if method not in IDEMPOTENT_METHODS and (carried_out or may_have_been_carried_out(outcome)):
            return None
        asked = (
            retry_after_seconds(outcome.headers.get("Retry-After"), self.clock())
            if isinstance(outcome, Answer)
            else None
        )
        wait = self.backoff(attempt) if asked is None else asked
        return min(wait, self.max_retry_wait)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of ``retry_delay * 2 ** (attempt - 1)``."""
        ceiling = self.retry_delay * 2 ** (attempt - 1)
        return float(ceiling / 2 + self.jitter() * ceiling / 2)


def is_retryable(outcome: Outcome) -> bool:
    """Whether this kind of failure may pass on another try (idempotency aside)."""
    if isinstance(outcome, Answer):
        return outcome.status in RETRYABLE_STATUSES
    import requests

    if isinstance(outcome, requests.exceptions.SSLError):
        return False  # a certificate problem does not pass by waiting
    return isinstance(
        outcome, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )


def may_have_been_carried_out(outcome: Outcome) -> bool:
    """Whether MotherDuck may have done what a failed attempt asked.

    A 429 or 501 was refused unread; another 5xx may come after the work was done (a lost
    answer); a network error may come after the request was sent.
    """
    if isinstance(outcome, Answer):
        return outcome.status >= 500 and outcome.status != 501
    return may_have_reached_server(outcome)


def may_have_reached_server(err: requests.RequestException) -> bool:
    """``False`` only when the request surely never left: connecting (or its TLS handshake) failed."""
    import requests

    if isinstance(err, (requests.ConnectTimeout, requests.exceptions.SSLError)):
        return False
    if isinstance(err, requests.ConnectionError):
        reason = getattr(err.args[0], "reason", None) if err.args else None
        return not (
            type(reason).__name__ in ("NewConnectionError", "NameResolutionError")
            or "NewConnectionError" in repr(reason)
        )
    return not isinstance(err, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``.

    A negative number or a past date means no wait; a date without a zone is read as UTC;
    anything else unreadable is ``None``, so the backoff applies.
    """
    from email.utils import parsedate_to_datetime  # only when an answer carries the header

    if not value:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return max(float(text), 0.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = (when - now).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None
