"""The delivery record's format: round trip, what is not a record, no masked words, no secret."""

from __future__ import annotations

import json

import pytest

from airflow_provider_motherduck._compat import should_hide_value_for_key
from airflow_provider_motherduck.workflows.delivery import (
    RECORD_PREFIX,
    Delivered,
    DeliveryRecord,
    Pending,
    default_record_key,
    fingerprint,
)

SECRET = "opaque-test-secret-0001"


def test_round_trip() -> None:
    record = DeliveryRecord(
        "etl_bot",
        Delivered("t1", "airflow", fingerprint(SECRET)),
        Pending("airflow", ("t1", "t0"), Delivered("t2", "airflow", fingerprint("other"))),
    )
    text = record.dumps("Airflow Variable md_etl")
    assert DeliveryRecord.parse(text) == record
    assert json.loads(text)["destination"] == "Airflow Variable md_etl"
    assert SECRET not in text


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[]",
        '{"kind": "other"}',
        '{"kind": "motherduck-delivery"}',
        '{"username": "u", "token_id": "t1", "token_name": "n"}',
    ],
)
def test_anything_else_is_no_record(text: str | None) -> None:
    assert DeliveryRecord.parse(text) is None


def test_no_field_is_masked_by_airflow() -> None:
    text = DeliveryRecord("u", Delivered("t", "n", "f"), Pending("n", ("a",), Delivered("t", "n"))).dumps("d")

    def keys(value: object) -> list[str]:
        if isinstance(value, dict):
            return [k for key, v in value.items() for k in [key, *keys(v)]]
        return []

    assert [k for k in keys(json.loads(text)) if should_hide_value_for_key(k)] == []
    assert not should_hide_value_for_key(default_record_key(variable_key="md_token_etl"))


def test_fingerprint_is_short_and_tells_secrets_apart() -> None:
    assert fingerprint(SECRET) == fingerprint(SECRET) != fingerprint(SECRET + "x")
    assert len(fingerprint(SECRET)) == len("sha256:") + 16


def test_default_keys_differ_by_destination() -> None:
    by_variable = default_record_key(variable_key="md_a")
    assert by_variable.startswith(RECORD_PREFIX)
    assert by_variable != default_record_key(variable_key="md_b") != default_record_key(task="dag.md_a")
    with pytest.raises(ValueError, match="needs variable_key or task"):
        default_record_key()
