"""The emulator's MotherDuck SQL over psycopg: each statement family of the facts file, its
errors and permissions, the plan switch, the journal and faults, and the state it shares with
the REST side."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from airflow_provider_motherduck.testing import EmulatorControl, MotherDuckEmulator
from tests.testing.support import Api, Sql

Connect = Callable[..., Sql]
SHARE_URL = re.compile(r"md:_share/analytics/[0-9a-f-]{36}")
OWNED_SHARE = (
    "SELECT url, source_db_name, access, visibility, update, to_json(include_pattern)::VARCHAR,"
    " created_ts::VARCHAR FROM MD_INFORMATION_SCHEMA.OWNED_SHARES WHERE name = %s"
)
GRANTEES = "SELECT * FROM MD_LIST_SHARE_GRANTEES(%s) ORDER BY grantee_type, grantee_name"
ATTACHED_SHARES = (
    "SELECT alias, is_attached, type, fully_qualified_name FROM MD_ALL_DATABASES()"
    " WHERE type = 'motherduck share' AND is_attached = true"
)


def rows(conn: Sql, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Every row of a statement's answer."""
    return conn.execute(statement, params).fetchall()


def fails(conn: Sql, statement: str, message: str, sqlstate: str | None = None) -> psycopg.Error:
    """Run a statement that must fail with ``message`` in its text (and this SQLSTATE)."""
    with pytest.raises(psycopg.Error) as raised:
        conn.execute(statement)
    assert message in str(raised.value)
    if sqlstate is not None:
        assert raised.value.sqlstate == sqlstate
    return raised.value


@pytest.fixture
def admin(pg: Connect) -> Sql:
    return pg()


@pytest.fixture
def share_url(md: MotherDuckEmulator, admin: Sql) -> str:
    """A restricted share ``analytics_share`` of the Admin's ``analytics`` (orders, customers)."""
    md.add_database("admin", "analytics", tables={"orders": 3, "customers": 2})
    admin.execute('CREATE SHARE "analytics_share" FROM "analytics" (ACCESS RESTRICTED, VISIBILITY HIDDEN)')
    url: str = rows(admin, OWNED_SHARE, ["analytics_share"])[0][0]
    return url


# --- roles ------------------------------------------------------------------------------------


def test_roles_are_created_listed_and_dropped(admin: Sql) -> None:
    admin.execute('CREATE ROLE "Analytics_Readers"')  # stored lowercase
    listed = {r[0]: r[1:3] for r in rows(admin, "SHOW ALL ROLES")}
    assert listed == {
        "admin": ("preset", ["builder"]),
        "builder": ("preset", ["explorer"]),
        "explorer": ("preset", []),
        "analytics_readers": ("custom", []),
    }
    fails(
        admin, 'CREATE ROLE "analytics_readers"', 'Role with name "analytics_readers" already exists', "42710"
    )
    fails(admin, 'CREATE ROLE "explorer"', "already exists", "42710")
    fails(admin, 'CREATE ROLE "9lives"', "start with a letter", "22023")
    admin.execute('DROP ROLE IF EXISTS "analytics_readers"')
    admin.execute('DROP ROLE IF EXISTS "analytics_readers"')
    fails(admin, 'DROP ROLE "analytics_readers"', "Role with name analytics_readers does not exist!", "42704")
    fails(admin, 'DROP ROLE "admin"', "preset role admin cannot be dropped", "42501")


def test_a_role_granted_to_a_service_account_created_over_rest(
    md: MotherDuckEmulator, admin: Sql, api: Api
) -> None:
    assert api("POST", "/v1/users", json={"username": "Loader_Bot"}).status_code == 200
    admin.execute('CREATE ROLE "contract_readers"')
    admin.execute('GRANT ROLE "explorer" TO ROLE "contract_readers"')
    admin.execute('GRANT ROLE "contract_readers" TO USER "loader_bot"')  # usernames fold case
    shown = [r[:3] for r in rows(admin, 'SHOW ROLES TO USER "LOADER_BOT"')]
    assert shown == [("contract_readers", "custom", True), ("explorer", "preset", False)]
    users = rows(admin, 'SHOW USERS OF ROLE "contract_readers"')
    assert [u[:3] for u in users] == [("Loader_Bot", None, True)]
    assert rows(admin, 'SHOW ROLES TO ROLE "contract_readers"')[0][:3] == ("explorer", "preset", True)
    assert [r[0] for r in rows(admin, 'SHOW ROLES OF ROLE "explorer"')] == ["builder", "contract_readers"]
    admin.execute('REVOKE ROLE "contract_readers" FROM USER "loader_bot"')
    admin.execute('REVOKE ROLE "contract_readers" FROM USER "loader_bot"')  # not held: no change
    assert rows(admin, 'SHOW ROLES TO USER "loader_bot"') == []
    admin.execute('REVOKE ROLE "explorer" FROM ROLE "contract_readers"')
    assert rows(admin, 'SHOW ROLES TO ROLE "contract_readers"') == []


