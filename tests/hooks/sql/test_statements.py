"""The statement builder: quoting, keywords, kinds, and refusing bad names before anything is sent."""

from __future__ import annotations

import pytest

from airflow_provider_motherduck.hooks.sql import statements as st
from airflow_provider_motherduck.hooks.sql.statements import Kind


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("analytics", '"analytics"'), ('we"ird', '"we""ird"'), ('"', '""""'), ("o'brien", '"o\'brien"')],
)
def test_identifiers_double_their_quotes(name: str, quoted: str) -> None:
    assert st.ident(name) == quoted


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("md:_share/db/tok", "'md:_share/db/tok'"), ("o'brien", "'o''brien'"), ("''", "''''''")],
)
def test_literals_double_their_quotes(value: str, quoted: str) -> None:
    assert st.literal(value) == quoted


def test_nul_is_refused_and_not_shown() -> None:
    with pytest.raises(ValueError, match="NUL") as info:
        st.literal("mdt_4f2a\x00tail")
    assert "mdt_4f2a" not in str(info.value)


def test_the_token_statement_is_quoted_and_never_shown() -> None:
    token = "mdt_o'quote"
    set_token = st.boot(token)[2]
    assert set_token.sql == "SET motherduck_token = 'mdt_o''quote'"
    assert token not in repr(set_token)
    assert set_token.shown == "SET motherduck_token"
    assert [s.sql for s in st.boot(token)][::3] == ["INSTALL motherduck", "ATTACH 'md:'"]


@pytest.mark.parametrize(
    ("statement", "sql", "kind"),
    [
        (st.show_all_roles(), "SHOW ALL ROLES", Kind.READ),
        (st.create_role("analytics_readers"), 'CREATE ROLE "analytics_readers"', Kind.WRITE),
        (st.drop_role("analytics_readers"), 'DROP ROLE IF EXISTS "analytics_readers"', Kind.DROP),
        (
            st.grant_role("explorer", "role", "contract-readers"),
            'GRANT ROLE "explorer" TO ROLE "contract-readers"',
            Kind.WRITE,
        ),
        (
            st.grant_role("analysts", "user", "first.last@example.com"),
            'GRANT ROLE "analysts" TO USER "first.last@example.com"',
            Kind.WRITE,
        ),
        (
            st.revoke_role("analysts", "user", "etl_Bot"),
            'REVOKE ROLE "analysts" FROM USER "etl_Bot"',
            Kind.REVOKE,
        ),
        (st.show_roles_to("user", 'x"y'), 'SHOW ROLES TO USER "x""y"', Kind.READ),
        (
            st.create_share(
                "analytics_share",
                "analytics",
                access="restricted",
                visibility="HIDDEN",
                update="manual",
                include=["main.orders", 'main."a,b"'],
            ),
            'CREATE SHARE "analytics_share" FROM "analytics" (ACCESS RESTRICTED, VISIBILITY HIDDEN, UPDATE MANUAL, '
            "INCLUDE_PATTERN 'main.orders,main.\"a,b\"')",
            Kind.WRITE,
        ),
        (
            st.create_share(
                "s", "d", access="organization", visibility="discoverable", update="automatic", include=[]
            ),
            'CREATE SHARE "s" FROM "d" (ACCESS ORGANIZATION, VISIBILITY DISCOVERABLE, UPDATE AUTOMATIC, INCLUDE_PATTERN \'\')',
            Kind.WRITE,
        ),
        (
            st.set_share_include('we"ird', ["main.orders", "main.o'brien"]),
            "ALTER SHARE \"we\"\"ird\" SET INCLUDE_PATTERN 'main.orders,main.o''brien'",
            Kind.WRITE,
        ),
        (st.set_share_include("s", []), "ALTER SHARE \"s\" SET INCLUDE_PATTERN ''", Kind.WRITE),
        (st.set_share_include("s", None), 'ALTER SHARE "s" RESET INCLUDE_PATTERN', Kind.WRITE),
        (st.drop_share("s"), 'DROP SHARE IF EXISTS "s"', Kind.DROP),
        (
            st.owned_shares("o's"),
            "SELECT * FROM MD_INFORMATION_SCHEMA.OWNED_SHARES WHERE name = 'o''s' ORDER BY name",
            Kind.READ,
        ),
        (
            st.share_grantees("s"),
            "SELECT * FROM MD_LIST_SHARE_GRANTEES('s') ORDER BY grantee_type, grantee_name",
            Kind.READ,
        ),
        (
            st.grant_share("analytics", "user", "reader"),
            'GRANT READ ON SHARE "analytics" TO USER "reader"',
            Kind.WRITE,
        ),
        (
            st.revoke_share("analytics", "role", "readers"),
            'REVOKE READ ON SHARE "analytics" FROM ROLE "readers"',
            Kind.REVOKE,
        ),
        (
            st.attach_share("md:_share/o'brien/tok", 'weird"alias'),
            "ATTACH 'md:_share/o''brien/tok' AS \"weird\"\"alias\"",
            Kind.WRITE,
        ),
        (st.detach("birds"), 'DETACH "birds"', Kind.DROP),
        (
            st.count_rows('orders_in.main.we"ird'),
            'SELECT count(*) AS row_count FROM "orders_in"."main"."we""ird"',
            Kind.READ,
        ),
        (
            st.count_rows("orders_in.orders"),
            'SELECT count(*) AS row_count FROM "orders_in"."main"."orders"',
            Kind.READ,
        ),
        (st.create_database("analytics"), 'CREATE DATABASE "analytics"', Kind.WRITE),
        (st.drop_database("analytics"), 'DROP DATABASE IF EXISTS "analytics"', Kind.DROP),
        (
            st.databases("a"),
            "SELECT * FROM MD_INFORMATION_SCHEMA.DATABASES WHERE name = 'a' ORDER BY name",
            Kind.READ,
        ),
    ],
)
def test_statements(statement: st.Statement, sql: str, kind: Kind) -> None:
    assert statement.sql == sql
    assert statement.kind is kind
    assert repr(statement) == f"Statement({sql!r}, {kind.value})"


