"""Sensors of the MotherDuck provider."""

from __future__ import annotations

from airflow_provider_motherduck.sensors.accounts import MotherDuckActiveAccountsSensor

__all__ = ["MotherDuckActiveAccountsSensor"]
