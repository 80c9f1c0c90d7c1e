"""What a destination holds and which tokens are leftovers, judged from the record, the listed
tokens and a fingerprint (pure): retries, crashes and overlapping issuers, interleaved by hand."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_motherduck.workflows.delivery import (
    Delivered,
    DeliveryRecord,
    Intent,
    Issuer,
    fingerprint,
    held_token,
    judge_leftovers,
)
from airflow_provider_motherduck.workflows.delivery.held import Leftovers

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=15)
HELD = fingerprint("opaque-secret-1")
OTHER = fingerprint("opaque-secret-2")
A = Issuer("dag.token run_a", 1)
B = Issuer("dag.token run_b", 1)


def token(
    token_id: str, name: str = "airflow", age: timedelta = timedelta(minutes=1), **extra: Any
) -> dict[str, Any]:
    created = (NOW - age).isoformat().replace("+00:00", "Z")
    return {"id": token_id, "name": name, "token_type": "read_write", "created_ts": created, **extra}


def judge(record: DeliveryRecord, tokens: list[dict[str, Any]], me: Issuer = A, **kwargs: Any) -> Leftovers:
    args: dict[str, Any] = {"me": me, "since": NOW, "held": None, "sink": False, "now": NOW, "window": WINDOW}
    return judge_leftovers(record, tokens, "bot", **{**args, **kwargs})


def ids(tokens: list[Any]) -> list[str]:
    return [t["id"] for t in tokens]


def test_the_delivered_token_counts_only_while_the_variable_holds_it() -> None:
    record = DeliveryRecord("bot", Delivered("t1", "airflow", HELD))
    tokens = [token("t0"), token("t1")]
    kwargs: dict[str, Any] = {"sink": False, "now": NOW}
    assert held_token(record, tokens, "bot", "airflow", "read_write", held=HELD, **kwargs) == tokens[1]
    assert held_token(record, tokens, "bot", "airflow", "read_write", held=OTHER, **kwargs) is None
    assert held_token(record, tokens, "bot", "airflow", "read_write", held=None, **kwargs) is None
    assert held_token(record, tokens, "other", "airflow", "read_write", held=HELD, **kwargs) is None
    assert held_token(record, tokens, "bot", "airflow", "read_scaling", held=HELD, **kwargs) is None
    assert held_token(record, tokens[:1], "bot", "airflow", "read_write", held=HELD, **kwargs) is None
    expired = [token("t1", expire_at="2020-01-01T00:00:00Z")]
    assert held_token(record, expired, "bot", "airflow", "read_write", held=HELD, **kwargs) is None
    assert (
        held_token(record, tokens, "bot", re.compile("air.*"), "read_write", held=HELD, **kwargs) == tokens[1]
    )


def test_a_delivery_whose_record_was_not_finished_is_recognised() -> None:
    intent = Intent(A, "airflow", NOW, ("t0",), Delivered("t1", "airflow", HELD))
    record = DeliveryRecord("bot", Delivered("t0", "airflow", OTHER), (intent,))
    tokens = [token("t0"), token("t1")]
    assert (
        held_token(record, tokens, "bot", "airflow", "read_write", held=HELD, sink=False, now=NOW)
        == tokens[1]
    )
    # A sink cannot be asked which of two it holds.
    assert held_token(record, tokens, "bot", "airflow", "read_write", held=None, sink=True, now=NOW) is None


def test_a_retry_takes_what_its_own_earlier_try_left() -> None:
    lost_answer = Intent(A, "airflow", NOW - timedelta(seconds=30), ("t0",), ended=NOW, kept=False)
    failed = Intent(
        A, "airflow", NOW - timedelta(seconds=20), ("t0", "t1"), Delivered("t2", "airflow", OTHER)
    )
    record = DeliveryRecord("bot", None, (lost_answer, failed))
    judged = judge(record, [token("t0"), token("t1"), token("t2")], Issuer(A.key, 2))
    assert (ids(judged.lost), judged.spared) == (["t1", "t2"], {})


def test_another_issuers_live_intent_protects_what_it_may_have_created() -> None:
    theirs = Intent(B, "airflow", NOW - timedelta(seconds=5), ("t0",))
    record = DeliveryRecord("bot", None, (theirs,))
    judged = judge(record, [token("t0"), token("t1")])
    assert (judged.lost, list(judged.spared)) == ([], ["t1"])
    assert "dag.token run_b (try 1) may still be delivering it" in judged.spared["t1"]
    # ... and the token it is delivering, once it says so.
    delivering = Intent(B, "airflow", NOW - timedelta(seconds=5), ("t0",), Delivered("t1", "airflow", OTHER))
    assert list(judge(DeliveryRecord("bot", None, (delivering,)), [token("t1")]).spared) == ["t1"]
    # A crashed issuer protects nothing once the window has passed.
    crashed = Intent(B, "airflow", NOW - 2 * WINDOW, ("t0",), Delivered("t1", "airflow", OTHER))
    assert ids(judge(DeliveryRecord("bot", None, (crashed,)), [token("t1", age=WINDOW)]).lost) == ["t1"]


def test_the_destinations_secret_is_never_a_leftover() -> None:
    crashed = Intent(B, "airflow", NOW - 2 * WINDOW, (), Delivered("t1", "airflow", HELD))
    judged = judge(DeliveryRecord("bot", None, (crashed,)), [token("t1", age=WINDOW)], held=HELD)
    assert (judged.lost, judged.spared) == ([], {"t1": "the destination holds its secret"})


def test_a_young_token_of_unknown_issuer_is_spared_an_old_one_is_not() -> None:
    """B's intent was overwritten (no compare-and-set): its token looks like A's ended issuance's."""
    ended = Intent(
        Issuer("dag.token run_c"), "airflow", NOW - timedelta(minutes=1), ("t0",), ended=NOW, kept=False
    )
    record = DeliveryRecord("bot", None, (ended,))
    judged = judge(record, [token("t1")])
    assert list(judged.spared) == ["t1"]
    assert ids(judge(record, [token("t1", age=WINDOW)]).lost) == ["t1"]


