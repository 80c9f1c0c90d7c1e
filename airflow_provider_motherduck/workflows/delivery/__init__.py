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
    task_identity,
)
from airflow_provider_motherduck.workflows.delivery.record import (
    RECORD_PREFIX,
    Delivered,
    DeliveryRecord,
    Pending,
    default_record_key,
    fingerprint,
    with_delivering,
)
from airflow_provider_motherduck.workflows.delivery.store import (
    AirflowVariableStore,
    InMemoryVariableStore,
    VariableStore,
    use_variable_store,
    variable_store,
)

__all__ = [
    "RECORD_PREFIX",
    "AirflowVariableStore",
    "Delivered",
    "DeliveryRecord",
    "InMemoryVariableStore",
    "Pending",
    "SecretDestination",
    "SecretSink",
    "VariableStore",
    "check_destination",
    "default_record_key",
    "fingerprint",
    "forget",
    "task_identity",
    "use_variable_store",
    "variable_store",
    "with_delivering",
]
