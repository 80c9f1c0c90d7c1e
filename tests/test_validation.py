"""The validation table: every rule, accepted and refused, with the field named in the error."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Any

import pendulum
import pytest

from airflow_provider_motherduck.arguments import check_hook_params
from airflow_provider_motherduck.validation import (
    check_duckling_config,
    check_duckling_half,
    check_new_username,
    check_path_segment,
    check_token_name,
    check_token_type,
    check_username,
    merge_duckling_config,
    parse_ttl,
)


@pytest.mark.parametrize("name", ["a", "etl_bot", "A1_b2", "x" * 255, "Z"])
def test_new_username_accepted(name: str) -> None:
    assert check_new_username(name) == name
    assert check_username(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("1bot", "start with a letter"),
        ("_bot", "start with a letter"),
        ("étl", "start with a letter"),
        ("etl-bot", "contains '-'"),
        ("etl bot", "contains ' '"),
        ("etl/bot", "contains '/'"),
        ("x" * 256, "256 characters"),
        (42, "expected a string"),
        (None, "expected a string"),
    ],
)
def test_new_username_refused(name: Any, problem: str) -> None:
    """The service-account rule, checked when a user is created."""
    with pytest.raises(ValueError, match="username=") as info:
        check_new_username(name)
    assert problem in str(info.value)
    assert "Allowed: 1 to 255 characters, a letter first" in str(info.value)


@pytest.mark.parametrize("name", ["jane-doe", "first.last", "1bot", "étl", "a/b", "x" * 255])
def test_existing_username_need_not_follow_the_service_account_rule(name: str) -> None:
    """Human users' names can be anything MotherDuck gave them; the hook percent-encodes the path."""
    assert check_username(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        (" etl_bot", "surrounding spaces"),
        ("etl_bot\n", "control characters"),
        ("x" * 256, "256 characters"),
        (None, "expected a string"),
    ],
)
def test_existing_username_refused(name: Any, problem: str) -> None:
    with pytest.raises(ValueError, match="username=") as info:
        check_username(name)
    assert problem in str(info.value)
    assert "Allowed: 1 to 255 characters, no surrounding spaces" in str(info.value)


def test_token_name_rules() -> None:
    assert check_token_name("nightly rotation / 2026") == "nightly rotation / 2026"
    assert check_token_name("n" * 255) == "n" * 255
    for bad in ("", "   ", "n" * 256, 7):
        with pytest.raises(ValueError, match=r"token_name=.*Allowed: a string of 1 to 255"):
            check_token_name(bad)


def test_token_type_rules() -> None:
    assert check_token_type("read_write") == "read_write"
    assert check_token_type("read_scaling") == "read_scaling"
    with pytest.raises(ValueError, match=r"token_type='admin'.*Allowed: read_write or read_scaling"):
        check_token_type("admin")


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        (None, None),
        ("never", None),
        (" Never ", None),
        (300, 300),
        (3600.0, 3600),
        ("86400", 86400),
        ("300.4", 300),
        (timedelta(hours=2), 7200),
        (pendulum.duration(days=30), 2_592_000),
        ("PT1H", 3600),
        ("P30D", 2_592_000),
        ("P1W", 604_800),
        ("P1Y", 31_536_000),
        ("P1DT2H", 93_600),
        ("5 minutes", 300),
        ("1 hour", 3600),
        ("12 hours", 43_200),
        ("1 day", 86_400),
        ("90 days", 7_776_000),
        ("2 weeks", 1_209_600),
        ("1 month", 2_592_000),
        ("6 months", 15_552_000),
        ("1 year", 31_536_000),
        ("3600 seconds", 3600),
        ("1 HOUR", 3600),
        ("1.5 hours", 5400),
    ],
)
def test_ttl_accepted(ttl: Any, seconds: int | None) -> None:
    assert parse_ttl(ttl) == seconds


@pytest.mark.parametrize(
    ("ttl", "problem"),
    [
        (299, "299 seconds, outside 300 to 31536000"),
        ("4 minutes", "240 seconds"),
        ("2 years", "63072000 seconds"),
        (31_536_001, "outside"),
        (0, "outside"),
        (-5, "outside"),
        ("PT1M", "60 seconds"),
        (True, "boolean"),
        ("soon", "not a duration"),
        ("3 fortnights", "not a duration"),
        ("P", "ISO-8601"),
        ([300], "unsupported type list"),
        (float("inf"), "finite"),
    ],
)
def test_ttl_refused(ttl: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=r"^ttl=") as info:
        parse_ttl(ttl)
    assert problem in str(info.value)
    assert "Allowed:" in str(info.value)


FULL = {
    "read_write": {"instance_size": "standard", "cooldown_seconds": 60},
    "read_scaling": {"instance_size": "standard", "flock_size": 4, "cooldown_seconds": 60},
}


def test_full_config_accepted() -> None:
    assert check_duckling_config(FULL) == FULL
    pulse = {
        "read_write": {"instance_size": "pulse"},
        "read_scaling": {"instance_size": "pulse", "flock_size": 0},
    }
    assert check_duckling_config(pulse) == pulse


