"""Triggers of the MotherDuck provider (they run in Airflow's triggerer).

``MotherDuckActiveAccountsEventTrigger`` (asset watchers) needs Airflow 3: on Airflow 2 importing it
raises an ImportError that says so.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from airflow_provider_motherduck.triggers import accounts
from airflow_provider_motherduck.triggers.accounts import MotherDuckActiveAccountsTrigger

if AIRFLOW_V_3:
    from airflow_provider_motherduck.triggers.accounts import MotherDuckActiveAccountsEventTrigger

    __all__ = ["MotherDuckActiveAccountsEventTrigger", "MotherDuckActiveAccountsTrigger"]
else:
    __all__ = ["MotherDuckActiveAccountsTrigger"]

    def __getattr__(name: str) -> Any:
        return getattr(accounts, name)  # the event trigger's ImportError, or AttributeError
