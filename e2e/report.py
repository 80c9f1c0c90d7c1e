"""The figures the session's summary table shows, gathered by the fixtures and tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    """What the summary table shows: runs, faults survived, secrets found, time spent."""

    started: float = field(default_factory=time.monotonic)
    runs: list[tuple[Any, ...]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)

    def phase(self, name: str, since: float) -> None:
        self.phases.append((name, time.monotonic() - since))


REPORT = Report()
