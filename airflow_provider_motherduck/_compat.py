"""The one place that tells Airflow 2.11 from 3.x. Everything else imports Airflow names from here."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

_airflow_version = Version(Version(AIRFLOW_VERSION).base_version)
AIRFLOW_V_3 = _airflow_version >= Version("3.0.0")
AIRFLOW_V_3_1 = _airflow_version >= Version("3.1.0")
AIRFLOW_V_3_2 = _airflow_version >= Version("3.2.0")
AIRFLOW_V_3_3 = _airflow_version >= Version("3.3.0")

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

if TYPE_CHECKING or AIRFLOW_V_3_2:
    from airflow.sdk import (
        DAG,
        BaseHook,
        BaseOperator,
        BaseSensorOperator,
        PokeReturnValue,
        TaskGroup,
        Variable,
        conf,
    )
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.log import mask_secret, redact  # type: ignore[attr-defined]
elif AIRFLOW_V_3:  # 3.0 and 3.1: the Task SDK has the classes, not yet conf and the exceptions
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, PokeReturnValue, TaskGroup, Variable
    from airflow.sdk.definitions.context import Context

    if AIRFLOW_V_3_1:
        from airflow.sdk import BaseHook
        from airflow.sdk.log import mask_secret, redact  # type: ignore[attr-defined]
    else:
        from airflow.hooks.base import BaseHook
        from airflow.sdk.execution_time.secrets_masker import mask_secret, redact
else:
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.hooks.base import BaseHook
    from airflow.models import DAG, BaseOperator, Variable
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue
    from airflow.utils.context import Context
    from airflow.utils.log.secrets_masker import mask_secret, redact
    from airflow.utils.task_group import TaskGroup


def legacy_form_widgets(conn_fields: Mapping[str, Any]) -> dict[str, Any]:
    """The extra fields of the Flask connection form of Airflow < 3.2, from ``conn-fields``.

    Newer Airflow reads ``conn-fields`` itself and never calls this, so WTForms is imported here only.
    """
    from wtforms import BooleanField, IntegerField, StringField
    from wtforms.validators import AnyOf, NumberRange, Optional, Regexp

    try:  # the Flask UI's look; Airflow 3.0 and 3.1 may run without Flask-AppBuilder
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

        text: dict[str, Any] = {"widget": BS3TextFieldWidget()}
    except ImportError:
        text = {}
    widgets: dict[str, Any] = {}
    for name, field in conn_fields.items():
        schema = field["schema"]
        label, description = field["label"], field.get("description", "")
        if "boolean" in schema["type"]:
            widgets[name] = BooleanField(label, description=description, default=schema.get("default"))
        elif "integer" in schema["type"]:
            widgets[name] = IntegerField(
                label,
                validators=[Optional(), NumberRange(min=schema.get("minimum"), max=schema.get("maximum"))],
                description=description,
                **text,
            )
        elif "string" in schema["type"]:  # the hook checks the text (a host, a choice)
            choices = [c for c in schema.get("enum", ()) if c is not None]
            checks = [AnyOf(choices, message=f"One of {', '.join(choices)}.")] if choices else []
            widgets[name] = StringField(
                label, validators=[Optional(), *checks], description=description, **text
            )
        else:  # a number: the form has no float field, the hook reads the text
            widgets[name] = StringField(
                label,
                validators=[
                    Optional(),
                    Regexp(r"^\s*(\d+(\.\d*)?|\.\d+)\s*$", message="Expected a number >= 0."),
                ],
                description=description,
                **text,
            )
    return widgets


def should_hide_value_for_key(name: str) -> bool:
    """Whether Airflow's UI and REST API mask a Variable (or extra) named ``name``."""
    if AIRFLOW_V_3_1:  # the API server's masker
        from airflow._shared.secrets_masker import should_hide_value_for_key as hide
    elif AIRFLOW_V_3:  # 3.0: the Task SDK's, which the API server uses too
        from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[no-redef]
            should_hide_value_for_key as hide,
        )
    else:
        from airflow.utils.log.secrets_masker import should_hide_value_for_key as hide  # type: ignore[no-redef]
    return bool(hide(name))  # type: ignore[no-untyped-call]


# -- registering secrets with Airflow's masker without recompiling it each time -------------------
#
# Airflow's masker keeps ``patterns`` (a set of escaped secrets) and ``replacer``, one regex of all of
# them, which every ``mask_secret`` of a new secret recompiles: O(n^2) for n secrets in one process.
# ``mask_secrets`` adds the patterns to the same set and puts a ``_ChunkedReplacer`` in ``replacer``:
# the same ``sub``, over chunks compiled at the next redaction (under a lock, before anything is
# replaced) and merged like a binary counter, O(n log n) in all. A later plain ``mask_secret``
# recompiles ``patterns`` into a regex as before, which covers our secrets too.

_MASK_LOCK = threading.RLock()  # our registrations and our chunks' compiles, one at a time (re-entrant:
# a plain mask_secret under it may log, and a log line is redacted)
_FAST_MIN_LENGTH = 8


class _ChunkedReplacer:
    """Stands in for the masker's compiled regex (``sub`` only, which is all Airflow calls)."""

    def __init__(self, compile_: Callable[[str], Any], pending: Iterable[str]) -> None:
        self._compile = compile_
        self._pending = list(pending)
        self._chunks: tuple[tuple[list[str], Any], ...] = ()

    def add(self, patterns: Iterable[str]) -> None:
        """Patterns to cover from the next ``sub`` on; call under ``_MASK_LOCK``."""
        self._pending.extend(patterns)

    def sub(self, repl: str, string: str) -> str:
        with _MASK_LOCK:
            if self._pending:
                patterns, self._pending = self._pending, []
                chunks = list(self._chunks)
                while chunks and len(chunks[-1][0]) <= len(patterns):  # merge equal-sized chunks
                    patterns = chunks.pop()[0] + patterns
                chunks.append((patterns, self._compile("|".join(patterns))))
                self._chunks = tuple(chunks)
            chunks_now = self._chunks
        for _, regex in chunks_now:
            string = regex.sub(repl, string)
        return string


