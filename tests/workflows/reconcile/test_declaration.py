"""The declaration's schema check: every problem at once, each once, with its path and a short
excerpt; one "declared twice" rule (usernames folded); files; the declaration's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_motherduck.workflows.reconcile import Declaration, check_declaration
from tests.workflows.reconcile.conftest import DESIRED


def problems(value: object) -> list[str]:
    with pytest.raises(ValueError, match=r"problem\(s\) in the declaration") as caught:
        check_declaration(value)
    return str(caught.value).splitlines()[1:]


def test_every_problem_is_reported_once_with_its_path() -> None:
    found = problems(
        {
            "name": "analytics",
            "service_accounts": [
                {"username": "ok_bot", "tokens": [{"name": "a", "variable_key": "k1"}]},
                {"username": "1bad", "read_write": {"instance_size": "huge"}, "colour": "red"},
                {"username": "b", "read_scaling": {"flock_size": 99}},
                {
                    "username": "c",
                    "tokens": [
                        {"name": "t", "ttl": "1 second", "variable_key": "k2"},
                        {"name": "u"},
                        {"name": "v", "secret_sink": "vault"},
                        {"name": "w", "variable_key": "k1"},
                    ],
                },
            ],
        }
    )
    expected = (
        "service_accounts[1].colour='red' is invalid: unknown key",
        "service_accounts[1].username='1bad'",
        "service_accounts[1].read_write.instance_size='huge'",
        "service_accounts[2].read_scaling.flock_size=99",
        "service_accounts[3].tokens[0].ttl='1 second'",
        "service_accounts[3].tokens[1]=",
        "service_accounts[3].tokens[2].secret_sink='vault'",
        "service_accounts[3].tokens[2].record_key",
    )
    for path in expected:
        assert sum(path in line for line in found) == 1, (path, found)
    # account 3 has problems, so its k1 is not also reported as "declared twice": no knock-on
    assert len(found) == len(expected)


def test_an_unknown_key_gets_the_closest_known_one_suggested() -> None:
    (line,) = problems({"name": "x", "service_accounts": [{"username": "a", "tokns": []}]})
    assert "service_accounts[0].tokns=[] is invalid: unknown key (did you mean 'tokens'?)" in line
    (line,) = problems({"name": "x", "service_account": []})
    assert "(did you mean 'service_accounts'?)" in line


def test_a_value_is_shown_as_a_short_excerpt() -> None:
    huge = {
        "name": "x",
        "service_accounts": [
            {"username": "a", "tokens": [{"name": "t", "variable_key": "k", "extra": "y" * 5000}]}
        ],
    }
    (line,) = problems(huge)
    assert len(line) < 300
    assert "..." in line


def test_usernames_are_declared_twice_whatever_their_case_and_each_duplicate_once() -> None:
    found = problems(
        {
            "name": "x",
            "service_accounts": [
                {
                    "username": "etl_loader",
                    "tokens": [{"name": "t", "variable_key": "k"}, {"name": "t", "variable_key": "j"}],
                },
                {"username": "ETL_Loader"},
                {"username": "b", "tokens": [{"name": "t", "variable_key": "k"}]},
            ],
        }
    )
    assert found == [
        "  - service_accounts[1].username='ETL_Loader' is invalid: username declared twice (also at "
        "service_accounts[0].username). Allowed: each username once.",
        "  - service_accounts[0].tokens[1].name='t' is invalid: token name of etl_loader declared twice "
        "(also at service_accounts[0].tokens[0].name). Allowed: each token name of etl_loader once.",
        "  - service_accounts[2].tokens[0].variable_key='k' is invalid: Variable key declared twice "
        "(also at service_accounts[0].tokens[0].variable_key). Allowed: each Variable key once.",
    ]


def test_the_name_is_required_and_must_not_make_airflow_mask_the_record() -> None:
    (line,) = problems({"service_accounts": []})
    assert "name=None is invalid: missing" in line
    (line,) = problems({"name": "team_tokens", "service_accounts": []})
    assert "contains 'token'" in line
    assert (
        check_declaration({"name": "analytics-prod.v2", "service_accounts": []}).name == "analytics-prod.v2"
    )


def test_files_json_and_yaml_and_sinks_by_name(tmp_path: Path) -> None:
    yaml_file = tmp_path / "org.yaml"
    yaml_file.write_text(
        "name: analytics\n"
        "service_accounts:\n"
        "  - username: etl_loader\n"
        "    tokens:\n"
        "      - {name: airflow, ttl: 90 days, secret_sink: vault, record_key: md_etl_record}\n"
    )
    json_file = tmp_path / "org.json"
    json_file.write_text(json.dumps(DESIRED))
    kept: list[str] = []
    from_yaml = check_declaration(str(yaml_file), secret_sinks={"vault": kept.append})
    (token,) = from_yaml.accounts[0].tokens or ()
    assert (token.name, token.ttl, token.destination.secret_sink) == ("airflow", 90 * 86400, kept.append)
    assert [a.username for a in check_declaration(json_file).accounts] == [
        "etl_loader",
        "bi_dashboards",
        "ml_features",
    ]
    with pytest.raises(ValueError, match="cannot be read"):
        check_declaration(str(tmp_path / "missing.yaml"))
    (line,) = problems("name: x\naccounts: []")
    assert "accounts=[] is invalid: unknown key (did you mean 'service_accounts'?)" in line


def test_a_declaration_finds_its_accounts_whatever_the_case() -> None:
    declared = check_declaration(DESIRED)
    assert isinstance(declared, Declaration)
    assert declared.account("BI_Dashboards") is declared.accounts[1]
    assert declared.account("nobody") is None


def test_roles_and_shares_are_checked_with_every_problem_and_its_path() -> None:
    account = {
        "username": "bi_reader",
        "roles": "analysts",
        "attach": [{"share": "orders_share", "owner": " sales_owner", "alais": "o"}, {"owner": "x"}],
    }
    with pytest.raises(ValueError, match="4 problem") as info:
        check_declaration({"name": "readers", "service_accounts": [account]})
    problems = [p.split(" is invalid")[0] for p in str(info.value).splitlines()[1:]]
    assert problems == [
        "  - service_accounts[0].roles='analysts'",
        "  - service_accounts[0].attach[0].alais='o'",
        "  - service_accounts[0].attach[0].owner=' sales_owner'",
        "  - service_accounts[0].attach[1].share=None",
    ]
    ok = check_declaration(
        {"name": "readers", "service_accounts": [{**account, "roles": ["analysts"], "attach": []}]}
    )
    assert (ok.accounts[0].roles, ok.accounts[0].attach) == (("analysts",), ())


def test_top_level_roles_and_shares_are_checked_with_every_problem_and_its_path() -> None:
    org = {
        "name": "sales",
        "roles": [
            "sales_readers",
            {"name": "aa_b", "includes": ["bbb"]},
            {"name": "bbb", "includes": ["aa_b"]},  # a circle
            "Admin",
            "explorer",  # a preset role: never made or dropped
            "sales_readers",
        ],
        "shares": [
            {"name": "s", "database": "db", "access": "organization", "grants": {"users": ["a"]}},
            {"name": "t", "database": "d.b", "acess": "restricted"},
            {"name": "u"},
            {"name": "v", "database": "db"},
            {"name": "V", "database": "db"},  # v of the same owner: declared twice
        ],
    }
    with pytest.raises(ValueError, match="10 problem") as info:
        check_declaration(org)
    problems = [p.split(" is invalid")[0] for p in str(info.value).splitlines()[1:]]
    assert problems == [
        "  - roles[3].name='Admin'",
        "  - roles[4].name='explorer'",
        "  - roles[5].name='sales_readers'",
        "  - roles[1].includes=['bbb']",
        "  - roles[2].includes=['aa_b']",
        "  - shares[0].grants={'users': ['a']}",
        "  - shares[1].acess='restricted'",
        "  - shares[1].database='d.b'",
        "  - shares[2].database=None",
        "  - shares[4]='V of the connection'",
    ]
    ok = check_declaration(
        {"name": "sales", "roles": ["sales_readers"], "shares": [{"name": "s", "database": "db"}]}
    )
    assert (ok.roles[0].includes, ok.shares[0].owner, ok.shares[0].access, ok.shares[0].include) == (
        (),
        None,
        "restricted",
        None,
    )