def test_a_delivery_replaced_while_its_issuer_ran_is_a_leftover_one_replaced_later_is_not() -> None:
    a_done = Intent(A, "airflow", NOW - timedelta(seconds=30), (), Delivered("ta", "airflow", OTHER))
    overwritten = DeliveryRecord("bot", None, (replace(a_done, ended=NOW, kept=False),))
    assert ids(judge(overwritten, [token("ta")], B, held=HELD).lost) == ["ta"]
    # A kept its token at its end, but ended after B began: B's delivery replaced it.
    kept = Intent(
        A, "airflow", NOW - timedelta(seconds=30), (), Delivered("ta", "airflow", OTHER), NOW, kept=True
    )
    record = DeliveryRecord("bot", Delivered("ta", "airflow", OTHER), (kept,))
    assert ids(judge(record, [token("ta")], B, since=NOW - timedelta(seconds=10), held=HELD).lost) == ["ta"]
    # A run that began after A ended replaced it as runs replace each other: left alone.
    later = judge(record, [token("ta")], B, since=NOW + timedelta(seconds=1), held=HELD)
    assert (later.lost, later.spared, later.known) == ([], {}, {"ta"})


def test_a_sink_delivery_may_be_held() -> None:
    crashed = Intent(B, "airflow", NOW - 2 * WINDOW, (), Delivered("t1", "airflow"))
    judged = judge(
        DeliveryRecord("bot", None, (crashed,)), [token("t1", age=WINDOW), token("t2", age=WINDOW)], sink=True
    )
    assert (ids(judged.lost), ids(judged.maybe_held)) == (["t2"], ["t1"])


def test_tokens_no_issuance_explains_are_not_judged() -> None:
    record = DeliveryRecord(
        "bot", None, (Intent(B, "other", NOW - 2 * WINDOW, ended=NOW - 2 * WINDOW, kept=False),)
    )
    assert judge(record, [token("t1", age=WINDOW)]) == Leftovers()
    assert judge(DeliveryRecord("someone_else"), [token("t1")]) == Leftovers()
