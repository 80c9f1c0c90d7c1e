"""The secrets the emulator issued, for the scan at the end."""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_motherduck.testing import MotherDuckEmulator


class IssuedSecrets:
    """Every secret the emulator hands out (its admin token, every created token), kept after revocation."""

    def __init__(self, emulator: MotherDuckEmulator) -> None:
        self._lock = threading.Lock()
        self._secrets = [emulator.admin_token]
        # The emulator's Python API lists live tokens without secrets, and a revoked token's secret
        # is dropped: record each one as the state creates it.
        state = emulator._state
        create = state.add_token

        def add_token(*args: Any, **kwargs: Any) -> Any:
            token = create(*args, **kwargs)
            with self._lock:
                self._secrets.append(token.secret)
            return token

        state.add_token = add_token  # type: ignore[method-assign]

    def all(self) -> list[str]:
        with self._lock:
            return list(self._secrets)
