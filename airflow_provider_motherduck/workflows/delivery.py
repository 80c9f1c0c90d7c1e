"""Where a new token's secret goes, and the delivery record that lets a later try see what happened.

MotherDuck shows a secret once, so "this token's secret was delivered" cannot be read back from
MotherDuck. Next to each destination (an Airflow Variable, or a ``secret_sink``) we keep a record,
a JSON Airflow Variable (no secret in it)::

    {"kind": "motherduck-delivery", "destination": "Airflow Variable md_etl", "user": "etl_bot",
     "delivered": {"id": "...", "name": "airflow", "fingerprint": "sha256:<16 hex>"},
     "pending": {"name": "airflow", "known_ids": ["..."], "delivering": {"id": "...", "fingerprint": "..."}}}

``delivered`` names the token whose secret the destination holds; the fingerprint (the first 64
bits of the secret's SHA-256, not reversible; Variable destinations only) shows the Variable
still holds it. ``pending`` is written before a token is created and says which tokens of that
name existed then (``known_ids``) and, once the token exists, which one is being delivered. A
later try can therefore tell every token of that name apart: the delivered one; one whose
delivery completed but whose record was not written (the Variable holds its fingerprint); and
one whose create answer was lost (unknown, yet not there before), whose secret nobody holds.

The record's key and field names avoid the words Airflow masks (``token``, ``secret``, ...), so
the UI and REST API show it. Its default key is ``motherduck_delivery_`` and 16 hex digits of a
hash of the destination (the Variable key, or the task for a sink). Records of the old layout
(``<variable_key>__delivery`` with ``token_id``) are still read, and replaced on the next write.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Final

from airflow_provider_motherduck._compat import Variable
from airflow_provider_motherduck.arguments import VARIABLE_KEY_MAX_LENGTH, check_variable_key
from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.validation import fold_username
from airflow_provider_motherduck.workflows.tokens import is_expired

#: Receives a new token's secret and keeps it somewhere; raises if it could not.
SecretSink = Callable[[str], None]

#: Default record keys start with this.
RECORD_PREFIX: Final = "motherduck_delivery_"
#: The record key of the old layout: the secret's Variable key and this suffix.
LEGACY_RECORD_SUFFIX: Final = "__delivery"
_KIND = "motherduck-delivery"

# Variables and sinks are touched by one thread at a time: worker threads of a bulk task share
# one Airflow client (a supervisor socket on 3.x, a SQLite file in tests) and a sink need not be
# thread-safe. Only the HTTP calls to MotherDuck run in parallel.
AIRFLOW_IO = threading.RLock()
# Variable.get(key, None): the default goes by position (Airflow 2 names it default_var, 3 default).


def fingerprint(secret: str) -> str:
    """A short, non-reversible tag of a secret (enough to tell two random secrets apart)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def default_record_key(*, variable_key: str | None = None, task: str | None = None) -> str:
    """The record key of a Variable destination, or of a sink used by ``task`` (see :func:`task_identity`)."""
    if variable_key is None and task is None:
        raise ValueError("default_record_key needs variable_key or task")
    source = f"variable:{variable_key}" if variable_key is not None else f"task:{task}"
    return RECORD_PREFIX + hashlib.sha256(source.encode()).hexdigest()[:16]


