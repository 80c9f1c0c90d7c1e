"""Where a new token's secret goes, and the record that lets a later try see what happened.

- :mod:`.store`: the Variable store interface (:func:`variable_store`), Airflow's Variables by
  default, an in-memory store for tests;
- :mod:`.record`: the delivery record's format (pure);
- :mod:`.held`: what a destination holds, recognised from its record and the listed tokens (pure);
- :mod:`.destination`: :class:`SecretDestination`, a Variable or a ``secret_sink`` with its record.
"""

from __future__ import annotations

from airflow_provider_motherduck.workflows.delivery.destination import (
    SecretDestination,
    SecretSink,
    check_destination,
    forget,
    issuer_of,
    outside_a_task,
    task_identity,
)
from airflow_provider_motherduck.workflows.delivery.held import Leftovers, held_token, judge_leftovers
from airflow_provider_motherduck.workflows.delivery.record import (
    DELIVERY_WINDOW,
    RECORD_PREFIX,
    Delivered,
    DeliveryRecord,
    Intent,
    Issuer,
    default_record_key,
    fingerprint,
)
from airflow_provider_motherduck.workflows.delivery.store import (
    AirflowVariableStore,
    InMemoryVariableStore,
    VariableStore,
    use_variable_store,
    variable_store,
)

__all__ = [
    "DELIVERY_WINDOW",
    "RECORD_PREFIX",
    "AirflowVariableStore",
    "Delivered",
    "DeliveryRecord",
    "InMemoryVariableStore",
    "Intent",
    "Issuer",
    "Leftovers",
    "SecretDestination",
    "SecretSink",
    "VariableStore",
    "check_destination",
    "default_record_key",
    "fingerprint",
    "forget",
    "held_token",
    "issuer_of",
    "judge_leftovers",
    "outside_a_task",
    "task_identity",
    "use_variable_store",
    "variable_store",
]
