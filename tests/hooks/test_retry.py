"""RetryPolicy.wait_before_retry on its own: the retry clock, Retry-After, idempotency.

No HTTP here: answers are built by hand and errors are requests' own exception classes, so each
branch of the one retry rule is reached directly (the fault matrix covers them over HTTP).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from airflow_provider_motherduck.hooks.retry import (
    RetryPolicy,
    may_have_been_carried_out,
    retry_after_seconds,
)
from airflow_provider_motherduck.hooks.transport import Answer

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def policy(**kwargs: object) -> RetryPolicy:
    settings: dict[str, object] = {
        "retry_limit": 3,
        "retry_delay": 1.0,
        "max_retry_wait": 60.0,
        "clock": lambda: NOW,
    }
    settings.update(kwargs)
    return RetryPolicy(**settings)  # type: ignore[arg-type]


def answer(status: int, retry_after: str | None = None) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Answer(status, "", headers, b"")


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens: the request never left."""
    return requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("-5", 0.0),  # a negative number: no wait
        ("Tue, 01 Dec 2026 12:00:30 GMT", 30.0),
        ("Tue, 01 Dec 2026 11:00:00 GMT", 0.0),  # a past date: no wait
        ("Tue, 01 Dec 2026 12:00:20", 20.0),  # no zone: read as UTC
        ("Tue, 01 Dec 2026 13:00:20 +0100", 20.0),
    ],
)
def test_retry_after(header: str, wait: float) -> None:
    assert retry_after_seconds(header, NOW) == wait
    assert policy().wait_before_retry("GET", 1, answer(429, header), False) == wait


@pytest.mark.parametrize("header", ["soon", "nan", "inf", "1e3", "", "Tue, 99 Foo 2026"])
def test_unreadable_retry_after_falls_back_to_the_backoff(header: str) -> None:
    assert retry_after_seconds(header, NOW) is None
    wait = policy(jitter=lambda: 1.0).wait_before_retry("GET", 2, answer(429, header), False)
    assert wait == 2.0  # the backoff's ceiling for the second retry


def test_retry_after_is_honoured_on_a_503_for_a_get() -> None:
    assert policy().wait_before_retry("GET", 1, answer(503, "4"), False) == 4.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 501])
def test_answers_that_do_not_pass_are_not_retried(status: int) -> None:
    assert policy().wait_before_retry("GET", 1, answer(status), False) is None


def test_max_retry_wait_caps_the_backoff_and_retry_after() -> None:
    capped = policy(retry_delay=100.0, max_retry_wait=5.0)
    assert capped.wait_before_retry("GET", 3, answer(503), False) == 5.0
    assert capped.wait_before_retry("POST", 1, answer(429, "3600"), False) == 5.0


def test_jitter_varies_between_half_and_all_of_the_ceiling() -> None:
    jittery = policy(jitter=random.Random(7).random)
    waits = [jittery.backoff(3) for _ in range(50)]
    assert all(2.0 <= wait <= 4.0 for wait in waits)
    assert len(set(waits)) > 40  # not one fixed delay: retries of many clients spread out
    assert min(waits) < 2.5 < 3.5 < max(waits)


def test_retries_stop_at_the_limit() -> None:
    limited = policy(retry_limit=2)
    assert limited.wait_before_retry("GET", 2, answer(503), False) is not None
    assert limited.wait_before_retry("GET", 3, answer(503), False) is None
    assert policy(retry_limit=0).wait_before_retry("POST", 1, answer(429), False) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_post_is_not_repeated_after_a_server_error(status: int) -> None:
    assert policy().wait_before_retry("POST", 1, answer(status), False) is None
    for method in ("GET", "PUT", "DELETE"):
        assert policy().wait_before_retry(method, 1, answer(status), False) is not None


def test_a_post_is_repeated_only_while_nothing_can_have_reached_motherduck() -> None:
    rule = policy()
    assert rule.wait_before_retry("POST", 1, refused(), False) is not None
    assert rule.wait_before_retry("POST", 1, requests.ConnectTimeout(), False) is not None
    assert rule.wait_before_retry("POST", 1, requests.ReadTimeout(), False) is None
    assert rule.wait_before_retry("POST", 1, requests.ConnectionError("reset by peer"), False) is None
    # Once an earlier attempt may have been carried out, not even a 429 repeats it.
    assert rule.wait_before_retry("POST", 2, answer(429), True) is None
    assert rule.wait_before_retry("DELETE", 2, answer(429), True) is not None


def test_errors_that_do_not_pass_by_waiting_are_not_retried() -> None:
    rule = policy()
    assert rule.wait_before_retry("GET", 1, requests.exceptions.SSLError("bad certificate"), False) is None
    assert rule.wait_before_retry("GET", 1, requests.exceptions.InvalidURL("no host"), False) is None
    assert (
        rule.wait_before_retry("GET", 1, requests.exceptions.ChunkedEncodingError("cut"), False) is not None
    )


@pytest.mark.parametrize(
    ("outcome", "carried_out"),
    [
        (answer(429), False),
        (answer(501), False),
        (answer(500), True),
        (answer(503), True),
        (requests.ConnectTimeout(), False),
        (requests.ReadTimeout(), True),
    ],
)
def test_what_may_have_been_carried_out(
    outcome: Answer | requests.RequestException, carried_out: bool
) -> None:
    assert may_have_been_carried_out(outcome) is carried_out


def test_the_default_clock_is_utc_now() -> None:
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    header = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    wait = RetryPolicy(1, 1.0, 7200.0).wait_before_retry("GET", 1, answer(429, header), False)
    assert wait is not None
    assert 3500 < wait <= 3600
