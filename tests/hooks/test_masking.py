"""``mask_secrets``: a registered secret is redacted in the very next log line, on the real log path.

The log path is a stdlib logger whose handler carries Airflow's own masking filter (the masker
``mask_secret`` adds to), plus on Airflow 3 the structlog processor that redacts a task's log.
"""

from __future__ import annotations

import io
import logging
import secrets
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_motherduck import _compat
from airflow_provider_motherduck._compat import AIRFLOW_V_3, mask_secret, mask_secrets, redact
from tests.support import masks_logs_outside_a_task

pytestmark = masks_logs_outside_a_task


def opaque(label: str) -> str:
    return f"mdsecret-{label}-{secrets.token_hex(12)}"


def the_masker() -> Any:
    """The masker instance ``mask_secret`` adds to (and Airflow's log filter is)."""
    return sys.modules[mask_secret.__module__]._secrets_masker()


@pytest.fixture
def masked_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing to a buffer through Airflow's masking filter, masking switched on."""
    masker = the_masker()
    if AIRFLOW_V_3:
        monkeypatch.setattr(type(masker), "mask_secrets_in_logs", True)
    else:
        from airflow import settings

        monkeypatch.setattr(settings, "MASK_SECRETS_IN_LOGS", True)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(masker)
    logger = logging.getLogger(f"md-masking-test-{secrets.token_hex(4)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, buffer
    logger.removeHandler(handler)


def test_the_fast_path_is_in_use_on_this_airflow() -> None:
    """Both supported versions have the masker internals the fast path relies on (else: plain)."""
    assert _compat._registrar() is not None


def test_a_secret_is_redacted_in_the_log_line_right_after_it_was_registered(
    masked_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = masked_log
    written = []
    for i in range(30):
        secret = opaque(f"line{i}")
        mask_secrets([secret])
        logger.info("created token %s for svc_%d", secret, i)
        written.append(secret)
        assert redact(f"again: {secret}") == "again: ***"
    text = buffer.getvalue()
    assert text.count("created token *** for svc_") == 30
    assert not [s for s in written if s in text]


@pytest.mark.skipif(not AIRFLOW_V_3, reason="Airflow 3 redacts a task's log in a structlog processor")
def test_the_task_log_processor_redacts_it_too() -> None:
    from airflow.sdk.log import mask_logs

    secret = opaque("structlog")
    mask_secrets([secret])
    event = mask_logs(None, "info", {"event": f"token {secret}", "extra": {"nested": [secret]}})
    assert event == {"event": "token ***", "extra": {"nested": ["***"]}}


def test_secrets_registered_from_many_threads_are_redacted_at_once(
    masked_log: tuple[logging.Logger, io.StringIO],
) -> None:
    """Registration and redaction race in 8 threads; every line written after a registration is clean."""
    logger, buffer = masked_log
    leaks: list[str] = []
    written: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait(timeout=30)
        for i in range(40):
            secret = opaque(f"t{n}-{i}")
            mask_secrets([secret])
            logger.info("worker %d got %s", n, secret)
            if redact(secret) != "***":
                with lock:
                    leaks.append(secret)
            with lock:
                written.append(secret)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    text = buffer.getvalue()
    assert len(written) == 320
    assert leaks == []
    assert not [s for s in written if s in text]
    assert text.count(" got ***") == 320


def test_plain_mask_secret_in_between_keeps_every_secret_masked() -> None:
    """A plain ``mask_secret`` replaces the masker's regex with one of its whole set: ours stay covered."""
    fast_before, plain, fast_after = opaque("fast1"), opaque("plain"), opaque("fast2")
    mask_secrets([fast_before])
    mask_secret(plain)
    mask_secrets([fast_after])
    assert redact(f"{fast_before} {plain} {fast_after}") == "*** *** ***"


def test_many_secrets_compile_into_few_chunks() -> None:
    """Each redaction compiles only what is new, merged into O(log n) regexes (not one per secret)."""
    for i in range(200):
        secret = opaque(f"chunk{i}")
        mask_secrets([secret])
        assert redact(secret) == "***"
    replacer = the_masker().replacer
    assert isinstance(replacer, _compat._ChunkedReplacer)
    assert len(replacer._chunks) <= 9  # a binary counter over at most 2^9 patterns since the last reset


def test_short_values_follow_mask_secrets_own_rules() -> None:
    """Values shorter than the fast path's minimum go through plain ``mask_secret`` only."""
    short = "q7Zk2w"  # 6 characters: Airflow masks it (minimum 5)
    mask_secrets([short, ""])
    assert redact(f"pin {short}") == "pin ***"


def test_without_the_fast_path_plain_mask_secret_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compat, "_registrar", lambda: None)
    secret = opaque("fallback")
    mask_secrets([secret])
    assert redact(f"x {secret}") == "x ***"


class _OtherMasker:
    """A masker built differently (patterns in a list, no regex attribute), as a future Airflow might."""

    def __init__(self) -> None:
        self.patterns: list[str] = []

    def add_mask(self, secret: str) -> None:
        self.patterns.append(secret)

    def redact(self, text: str) -> str:
        for secret in self.patterns:
            text = text.replace(secret, "***")
        return text


def test_a_masker_with_other_internals_is_detected() -> None:
    import re

    registrar = _compat._Registrar(_OtherMasker, re)
    assert registrar.works() is False


def test_the_check_tries_a_fresh_masker_not_the_live_one() -> None:
    registrar = _compat._registrar()
    assert registrar is not None
    before = set(the_masker().patterns)
    assert registrar.works()
    assert set(the_masker().patterns) == before
