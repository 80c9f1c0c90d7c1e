"""Where a new token's secret goes, and the delivery record that lets a re-run see it arrived.

MotherDuck shows a secret once, so "a token exists and its secret was delivered" cannot be read
back from MotherDuck. Next to the secret we keep a record, a JSON Airflow Variable (default key
``<variable_key>__delivery``)::

    {"token_id": "...", "username": "...", "token_name": "...", "fingerprint": "sha256:<16 hex>"}

A token counts as delivered when the record names it, MotherDuck still lists it (same name and
type, not expired) and, for a Variable destination, the Variable still holds the secret whose
fingerprint (the first 64 bits of its SHA-256, not reversible) the record kept. The secret
goes first, the record second: a record never points at a secret that was not delivered.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import pendulum

from airflow_provider_motherduck._compat import Variable
from airflow_provider_motherduck.arguments import VARIABLE_KEY_MAX_LENGTH, check_variable_key

#: The record of the secret in Variable ``K`` is kept in Variable ``K + RECORD_SUFFIX``.
RECORD_SUFFIX = "__delivery"

#: Receives a new token's secret and keeps it somewhere; raises if it could not.
SecretSink = Callable[[str], None]

# Variables and sinks are touched by one thread at a time: worker threads of a bulk task share
# one Airflow client (a supervisor socket on 3.x, a SQLite file in tests) and a sink need not be
# thread-safe. Only the HTTP calls to MotherDuck run in parallel.
_AIRFLOW_IO = threading.RLock()
# Variable.get(key, None): the default goes by position (Airflow 2 names it default_var, 3 default).


def check_destination(
    where: str, variable_key: str | None, secret_sink: SecretSink | None, record_key: str | None
) -> None:
    """Refuse anything but exactly one destination, and a sink without its record Variable."""
    if (variable_key is None) == (secret_sink is None):
        raise ValueError(
            f"{where}: give exactly one destination for the new secret, variable_key or secret_sink "
            f"(got variable_key={variable_key!r}, secret_sink={secret_sink!r})."
        )
    if secret_sink is not None and not callable(secret_sink):
        raise ValueError(
            f"{where}: secret_sink={secret_sink!r} is invalid: expected a callable taking the secret "
            "and returning nothing."
        )
    if secret_sink is not None and record_key is None:
        raise ValueError(
            f"{where}: secret_sink needs record_key, the Airflow Variable that records which token's "
            "secret the sink holds (a re-run cannot ask the sink)."
        )


def record_key_for(variable_key: str | None, record_key: str | None) -> str:
    """The delivery record's Variable key: ``record_key``, or ``<variable_key>__delivery``.

    Refuses a key Airflow would not take, and a record that would overwrite the secret.
    """
    if record_key is None:
        key = check_variable_key(variable_key, "variable_key")
        if len(key) + len(RECORD_SUFFIX) > VARIABLE_KEY_MAX_LENGTH:
            raise ValueError(
                f"variable_key={key[:20] + '...'!r} is invalid: {len(key)} characters leave no room for "
                f"its delivery record {RECORD_SUFFIX!r}. Allowed: up to "
                f"{VARIABLE_KEY_MAX_LENGTH - len(RECORD_SUFFIX)} characters, or pass record_key."
            )
        return key + RECORD_SUFFIX
    check_variable_key(record_key, "record_key")
    if record_key == variable_key:
        raise ValueError(
            f"record_key={record_key!r} is invalid: it is the variable_key, and the record would "
            "overwrite the secret. Allowed: any other Variable key."
        )
    return record_key


def check_secret_variable(value: Any, field: str, record_key: str | None = None) -> str:
    """``value`` as the Variable for a secret: a valid key with room for the default record key."""
    key = check_variable_key(value, field)
    if record_key is None:
        record_key_for(key, None)
    return key


def fingerprint(secret: str) -> str:
    """A short, non-reversible tag of a secret (enough to tell two random secrets apart)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DeliveryRecord:
    """Which token's secret was delivered (no secret in it)."""

    token_id: str
    username: str
    token_name: str
    fingerprint: str | None

    @classmethod
    def parse(cls, text: Any) -> DeliveryRecord | None:
        """The record in a Variable's text, or ``None`` if it is missing or not a record."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
            return cls(**data) if isinstance(data, dict) else None
        except (TypeError, ValueError):
            return None


def _named(name: str, wanted: str | re.Pattern[str]) -> bool:
    return name == wanted if isinstance(wanted, str) else wanted.fullmatch(name) is not None


def parse_timestamp(value: Any) -> datetime | None:
    """An API timestamp (ISO-8601, ``Z`` or offset; naive means UTC), or ``None`` if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:  # any other ISO-8601 spelling
            parsed = pendulum.parse(value)
        except (ValueError, TypeError):
            return None
        if not isinstance(parsed, datetime):
            return None
        when = parsed
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def is_expired(token: Mapping[str, Any], now: datetime) -> bool:
    """Whether ``expire_at`` has passed; an unreadable one counts as live (MotherDuck still lists it)."""
    expire_at = parse_timestamp(token.get("expire_at"))
    return expire_at is not None and expire_at <= now


