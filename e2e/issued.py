"""The secrets the emulator issued, for the scan at the end."""

from __future__ import annotations

from airflow_provider_motherduck.testing import MotherDuckEmulator


class IssuedSecrets:
    """Every secret the emulator handed out: its admin token, every token and embed session, revoked ones too."""

    def __init__(self, emulator: MotherDuckEmulator) -> None:
        self._emulator = emulator

    def all(self) -> list[str]:
        return [issued["secret"] for issued in self._emulator.issued_secrets()]