def test_role_grant_errors(admin: Sql) -> None:
    admin.execute("CREATE ROLE team_a")
    admin.execute("CREATE ROLE team_b")
    admin.execute("GRANT ROLE team_a TO ROLE team_b")
    fails(admin, "GRANT ROLE team_b TO ROLE team_a", "cycle", "22023")
    fails(
        admin, 'GRANT ROLE "team_a" TO USER "reader_user"', "Catalog Error: Unable to find user reader_user"
    )
    fails(admin, 'GRANT ROLE "nope" TO USER "etl_bot"', "Role with name nope does not exist!")
    fails(admin, 'GRANT ROLE "team_a" TO ROLE "builder"', "preset role builder cannot be changed")


def test_preset_roles_are_the_rest_users_roles(
    md: MotherDuckEmulator, admin: Sql, pg: Connect, api: Api
) -> None:
    bot = pg("etl_bot")
    fails(bot, "CREATE ROLE helpers", "Permission Error: CREATE ROLE requires the Admin role", "42501")
    admin.execute('GRANT ROLE "admin" TO USER "etl_bot"')
    listed = {u["username"]: u["roles"] for u in api("GET", "/v1/users").json()["users"]}
    assert listed["etl_bot"] == ["admin"]
    bot.execute("CREATE ROLE helpers")  # now an Admin: the same session sees it at once
    admin.execute('REVOKE ROLE "admin" FROM USER "etl_bot"')
    assert {u["username"]: u["roles"] for u in api("GET", "/v1/users").json()["users"]}["etl_bot"] == [
        "member"
    ]
    md.add_user("lead", roles=["builder"])
    assert [r[:3] for r in rows(admin, "SHOW ROLES TO USER lead")] == [
        ("builder", "preset", True),
        ("explorer", "preset", False),
    ]


def test_who_may_read_role_membership(md: MotherDuckEmulator, admin: Sql, pg: Connect) -> None:
    admin.execute("CREATE ROLE viewers")
    admin.execute("GRANT ROLE viewers TO USER etl_bot")
    bot = pg("etl_bot")
    assert [r[0] for r in rows(bot, "SHOW ALL ROLES")][-1] == "viewers"
    assert [r[0] for r in rows(bot, "SHOW ROLES TO USER etl_bot")] == ["viewers"]
    fails(bot, "SHOW ROLES TO USER admin", "requires the Admin role", "42501")
    fails(bot, "SHOW USERS OF ROLE viewers", "requires the Admin role", "42501")
    fails(bot, "GRANT ROLE viewers TO USER admin", "requires the Admin role", "42501")


def test_a_custom_role_that_includes_admin_gives_admin(admin: Sql, pg: Connect) -> None:
    admin.execute("CREATE ROLE operators")
    admin.execute("GRANT ROLE admin TO ROLE operators")
    admin.execute("GRANT ROLE operators TO USER etl_bot")
    pg("etl_bot").execute("CREATE ROLE made_by_bot")
    admin.execute("DROP ROLE operators")
    assert rows(admin, "SHOW ROLES TO USER etl_bot") == []


# --- plan -------------------------------------------------------------------------------------


def test_custom_roles_and_filtered_shares_need_the_business_plan(md: MotherDuckEmulator, admin: Sql) -> None:
    md.add_database("admin", "analytics")
    assert rows(admin, "SELECT org_type FROM md_user_info()") == [("business",)]
    md.business_plan = False
    assert rows(admin, "SELECT org_type FROM md_user_info()") == [("lite",)]
    plan = "require a MotherDuck Business plan or an active free trial"
    fails(admin, "CREATE ROLE analysts", "Custom roles " + plan, "42501")
    fails(admin, "CREATE SHARE s FROM analytics (INCLUDE_PATTERN 'main.orders')", "Filtered shares " + plan)
    admin.execute("CREATE SHARE s FROM analytics")
    fails(admin, "ALTER SHARE s SET INCLUDE_PATTERN 'main.x'", "Filtered shares " + plan)
    admin.execute("ALTER SHARE s RESET INCLUDE_PATTERN")


