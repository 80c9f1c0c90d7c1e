"""Every SQL hook method over the real Postgres wire protocol: psycopg against the emulator's endpoint.

The emulator plays MotherDuck's SQL on the same organisation as its REST side, so what a method
did is checked by reading it back (through the hook, and through the emulator's own state).
"""

from __future__ import annotations

import psycopg
import pytest

from airflow_provider_motherduck.exceptions import (
    MotherDuckPlanLimitError,
    MotherDuckSQLError,
    MotherDuckSQLExistsError,
    MotherDuckSQLNotFoundError,
    MotherDuckSQLPermissionError,
    MotherDuckSQLUnsupportedError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql import is_session_token
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.support import FakeSleep

OWNER = "share_owner"
READER = "etl_bot"
SHARE = "orders_share"
OPTIONS = {"access": "restricted", "visibility": "hidden", "update": "manual"}


@pytest.fixture
def org(emulator: MotherDuckEmulator) -> MotherDuckEmulator:
    """Two service accounts; the owner has a database ``orders`` with a table of 3 rows."""
    for name in (OWNER, READER):
        emulator.add_user(name)
    emulator.add_database(OWNER, "orders", tables={"orders": 3})
    return emulator


def _sql_seen(emulator: MotherDuckEmulator) -> list[str]:
    return [e.path for e in emulator.journal if e.method == "SQL"]


def _no_session_tokens(emulator: MotherDuckEmulator, *users: str) -> bool:
    return not any(is_session_token(t["name"]) for u in users for t in emulator.tokens(u))


# -- roles -------------------------------------------------------------------------------------


def test_roles_created_granted_revoked_dropped(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    assert [r.name for r in sql_hook.list_roles()] == ["admin", "builder", "explorer"]
    role = sql_hook.create_role("analysts")
    assert (role.name, role.type, role.created) == ("analysts", "custom", True)
    assert sql_hook.create_role("analysts").created is False  # idempotent
    with pytest.raises(MotherDuckSQLExistsError, match="exists already"):
        sql_hook.create_role("analysts", exists_ok=False)

    assert sql_hook.grant_role("analysts", to_user="ETL_Bot") is True  # usernames fold case
    assert sql_hook.grant_role("analysts", to_user=READER) is False
    assert sql_hook.grant_role("explorer", to_role="analysts") is True  # preset into custom
    held = {(g.role, g.direct) for g in sql_hook.roles_of(READER)}
    assert held == {("analysts", True), ("explorer", False)}
    access = org.describe_access()
    assert access["roles"]["analysts"] == ["explorer"]
    assert access["users"][READER]["roles"] == ["analysts"]

    assert sql_hook.revoke_role("analysts", from_user=READER) is True
    assert sql_hook.revoke_role("analysts", from_user=READER) is False
    assert sql_hook.revoke_role("explorer", from_role="analysts") is True
    assert sql_hook.roles_of(READER) == []
    assert sql_hook.drop_role("analysts") is True
    assert sql_hook.drop_role("analysts") is False
    with pytest.raises(MotherDuckSQLNotFoundError, match="does not exist"):
        sql_hook.drop_role("analysts", missing_ok=False)
    assert "analysts" not in [r.name for r in sql_hook.list_roles()]


def test_a_create_that_loses_a_race_answers_what_is_there(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    """Another writer creates the role between the read and the CREATE: forced by a fault that
    runs the statement and then answers "already exists"."""
    org.inject_sql('CREATE ROLE "analysts"', error="Catalog Error: Role analysts already exists", after=True)
    role = sql_hook.create_role("analysts")
    assert (role.name, role.created) == ("analysts", False)
    org.inject_sql(
        'CREATE DATABASE "raced"', error="Catalog Error: Database raced already exists", after=True
    )
    with pytest.raises(MotherDuckSQLExistsError):
        sql_hook.create_database("raced", exists_ok=False)
    assert sql_hook.create_database("raced").created is False


def test_custom_roles_need_the_business_plan(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    org.business_plan = False
    with pytest.raises(MotherDuckPlanLimitError, match="Business plan"):
        sql_hook.create_role("analysts")


def test_a_grant_to_an_unknown_user_says_so(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    sql_hook.create_role("analysts")
    with pytest.raises(MotherDuckSQLNotFoundError) as info:
        sql_hook.grant_role("analysts", to_user="nobody_here")
    assert "nobody_here" in str(info.value)


# -- shares, grants, attachments ------------------------------------------------------------------


def test_a_share_granted_and_attached_as_the_accounts_themselves(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    share = sql_hook.create_share(SHARE, "orders", **OPTIONS, include=["main.orders"], as_user=OWNER)
    assert share.created
    assert share.url.startswith("md:_share/orders/")
    assert (share.access, share.visibility, share.update, share.include) == (
        "restricted",
        "hidden",
        "manual",
        ("main.orders",),
    )
    again = sql_hook.create_share(SHARE, "orders", **OPTIONS, include=["main.orders"], as_user=OWNER)
    assert (again.url, again.created) == (share.url, False)
    with pytest.raises(MotherDuckSQLExistsError, match="other options"):
        sql_hook.create_share(SHARE, "orders", **{**OPTIONS, "access": "organization"}, as_user=OWNER)
    assert [s.name for s in sql_hook.list_shares(as_user=OWNER)] == [SHARE]
    assert sql_hook.list_shares() == []  # the admin owns none

    assert sql_hook.grant_share(SHARE, to_user=READER, as_user=OWNER) is True
    assert sql_hook.grant_share(SHARE, to_user=READER, as_user=OWNER) is False
    grants = sql_hook.share_grants(SHARE, as_user=OWNER)
    assert [(g.grantee, g.grantee_type, g.privilege, g.share_owner) for g in grants] == [
        (READER, "user", "read", OWNER)
    ]

    attached = sql_hook.attach_share(share.url, "orders_in", as_user=READER)
    assert (attached.alias, attached.type, attached.created) == ("orders_in", "motherduck share", True)
    assert sql_hook.attach_share(share.url, "orders_in", as_user=READER).created is False
    assert "orders_in" in [a.alias for a in sql_hook.attached_databases(as_user=READER)]
    assert "orders_in" not in [a.alias for a in sql_hook.attached_databases(as_user=None)]
    # The emulator's own view: owned by the owner, granted to the reader, attached by the reader.
    access = org.describe_access()["users"]
    [owned] = access[OWNER]["shares"]
    assert (owned["name"], owned["url"], owned["users"]) == (SHARE, share.url, [READER])
    assert {"alias": "orders_in", "url": share.url} in access[READER]["attached"]

    assert sql_hook.detach_share("orders_in", as_user=READER) is True
    assert sql_hook.detach_share("orders_in", as_user=READER) is False
    assert sql_hook.revoke_share(SHARE, from_user=READER, as_user=OWNER) is True
    assert sql_hook.revoke_share(SHARE, from_user=READER, as_user=OWNER) is False
    assert sql_hook.drop_share(SHARE, as_user=OWNER) is True
    assert sql_hook.drop_share(SHARE, as_user=OWNER) is False
    with pytest.raises(MotherDuckSQLNotFoundError):
        sql_hook.drop_share(SHARE, as_user=OWNER, missing_ok=False)
    assert _no_session_tokens(org, OWNER, READER)


def test_share_grants_to_a_role(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    sql_hook.create_role("readers")
    sql_hook.create_share(SHARE, "orders", **OPTIONS, as_user=OWNER)
    assert sql_hook.grant_share(SHARE, to_role="readers", as_user=OWNER) is True
    assert [(g.grantee, g.grantee_type) for g in sql_hook.share_grants(SHARE, as_user=OWNER)] == [
        ("readers", "role")
    ]
    assert sql_hook.revoke_share(SHARE, from_role="readers", as_user=OWNER) is True


def test_only_the_owner_grants(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    sql_hook.create_share(SHARE, "orders", **OPTIONS, as_user=OWNER)
    with pytest.raises((MotherDuckSQLPermissionError, MotherDuckSQLNotFoundError)) as info:
        sql_hook.grant_share(SHARE, to_user=READER, as_user=READER)
    assert "owner" in str(info.value) or "not found" in str(info.value)
    assert _no_session_tokens(org, READER)


def test_a_share_include_changes_in_place(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    share = sql_hook.create_share(SHARE, "orders", **OPTIONS, include=["main.orders"], as_user=OWNER)
    sql_hook.grant_share(SHARE, to_user=READER, as_user=OWNER)
    wider = sql_hook.set_share_include(SHARE, ["main.orders", "main.customers"], as_user=OWNER)
    assert (wider.include, wider.url, wider.changed) == (("main.orders", "main.customers"), share.url, True)
    org.clear_journal()
    again = sql_hook.set_share_include(SHARE, ["main.orders", "main.customers"], as_user=OWNER)
    assert (again, again.changed) == (wider, False)
    assert sql_hook.set_share_include(SHARE, [], as_user=OWNER).include == ()
    whole = sql_hook.set_share_include(SHARE, None, as_user=OWNER)
    assert (whole.include, whole.url, whole.changed) == (None, share.url, True)
    assert [sql for sql in _sql_seen(org) if sql.startswith("ALTER")] == [
        f"ALTER SHARE \"{SHARE}\" SET INCLUDE_PATTERN ''",
        f'ALTER SHARE "{SHARE}" RESET INCLUDE_PATTERN',
    ]
    assert [g.grantee for g in sql_hook.share_grants(SHARE, as_user=OWNER)] == [READER]  # grants stay
    assert _no_session_tokens(org, OWNER)


def test_only_the_owner_changes_a_share_include_and_patterns_need_the_plan(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    sql_hook.create_share(SHARE, "orders", **OPTIONS, include=["main.orders"], as_user=OWNER)
    with pytest.raises(MotherDuckSQLNotFoundError, match=f"the share '{SHARE}' of {READER} does not exist"):
        sql_hook.set_share_include(SHARE, None, as_user=READER)
    org.business_plan = False
    with pytest.raises(MotherDuckPlanLimitError, match="Filtered shares require a MotherDuck Business plan"):
        sql_hook.set_share_include(SHARE, ["main.customers"], as_user=OWNER)
    assert sql_hook.set_share_include(SHARE, None, as_user=OWNER).changed is True  # a reset needs no plan
    assert _no_session_tokens(org, OWNER, READER)


def test_an_alias_taken_by_a_database_is_refused_not_detached(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    share = sql_hook.create_share(SHARE, "orders", **OPTIONS, as_user=OWNER)
    sql_hook.grant_share(SHARE, to_user=READER, as_user=OWNER)
    sql_hook.create_database("orders", as_user=READER)  # the reader's own "orders"
    with pytest.raises(MotherDuckSQLExistsError, match="alias 'orders' is taken"):
        sql_hook.attach_share(share.url, as_user=READER)
    with pytest.raises(MotherDuckSQLError, match="not an attached share: not detached"):
        sql_hook.detach_share("orders", as_user=READER)
    assert "orders" in [d.name for d in sql_hook.list_databases(as_user=READER)]


def test_an_unknown_share_url_is_not_found(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    with pytest.raises(MotherDuckSQLNotFoundError):
        sql_hook.attach_share("md:_share/orders/00000000-0000-0000-0000-000000000000", as_user=READER)
    assert _no_session_tokens(org, READER)


def test_rows_read_through_an_attachment_as_the_account(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    share = sql_hook.create_share(SHARE, "orders", **OPTIONS, as_user=OWNER)
    with pytest.raises(MotherDuckSQLNotFoundError):  # not attached yet
        sql_hook.count_rows("orders_in.main.orders", as_user=READER)
    sql_hook.grant_share(SHARE, to_user=READER, as_user=OWNER)
    sql_hook.attach_share(share.url, "orders_in", as_user=READER)
    assert sql_hook.count_rows("orders_in.main.orders", as_user=READER) == 3
    assert sql_hook.count_rows("orders_in.orders", as_user=READER) == 3  # schema main
    assert sql_hook.count_rows("orders.main.orders", as_user=OWNER) == 3  # the owner's own database
    assert 'SELECT count(*) AS row_count FROM "orders_in"."main"."orders"' in _sql_seen(org)
    with pytest.raises(MotherDuckSQLNotFoundError):  # attached by the reader, not by the admin
        sql_hook.count_rows("orders_in.main.orders")
    with pytest.raises(MotherDuckSQLNotFoundError):
        sql_hook.count_rows("orders_in.main.missing", as_user=READER)
    sql_hook.revoke_share(SHARE, from_user=READER, as_user=OWNER)
    with pytest.raises(MotherDuckSQLNotFoundError):  # still attached, no longer readable
        sql_hook.count_rows("orders_in.main.orders", as_user=READER)
    assert _no_session_tokens(org, OWNER, READER)


def test_a_transient_failure_of_a_count_is_retried(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    statement = 'SELECT count(*) AS row_count FROM "orders"."main"."orders"'
    org.inject_sql(statement, error="IO Error: UNAVAILABLE: failed to connect to all addresses")
    assert sql_hook.count_rows("orders.orders", as_user=OWNER) == 3
    assert fake_sleep.waits == [2.0]
    assert _sql_seen(org).count(statement) == 2


# -- databases ---------------------------------------------------------------------------------


def test_databases(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    assert [d.name for d in sql_hook.list_databases(as_user=OWNER)] == ["my_db", "orders"]
    db = sql_hook.create_database("staging", as_user=OWNER)
    assert (db.name, db.type, db.created) == ("staging", "default", True)
    assert sql_hook.create_database("staging", as_user=OWNER).created is False
    assert "staging" not in [d.name for d in sql_hook.list_databases()]  # the admin's are its own
    assert sql_hook.drop_database("staging", as_user=OWNER) is True
    assert sql_hook.drop_database("staging", as_user=OWNER) is False
    with pytest.raises(MotherDuckSQLNotFoundError):
        sql_hook.drop_database("staging", as_user=OWNER, missing_ok=False)


# -- the session, over the wire ------------------------------------------------------------------


def test_a_revoked_session_token_opens_no_session(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    with sql_hook.sql_session(as_user=READER) as session:
        session.run(
            __import__("airflow_provider_motherduck.hooks.sql.statements", fromlist=["x"]).user_info()
        )
    [issued] = [i for i in org.issued_secrets() if is_session_token(i["name"])]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(org.postgres_conninfo(), password=issued["secret"], connect_timeout=5).close()


def test_the_current_user_over_postgres(sql_hook: MotherDuckHook, org: MotherDuckEmulator) -> None:
    assert sql_hook.get_current_user()["username"] == "admin"
    assert sql_hook.get_current_user(as_user=READER)["username"] == READER


def test_transient_failures_are_retried_for_reads_only(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator, fake_sleep: FakeSleep
) -> None:
    org.inject_sql(
        "SHOW ALL ROLES", error="IO Error: UNAVAILABLE: failed to connect to all addresses", times=2
    )
    assert len(sql_hook.list_roles()) == 3
    assert fake_sleep.waits == [2.0, 2.0]
    org.inject_sql(
        'CREATE DATABASE "staging"', error="IO Error: UNAVAILABLE: failed to connect to all addresses"
    )
    with pytest.raises(MotherDuckSQLError, match="UNAVAILABLE"):
        sql_hook.create_database("staging")
    assert _sql_seen(org).count('CREATE DATABASE "staging"') == 1


def test_an_unsupported_statement_suggests_the_other_transport(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    org.inject_sql("SHOW ALL ROLES", error='Parser Error: syntax error at or near "ALL"', sqlstate="42601")
    with pytest.raises(MotherDuckSQLUnsupportedError, match="sql_transport to 'duckdb'") as info:
        sql_hook.list_roles()
    assert info.value.transport == "postgres"


def test_the_journal_shows_statements_never_the_token(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    sql_hook.list_databases(as_user=READER)
    secrets = [i["secret"] for i in org.issued_secrets()]
    text = repr(list(org.journal))
    assert "SELECT * FROM MD_INFORMATION_SCHEMA.DATABASES ORDER BY name" in text
    assert not any(s in text for s in [*secrets, org.admin_token])


def test_blocks_as_one_account_nest_on_one_session_token(
    sql_hook: MotherDuckHook, org: MotherDuckEmulator
) -> None:
    def minted() -> int:
        return sum(is_session_token(i["name"]) for i in org.issued_secrets())

    before = minted()
    with sql_hook.sql_session(as_user=OWNER) as outer:
        sql_hook.create_database("staging", as_user=OWNER)
        with sql_hook.sql_session(as_user=OWNER.upper()) as inner:  # the same account, folded
            assert inner is outer
        assert [d.name for d in sql_hook.list_databases(as_user=OWNER)] == ["my_db", "orders", "staging"]
        sql_hook.list_databases(as_user=READER)  # another account: a session of its own
        assert minted() - before == 2
    assert minted() - before == 2
    assert _no_session_tokens(org, OWNER, READER)
