"""The delivery record's format: round trip, what is not a record, no masked words, no secret."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_motherduck._compat import should_hide_value_for_key
from airflow_provider_motherduck.workflows.delivery import (
    RECORD_PREFIX,
    Delivered,
    DeliveryRecord,
    Intent,
    Issuer,
    default_record_key,
    fingerprint,
)

SECRET = "opaque-test-secret-0001"
NOW = datetime(2026, 12, 7, 4, 0, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=15)
A = Issuer("dag.rotate scheduled__1", 1)
B = Issuer("dag.rotate manual__2", 2)


def test_round_trip() -> None:
    record = DeliveryRecord(
        "etl_bot",
        Delivered("t1", "airflow", fingerprint(SECRET)),
        (
            Intent(A, "airflow", NOW, ("t1", "t0"), Delivered("t2", "airflow", fingerprint("other"))),
            Intent(B, "airflow", NOW, (), None, NOW + timedelta(seconds=3), kept=False),
        ),
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
    intent = Intent(A, "n", NOW, ("a",), Delivered("t", "n"), NOW, kept=True)
    text = DeliveryRecord("u", Delivered("t", "n", "f"), (intent,)).dumps("d")

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


def test_an_intent_is_replaced_by_its_own_issuer_and_start_only() -> None:
    first = Intent(A, "airflow", NOW)
    retry = Intent(A, "airflow", NOW + timedelta(seconds=5))
    other = Intent(B, "airflow", NOW)
    record = DeliveryRecord("u").with_intent(first).with_intent(other).with_intent(retry)
    assert record.intents == (first, other, retry)
    delivering = Intent(A, "airflow", NOW + timedelta(seconds=5), delivering=Delivered("t", "airflow"))
    assert record.with_intent(delivering).intents == (first, other, delivering)


def test_live_means_another_issuer_not_ended_within_the_window() -> None:
    running = Intent(B, "airflow", NOW)
    assert running.is_live(A, NOW + timedelta(minutes=1), WINDOW)
    assert not running.is_live(Issuer(B.key, 3), NOW, WINDOW)  # a retry: its earlier try has ended
    assert not running.is_live(A, NOW + WINDOW, WINDOW)  # crashed
    assert not Intent(B, "airflow", NOW, ended=NOW).is_live(A, NOW, WINDOW)


def test_settled_keeps_what_a_later_run_still_needs() -> None:
    old = NOW - 2 * WINDOW
    done = Intent(A, "airflow", old, (), Delivered("t1", "airflow"), old, kept=True)
    orphan = Intent(B, "airflow", old, (), Delivered("t2", "airflow"), old, kept=False)
    gone = Intent(B, "airflow", old, (), Delivered("t3", "airflow"), old, kept=False)
    recent = Intent(A, "airflow", NOW, (), None, NOW, kept=False)
    record = DeliveryRecord("u", None, (done, orphan, gone, recent)).settled(NOW, WINDOW, {"t1", "t2"})
    assert record.intents == (orphan, recent)