# --- shares -----------------------------------------------------------------------------------


def test_a_share_is_created_read_altered_and_dropped(md: MotherDuckEmulator, admin: Sql) -> None:
    md.add_database("admin", "analytics")
    admin.execute("ATTACH IF NOT EXISTS 'md:analytics'")
    admin.execute(
        'CREATE SHARE "analytics_share" FROM "analytics" (ACCESS RESTRICTED, VISIBILITY HIDDEN,'
        " UPDATE MANUAL, INCLUDE_PATTERN 'main.orders')"
    )
    ((url, source, access, visibility, update, include, created),) = rows(
        admin, OWNED_SHARE, ["analytics_share"]
    )
    assert SHARE_URL.fullmatch(url)
    assert (source, access, visibility, update, include) == (
        "analytics",
        "RESTRICTED",
        "HIDDEN",
        "MANUAL",
        '["main.orders"]',
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00", created)
    admin.execute("ALTER SHARE \"analytics_share\" SET INCLUDE_PATTERN 'main.orders,main.customers'")
    assert rows(admin, OWNED_SHARE, ["analytics_share"])[0][5] == '["main.orders","main.customers"]'
    admin.execute("ALTER SHARE \"analytics_share\" SET INCLUDE_PATTERN ''")
    assert rows(admin, OWNED_SHARE, ["analytics_share"])[0][5] == "[]"
    admin.execute('ALTER SHARE "analytics_share" RESET INCLUDE_PATTERN')
    assert rows(admin, OWNED_SHARE, ["analytics_share"])[0][5] is None
    fails(
        admin, 'CREATE SHARE "analytics_share" FROM "analytics"', 'Share with name "analytics_share" already'
    )
    admin.execute('DROP SHARE IF EXISTS "analytics_share"')
    admin.execute('DROP SHARE IF EXISTS "analytics_share"')
    assert rows(admin, OWNED_SHARE, ["analytics_share"]) == []
    fails(admin, 'DROP SHARE "analytics_share"', "Catalog Error: Database share analytics_share not found")
    fails(
        admin,
        'ALTER SHARE "analytics_share" RESET INCLUDE_PATTERN',
        "Database share analytics_share not found",
    )
    fails(admin, 'CREATE SHARE "x" FROM "nowhere"', "Database with name nowhere does not exist!")
    fails(admin, 'CREATE SHARE "x" FROM "analytics" (ACCESS PUBLIC)', "ACCESS must be one of")


def test_share_defaults_and_the_owned_list(md: MotherDuckEmulator, admin: Sql) -> None:
    md.add_database("admin", "analytics")
    admin.execute("CREATE SHARE b_share FROM analytics")
    admin.execute("CREATE SHARE a_share FROM analytics (ACCESS UNRESTRICTED, UPDATE AUTOMATIC)")
    listed = rows(admin, "SELECT * FROM MD_INFORMATION_SCHEMA.OWNED_SHARES ORDER BY name LIMIT 1 OFFSET 1")
    assert [(r[0], r[4], r[5], r[6], r[7]) for r in listed] == [
        ("b_share", "ORGANIZATION", "DISCOVERABLE", "MANUAL", None)
    ]
    assert rows(
        admin,
        "SELECT access, visibility, update FROM MD_INFORMATION_SCHEMA.OWNED_SHARES WHERE name = 'a_share'",
    ) == [("UNRESTRICTED", "HIDDEN", "AUTOMATIC")]
    assert [r[0] for r in rows(admin, "LIST SHARES")] == ["a_share", "b_share"]


def test_shared_with_me_lists_discoverable_shares_the_reader_may_read(
    md: MotherDuckEmulator, admin: Sql, pg: Connect
) -> None:
    md.add_database("admin", "analytics")
    admin.execute("CREATE SHARE org_share FROM analytics")
    admin.execute("CREATE SHARE hidden_share FROM analytics (ACCESS ORGANIZATION, VISIBILITY HIDDEN)")
    admin.execute("CREATE SHARE closed_share FROM analytics (ACCESS RESTRICTED, VISIBILITY DISCOVERABLE)")
    bot = pg("etl_bot")
    seen = "SELECT name, source_db_name, owner FROM MD_INFORMATION_SCHEMA.SHARED_WITH_ME ORDER BY name"
    assert rows(bot, seen) == [("org_share", "analytics", "admin")]
    admin.execute("GRANT READ ON SHARE closed_share TO USER etl_bot")
    assert [r[0] for r in rows(bot, seen)] == ["closed_share", "org_share"]
    assert rows(admin, seen) == []  # one's own shares are owned, not shared with one


# --- share grants -----------------------------------------------------------------------------


def test_the_owner_grants_and_revokes_read_on_a_restricted_share(
    admin: Sql, share_url: str, md: MotherDuckEmulator
) -> None:
    md.add_user("first.last", email="first.last@example.com")
    admin.execute("CREATE ROLE analytics_readers")
    admin.execute('GRANT READ ON SHARE "analytics_share" TO ROLE "analytics_readers"')
    admin.execute('GRANT READ ON SHARE "analytics_share" TO USER "first.last@example.com"')
    admin.execute('GRANT READ ON SHARE "analytics_share" TO "ETL_BOT"')
    admin.execute('GRANT READ ON SHARE "analytics_share" TO USER "etl_bot"')  # held already: no change
    listed = rows(admin, GRANTEES, ["analytics_share"])
    assert [r[:4] for r in listed] == [
        ("admin", "analytics_readers", "role", "read"),
        ("admin", "etl_bot", "user", "read"),
        ("admin", "first.last", "user", "read"),
    ]
    probe = "SELECT count(*) FROM duckdb_functions() WHERE lower(function_name) = lower(%s)"
    assert rows(admin, probe, ["md_list_share_grantees"]) == [(1,)]
    granted = (
        "SELECT count(*) FROM MD_LIST_SHARE_GRANTEES(%s) WHERE lower(grantee_name) = lower(%s)"
        " AND lower(grantee_type) = lower(%s) AND lower(privilege) = 'read'"
    )
    assert rows(admin, granted, ["analytics_share", "Etl_Bot", "user"]) == [(1,)]
    admin.execute('REVOKE READ ON SHARE "analytics_share" FROM "etl_bot", "first.last"')
    admin.execute('REVOKE READ ON SHARE "analytics_share" FROM ROLE "analytics_readers"')
    admin.execute('REVOKE READ ON SHARE "analytics_share" FROM USER "etl_bot"')
    assert rows(admin, granted, ["analytics_share", "etl_bot", "user"]) == [(0,)]
    assert rows(admin, GRANTEES, ["analytics_share"]) == []


@pytest.mark.parametrize(
    ("access", "grantee"),
    [("ORGANIZATION", ("ENTIRE_ORGANIZATION", "organization")), ("UNRESTRICTED", ("ALL_USERS", "domain"))],
)
def test_grantees_of_open_shares_are_one_row(
    md: MotherDuckEmulator, admin: Sql, access: str, grantee: tuple[str, str]
) -> None:
    md.add_database("admin", "analytics")
    admin.execute(f"CREATE SHARE open_share FROM analytics (ACCESS {access})")
    assert [r[1:4] for r in rows(admin, GRANTEES, ["open_share"])] == [(*grantee, "read")]


def test_share_grant_errors_and_who_may_grant(
    admin: Sql, share_url: str, pg: Connect, md: MotherDuckEmulator
) -> None:
    fails(
        admin,
        'GRANT READ ON SHARE "analytics_share" TO USER "reader_user"',
        "Catalog Error: Unable to find user reader_user",
    )
    fails(
        admin,
        'GRANT READ ON SHARE "example_share" TO USER "etl_bot"',
        "Catalog Error: Database share example_share not found",
    )
    fails(
        admin,
        "SELECT * FROM md_list_share_grantees('example_share')",
        "Database share example_share not found",
    )
    fails(
        admin,
        "SELECT * FROM md_list_share_grantee('x')",
        "Table Function with name md_list_share_grantee does not exist!",
    )
    bot = pg("etl_bot")
    # Only the owner grants; anyone else (an Admin too) does not find the share by name.
    fails(
        bot,
        'GRANT READ ON SHARE "analytics_share" TO USER "etl_bot"',
        "Database share analytics_share not found",
    )
    fails(bot, GRANTEES.replace("%s", "'analytics_share'"), "Database share analytics_share not found")
    md.add_user("auditor", admin=True)
    assert rows(pg("auditor"), GRANTEES, ["analytics_share"]) == []  # an Admin views every share


def test_only_the_owner_alters_a_share(
    admin: Sql, share_url: str, pg: Connect, md: MotherDuckEmulator
) -> None:
    md.add_user("auditor", admin=True)
    for other in (pg("etl_bot"), pg("auditor")):  # an Admin too does not find it by name
        fails(
            other,
            "ALTER SHARE analytics_share SET INCLUDE_PATTERN 'main.orders'",
            "Catalog Error: Database share analytics_share not found",
        )
    assert rows(admin, OWNED_SHARE, ["analytics_share"])[0][5] is None


def test_describing_a_share_and_its_grants(admin: Sql, share_url: str, pg: Connect) -> None:
    described = rows(admin, 'DESCRIBE SHARE "analytics_share"')
    assert [r[:3] for r in described] == [("analytics_share", share_url, "analytics")]
    assert rows(admin, "SELECT name, url FROM md_list_database_shares()") == [("analytics_share", share_url)]
    admin.execute("GRANT READ ON SHARE analytics_share TO etl_bot")
    assert [r[1:4] for r in rows(admin, "SHOW GRANTS ON SHARE analytics_share")] == [
        ("etl_bot", "user", "read")
    ]
    bot = pg("etl_bot")
    fails(bot, 'DESCRIBE SHARE "analytics_share"', "Database share analytics_share not found")
    by_url = rows(bot, "SELECT name, access FROM md_describe_database_share(%s)", [share_url])
    assert by_url == [("analytics_share", "RESTRICTED")]
    admin.execute("REVOKE READ ON SHARE analytics_share FROM etl_bot")
    fails(bot, f"DESCRIBE SHARE '{share_url}'", "not found")
    assert bot.execute("REFRESH DATABASES").statusmessage == "REFRESH"


# --- attachments ------------------------------------------------------------------------------


def test_a_reader_attaches_a_granted_share_and_reads_it(admin: Sql, share_url: str, pg: Connect) -> None:
    bot = pg("etl_bot")
    fails(
        bot, f"ATTACH '{share_url}' AS reporting", f"Failed to attach '{share_url}': no database/share named"
    )
    admin.execute("CREATE ROLE analytics_readers")
    admin.execute("GRANT ROLE analytics_readers TO USER etl_bot")
    admin.execute("GRANT READ ON SHARE analytics_share TO ROLE analytics_readers")
    bot.execute(f'ATTACH \'{share_url}\' AS "weird""alias"')
    bot.execute(f'ATTACH IF NOT EXISTS \'{share_url}\' AS "weird""alias"')
    assert rows(bot, ATTACHED_SHARES) == [('weird"alias', True, "motherduck share", share_url)]
    assert rows(bot, 'SELECT count(*) FROM "weird""alias".main.orders') == [(3,)]
    fails(bot, 'SELECT * FROM "weird""alias".main.orders', "keeps only the row count", "0A000")
    assert rows(admin, ATTACHED_SHARES) == []  # attachments are per account
    fails(bot, f'ATTACH \'{share_url}\' AS "weird""alias"', 'Database with name "weird"alias" already exists')
    admin.execute("ALTER SHARE analytics_share SET INCLUDE_PATTERN 'main.customers'")
    fails(
        bot, 'SELECT count(*) FROM "weird""alias".main.orders', "Table with name main.orders does not exist!"
    )
    admin.execute("REVOKE ROLE analytics_readers FROM USER etl_bot")
    fails(bot, 'SELECT count(*) FROM "weird""alias".main.customers', "not found")
    bot.execute('DETACH "weird""alias"')
    assert rows(bot, ATTACHED_SHARES) == []
    fails(bot, 'DETACH "weird""alias"', "no database/share named")
    bot.execute('DETACH DATABASE IF EXISTS "weird""alias"')


def test_a_deleted_owner_takes_its_shares_with_it(
    md: MotherDuckEmulator, admin: Sql, pg: Connect, api: Api
) -> None:
    md.add_database("etl_bot", "exports", tables={"daily": 1})
    pg("etl_bot").execute("CREATE SHARE exports_share FROM exports")
    url = rows(admin, "SELECT url FROM MD_INFORMATION_SCHEMA.SHARED_WITH_ME WHERE name = 'exports_share'")[0][
        0
    ]
    admin.execute(f"ATTACH '{url}' AS exports")
    assert api("DELETE", "/v1/users/etl_bot").status_code == 200
    assert rows(admin, "SELECT * FROM MD_INFORMATION_SCHEMA.SHARED_WITH_ME") == []
    assert rows(admin, ATTACHED_SHARES) == []
    fails(admin, "SELECT count(*) FROM exports.main.daily", "not found")


def test_attachments_are_listed_and_follow_the_share(admin: Sql, share_url: str, pg: Connect) -> None:
    admin.execute("GRANT READ ON SHARE analytics_share TO etl_bot")
    bot = pg("etl_bot")
    bot.execute(f"ATTACH '{share_url}'")  # the alias defaults to the source database's name
    listed = rows(bot, "SELECT alias, name, type FROM md_attached_databases() ORDER BY alias")
    assert listed == [("analytics", "analytics_share", "motherduck share"), ("my_db", "my_db", "motherduck")]
    assert [r[0] for r in rows(bot, "SHOW ALL DATABASES")] == ["analytics", "my_db"]
    admin.execute("DROP SHARE analytics_share")
    assert rows(bot, ATTACHED_SHARES) == []
    fails(
        bot,
        "ATTACH 'md:nowhere'",
        "Failed to attach 'md:nowhere': no database/share named 'md:nowhere' found",
        "3D000",
    )


def test_describe_access_shows_the_sql_side(
    md: MotherDuckEmulator, admin: Sql, share_url: str, pg: Connect
) -> None:
    admin.execute("CREATE ROLE readers")
    admin.execute("GRANT ROLE explorer TO ROLE readers")
    admin.execute("GRANT ROLE readers TO USER etl_bot")
    admin.execute("GRANT READ ON SHARE analytics_share TO ROLE readers")
    pg("etl_bot").execute(f"ATTACH '{share_url}' AS reporting")
    md.add_user("quiet")
    admin.execute("SHOW USERS OF ROLE readers")  # reading others' roles initialises nobody
    access = EmulatorControl(md.url, md.control_key).describe_access()
    assert access["users"]["quiet"] == {"roles": [], "databases": [], "shares": [], "attached": []}
    assert access == md.describe_access()
    assert access["roles"] == {"readers": ["explorer"]}
    assert access["users"]["etl_bot"] == {
        "roles": ["readers"],
        "databases": ["my_db"],
        "shares": [],
        "attached": [{"alias": "reporting", "url": share_url}],
    }
    (share,) = access["users"]["admin"]["shares"]
    assert share == {
        "name": "analytics_share",
        "url": share_url,
        "source_db_name": "analytics",
        "access": "RESTRICTED",
        "visibility": "HIDDEN",
        "update": "MANUAL",
        "include_pattern": None,
        "users": [],
        "roles": ["readers"],
    }
    assert access["users"]["admin"]["roles"] == ["admin"]


# --- databases --------------------------------------------------------------------------------


def test_databases_are_created_read_and_dropped(admin: Sql) -> None:
    admin.execute('CREATE DATABASE "scratch" (TRANSIENT)')
    admin.execute('CREATE DATABASE IF NOT EXISTS "scratch"')
    admin.execute("CREATE DATABASE lake (TYPE DUCKLAKE)")
    read = (
        "SELECT uuid::VARCHAR, created_ts::VARCHAR, transient, historical_snapshot_retention::VARCHAR, type"
        " FROM MD_INFORMATION_SCHEMA.DATABASES WHERE name = %s"
    )
    ((uuid, _, transient, retention, kind),) = rows(admin, read, ["scratch"])
    assert re.fullmatch(r"[0-9a-f-]{36}", uuid)
    assert (transient, retention, kind) == (True, "7 days", "default")
    admin.execute('ALTER DATABASE "scratch" SET SNAPSHOT_RETENTION_DAYS = 30')
    assert rows(admin, read, ["scratch"])[0][3] == "30 days"
    assert rows(admin, read, ["lake"])[0][2:] == (False, None, "ducklake")
    names = [r[0] for r in rows(admin, "SELECT * FROM MD_INFORMATION_SCHEMA.DATABASES ORDER BY name")]
    assert names == ["lake", "my_db", "scratch"]
    fails(admin, 'CREATE DATABASE "scratch"', 'Database with name "scratch" already exists', "42710")
    fails(admin, "CREATE DATABASE bad (TYPE DUCKLAKE, TRANSIENT)", "cannot be transient")
    admin.execute("CREATE SHARE scratch_share FROM scratch")
    fails(admin, 'DROP DATABASE "scratch"', "shares depend on it")
    admin.execute('DROP DATABASE IF EXISTS "scratch" CASCADE')
    admin.execute('DROP DATABASE IF EXISTS "scratch" CASCADE')
    assert rows(admin, OWNED_SHARE, ["scratch_share"]) == []
    fails(admin, 'DROP DATABASE "scratch"', "Database with name scratch does not exist!")
    assert rows(admin, "SELECT current_database()") == [("my_db",)]
    fails(admin, "DROP DATABASE my_db", "current database")
    admin.execute("USE memory")
    admin.execute("DROP DATABASE my_db")


# --- identity, quoting, sessions --------------------------------------------------------------


def test_identity(md: MotherDuckEmulator, pg: Connect) -> None:
    bot = pg("etl_bot")
    assert rows(bot, "SELECT 1") == [(1,)]
    assert rows(bot, "SELECT md_user()") == [("etl_bot",)]
    assert rows(bot, "select current_user") == [("etl_bot",)]
    ((user_id, username, org_id, org_name, org_type, region),) = rows(bot, "FROM md_user_info();")
    assert (username, org_type, region) == ("etl_bot", "business", "us-east-1")
    assert user_id != org_id
    assert org_name


def test_quoting_keywords_and_statements(admin: Sql, md: MotherDuckEmulator) -> None:
    md.add_database("admin", "o'brien")
    admin.execute('create share "it""s" from "o\'brien" (access restricted);')
    assert rows(
        admin, "select name, source_db_name from md_information_schema.owned_shares where name = 'it\"s'"
    ) == [('it"s', "o'brien")]
    assert rows(admin, "SELECT 'it''s'") == [("it's",)]
    fails(admin, "SELECT 'unterminated", "syntax error")
    cur = admin.cursor()
    cur.execute("SELECT 1; SELECT md_user()", prepare=False)
    assert cur.fetchall() == [(1,)]
    assert cur.nextset()
    assert cur.fetchall() == [("admin",)]


def test_a_read_scaling_token_reads_but_does_not_write(md: MotherDuckEmulator) -> None:
    token = md.add_token("etl_bot", "rs", token_type="read_scaling")["token"]
    with psycopg.connect(md.postgres_conninfo(), password=token, autocommit=True) as conn:
        assert rows(conn, "SELECT md_user()") == [("etl_bot",)]
        fails(conn, "CREATE DATABASE x", "a read-scaling token cannot run CREATE statements", "42501")


def test_a_session_ends_when_its_user_is_deleted_over_rest(
    md: MotherDuckEmulator, pg: Connect, admin: Sql, api: Api
) -> None:
    admin.execute("CREATE ROLE viewers")
    admin.execute("GRANT ROLE viewers TO USER etl_bot")
    bot = pg("etl_bot")
    assert api("DELETE", "/v1/users/etl_bot").status_code == 200
    with pytest.raises(psycopg.OperationalError, match="no longer exists"):
        bot.execute("SELECT 1")
    assert api("POST", "/v1/users", json={"username": "etl_bot"}).status_code == 200
    assert rows(admin, "SHOW ROLES TO USER etl_bot") == []  # a new account of the same name starts clean
    md.add_user("gone", deprovisioned=True)
    with pytest.raises(psycopg.OperationalError, match="deprovisioned"):
        pg("gone")


# --- journal and faults -----------------------------------------------------------------------


def test_the_journal_records_statements_without_secrets(md: MotherDuckEmulator, pg: Connect) -> None:
    bot = pg("etl_bot")
    md.clear_journal()
    bot.execute("SELECT md_user()")
    fails(bot, "SET motherduck_token = 'mdt_secret_value'", "not supported")
    fails(bot, "ATTACH 'md:my_db?motherduck_token=mdt_other_secret' AS x", "no database/share named")
    fails(
        bot, "CREATE SECRET s IN MOTHERDUCK (TYPE S3, KEY_ID 'AKIAEXAMPLE', SECRET 'hush')", "not supported"
    )
    sql = [e for e in md.journal if e.method == "SQL"]
    assert [e.path for e in sql] == [
        "SELECT md_user()",
        "SET motherduck_token = '***'",
        "ATTACH 'md:my_db?motherduck_token=***' AS x",
        "CREATE SECRET s IN MOTHERDUCK (TYPE S3, KEY_ID '***', SECRET '***')",
    ]
    assert [e.status for e in sql] == [200, 400, 400, 400]
    assert sql[0].body == {"username": "etl_bot", "database": "my_db", "error": None}
    text = repr(md.journal)
    for secret in ("mdt_secret_value", "mdt_other_secret", "hush", "AKIAEXAMPLE"):
        assert secret not in text
    assert all(t["secret"] not in text for t in md.issued_secrets())


def test_an_injected_transient_error_then_success(md: MotherDuckEmulator, admin: Sql) -> None:
    transient = "IO Error: UNAVAILABLE: failed to connect to all addresses"
    md.inject_sql("drop role *", error=transient, sqlstate="08006", times=2)
    for _ in range(2):
        fails(admin, "DROP ROLE IF EXISTS x_role", transient, "08006")
    admin.execute("DROP ROLE IF EXISTS x_role")
    assert [e.fault for e in md.journal if e.method == "SQL"] == [True, True, False]


def test_a_dropped_answer_after_the_statement_ran(md: MotherDuckEmulator, pg: Connect, admin: Sql) -> None:
    md.inject_sql('CREATE ROLE "lost_answer"', drop=True, after=True)
    with pytest.raises(psycopg.OperationalError):
        admin.execute('CREATE ROLE "lost_answer"')
    assert "lost_answer" in [r[0] for r in rows(pg(), "SHOW ALL ROLES")]


def test_an_error_after_the_statement_ran(md: MotherDuckEmulator, admin: Sql) -> None:
    admin.execute("CREATE ROLE granted_anyway")
    md.inject_sql("grant role *", error="IO Error: request timed out", after=True)
    fails(admin, "GRANT ROLE granted_anyway TO USER etl_bot", "request timed out")
    assert [r[0] for r in rows(admin, "SHOW ROLES TO USER etl_bot")] == ["granted_anyway"]


def test_a_delay_only_slows_the_statement(md: MotherDuckEmulator, admin: Sql) -> None:
    md.inject_sql("SELECT md_user()", delay=0.05)
    assert rows(admin, "SELECT md_user()") == [("admin",)]
    assert [e.fault for e in md.journal if e.method == "SQL"] == [False]


def test_sql_and_rest_faults_stay_apart(md: MotherDuckEmulator, admin: Sql, api: Api) -> None:
    md.inject("*", "*", status=503)
    assert rows(admin, "SELECT 1") == [(1,)]
    assert api("GET", "/v1/active_accounts").status_code == 503
    with pytest.raises(ValueError, match="inject_sql"):
        md.inject("SQL", "*", status=500)
    for bad in (
        {},
        {"error": "x", "drop": True},
        {"after": True, "delay": 1.0},
        {"error": "x", "sqlstate": "1"},
    ):
        with pytest.raises(ValueError, match=r"."):
            md.inject_sql("*", **bad)


def test_the_control_api_seeds_databases_and_injects_sql_faults(md: MotherDuckEmulator, pg: Connect) -> None:
    control = EmulatorControl(md.url, md.control_key)
    control.add_database("etl_bot", "sales", tables={"orders": 4})
    control.inject_sql("SELECT count(*) FROM sales.main.orders", error="IO Error: request timed out")
    bot = pg("etl_bot")
    fails(bot, "SELECT count(*) FROM sales.main.orders", "request timed out", "XX000")
    assert rows(bot, "SELECT count(*) FROM sales.main.orders") == [(4,)]
    with pytest.raises(KeyError):
        control.add_database("nobody", "x")
    with pytest.raises(ValueError, match="row count"):
        control.add_database("etl_bot", "bad", tables={"t": -1})


def test_a_seed_gives_databases_with_tables(start: Callable[..., MotherDuckEmulator]) -> None:
    md = start()
    md.load_seed({"users": ["reader"], "databases": {"admin": {"analytics": {"orders": 7, "raw.events": 2}}}})
    with psycopg.connect(md.postgres_conninfo("analytics"), password=md.admin_token) as conn:
        assert rows(conn, "SELECT count(*) FROM orders") == [(7,)]
        assert rows(conn, "SELECT count(*) FROM analytics.raw.events") == [(2,)]
    for bad in ({"databases": []}, {"databases": {"admin": ["x"]}}, {"databases": {"nobody": {"x": {}}}}):
        with pytest.raises((ValueError, KeyError)):
            md.load_seed(bad)
