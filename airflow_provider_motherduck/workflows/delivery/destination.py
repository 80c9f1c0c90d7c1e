"""A secret's destination (an Airflow Variable, or a ``secret_sink``) and its delivery record.

:class:`SecretDestination` reads and writes both through
:func:`~airflow_provider_motherduck.workflows.delivery.store.variable_store` and leaves the
judging to the pure functions of :mod:`~airflow_provider_motherduck.workflows.delivery.held`.
Secrets are only hashed here, never logged; a sink is called under the Airflow I/O lock, as it
need not be thread-safe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from airflow_provider_motherduck.arguments import check_variable_key
from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.validation import fold_username
from airflow_provider_motherduck.workflows.delivery import held as _held
from airflow_provider_motherduck.workflows.delivery.held import Leftovers
from airflow_provider_motherduck.workflows.delivery.record import (
    DELIVERY_WINDOW,
    DeliveryRecord,
    Issuer,
    default_record_key,
    fingerprint,
)
from airflow_provider_motherduck.workflows.delivery.store import AIRFLOW_IO, variable_store

#: Receives a new token's secret and keeps it somewhere; raises if it could not.
SecretSink = Callable[[str], None]


def task_identity(context: Mapping[str, Any]) -> str | None:
    """``dag_id.task_id`` (and ``[map_index]`` for a mapped task) of the task in ``context``."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id, task_id = getattr(ti, "dag_id", None), getattr(ti, "task_id", None)
    if not dag_id or not task_id:
        return None
    map_index = getattr(ti, "map_index", -1)
    return f"{dag_id}.{task_id}" + (f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else "")


def outside_a_task() -> Issuer:
    """The issuer of a call made outside a task: this process. Its calls count as tries of one
    issuer (a later call revokes what an earlier one left, from any of its threads); calls from
    other processes are other issuers."""
    return Issuer(f"outside a task: process {os.getpid()}")


def issuer_of(context: Mapping[str, Any]) -> Issuer:
    """The issuer in ``context``: its task (:func:`task_identity`) in its run, and the try number;
    outside a task, :func:`outside_a_task`."""
    ti = context.get("ti") or context.get("task_instance")
    task = task_identity(context)
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    if task is None or not run_id:
        return outside_a_task()
    attempt = getattr(ti, "try_number", 1)
    return Issuer(f"{task} {run_id}", attempt if isinstance(attempt, int) and attempt > 0 else 1)


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

    @cached_property
    def record(self) -> str:
        """The key of the Variable holding the delivery record."""
        if self.record_key is not None:
            return self.record_key
        return default_record_key(variable_key=self.variable_key, task=self.task)

    def describe(self) -> str:
        """The destination in words, for logs (never the secret)."""
        if self.variable_key is not None:
            return f"Airflow Variable {self.variable_key}"
        return f"secret_sink {getattr(self.secret_sink, '__name__', type(self.secret_sink).__name__)}"

    # -- reading --------------------------------------------------------------------------------

    def read_record(self) -> DeliveryRecord | None:
        """The record, or ``None`` if there is none (or its Variable holds something else)."""
        return DeliveryRecord.parse(variable_store().get(self.record))

    def held_fingerprint(self) -> str | None:
        """The fingerprint of what the Variable holds now (``None``: empty, or a sink)."""
        if self.variable_key is None:
            return None
        stored = variable_store().get(self.variable_key)
        # Only hashed, never logged (no mask_secret: each new mask recompiles Airflow's masker).
        return fingerprint(stored) if stored else None

    def delivered(
        self,
        tokens: Iterable[Mapping[str, Any]],
        username: str,
        token_name: str | re.Pattern[str],
        token_type: str,
        record: DeliveryRecord | None = None,
    ) -> Mapping[str, Any] | None:
        """The listed token whose secret is here, or ``None``; read-only (see :func:`.held.held_token`)."""
        record = self.read_record() if record is None else record
        return _held.held_token(
            record,
            tokens,
            username,
            token_name,
            token_type,
            held=self.held_fingerprint(),
            sink=self.variable_key is None,
            now=datetime.now(timezone.utc),
        )

    def judge(
        self,
        tokens: Iterable[Mapping[str, Any]],
        username: str,
        *,
        me: Issuer | None = None,
        since: datetime | None = None,
        record: DeliveryRecord | None = None,
        window: timedelta = DELIVERY_WINDOW,
    ) -> Leftovers:
        """Which tokens of this destination's issuances are leftovers (see :func:`.held.judge_leftovers`),
        with the Variable's fingerprint read now. ``me``: the issuer judging (default
        :func:`outside_a_task`); ``since``: when its try began (default now)."""
        now = datetime.now(timezone.utc)
        return _held.judge_leftovers(
            self.read_record() if record is None else record,
            tokens,
            username,
            me=outside_a_task() if me is None else me,
            since=now if since is None else since,
            held=self.held_fingerprint(),
            sink=self.variable_key is None,
            now=now,
            window=window,
        )

    def find(
        self,
        tokens: Iterable[Mapping[str, Any]],
        username: str,
        token_name: str | re.Pattern[str],
        token_type: str,
        *,
        me: Issuer | None = None,
    ) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]:
        """:meth:`delivered` and the leftovers nobody holds or a sink may hold (:meth:`judge`),
        from one read of the record."""
        listed = list(tokens)
        record = self.read_record()
        judged = self.judge(listed, username, me=me, record=record)
        found = self.delivered(listed, username, token_name, token_type, record)
        return found, judged.lost + judged.maybe_held

    # -- writing --------------------------------------------------------------------------------

    def deliver(self, secret: str, what: str) -> None:
        """Hand the secret over; ``what`` says in words whose secret it is (the Variable's description).

        The record is written separately.
        """
        if self.variable_key is not None:
            variable_store().set(self.variable_key, secret, description=what)
            return
        assert self.secret_sink is not None  # __post_init__ checked: exactly one destination
        with AIRFLOW_IO:
            self.secret_sink(secret)

    def update_record(
        self, username: str, change: Callable[[DeliveryRecord], DeliveryRecord]
    ) -> DeliveryRecord:
        """Re-read the record, apply ``change`` and write the result; return it.

        Read and write follow each other at once, so another issuer's intents written meanwhile
        are kept, unless its write falls between the two (Airflow Variables have no
        compare-and-set: the judging rules tolerate a lost intent). A record of another user is
        started afresh.
        """
        current = self.read_record()
        if current is None or fold_username(current.user) != fold_username(username):
            current = DeliveryRecord(username)
        record = change(current)
        variable_store().set(
            self.record,
            record.dumps(self.describe()),
            description=f"Which MotherDuck token's secret {self.describe()} holds (no secret here)",
        )
        return record


def forget(variable_key: str | None = None, record_key: str | None = None) -> list[str]:
    """Delete a secret Variable and its delivery record; return the keys that existed.

    Without ``record_key`` the record's default key is used.
    """
    keys = [k for k in (variable_key, record_key) if k is not None]
    if record_key is None and variable_key is not None:
        keys.append(default_record_key(variable_key=variable_key))
    store = variable_store()
    with AIRFLOW_IO:
        present = [k for k in dict.fromkeys(keys) if store.get(k) is not None]
        for key in present:
            store.delete(key)
    return present