def task_identity(context: Mapping[str, Any]) -> str | None:
    """``dag_id.task_id`` (and ``[map_index]`` for a mapped task) of the task in ``context``."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id, task_id = getattr(ti, "dag_id", None), getattr(ti, "task_id", None)
    if not dag_id or not task_id:
        return None
    map_index = getattr(ti, "map_index", -1)
    return f"{dag_id}.{task_id}" + (f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else "")


def check_destination(
    where: str, variable_key: Any, secret_sink: Any, record_key: Any, *, task_known: bool = True
) -> None:
    """Refuse anything but exactly one destination, and keys Airflow or the record cannot use.

    A sink without ``record_key`` is fine inside a task (``task_known``): its record key is
    derived from the task. Values still to be rendered (Jinja) are left for later. Errors start
    with ``where``.
    """
    try:
        _check_destination(variable_key, secret_sink, record_key, task_known)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _check_destination(variable_key: Any, secret_sink: Any, record_key: Any, task_known: bool) -> None:
    if (variable_key is None) == (secret_sink is None):
        raise ValueError(
            "give exactly one destination for the new secret, variable_key or secret_sink "
            f"(got variable_key={variable_key!r}, secret_sink={secret_sink!r})."
        )
    if secret_sink is not None and not callable(secret_sink):
        raise invalid(
            "secret_sink",
            secret_sink,
            "expected a callable",
            "a callable taking the secret, returning nothing",
        )
    if secret_sink is not None and record_key is None and not task_known:
        raise ValueError(
            "secret_sink needs record_key outside a task: the Airflow Variable that records which "
            "token's secret the sink holds (a re-run cannot ask the sink)."
        )
    if variable_key is not None and not _lazy(variable_key):
        check_variable_key(variable_key, "variable_key")
    if record_key is not None and not _lazy(record_key):
        check_variable_key(record_key, "record_key")
        if record_key == variable_key:
            raise invalid(
                "record_key",
                record_key,
                "it is the variable_key, and the record would overwrite the secret",
                "any other Variable key",
            )


def _lazy(value: Any) -> bool:
    return not isinstance(value, str) or "{{" in value or "{%" in value


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
        """The record in a Variable's text (either layout), or ``None`` if missing or not a record."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
            if not isinstance(data, dict):
                return None
            if "token_id" in data:  # the old layout
                return cls(
                    str(data["username"]),
                    Delivered(str(data["token_id"]), str(data["token_name"]), data.get("fingerprint")),
                )
            if data.get("kind") != _KIND:
                return None
            done, pending = data.get("delivered"), data.get("pending")
            return cls(
                str(data["user"]),
                Delivered(**done) if done else None,
                Pending(
                    str(pending["name"]),
                    tuple(str(i) for i in pending.get("known_ids") or ()),
                    Delivered(**pending["delivering"]) if pending.get("delivering") else None,
                )
                if pending
                else None,
            )
        except (TypeError, ValueError, KeyError):
            return None

    def dumps(self, destination: str) -> str:
        """The record as the JSON text of its Variable; ``destination`` says in words where the secret is."""
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


def _plain(done: Delivered | None) -> dict[str, Any] | None:
    return None if done is None else {"id": done.id, "name": done.name, "fingerprint": done.fingerprint}


def _named(name: str, wanted: str | re.Pattern[str]) -> bool:
    return name == wanted if isinstance(wanted, str) else wanted.fullmatch(name) is not None


