"""The token audit: its rules (pure, at their boundaries) and the listing over real HTTP."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pendulum
import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook, TokenInfo
from airflow_provider_motherduck.hooks.sql.session import SESSION_TOKEN_TTL, session_token_name
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.audit import (
    AuditRules,
    audit_table,
    audit_tokens,
    audited_users,
    check_usernames,
    describe_live_sessions,
    describe_violations,
    judge_tokens,
    list_tokens_of,
)
from tests.support import connection_json

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
DAY = 86_400.0
ID = "123e4567-e89b-12d3-a456-426614174000"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def token(
    created: datetime | str | None = NOW, expires: datetime | str | None = None, **more: Any
) -> dict[str, Any]:
    """A listed token's metadata with its owner, as :func:`list_tokens_of` gives it."""
    out: dict[str, Any] = {"username": "etl_bot", "id": ID, "name": "airflow", "token_type": "read_write"}
    out["created_ts"] = iso(created) if isinstance(created, datetime) else created
    if expires is not None:
        out["expire_at"] = iso(expires) if isinstance(expires, datetime) else expires
    return {**out, **more}


def breaks(tok: dict[str, Any], **rules: Any) -> list[str]:
    (row,) = judge_tokens([tok], AuditRules.parse(**rules), NOW)
    return list(row["breaks"])


# -- the rules, pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "flagged"),
    [
        (timedelta(days=14) - timedelta(milliseconds=1), True),
        (timedelta(days=14), True),  # "within": the boundary counts
        (timedelta(days=14, milliseconds=1), False),
        (timedelta(hours=-1), True),  # expired, yet still listed
    ],
)
def test_expires_soon_within_the_window(left: timedelta, flagged: bool) -> None:
    assert breaks(token(expires=NOW + left), expiring_within="14 days") == (
        ["expires_soon"] if flagged else []
    )


@pytest.mark.parametrize(
    ("age", "flagged"),
    [
        (timedelta(days=90) - timedelta(milliseconds=1), False),
        (timedelta(days=90), False),  # "beyond": exactly max_age is not too old yet
        (timedelta(days=90, milliseconds=1), True),
    ],
)
def test_too_old_beyond_max_age(age: timedelta, flagged: bool) -> None:
    assert breaks(token(created=NOW - age), max_age="90 days") == (["too_old"] if flagged else [])


@pytest.mark.parametrize("expires", [None, ""])  # left out, or empty: both mean "never expires"
def test_never_expires_only_when_required(expires: str | None) -> None:
    forever = token(expire_at=expires)
    assert breaks(forever, require_expiry=True) == ["never_expires"]
    assert breaks(forever, expiring_within="14 days", max_age="90 days") == []  # no expiry is not "soon"
    (row,) = judge_tokens([forever], AuditRules(), NOW)
    assert row["expire_at"] is None


def test_no_rule_given_flags_nothing() -> None:
    ancient = token(created=NOW - timedelta(days=3000), expires=NOW - timedelta(days=1))
    assert breaks(ancient) == []
    assert breaks(token()) == []


def test_a_token_may_break_every_rule_at_once() -> None:
    old = token(created=NOW - timedelta(days=400))
    soon = token(created=NOW - timedelta(days=400), expires=NOW + timedelta(days=1))
    rules = {"expiring_within": "P7D", "max_age": "365 days", "require_expiry": True}
    assert breaks(old, **rules) == ["too_old", "never_expires"]
    assert breaks(soon, **rules) == ["expires_soon", "too_old"]


def test_unreadable_timestamps_leave_their_rule_undecided() -> None:
    rules = AuditRules.parse(expiring_within="14 days", max_age="90 days", require_expiry=True)
    odd = token(created="yesterday", expires="next tuesday")
    missing = token(created=None)
    rows = judge_tokens([odd, missing], rules, NOW)
    # An expiry that is there but unreadable is not "never expires", and is not guessed "soon".
    assert (rows[0]["breaks"], rows[0]["unchecked"]) == ([], ["expires_soon", "too_old"])
    assert (rows[1]["breaks"], rows[1]["unchecked"]) == (["never_expires"], ["too_old"])
    assert rows[0]["expire_at"] == "next tuesday"  # shown as MotherDuck wrote it