class _Registrar:
    """Adds secrets to the masker that ``mask_secret`` adds to, the way its ``add_mask`` would."""

    def __init__(self, masker: Callable[[], Any], engine: Any) -> None:
        self._masker = masker
        self._engine = engine

    def register(self, secrets: Iterable[str], masker: Any = None) -> None:
        masker = masker if masker is not None else self._masker()
        # Short values (and Airflow's skip list, all short) are left to mask_secret's own rules. The
        # variants are worked out before taking the lock: a configured adapter might log.
        shortest = max(_FAST_MIN_LENGTH, getattr(masker, "min_length_to_mask", 0))
        patterns = [
            self._engine.escape(variant)
            for secret in secrets
            for variant in masker._adaptations(secret)
            if len(variant) >= shortest
        ]
        with _MASK_LOCK:
            known: set[str] = masker.patterns
            new = [pattern for pattern in dict.fromkeys(patterns) if pattern not in known]
            known.update(new)
            replacer = masker.replacer
            if isinstance(replacer, _ChunkedReplacer):
                replacer.add(new)
            elif new:  # none yet, or plain mask_secret (or a reset) replaced ours: cover the whole set
                masker.replacer = _ChunkedReplacer(self._engine.compile, known)

    def works(self) -> bool:
        """Whether the masker's internals are the ones this relies on, tried on a fresh instance."""
        first, second, third, fourth = (f"md-probe-{n}-4e1f9a77c2d0" for n in ("one", "two", "three", "four"))
        try:
            probe = type(self._masker())()
            probe.add_mask(first)
            if probe.patterns != {self._engine.escape(first)}:
                return False
            if type(probe.replacer) is not type(self._engine.compile(first)):
                return False
            self.register([second], probe)
            probe.add_mask(third)  # plain add_mask after ours: its regex must cover ours
            self.register([fourth], probe)
            return bool(probe.redact(f"{first} {second} {third} {fourth}") == "*** *** *** ***")
        except Exception:
            return False


@cache
def _registrar() -> _Registrar | None:
    """The fast path, or ``None`` where Airflow's masker is not built as this expects."""
    masker = getattr(sys.modules[mask_secret.__module__], "_secrets_masker", None)
    if masker is None:
        return None
    registrar = _Registrar(masker, importlib.import_module("re" if AIRFLOW_V_3 else "re2"))
    return registrar if registrar.works() else None


def mask_secrets(secrets: Iterable[str]) -> None:
    """``mask_secret`` for each of ``secrets``: masked in every log line from the moment this returns.

    Cheap for many secrets in one process: the masker's regex is not recompiled per secret (see
    above). On Airflow versions whose masker is built differently, plain ``mask_secret``.
    """
    values = [secret for secret in secrets if secret]
    registrar = _registrar()
    if registrar is None:
        for secret in values:
            with _MASK_LOCK:  # concurrent plain calls can lose a secret: a slower, older compile wins
                mask_secret(secret)
        return
    registrar.register(values)
    for secret in values:  # known now, so no recompile; Airflow 3 also tells its supervisor process
        mask_secret(secret)


def run_dag_test(dag: DAG, logical_date: datetime | None = None) -> str:
    """Run ``dag`` once with ``dag.test()`` in this process; returns the run id.

    Airflow 3 runs only a DAG its metadata database knows, and ``dag.test()`` looks for it in the
    DAG folder: a DAG built in a test is written there first, as the DAG processor would.
    """
    if not AIRFLOW_V_3:
        return str(dag.test(execution_date=logical_date).run_id)  # type: ignore[call-arg]
    if not AIRFLOW_V_3_1:
        return str(dag.test(logical_date=logical_date).run_id)
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        manager = DagBundlesManager()  # type: ignore[no-untyped-call]
        manager.sync_bundles_to_db(session=session)
        session.commit()
        update_dag_parsing_results_in_db(
            bundle_name=next(iter(manager.get_all_dag_bundles())).name,
            bundle_version=None,
            dags=[LazyDeserializedDAG.from_dag(dag)],
            import_errors={},
            parse_duration=None,
            warnings=set(),
            session=session,
        )
    return str(dag.test(logical_date=logical_date).run_id)


def __getattr__(name: str) -> Any:
    # The trigger classes (same path on every version) and DagBag load on first use: every DAG
    # parse imports this module, and only the triggerer and deferring sensors need the triggers.
    # BaseEventTrigger (asset watchers) exists from Airflow 3.0 only.
    if name in ("BaseTrigger", "TriggerEvent") or (name == "BaseEventTrigger" and AIRFLOW_V_3):
        from airflow.triggers import base

        return getattr(base, name)
    if name == "DagBag":  # for tests that load a DAG file (it imports Airflow's core)
        module = "airflow.dag_processing.dagbag" if AIRFLOW_V_3_2 else "airflow.models.dagbag"
        return importlib.import_module(module).DagBag
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3",
    "AIRFLOW_V_3_1",
    "AIRFLOW_V_3_2",
    "AIRFLOW_V_3_3",
    "DAG",
    "AirflowException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "DagBag",
    "PokeReturnValue",
    "TaskDeferred",
    "TaskGroup",
    "TriggerEvent",
    "Variable",
    "conf",
    "legacy_form_widgets",
    "mask_secret",
    "mask_secrets",
    "redact",
    "run_dag_test",
    "should_hide_value_for_key",
]
