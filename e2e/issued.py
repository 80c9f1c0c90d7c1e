"""The secrets the emulator issued, for the scan at the end."""

from __future__ import annotations

from airflow_provider_motherduck.hooks.sql import is_session_token
from airflow_provider_motherduck.testing import MotherDuckEmulator


class IssuedSecrets:
    """Every secret the emulator handed out: its admin token, every token and embed session, revoked
    ones too, the short-lived SQL session tokens (``airflow-sql-session-...``) among them."""

    def __init__(self, emulator: MotherDuckEmulator) -> None:
        self._emulator = emulator

    def all(self) -> list[str]:
        return [issued["secret"] for issued in self._emulator.issued_secrets()]

    def session_tokens(self) -> list[str]:
        """The secrets of the short-lived SQL session tokens issued so far."""
        return [
            issued["secret"]
            for issued in self._emulator.issued_secrets()
            if issued["kind"] == "token" and is_session_token(issued["name"])
        ]

    def live_session_tokens(self) -> int:
        """How many of those still open a session (each should be revoked before its task ended)."""
        return sum(self._emulator.is_valid_token(secret) for secret in self.session_tokens())
