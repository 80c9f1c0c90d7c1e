"""What a destination holds, recognised from its record, the listed tokens and its fingerprint.

Pure functions: no request, no Variable. The caller reads the record and the fingerprint of what
a Variable destination holds now (``held``: ``None`` when it is empty); a ``secret_sink`` cannot
be asked (``sink=True``), so only what its record says counts.

The invariant these keep: a token is taken as held only if it is listed, unexpired, of the asked
name and type, and (for a Variable) the Variable holds its fingerprint; a token is a leftover only
if the record shows an issuance created it after it began and nobody can hold its secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from airflow_provider_motherduck.workflows.delivery.record import Delivered, DeliveryRecord
from airflow_provider_motherduck.workflows.tokens import is_expired

Token = Mapping[str, Any]


def _named(name: str, wanted: str | re.Pattern[str]) -> bool:
    return name == wanted if isinstance(wanted, str) else wanted.fullmatch(name) is not None


def holds(done: Delivered, *, held: str | None, sink: bool) -> bool:
    """Whether the destination holds ``done``'s secret (a sink is taken at its record's word)."""
    return sink or (held is not None and done.fingerprint == held)


def held_token(
    record: DeliveryRecord | None,
    tokens: Iterable[Token],
    username: str,
    token_name: str | re.Pattern[str],
    token_type: str,
    *,
    held: str | None,
    sink: bool,
    now: datetime,
) -> Token | None:
    """The listed token whose secret the destination holds, or ``None``.

    That is the record's delivered token, or one whose delivery completed before its record could
    be written (a Variable holding its fingerprint). ``token_name`` is an exact name or a pattern.
    """
    if record is None or record.user != username:
        return None
    candidates = [record.delivered]
    if record.pending is not None and record.pending.delivering is not None:
        if sink:
            return None  # the sink may hold either: only a fresh delivery is certain
        candidates.insert(0, record.pending.delivering)
    listed = list(tokens)
    for done in candidates:
        if done is None or not _named(done.name, token_name) or not holds(done, held=held, sink=sink):
            continue
        for token in listed:
            if (
                token.get("id") == done.id
                and token.get("name") == done.name
                and token.get("token_type", "read_write") == token_type
                and not is_expired(token, now)
            ):
                return token
    return None


def leftovers(
    record: DeliveryRecord | None, tokens: Iterable[Token], username: str, *, held: str | None, sink: bool
) -> tuple[list[Token], list[Token]]:
    """Tokens an earlier try created for this destination that are not the delivered one.

    Returns ``(lost, maybe_held)``: ``lost`` tokens' create answers never arrived or their
    delivery never happened, so nobody holds their secret; ``maybe_held`` is the one whose
    delivery to a sink was under way and cannot be verified. Both are empty when the record has
    no issuance under way.
    """
    if record is None or record.pending is None or record.user != username:
        return [], []
    pending = record.pending
    delivered_id = record.delivered.id if record.delivered is not None else None
    lost: list[Token] = []
    maybe_held: list[Token] = []
    for token in tokens:
        token_id = str(token.get("id"))
        if token.get("name") != pending.name or token_id in pending.known_ids or token_id == delivered_id:
            continue
        delivering = pending.delivering
        if delivering is None or delivering.id != token_id:
            lost.append(token)
        elif sink:
            maybe_held.append(token)
        elif not holds(delivering, held=held, sink=False):
            lost.append(token)  # the Variable was never written (holding it: it is the delivered one)
    return lost, maybe_held
