"""Triggers of the MotherDuck provider (they run in Airflow's triggerer)."""

from __future__ import annotations

from airflow_provider_motherduck.triggers.accounts import MotherDuckActiveAccountsTrigger

__all__ = ["MotherDuckActiveAccountsTrigger"]
