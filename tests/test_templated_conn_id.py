"""The connection id is a template field of every operator and of the sensor, and a rendered one is used."""

from __future__ import annotations

import pytest

import airflow_provider_motherduck.operators as operators
from airflow_provider_motherduck.operators import MotherDuckCreateUserOperator
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.sensors import MotherDuckActiveAccountsSensor
from airflow_provider_motherduck.testing import MotherDuckEmulator

OPERATORS = [
    getattr(operators, name)
    for name in operators.__all__
    if isinstance(getattr(operators, name), type)
    and issubclass(getattr(operators, name), MotherDuckBaseOperator)
]


def _concrete(cls: type) -> set[type]:
    """Every public subclass of ``cls``, at any depth (private bases such as a family's are skipped)."""
    found = set()
    for sub in cls.__subclasses__():
        if not sub.__name__.startswith("_"):
            found.add(sub)
        found |= _concrete(sub)
    return found


def test_every_operator_is_listed() -> None:
    assert set(OPERATORS) == _concrete(MotherDuckBaseOperator)
    assert len(OPERATORS) >= 13


@pytest.mark.parametrize("cls", [*OPERATORS, MotherDuckActiveAccountsSensor], ids=lambda c: c.__name__)
def test_conn_id_is_templated(cls: type) -> None:
    assert "motherduck_conn_id" in cls.template_fields
    assert len(set(cls.template_fields)) == len(cls.template_fields)


@pytest.fixture
def motherduck_conn_id() -> str:
    """Not the default: the rendered value must be what the hook uses."""
    return "md_admin_templated"


def test_operator_uses_the_rendered_conn_id(
    motherduck_emulator: MotherDuckEmulator, motherduck_connection: str
) -> None:
    op = MotherDuckCreateUserOperator(
        task_id="create", username="etl_loader", motherduck_conn_id="{{ params.conn_id }}"
    )
    op.render_template_fields({"params": {"conn_id": motherduck_connection}})  # type: ignore[arg-type]
    assert op.motherduck_conn_id == "md_admin_templated"

    op.execute(context={})  # type: ignore[arg-type]

    assert motherduck_emulator.users() == ["admin", "etl_loader"]


def test_sensor_uses_the_rendered_conn_id(
    motherduck_emulator: MotherDuckEmulator, motherduck_connection: str
) -> None:
    motherduck_emulator.add_user("etl_loader")
    motherduck_emulator.set_ducklings("etl_loader", [{"id": "rw", "type": "read_write", "status": "active"}])
    sensor = MotherDuckActiveAccountsSensor(
        task_id="wait", usernames="etl_loader", motherduck_conn_id="{{ params.conn_id }}"
    )
    sensor.render_template_fields({"params": {"conn_id": motherduck_connection}})  # type: ignore[arg-type]
    assert sensor.motherduck_conn_id == "md_admin_templated"

    assert sensor.poke(context={}).is_done  # type: ignore[arg-type]
