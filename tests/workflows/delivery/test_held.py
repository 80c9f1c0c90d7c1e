"""What a destination holds, judged from the record, the listed tokens and a fingerprint (pure)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from airflow_provider_motherduck.workflows.delivery import Delivered, DeliveryRecord, Pending, fingerprint
from airflow_provider_motherduck.workflows.delivery.held import held_token, leftovers

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)
HELD = fingerprint("opaque-secret-1")


def token(token_id: str, name: str = "airflow", **extra: Any) -> dict[str, Any]:
    return {"id": token_id, "name": name, "token_type": "read_write", **extra}


def test_the_delivered_token_counts_only_while_the_variable_holds_it() -> None:
    record = DeliveryRecord("bot", Delivered("t1", "airflow", HELD))
    tokens = [token("t0"), token("t1")]
    kwargs: dict[str, Any] = {"sink": False, "now": NOW}
    assert held_token(record, tokens, "bot", "airflow", "read_write", held=HELD, **kwargs) == tokens[1]
    assert held_token(record, tokens, "bot", "airflow", "read_write", held="sha256:other", **kwargs) is None
    assert held_token(record, tokens, "bot", "airflow", "read_write", held=None, **kwargs) is None
    assert held_token(record, tokens, "other", "airflow", "read_write", held=HELD, **kwargs) is None
    assert held_token(record, tokens, "bot", "airflow", "read_scaling", held=HELD, **kwargs) is None
    assert held_token(record, tokens[:1], "bot", "airflow", "read_write", held=HELD, **kwargs) is None
    expired = [token("t1", expire_at="2020-01-01T00:00:00Z")]
    assert held_token(record, expired, "bot", "airflow", "read_write", held=HELD, **kwargs) is None
    assert (
        held_token(record, tokens, "bot", re.compile("air.*"), "read_write", held=HELD, **kwargs) == tokens[1]
    )


def test_a_delivery_whose_record_was_not_written_is_recognised() -> None:
    record = DeliveryRecord("bot", None, Pending("airflow", ("t0",), Delivered("t1", "airflow", HELD)))
    tokens = [token("t0"), token("t1")]
    assert (
        held_token(record, tokens, "bot", "airflow", "read_write", held=HELD, sink=False, now=NOW)
        == tokens[1]
    )
    # A sink cannot be asked which of two it holds.
    assert held_token(record, tokens, "bot", "airflow", "read_write", held=None, sink=True, now=NOW) is None


def test_leftovers_are_what_an_issuance_created_and_nobody_holds() -> None:
    record = DeliveryRecord(
        "bot",
        Delivered("t0", "airflow", "sha256:old"),
        Pending("airflow", ("t0",), Delivered("t2", "airflow", HELD)),
    )
    tokens = [token("t0"), token("t1"), token("t2"), token("x", "other")]
    lost, maybe = leftovers(record, tokens, "bot", held=None, sink=False)
    assert ([t["id"] for t in lost], maybe) == (["t1", "t2"], [])
    lost, maybe = leftovers(record, tokens, "bot", held=HELD, sink=False)  # t2 arrived: not a leftover
    assert ([t["id"] for t in lost], maybe) == (["t1"], [])
    lost, maybe = leftovers(record, tokens, "bot", held=None, sink=True)
    assert ([t["id"] for t in lost], [t["id"] for t in maybe]) == (["t1"], ["t2"])
    assert leftovers(DeliveryRecord("bot", None), tokens, "bot", held=None, sink=False) == ([], [])
