"""Error texts to the provider's exceptions (MotherDuck's texts from the facts, sections 1 to 6)."""

from __future__ import annotations

import pickle

import pytest

from airflow_provider_motherduck.exceptions import (
    MotherDuckPlanLimitError,
    MotherDuckSQLError,
    MotherDuckSQLExistsError,
    MotherDuckSQLNotFoundError,
    MotherDuckSQLPermissionError,
    MotherDuckSQLUnsupportedError,
)
from airflow_provider_motherduck.hooks.sql import statements as st
from airflow_provider_motherduck.hooks.sql.errors import is_transient, map_error, scrub


@pytest.mark.parametrize(
    ("statement", "text", "cls", "advice"),
    [
        (
            st.grant_share("s", "user", "reader_user"),
            "Catalog Error: Unable to find user reader_user",
            MotherDuckSQLNotFoundError,
            "service account's username",
        ),
        (
            st.share_grantees("example_share"),
            "Catalog Error: Database share example_share not found",
            MotherDuckSQLNotFoundError,
            "",
        ),
        (
            st.attach_share("md:_share/x/t", "x"),
            "Failed to attach 'x': no database/share named 'x' found",
            MotherDuckSQLNotFoundError,
            "",
        ),
        (
            st.drop_role("analysts"),
            'Catalog Error: Role "analysts" does not exist',
            MotherDuckSQLNotFoundError,
            "",
        ),
        (
            st.share_grantees("s"),
            "Catalog Error: Table Function with name md_list_share_grantees does not exist!",
            MotherDuckSQLUnsupportedError,
            "sql_transport to 'duckdb'",
        ),
        (
            st.show_all_roles(),
            'Parser Error: syntax error at or near "ROLES"',
            MotherDuckSQLUnsupportedError,
            "SHOW ALL ROLES is not supported over the postgres transport",
        ),
        (
            st.create_role("analysts"),
            "Catalog Error: Role with name analysts already exists",
            MotherDuckSQLExistsError,
            "",
        ),
        (
            st.create_role("analysts"),
            "Custom roles require a MotherDuck Business plan or an active free trial",
            MotherDuckPlanLimitError,
            "Business plan",
        ),
        (
            st.create_role("analysts"),
            "Permission Error: not allowed to manage roles",
            MotherDuckSQLPermissionError,
            "an Admin",
        ),
        (
            st.grant_share("s", "user", "u"),
            "Permission Error: permission denied",
            MotherDuckSQLPermissionError,
            "the share's owner",
        ),
        (
            st.attach_share("md:_share/x/t", "x"),
            "Permission Error: permission denied",
            MotherDuckSQLPermissionError,
            "the account itself",
        ),
        (st.create_database("d"), "IO Error: disk on fire", MotherDuckSQLError, ""),
    ],
)
def test_texts_map_to_classes(
    statement: st.Statement, text: str, cls: type[MotherDuckSQLError], advice: str
) -> None:
    err = map_error(statement, "postgres", text)
    assert type(err) is cls
    assert err.message == text
    assert err.statement == statement.sql
    assert advice in err.advice
    assert statement.sql in str(err)
    copy = pickle.loads(pickle.dumps(err))  # Airflow pickles task errors
    assert (type(copy), str(copy)) == (cls, str(err))


def test_the_token_statement_is_named_not_shown() -> None:
    token = "mdt_7e3c55aa01"
    err = map_error(st.boot(token)[2], "duckdb", "Invalid Input Error: bad token")
    assert token not in str(err)
    assert "SET motherduck_token" in str(err)


@pytest.mark.parametrize(
    "text",
    [
        "rpc error: code = Unavailable",
        "DEADLINE_EXCEEDED",
        "Request timed out",
        "failed to connect to all addresses",
        "connect: Network is unreachable",
    ],
)
def test_transient_texts(text: str) -> None:
    assert is_transient(text)


def test_other_texts_are_not_transient() -> None:
    assert not is_transient("Catalog Error: Database share s not found")


def test_scrub() -> None:
    assert scrub("token mdt_1 and mdt_1 again", ["mdt_1", ""]) == "token *** and *** again"