def test_only_writes_are_not_retried() -> None:
    assert [k for k in Kind if not k.retried] == [Kind.WRITE]


@pytest.mark.parametrize(
    ("build", "field", "problem"),
    [
        (lambda: st.create_role("Analysts"), "name='Analysts'", "not lowercase"),
        (lambda: st.create_role("ab"), "name='ab'", "2 characters"),
        (lambda: st.create_role("1abc"), "name='1abc'", "not allowed"),
        (lambda: st.create_role("admin"), "name='admin'", "preset role"),
        (lambda: st.drop_role("explorer"), "name='explorer'", "preset role"),
        (lambda: st.grant_role("analysts", "user", " bob"), "to_user=' bob'", "surrounding spaces"),
        (lambda: st.grant_role("analysts", "role", "Readers"), "to_role='Readers'", "not lowercase"),
        (
            lambda: st.create_share("a.b", "d", access="restricted", visibility="hidden", update="manual"),
            "name='a.b'",
            "dot",
        ),
        (
            lambda: st.create_share("s", "d", access="public", visibility="hidden", update="manual"),
            "access='public'",
            "unknown",
        ),
        (
            lambda: st.create_share("s", "d", access="restricted", visibility="listed", update="manual"),
            "visibility='listed'",
            "unknown",
        ),
        (
            lambda: st.create_share("s", "d", access="restricted", visibility="hidden", update="hidden"),
            "update='hidden'",
            "unknown",
        ),
        (
            lambda: st.create_share(
                "s", "d", access="restricted", visibility="hidden", update="manual", include="main.*"
            ),
            "include='main.*'",
            "expected a list",
        ),
        (
            lambda: st.create_share(
                "s", "d", access="restricted", visibility="hidden", update="manual", include=["a,b"]
            ),
            "include[0]='a,b'",
            "comma",
        ),
        (lambda: st.set_share_include("s", ["a,b"]), "include[0]='a,b'", "comma"),
        (lambda: st.set_share_include("a.b", None), "name='a.b'", "dot"),
        (lambda: st.attach_share("md:analytics", "a"), "url='md:analytics'", "not a share URL"),
        (lambda: st.detach(""), "alias=''", "empty"),
        (lambda: st.create_database("x\ny"), "name='x\\ny'", "control"),
        (lambda: st.count_rows("orders"), "table='orders'", "two or three dotted parts"),
        (lambda: st.count_rows("a.b.c.d"), "table='a.b.c.d'", "two or three dotted parts"),
        (lambda: st.count_rows("a..c"), "table='a..c'", "two or three dotted parts"),
        (lambda: st.count_rows("a. b"), "table='a. b'", "two or three dotted parts"),
    ],
)
def test_bad_input_names_the_field(build: object, field: str, problem: str) -> None:
    with pytest.raises(ValueError, match="Allowed") as info:
        build()  # type: ignore[operator]
    assert field in str(info.value)
    assert problem in str(info.value)


def test_one_grantee_exactly() -> None:
    assert st.pick_grantee("bob", None, "to") == ("user", "bob")
    assert st.pick_grantee(None, "readers", "from") == ("role", "readers")
    for user, role in ((None, None), ("bob", "readers")):
        with pytest.raises(ValueError, match=r"to_user/to_role=.* exactly one must be given"):
            st.pick_grantee(user, role, "to")