@pytest.mark.parametrize(
    ("half", "values", "field", "problem"),
    [
        (
            "read_write",
            {"instance_size": "huge"},
            "read_write.instance_size='huge'",
            "pulse, standard, jumbo",
        ),
        ("read_scaling", {"flock_size": 65}, "read_scaling.flock_size=65", "0 to 64"),
        ("read_scaling", {"flock_size": -1}, "read_scaling.flock_size=-1", "0 to 64"),
        ("read_scaling", {"flock_size": True}, "read_scaling.flock_size=True", "integer"),
        ("read_write", {"cooldown_seconds": 59}, "read_write.cooldown_seconds=59", "60 to 86400"),
        ("read_write", {"cooldown_seconds": 86_401}, "read_write.cooldown_seconds=86401", "60 to 86400"),
        (
            "read_write",
            {"instance_size": "pulse", "cooldown_seconds": 60},
            "read_write.cooldown_seconds=60",
            "pulse",
        ),
        ("read_write", {"flock_size": 2}, "read_write=", "unknown keys ['flock_size']"),
        ("read_write", "big", "read_write='big'", "expected a mapping"),
    ],
)
def test_duckling_half_refused(half: str, values: Any, field: str, problem: str) -> None:
    with pytest.raises(ValueError, match="is invalid") as info:
        check_duckling_half(half, values, complete=False)
    assert str(info.value).startswith(field)
    assert problem in str(info.value)


def test_full_config_needs_both_halves_and_required_fields() -> None:
    with pytest.raises(ValueError, match=r"missing \['read_scaling'\]"):
        check_duckling_config({"read_write": FULL["read_write"]})
    with pytest.raises(ValueError, match="unknown keys"):
        check_duckling_config({**FULL, "extra": {}})
    with pytest.raises(ValueError, match="missing flock_size"):
        check_duckling_config({"read_write": FULL["read_write"], "read_scaling": {"instance_size": "jumbo"}})


def test_merge_keeps_untouched_fields() -> None:
    merged = merge_duckling_config(FULL, read_scaling={"flock_size": 8})
    assert merged["read_scaling"] == {"instance_size": "standard", "flock_size": 8, "cooldown_seconds": 60}
    assert merged["read_write"] == FULL["read_write"]


def test_merge_drops_old_cooldown_when_size_changes() -> None:
    merged = merge_duckling_config(FULL, read_write={"instance_size": "pulse"})
    assert merged["read_write"] == {"instance_size": "pulse"}
    merged = merge_duckling_config(FULL, read_write={"instance_size": "mega", "cooldown_seconds": 900})
    assert merged["read_write"] == {"instance_size": "mega", "cooldown_seconds": 900}


def test_merge_ignores_undocumented_server_fields() -> None:
    current = {
        "read_write": {**FULL["read_write"], "region": "us-east-1"},
        "read_scaling": FULL["read_scaling"],
    }
    assert merge_duckling_config(current) == FULL


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (
            {"timeout": 0},
            "hook_params.timeout=0 is invalid: out of range. Allowed: a finite number of seconds above 0.",
        ),
        ({"retry_delay": float("inf")}, "hook_params.retry_delay=inf is invalid: out of range"),
        ({"retry_limit": -1}, "hook_params.retry_limit=-1 is invalid"),
        ({"retry_limit": 1.7}, "hook_params.retry_limit=1.7 is invalid: not a whole number"),
        ({"retry_limit": "3"}, "hook_params.retry_limit='3' is invalid: expected a number, got str"),
        (
            {"max_retry_wait": 1e12},
            "hook_params.max_retry_wait=1000000000000.0 is invalid: out of range. "
            "Allowed: a number of seconds from 0 to 3600 (an hour).",
        ),
        ({"timout": 5}, "unknown keys ['timout']. Allowed: a mapping with keys among timeout,"),
    ],
)
def test_hook_params_refused(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=r"^hook_params") as info:
        check_hook_params(params)
    assert problem in str(info.value)


def test_hook_params_accepted() -> None:
    assert check_hook_params({"timeout": 0.5, "retry_limit": 0, "retry_delay": None}) == {
        "timeout": 0.5,
        "retry_limit": 0,
    }
    assert check_hook_params({"retry_limit": 2.0, "max_retry_wait": 3600}) == {
        "retry_limit": 2,
        "max_retry_wait": 3600,
    }
    assert check_hook_params(None) == {}


@pytest.mark.parametrize("name", [".", ".."])
def test_a_dot_username_is_refused_as_a_path_segment(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^username={name!r} is invalid: as a path segment it would reach"):
        check_username(name)


@pytest.mark.parametrize("segment", ["a", "...", ".a", "a.", "%2e%2e", "a/b", " "])
def test_path_segment_accepted(segment: str) -> None:
    """Percent-encoding makes these safe; only the three below survive it unchanged and get resolved."""
    assert check_path_segment(segment, "dive_id") == segment


@pytest.mark.parametrize("segment", ["", ".", ".."])
def test_path_segment_refused(segment: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^dive_id={segment!r} is invalid: as a path segment it would reach"
    ):
        check_path_segment(segment, "dive_id")


def test_path_segment_must_be_a_string() -> None:
    with pytest.raises(ValueError, match="dive_id=7 is invalid: expected a string, got int"):
        check_path_segment(7, "dive_id")


def test_the_emulator_never_imports_the_package_s_validation() -> None:
    """The emulator states MotherDuck's rules on its own: reusing the client's would mirror its bugs."""
    probe = (
        "import sys, airflow_provider_motherduck.testing as t; t.MotherDuckEmulator; "
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_motherduck.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(eval(out.stdout))
    assert "airflow_provider_motherduck.testing.emulator" in loaded
    assert not {m for m in loaded if not m.startswith("airflow_provider_motherduck.testing")}, loaded