@dataclass(frozen=True)
class SecretDestination:
    """A secret's destination (an Airflow Variable, or a ``secret_sink``) and its delivery record.

    :param variable_key: the Variable that receives the secret.
    :param secret_sink: instead of a Variable: a callable taking the secret, returning nothing.
    :param record_key: the Variable holding the delivery record; default
        ``motherduck_delivery_<hash of the destination>``.
    :param task: for a sink without ``record_key``: the task it belongs to (:func:`task_identity`).
    """

    variable_key: str | None = None
    secret_sink: SecretSink | None = None
    record_key: str | None = None
    task: str | None = None

    def __post_init__(self) -> None:
        _check_destination(self.variable_key, self.secret_sink, self.record_key, self.task is not None)
        self.record  # noqa: B018  # computed (and checked) once, here

    @cached_property
    def record(self) -> str:
        """The key of the Variable holding the delivery record."""
        if self.record_key is not None:
            return self.record_key
        return default_record_key(variable_key=self.variable_key, task=self.task)

    @property
    def legacy_record(self) -> str | None:
        """Where the old layout kept the record of this destination, if it could have."""
        if self.record_key is not None or self.variable_key is None:
            return None
        key = self.variable_key + LEGACY_RECORD_SUFFIX
        return key if len(key) <= VARIABLE_KEY_MAX_LENGTH else None

    def describe(self) -> str:
        """The destination in words, for logs (never the secret)."""
        if self.variable_key is not None:
            return f"Airflow Variable {self.variable_key}"
        return f"secret_sink {getattr(self.secret_sink, '__name__', type(self.secret_sink).__name__)}"

    # -- reading --------------------------------------------------------------------------------

    def read_record(self) -> DeliveryRecord | None:
        """The record, from its key or, not written since an upgrade, the old layout's key."""
        with AIRFLOW_IO:
            record = DeliveryRecord.parse(Variable.get(self.record, None))
            if record is None and self.legacy_record is not None:
                record = DeliveryRecord.parse(Variable.get(self.legacy_record, None))
            return record

    def _holds(self, tag: str | None) -> bool:
        """Whether the Variable holds the secret fingerprinted ``tag`` (a sink cannot be asked)."""
        if self.variable_key is None:
            return True
        with AIRFLOW_IO:
            stored = Variable.get(self.variable_key, None)
        # Only hashed, never logged (no mask_secret: each new mask recompiles Airflow's masker).
        return isinstance(stored, str) and bool(stored) and fingerprint(stored) == tag

    def delivered(
        self,
        tokens: Iterable[Mapping[str, Any]],
        username: str,
        token_name: str | re.Pattern[str],
        token_type: str,
        record: DeliveryRecord | None = None,
    ) -> Mapping[str, Any] | None:
        """The listed token whose secret is here, or ``None``; read-only.

        That is the record's delivered token, or a token whose delivery completed before its
        record could be written (a Variable holding its fingerprint). It must still be listed
        under that name and type, unexpired. ``token_name`` is an exact name or a pattern.
        """
        record = self.read_record() if record is None else record
        if record is None or fold_username(record.user) != fold_username(username):
            return None
        candidates = [record.delivered]
        if record.pending is not None and record.pending.delivering is not None:
            if self.variable_key is None:
                return None  # the sink may hold either: only a fresh delivery is certain
            candidates.insert(0, record.pending.delivering)
        now = datetime.now(timezone.utc)
        listed = list(tokens)
        for done in candidates:
            if done is None or not _named(done.name, token_name):
                continue
            token = next(
                (
                    t
                    for t in listed
                    if t.get("id") == done.id
                    and t.get("name") == done.name
                    and t.get("token_type", "read_write") == token_type
                    and not is_expired(t, now)
                ),
                None,
            )
            if token is not None and self._holds(done.fingerprint):
                return token
        return None

    def leftovers(
        self, tokens: Iterable[Mapping[str, Any]], username: str, record: DeliveryRecord | None = None
    ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
        """Tokens an earlier try created for this destination and that are not the delivered one.

        Returns ``(lost, maybe_held)``: ``lost`` tokens' create answers never arrived, so nobody
        holds their secret; ``maybe_held`` is the one whose delivery to a sink was under way and
        cannot be verified. Both are empty when the record has no issuance under way.
        """
        record = self.read_record() if record is None else record
        if record is None or record.pending is None or fold_username(record.user) != fold_username(username):
            return [], []
        pending = record.pending
        delivered_id = record.delivered.id if record.delivered is not None else None
        lost: list[Mapping[str, Any]] = []
        maybe_held: list[Mapping[str, Any]] = []
        for token in tokens:
            token_id = str(token.get("id"))
            if token.get("name") != pending.name or token_id in pending.known_ids or token_id == delivered_id:
                continue
            delivering = pending.delivering
            if delivering is None or delivering.id != token_id:
                lost.append(token)
            elif self.variable_key is None:
                maybe_held.append(token)  # a sink cannot be asked whether it kept the secret
            elif not self._holds(delivering.fingerprint):
                lost.append(token)  # the Variable was never written (holding it: it is the delivered one)
        return lost, maybe_held

    def find(
        self,
        tokens: Iterable[Mapping[str, Any]],
        username: str,
        token_name: str | re.Pattern[str],
        token_type: str,
    ) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]:
        """:meth:`delivered` and the tokens of :meth:`leftovers` (lost and maybe held), from one
        read of the record."""
        listed = list(tokens)
        record = self.read_record()
        lost, maybe_held = self.leftovers(listed, username, record)
        return self.delivered(listed, username, token_name, token_type, record), lost + maybe_held

    # -- writing --------------------------------------------------------------------------------

    def deliver(self, secret: str, what: str) -> None:
        """Hand the secret over; ``what`` says in words whose secret it is (the Variable's description).

        The record is written separately.
        """
        with AIRFLOW_IO:
            if self.variable_key is None:
                assert self.secret_sink is not None
                self.secret_sink(secret)
                return
            Variable.set(self.variable_key, secret, description=what)

    def write_record(self, record: DeliveryRecord) -> None:
        """Store ``record``; an old-layout record of this destination is removed once replaced."""
        with AIRFLOW_IO:
            Variable.set(
                self.record,
                record.dumps(self.describe()),
                description=f"Which MotherDuck token's secret {self.describe()} holds (no secret here)",
            )
            legacy = self.legacy_record
            if legacy is not None and Variable.get(legacy, None) is not None:
                Variable.delete(legacy)


def forget(variable_key: str | None = None, record_key: str | None = None) -> list[str]:
    """Delete a secret Variable and its delivery record; return the keys that existed.

    Without ``record_key`` the record's default key and the old layout's key are both tried.
    """
    keys = [k for k in (variable_key, record_key) if k is not None]
    if record_key is None and variable_key is not None:
        keys += [default_record_key(variable_key=variable_key), variable_key + LEGACY_RECORD_SUFFIX]
    with AIRFLOW_IO:
        present = [k for k in dict.fromkeys(keys) if Variable.get(k, None) is not None]
        for key in present:
            Variable.delete(key)
    return present


def with_delivering(record: DeliveryRecord, done: Delivered) -> DeliveryRecord:
    """``record`` saying that ``done`` is being delivered (its issuance must be pending)."""
    assert record.pending is not None
    return replace(record, pending=replace(record.pending, delivering=done))
