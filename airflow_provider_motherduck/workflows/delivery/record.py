"""The delivery record: which token's secret a destination holds, kept beside it (never a secret).

MotherDuck shows a secret once, so "this token's secret was delivered" cannot be read back from
MotherDuck. Next to each destination (an Airflow Variable, or a ``secret_sink``) a JSON Airflow
Variable keeps the record::

    {"kind": "motherduck-delivery", "destination": "Airflow Variable md_etl", "user": "etl_bot",
     "delivered": {"id": "...", "name": "airflow", "fingerprint": "sha256:<16 hex>"},
     "pending": {"name": "airflow", "known_ids": ["..."], "delivering": {"id": "...", "fingerprint": "..."}}}

``delivered`` names the token whose secret the destination holds; the fingerprint (the first 64
bits of the secret's SHA-256, not reversible; Variable destinations only) shows the Variable
still holds it. ``pending`` is written before a token is created and says which tokens of that
name existed then (``known_ids``) and, once the token exists, which one is being delivered.

The key and field names avoid the words Airflow masks (``token``, ``secret``, ...), so the UI
and REST API show the record. Its default key is ``motherduck_delivery_`` and 16 hex digits of a
hash of the destination (the Variable key, or the task for a sink). This module is pure: text
in, text out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Final

#: Default record keys start with this.
RECORD_PREFIX: Final = "motherduck_delivery_"
_KIND: Final = "motherduck-delivery"


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
class Pending:
    """An issuance under way: tokens of ``name`` that existed before it, and the one being delivered."""

    name: str
    known_ids: tuple[str, ...] = ()
    delivering: Delivered | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """What a destination's record says (never a secret)."""

    user: str
    delivered: Delivered | None = None
    pending: Pending | None = None

    @classmethod
    def parse(cls, text: Any) -> DeliveryRecord | None:
        """The record in a Variable's text, or ``None`` if missing or not a record."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
            if not isinstance(data, dict) or data.get("kind") != _KIND:
                return None
            done, pending = data.get("delivered"), data.get("pending")
            return cls(
                str(data["user"]),
                _delivered(done),
                Pending(
                    str(pending["name"]),
                    tuple(str(i) for i in pending.get("known_ids") or ()),
                    _delivered(pending.get("delivering")),
                )
                if pending
                else None,
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
            "pending": None,
        }
        if self.pending is not None:
            data["pending"] = {
                "name": self.pending.name,
                "known_ids": list(self.pending.known_ids),
                "delivering": _plain(self.pending.delivering),
            }
        return json.dumps(data, sort_keys=True)


def _delivered(data: Any) -> Delivered | None:
    if not data:
        return None
    tag = data.get("fingerprint")
    return Delivered(str(data["id"]), str(data["name"]), None if tag is None else str(tag))


def _plain(done: Delivered | None) -> dict[str, Any] | None:
    return None if done is None else {"id": done.id, "name": done.name, "fingerprint": done.fingerprint}


def with_delivering(record: DeliveryRecord, done: Delivered) -> DeliveryRecord:
    """``record`` saying that ``done`` is being delivered (its issuance must be pending)."""
    if record.pending is None:
        raise ValueError("with_delivering needs a pending issuance")
    return replace(record, pending=replace(record.pending, delivering=done))
