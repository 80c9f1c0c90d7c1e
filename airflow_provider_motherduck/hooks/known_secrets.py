"""Every secret this process knows, and the blanking of them in text that came from elsewhere.

A server may echo what it was sent (the admin token in a header, a token in a body) or what it
holds. Before any server text enters an exception, a log line or a test-connection message,
:func:`blank` replaces every secret registered here with ``***``: the admin token of each hook,
every secret an answer handed over (a new token, an embed session), and every secret whose
fingerprint was taken (a token read back from where it was delivered).

Invariant: a secret registered before a server's answer is read never appears in what the hook
makes of that answer. Airflow's masker covers logs; this covers the exception objects too (their
``str``, ``repr`` and pickle), which the masker never sees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

#: Shorter values are not blanked: they would blank ordinary words.
MIN_LENGTH = 8
REDACTED = "***"

_lock = threading.Lock()
_known: set[str] = set()
_longest_first: tuple[str, ...] = ()


def remember(secrets: Iterable[str]) -> None:
    """Register secrets to blank from now on (cheap for one already known)."""
    global _longest_first
    new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH and s not in _known}
    if new:
        with _lock:
            _known.update(new)
            _longest_first = tuple(sorted(_known, key=len, reverse=True))


def blank(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
