"""An in-memory emulator of the MotherDuck admin REST API and of its Postgres endpoint's
administration SQL (roles, shares, grants, attachments, databases), for tests and demos.

It imports nothing else of this package: it states MotherDuck's rules on its own, so a
client bug cannot be mirrored by the server. ``EmulatorControl`` drives a standalone one
(``python -m airflow_provider_motherduck.testing serve``) from another process.
"""

from __future__ import annotations

from airflow_provider_motherduck.testing.control import EmulatorControl
from airflow_provider_motherduck.testing.emulator import MotherDuckEmulator
from airflow_provider_motherduck.testing.traffic import JournalEntry

__all__ = ["EmulatorControl", "JournalEntry", "MotherDuckEmulator"]