@dataclass(frozen=True)
class SecretDestination:
    """A secret's destination (an Airflow Variable, or a ``secret_sink``) and its delivery record.

    :param variable_key: the Variable that receives the secret.
    :param secret_sink: instead of a Variable: a callable taking the secret, returning nothing.
    :param record_key: the Variable holding the delivery record; default
        ``<variable_key>__delivery``, required with ``secret_sink``.
    """

    variable_key: str | None = None
    secret_sink: SecretSink | None = None
    record_key: str | None = None

    def __post_init__(self) -> None:
        check_destination(type(self).__name__, self.variable_key, self.secret_sink, self.record_key)
        if self.variable_key is not None:
            check_variable_key(self.variable_key, "variable_key")
        self.record  # noqa: B018  # computed (and checked) once, here

    @cached_property
    def record(self) -> str:
        """The key of the Variable holding the delivery record."""
        return record_key_for(self.variable_key, self.record_key)

    def describe(self) -> str:
        """The destination in words, for logs (never the secret)."""
        if self.variable_key is not None:
            return f"Airflow Variable {self.variable_key}"
        return f"secret_sink {getattr(self.secret_sink, '__name__', type(self.secret_sink).__name__)}"

    def delivered(
        self,
        tokens: Iterable[Mapping[str, Any]],
        username: str,
        token_name: str | re.Pattern[str],
        token_type: str,
    ) -> Mapping[str, Any] | None:
        """The listed token whose secret was delivered here, or ``None`` (read-only).

        ``token_name`` is the token's exact name, or a pattern its whole name must match.
        """
        with _AIRFLOW_IO:
            record = DeliveryRecord.parse(Variable.get(self.record, None))
            if record is None or record.username != username or not _named(record.token_name, token_name):
                return None
            now = datetime.now(timezone.utc)
            token = next(
                (
                    t
                    for t in tokens
                    if t.get("id") == record.token_id
                    and t.get("name") == record.token_name
                    and t.get("token_type", "read_write") == token_type
                    and not is_expired(t, now)
                ),
                None,
            )
            if token is None or self.variable_key is None:
                return token
            stored = Variable.get(self.variable_key, None)
            # Only hashed, never logged (no mask_secret: each new mask recompiles Airflow's masker).
            if not isinstance(stored, str) or not stored:
                return None
            return token if fingerprint(stored) == record.fingerprint else None

    def deliver(self, secret: str, token: Mapping[str, Any]) -> None:
        """Hand the secret over (step one of two; :meth:`write_record` is step two)."""
        with _AIRFLOW_IO:
            if self.variable_key is None:
                assert self.secret_sink is not None
                self.secret_sink(secret)
                return
            Variable.set(
                self.variable_key,
                secret,
                description=f"MotherDuck token {token['name']!r} of {token['username']} (id {token['id']})",
            )

    def write_record(self, secret: str, token: Mapping[str, Any]) -> None:
        """Record that ``token`` (its metadata) is the one delivered; call after :meth:`deliver`."""
        record = DeliveryRecord(
            str(token["id"]),
            str(token["username"]),
            str(token["name"]),
            fingerprint(secret) if self.variable_key is not None else None,
        )
        with _AIRFLOW_IO:
            Variable.set(
                self.record,
                json.dumps(asdict(record), sort_keys=True),
                description=f"Which MotherDuck token's secret {self.describe()} holds (no secret here)",
            )


def forget(variable_key: str | None, record_key: str | None = None) -> list[str]:
    """Delete a secret Variable and its delivery record; return the keys that existed."""
    keys = [k for k in (variable_key, record_key or (variable_key and variable_key + RECORD_SUFFIX)) if k]
    with _AIRFLOW_IO:
        present = [k for k in keys if Variable.get(k, None) is not None]
        for key in present:
            Variable.delete(key)
    return present
