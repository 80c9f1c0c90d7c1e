"""The one place that tells Airflow 2.11 from 3.x. Everything else imports Airflow names from here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

_airflow_version = Version(Version(AIRFLOW_VERSION).base_version)
AIRFLOW_V_3 = _airflow_version >= Version("3.0.0")
AIRFLOW_V_3_1 = _airflow_version >= Version("3.1.0")
AIRFLOW_V_3_2 = _airflow_version >= Version("3.2.0")
AIRFLOW_V_3_3 = _airflow_version >= Version("3.3.0")

if TYPE_CHECKING:
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
    from wtforms.validators import NumberRange, Optional, Regexp

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
                validators=[Optional(), NumberRange(min=schema.get("minimum"))],
                description=description,
                **text,
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


def __getattr__(name: str) -> Any:
    # The trigger classes (same path on every version) load on first use: every DAG parse imports
    # this module, and only the triggerer and deferring sensors need them. BaseEventTrigger (asset
    # watchers) exists from Airflow 3.0 only.
    if name in ("BaseTrigger", "TriggerEvent") or (name == "BaseEventTrigger" and AIRFLOW_V_3):
        from airflow.triggers import base

        return getattr(base, name)
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
    "PokeReturnValue",
    "TaskDeferred",
    "TaskGroup",
    "TriggerEvent",
    "Variable",
    "conf",
    "legacy_form_widgets",
    "mask_secret",
    "redact",
    "should_hide_value_for_key",
]
