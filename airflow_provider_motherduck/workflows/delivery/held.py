"""What a destination holds, and which tokens nobody can hold: judged from the record, the listed
tokens and the fingerprint of what a Variable holds now.

Pure functions: no request, no Variable. The caller reads the record and the fingerprint of what
a Variable destination holds now (``held``: ``None`` when it is empty); a ``secret_sink`` cannot
be asked (``sink=True``), so only its record counts.

The invariants these keep, whatever other issuers of the same destination are doing:

* a token is taken as held only if it is listed, unexpired, of the asked name and type, and (for
  a Variable) the Variable holds its fingerprint;
* a token is a leftover (to revoke) only if an issuance of this destination created it and nobody
  can hold its secret now: its create answer was lost, its delivery failed, or a delivery of an
  issuance that overlapped its own replaced it (a token replaced by a later, separate run is
  left alone, as before: its users may have copied it). Never a leftover: a
  token whose secret the Variable holds; a token that another issuer's live intent names or may
  have created (it may be delivering it); a token of unknown origin younger than the delivery
  window (an issuer whose intent was overwritten may be delivering it). A retry still takes
  what its own earlier tries left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_motherduck.validation import fold_username
from airflow_provider_motherduck.workflows.delivery.record import Delivered, DeliveryRecord, Intent, Issuer
from airflow_provider_motherduck.workflows.tokens import is_expired, parse_timestamp

Token = Mapping[str, Any]

#: Why a token whose secret the destination holds is spared.
HOLDS_ITS_SECRET = "the destination holds its secret"


def _named(name: str, wanted: str | re.Pattern[str]) -> bool:
    return name == wanted if isinstance(wanted, str) else wanted.fullmatch(name) is not None


def holds(done: Delivered, *, held: str | None, sink: bool) -> bool:
    """Whether the destination holds ``done``'s secret (a sink is taken at its record's word)."""
    return sink or (held is not None and done.fingerprint == held)


def _deliveries(record: DeliveryRecord) -> list[Delivered]:
    """Every token the record says went to the destination, the latest intents first."""
    found = [i.delivering for i in reversed(record.intents) if i.delivering is not None]
    return found + ([record.delivered] if record.delivered is not None else [])


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

    For a Variable: any token the record names (delivered, or being delivered by an intent whose
    record was not finished) whose fingerprint the Variable holds. For a sink: the record's
    delivered token, unless an unfinished delivery may have replaced it. ``token_name`` is an
    exact name or a pattern.
    """
    if record is None or fold_username(record.user) != fold_username(username):
        return None
    if sink:
        if any(i.delivering is not None and i.ended is None for i in record.intents):
            return None  # the sink may hold either: only a fresh delivery is certain
        candidates = [record.delivered] if record.delivered is not None else []
    else:
        candidates = [d for d in _deliveries(record) if holds(d, held=held, sink=False)]
    listed = list(tokens)
    for done in candidates:
        if not _named(done.name, token_name):
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


@dataclass
class Leftovers:
    """Tokens of a destination's issuances, judged: ``lost`` (nobody holds the secret: revoke),
    ``maybe_held`` (a sink may hold it) and ``spared`` (not to be revoked now: id -> why)."""

    lost: list[Token] = field(default_factory=list)
    maybe_held: list[Token] = field(default_factory=list)
    spared: dict[str, str] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    """Ids of every token an issuance of the record explains (judged or left alone)."""


def _who(intent: Intent) -> str:
    return f"{intent.issuer.key} (try {intent.issuer.attempt})"


def judge_leftovers(
    record: DeliveryRecord | None,
    tokens: Iterable[Token],
    username: str,
    *,
    me: Issuer,
    since: datetime,
    held: str | None,
    sink: bool,
    now: datetime,
    window: timedelta,
) -> Leftovers:
    """Sort the tokens the record's issuances may have created (see the module doc).

    ``me``: the issuer judging, whose try began at ``since`` (this try's intent creates only its
    own token, so it explains no other; earlier calls of ``me`` count as its earlier tries). A token no issuance of the record explains is not judged.
    """
    out = Leftovers()
    if record is None or fold_username(record.user) != fold_username(username):
        return out
    delivering = {i.delivering.id: i for i in record.intents if i.delivering is not None}
    # The issuance whose delivery the Variable holds now (one that overlapped an issuance it
    # replaced makes that one's token a leftover, even if it ended thinking it was kept).
    holder = next(
        (
            i
            for i in reversed(record.intents)
            if i.delivering is not None and not sink and i.delivering.fingerprint == held
        ),
        None,
    )
    for token in tokens:
        token_id = str(token.get("id"))
        by = delivering.get(token_id)
        if by is not None and by.issuer == me and by.started >= since:
            continue  # this try's own token
        if by is not None:
            creators = [by]
        else:
            creators = [
                i
                for i in record.intents
                if i.name == token.get("name")
                and token_id not in i.known_ids
                and not (i.issuer == me and i.started >= since)  # this try makes only its own
            ]
        if not creators:
            continue  # not made by an issuance this record knows of
        out.known.add(token_id)
        if by is not None and by.delivering is not None and holds(by.delivering, held=held, sink=sink):
            if sink and by.ended is not None and by.kept is not False:
                continue  # the record's word: the sink holds it
            if not sink:
                out.spared[token_id] = HOLDS_ITS_SECRET
                continue
        live = [i for i in creators if i.is_live(me, now, window)]
        if live:
            out.spared[token_id] = f"{_who(live[0])} may still be delivering it"
            continue
        if by is not None and by.kept is True and by.ended is not None and by.ended < since:
            overlapped = holder is not None and holder is not by and holder.started < by.ended
            if not overlapped:
                continue  # replaced by a later, separate run: left alone
        mine = any(i.issuer.key == me.key for i in creators)
        created = parse_timestamp(token.get("created_ts"))
        young = created is None or now - created < window
        if by is None and young and not mine:
            out.spared[token_id] = "younger than the delivery window, of unknown issuer"
            continue
        if sink and by is not None:
            out.maybe_held.append(token)  # a sink cannot be asked whether it kept the secret
        else:
            out.lost.append(token)
    return out
