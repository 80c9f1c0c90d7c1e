"""Fixtures of the emulator tests: emulators stopped after the test, a clock, an admin session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.testing.support import Api, Clock, Sql


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


@pytest.fixture
def pg(md: MotherDuckEmulator) -> Iterator[Callable[..., Sql]]:
    """``pg(username=None, database="md:")``: an autocommit psycopg connection to the emulator's
    Postgres endpoint as that user (a fresh read/write token), or as the Admin; closed after."""
    opened: list[Sql] = []

    def _connect(username: str | None = None, database: str = "md:") -> Sql:
        token = md.admin_token if username is None else md.add_token(username, "sql-test")["token"]
        conn = psycopg.connect(md.postgres_conninfo(database), password=token, autocommit=True)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()
