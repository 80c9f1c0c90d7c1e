"""Fixtures of the emulator tests: emulators stopped after the test, a clock, an admin session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.testing.support import Api, Clock


@pytest.fixture
def start() -> Iterator[Callable[..., MotherDuckEmulator]]:
    running: list[MotherDuckEmulator] = []

    def _start(**kwargs: Any) -> MotherDuckEmulator:
        md = MotherDuckEmulator(**kwargs)
        md.start()
        running.append(md)
        return md

    yield _start
    for md in running:
        md.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def md(start: Callable[..., MotherDuckEmulator], clock: Clock) -> MotherDuckEmulator:
    emulator = start(clock=clock)
    emulator.add_user("etl_bot")
    return emulator


@pytest.fixture
def api(md: MotherDuckEmulator) -> Iterator[Api]:
    client = Api(md, md.admin_token)
    yield client
    client.session.close()