def test_timestamps_in_other_iso_spellings_are_read() -> None:
    local = (NOW + timedelta(days=2)).astimezone(timezone(timedelta(hours=2))).isoformat()
    naive = (NOW - timedelta(days=100)).replace(tzinfo=None).isoformat()  # naive means UTC
    assert breaks(token(created=naive, expires=local), expiring_within="3 days", max_age="99 days") == [
        "expires_soon",
        "too_old",
    ]


@pytest.mark.parametrize(
    "duration",
    [3600, 3600.0, "3600", timedelta(hours=1), pendulum.duration(hours=1), "PT1H", "1 hour", "60 minutes"],
)
def test_durations_take_every_form_ttl_takes(duration: Any) -> None:
    rules = AuditRules.parse(expiring_within=duration, max_age=duration)
    assert (rules.expiring_within, rules.max_age) == (3600, 3600)


def test_durations_beyond_a_ttl_s_range_are_fine() -> None:
    assert AuditRules.parse(max_age="2 years", expiring_within=0).max_age == 2 * 365 * DAY


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"expiring_within": "soon"}, r"expiring_within='soon' is invalid: not a duration"),
        ({"max_age": "never"}, r"max_age='never' is invalid: not a duration"),
        ({"max_age": -1}, r"max_age=-1 is invalid: it is negative"),
        ({"expiring_within": True}, r"expiring_within=True is invalid"),
        ({"require_expiry": "yes"}, r"require_expiry='yes' is invalid: expected True or False"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(rules: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuditRules.parse(**rules)


def test_the_table_and_the_violation_lines() -> None:
    rows = judge_tokens(
        [
            token(created=NOW - timedelta(days=100), expires=NOW + timedelta(days=1)),
            token(id="abc", name="dbt", created="?"),
        ],
        AuditRules.parse(expiring_within="7 days", max_age="90 days", require_expiry=True),
        NOW,
    )
    lines = audit_table(rows).splitlines()
    assert lines[0].split() == ["username", "id", "name", "type", "created", "expires", "breaks"]
    assert lines[1].split() == [
        "etl_bot",
        ID,
        "airflow",
        "read_write",
        iso(NOW - timedelta(days=100)),
        iso(NOW + timedelta(days=1)),
        "expires_soon,",
        "too_old",
    ]
    assert lines[2].split() == [
        "etl_bot",
        "abc",
        "dbt",
        "read_write",
        "?",
        "never",
        "never_expires,",
        "?too_old",
    ]
    assert lines[0].index(" id ") + 1 == lines[1].index(ID)  # columns aligned
    assert describe_violations(rows) == (
        f"  - etl_bot: token {ID} ('airflow'): expires_soon, too_old\n"
        "  - etl_bot: token abc ('dbt'): never_expires"
    )
    assert audit_table([]).split() == ["username", "id", "name", "type", "created", "expires", "breaks"]


# -- short-lived SQL session tokens -------------------------------------------------------------------

SESSION = "airflow-sql-session-20261201T115800Z-0a1b2c3d"
STRICT = {"expiring_within": "7 days", "max_age": "1 day", "require_expiry": True}


@pytest.mark.parametrize(
    ("expires", "kept"),
    [
        (NOW - timedelta(milliseconds=1), False),
        (NOW, False),  # expired at its expire_at: MotherDuck refuses it from then on
        (NOW + timedelta(milliseconds=1), True),
    ],
)
def test_a_session_token_is_left_out_once_expired(expires: datetime, kept: bool) -> None:
    rows = judge_tokens([token(name=SESSION, expires=expires)], AuditRules.parse(**STRICT), NOW)
    assert [(row["session"], row["breaks"], row["unchecked"]) for row in rows] == (
        [(True, [], [])] if kept else []
    )


@pytest.mark.parametrize(
    ("age", "kept"),
    [(SESSION_TOKEN_TTL - 0.001, True), (SESSION_TOKEN_TTL, False), (SESSION_TOKEN_TTL + 1, False)],
)
def test_an_unreadable_expiry_falls_back_on_created_plus_the_session_ttl(age: float, kept: bool) -> None:
    session = token(name=SESSION, created=NOW - timedelta(seconds=age), expires="soon-ish")
    assert len(judge_tokens([session], AuditRules.parse(**STRICT), NOW)) == int(kept)


def test_a_session_token_with_no_readable_time_stays_in_the_audit() -> None:
    (row,) = judge_tokens([token(name=SESSION, created="?")], AuditRules.parse(**STRICT), NOW)
    assert (row["session"], row["breaks"]) == (True, [])


def test_only_the_prefix_makes_a_session_token() -> None:
    lookalikes = [token(name="my-" + SESSION), token(name="airflow-sql-session")]
    rows = judge_tokens(lookalikes, AuditRules.parse(require_expiry=True), NOW)
    assert [(row["session"], row["breaks"]) for row in rows] == [(False, ["never_expires"])] * 2


def test_a_live_session_token_is_named_in_the_table_and_the_log_line() -> None:
    rows = judge_tokens([token(name=SESSION, expires=NOW + timedelta(minutes=4))], AuditRules(), NOW)
    assert audit_table(rows).splitlines()[1].split()[-1] == "session"
    assert describe_live_sessions(rows) == (
        f"1 live SQL session token(s) (etl_bot: {ID}): each is a short-lived session token a task "
        "minted to act as the account; it expires by itself within 5 minutes and is no leftover."
    )
    assert describe_live_sessions(judge_tokens([token()], AuditRules(), NOW)) is None


def test_a_session_token_left_by_a_crash_is_reported_live_then_never_again() -> None:
    """A worker that died inside ``sql_session(as_user=...)`` leaves its token; the emulator's clock moves."""
    clock = [datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc)]
    with MotherDuckEmulator(clock=lambda: clock[0]) as md, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MOTHERDUCK_DEFAULT", connection_json(md.url, md.admin_token))
        md.add_user("etl_bot")
        md.add_token("etl_bot", "airflow", ttl=30 * 86_400)
        hook = MotherDuckHook()
        left = hook.create_token(
            "etl_bot", session_token_name(clock[0]), ttl=SESSION_TOKEN_TTL
        )  # as acting_as mints
        hook.close()

        def audit() -> dict[str, Any]:
            return audit_tokens(MotherDuckHook, AuditRules.parse(**STRICT), now=clock[0])

        clock[0] += timedelta(seconds=SESSION_TOKEN_TTL - 1)
        live = audit()
        assert [(row["name"], row["session"], row["breaks"]) for row in live["tokens"]] == [
            ("airflow", False, []),
            (left["name"], True, []),
        ]
        assert live["violations"] == []

        clock[0] += timedelta(seconds=1)  # its expire_at: MotherDuck lists it still, the audit does not
        assert left["id"] in {t["id"] for t in md.tokens("etl_bot")}
        later = audit()
        assert [row["name"] for row in later["tokens"]] == ["airflow"]
        assert later["violations"] == []


# -- the listing, over HTTP --------------------------------------------------------------------------


@pytest.fixture
def org(emulator: MotherDuckEmulator, motherduck_conn: str) -> MotherDuckEmulator:
    """Service accounts with tokens, and users the default audit leaves alone."""
    for name in ("bi_bot", "etl_bot", "ml_bot"):
        emulator.add_user(name)
    emulator.add_user("jane", roles=["builder"])  # human
    emulator.add_user("joe", human=True)  # a human member
    emulator.add_user("ops_admin_bot", roles=["admin"], human=False)  # a service account that is an Admin
    emulator.add_user("gone_bot", deprovisioned=True)
    for name in ("etl_bot", "etl_bot", "bi_bot", "jane", "ops_admin_bot", "gone_bot"):
        emulator.add_token(name, "airflow", ttl=30 * 86_400)
    return emulator


def tokens_listed(emulator: MotherDuckEmulator) -> list[str]:
    return sorted(e.path for e in emulator.journal if e.path.endswith("/tokens"))


def test_by_default_every_active_non_admin_service_account_is_audited(
    org: MotherDuckEmulator, hook: MotherDuckHook
) -> None:
    assert audited_users(hook) == ["bi_bot", "etl_bot", "ml_bot"]
    org.clear_journal()

    result = audit_tokens(MotherDuckHook, AuditRules.parse(expiring_within="60 days"), max_workers=2)

    assert tokens_listed(org) == [f"/v1/users/{name}/tokens" for name in ("bi_bot", "etl_bot", "ml_bot")]
    assert [(row["username"], row["name"]) for row in result["tokens"]] == [
        ("bi_bot", "airflow"),
        ("etl_bot", "airflow"),
        ("etl_bot", "airflow"),
    ]
    assert result["violations"] == result["tokens"]
    listed = {t["id"]: t for name in ("bi_bot", "etl_bot") for t in org.tokens(name)}
    for row in result["tokens"]:
        t = listed[row["id"]]
        assert row == {
            "username": row["username"],
            "id": t["id"],
            "name": "airflow",
            "token_type": "read_write",
            "created_ts": t["created_ts"],
            "expire_at": t["expire_at"],
            "session": False,
            "breaks": ["expires_soon"],
            "unchecked": [],
        }
    assert all(e.method == "GET" for e in org.journal)  # an audit only reads


def test_named_users_are_audited_whatever_they_are(org: MotherDuckEmulator) -> None:
    result = audit_tokens(MotherDuckHook, AuditRules(), usernames=["ops_admin_bot", "jane"])
    assert [row["username"] for row in result["tokens"]] == ["ops_admin_bot", "jane"]
    assert not any(e.path.startswith("/v1/users?") for e in org.journal)  # no user listing needed


def test_a_user_named_twice_in_two_cases_is_audited_once(org: MotherDuckEmulator) -> None:
    named = check_usernames(["jane", "JANE", "Ops_Admin_Bot"], "usernames")
    assert named == ["jane", "Ops_Admin_Bot"]
    result = audit_tokens(MotherDuckHook, AuditRules(), usernames=named)
    assert [row["username"] for row in result["tokens"]] == named  # the path finds ops_admin_bot


def test_a_user_deleted_after_the_user_listing_is_skipped(
    org: MotherDuckEmulator, hook: MotherDuckHook
) -> None:
    made: list[MotherDuckHook] = []

    def new_hook() -> MotherDuckHook:
        if len(made) == 1:  # the user listing is done; the first worker is about to start
            hook.delete_user("bi_bot")
        made.append(MotherDuckHook())
        return made[-1]

    result = audit_tokens(new_hook, AuditRules(), max_workers=1)

    assert [row["username"] for row in result["tokens"]] == ["etl_bot", "etl_bot"]
    statuses = {e.path: e.status for e in org.journal if e.path.endswith("/tokens")}
    assert statuses["/v1/users/bi_bot/tokens"] == 404


def test_an_error_stops_the_listing_and_is_raised(org: MotherDuckEmulator) -> None:
    org.inject("GET", "/v1/users/etl_bot/tokens", status=500, times=10)
    made: list[MotherDuckHook] = []

    def new_hook() -> MotherDuckHook:
        made.append(MotherDuckHook(retry_limit=0))
        return made[-1]

    with pytest.raises(MotherDuckAPIError) as info:
        list_tokens_of(["bi_bot", "etl_bot", "ml_bot"], new_hook, max_workers=1)
    assert info.value.status_code == 500
    assert tokens_listed(org) == ["/v1/users/bi_bot/tokens", "/v1/users/etl_bot/tokens"]  # ml_bot not started
    assert all("session" not in h.__dict__ for h in made)  # every session closed


def test_concurrency_is_bounded_with_one_hook_per_thread(
    emulator: MotherDuckEmulator, motherduck_conn: str
) -> None:
    names = [f"bot_{i:02d}" for i in range(12)]
    for name in names:
        emulator.add_user(name)
        emulator.add_token(name, "airflow")
    meeting = threading.Barrier(3)
    lock = threading.Lock()
    in_flight, peak, threads = [0], [0], set()
    made: list[MotherDuckHook] = []

    class MeetingHook(MotherDuckHook):
        """Lists only once three workers are listing at the same moment (which proves they overlap)."""

        def list_tokens(self, username: str) -> list[TokenInfo]:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
                threads.add(threading.get_ident())
            try:
                meeting.wait(timeout=20)  # bounded: a broken barrier fails the audit, and the test
                return super().list_tokens(username)
            finally:
                with lock:
                    in_flight[0] -= 1

    def new_hook() -> MotherDuckHook:
        made.append(MeetingHook())
        return made[-1]

    rows = list_tokens_of(names, new_hook, max_workers=3)

    assert [row["username"] for row in rows] == names  # in the order given
    assert peak[0] == 3  # three at once, never more
    assert len(made) == 3 == len(threads)  # one hook per worker thread
    assert all("session" not in h.__dict__ for h in made)
