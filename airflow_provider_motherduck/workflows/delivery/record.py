"""The delivery record: which token's secret a destination holds, kept beside it (never a secret).

MotherDuck shows a secret once, so "this token's secret was delivered" cannot be read back from
MotherDuck. Next to each destination (an Airflow Variable, or a ``secret_sink``) a JSON Airflow
Variable keeps the record::

    {"kind": "motherduck-delivery", "destination": "Airflow Variable md_etl", "user": "etl_bot",
     "delivered": {"id": "...", "name": "airflow", "fingerprint": "sha256:<16 hex>"},
     "intents": [{"issuer": "dag.task run_id", "attempt": 1, "name": "airflow",
                  "known_ids": ["..."], "started": "<ISO time>", "ended": null,
                  "delivering": {"id": "...", "name": "airflow", "fingerprint": "..."}}]}

``delivered`` names the token whose secret the destination was last recorded to hold; the
fingerprint (the first 64 bits of the secret's SHA-256, not reversible; Variable destinations
only) shows whether the Variable still holds it. Each issuance writes an **intent** before it
creates a token: who issues (a task of a run, and the try), which tokens of that name existed
then (``known_ids``), when it started; once the token exists, which one it is delivering; when
the try ended (successfully or not). Ended intents stay a while, so a later run can still tell
whose token is whose. Several issuers may keep intents in one record side by side.

The key and field names avoid the words Airflow masks (``token``, ``secret``, ...), so the UI
and REST API show the record. Its default key is ``motherduck_delivery_`` and 16 hex digits of a
hash of the destination (the Variable key, or the task for a sink). This module is pure: text
in, text out, and the changes a writer makes to a record it has just read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from airflow_provider_motherduck.workflows.tokens import parse_timestamp

#: Default record keys start with this.
RECORD_PREFIX: Final = "motherduck_delivery_"
_KIND: Final = "motherduck-delivery"
#: How long a token may take from its create to its delivery, and a crashed issuer's intent lives.
DELIVERY_WINDOW: Final = timedelta(minutes=15)


def fingerprint(secret: str) -> str:
    """A short, non-reversible tag of a secret (enough to tell two random secrets apart)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def default_record_key(*, variable_key: str | None = None, task: str | None = None) -> str:
    """The record key of a Variable destination, or of a sink used by ``task``."""
    if variable_key is None and task is None:
        raise ValueError("default_record_key needs variable_key or task")
    source = f"variable:{variable_key}" if variable_key is not None else f"task:{task}"
    return RECORD_PREFIX + hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Delivered:
    """A token whose secret went (or is going) to a destination."""

    id: str
    name: str
    fingerprint: str | None = None


@dataclass(frozen=True)
class Issuer:
    """Who issues: ``key`` names the task of a run (or one call outside a task), ``attempt`` its try."""

    key: str
    attempt: int = 1


@dataclass(frozen=True)
class Intent:
    """One issuer's issuance of a token named ``name`` (see the module doc)."""

    issuer: Issuer
    name: str
    started: datetime
    known_ids: tuple[str, ...] = ()
    delivering: Delivered | None = None
    ended: datetime | None = None
    kept: bool | None = None
    """Set when the try ended: whether the destination still held its token then."""

    def is_live(self, me: Issuer, now: datetime, window: timedelta) -> bool:
        """Whether another issuer may still be working on it: not ended, not an earlier try of
        ``me``, not this try itself, and started within ``window`` (else it crashed)."""
        return self.ended is None and self.issuer.key != me.key and now - self.started < window


@dataclass(frozen=True)
class DeliveryRecord:
    """What a destination's record says (never a secret)."""

    user: str
    delivered: Delivered | None = None
    intents: tuple[Intent, ...] = ()

    @classmethod
    def parse(cls, text: Any) -> DeliveryRecord | None:
        """The record in a Variable's text, or ``None`` if missing or not a record."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
            if not isinstance(data, dict) or data.get("kind") != _KIND:
                return None
            return cls(
                str(data["user"]),
                _delivered(data.get("delivered")),
                tuple(_intent(i) for i in data.get("intents") or ()),
            )
        except (TypeError, ValueError, KeyError, AttributeError):
            return None

    def dumps(self, destination: str) -> str:
        """The record as its Variable's JSON text; ``destination`` says in words where the secret is."""
        data: dict[str, Any] = {
            "kind": _KIND,
            "destination": destination,
            "user": self.user,
            "delivered": _plain(self.delivered),
            "intents": [
                {
                    "issuer": i.issuer.key,
                    "attempt": i.issuer.attempt,
                    "name": i.name,
                    "known_ids": list(i.known_ids),
                    "started": _stamp(i.started),
                    "ended": None if i.ended is None else _stamp(i.ended),
                    "delivering": _plain(i.delivering),
                    "kept": i.kept,
                }
                for i in self.intents
            ],
        }
        return json.dumps(data, sort_keys=True)

    def with_intent(self, intent: Intent) -> DeliveryRecord:
        """The record with ``intent`` in place of the one of its issuer and start (or added)."""
        rest = tuple(i for i in self.intents if (i.issuer, i.started) != (intent.issuer, intent.started))
        return replace(self, intents=(*rest, intent))

    def settled(self, now: datetime, window: timedelta, listed: Collection[str]) -> DeliveryRecord:
        """Without the intents nobody needs any more: ended (or crashed) longer than ``window``
        ago, unless their token was not kept and is still listed (``listed``: ids), so that a
        later run revokes it."""

        def needed(i: Intent) -> bool:
            since = i.ended if i.ended is not None else i.started
            if now - since < window:
                return True
            return i.kept is not True and i.delivering is not None and i.delivering.id in listed

        return replace(self, intents=tuple(i for i in self.intents if needed(i)))


def _stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _when(value: Any) -> datetime:
    when = parse_timestamp(value)
    if when is None:
        raise ValueError(f"unreadable time {value!r}")
    return when


def _intent(data: Any) -> Intent:
    return Intent(
        Issuer(str(data["issuer"]), int(data.get("attempt") or 1)),
        str(data["name"]),
        _when(data["started"]),
        tuple(str(i) for i in data.get("known_ids") or ()),
        _delivered(data.get("delivering")),
        None if data.get("ended") is None else _when(data["ended"]),
        None if data.get("kept") is None else bool(data["kept"]),
    )


def _delivered(data: Any) -> Delivered | None:
    if not data:
        return None
    tag = data.get("fingerprint")
    return Delivered(str(data["id"]), str(data["name"]), None if tag is None else str(tag))


def _plain(done: Delivered | None) -> dict[str, Any] | None:
    return None if done is None else {"id": done.id, "name": done.name, "fingerprint": done.fingerprint}
