"""One XCom vocabulary: each operator returns the keys of one table, and the docs' table says the same.

``XCOM_KEYS`` is that table for the tests; ``docs/reference/xcom.rst`` is the users'. Every
operator that returns a mapping is run here against the emulator (each way that changes its
keys), and its keys are compared with the table, never with a pasted dict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, cast

import pytest

from airflow_provider_motherduck import operators
from airflow_provider_motherduck._compat import BaseOperator, Context
from airflow_provider_motherduck.operators import (
    MotherDuckAccessAuditOperator,
    MotherDuckAttachShareOperator,
    MotherDuckBulkOnboardOperator,
    MotherDuckCreateDatabaseOperator,
    MotherDuckCreateDiveEmbedSessionOperator,
    MotherDuckCreateRoleOperator,
    MotherDuckCreateShareOperator,
    MotherDuckCreateTokenOperator,
    MotherDuckCreateUserOperator,
    MotherDuckDeleteUserOperator,
    MotherDuckDetachShareOperator,
    MotherDuckDropDatabaseOperator,
    MotherDuckDropRoleOperator,
    MotherDuckDropShareOperator,
    MotherDuckGrantRoleOperator,
    MotherDuckGrantShareOperator,
    MotherDuckOffboardAccountOperator,
    MotherDuckOnboardAccountOperator,
    MotherDuckReconcileOperator,
    MotherDuckRevokeRoleOperator,
    MotherDuckRevokeShareOperator,
    MotherDuckRevokeTokenOperator,
    MotherDuckRotateTokenOperator,
    MotherDuckSetShareIncludeOperator,
    MotherDuckTokenAuditOperator,
)
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.support import REPO_ROOT

# The SQL operators run over the emulator's Postgres endpoint (``sql_conn``); the REST ones use
# the same connection's API URL.
pytestmark = pytest.mark.usefixtures("sql_conn", "motherduck_variables")

DOC = REPO_ROOT / "docs" / "reference" / "xcom.rst"


@dataclass(frozen=True)
class Keys:
    """The keys an operator's XCom always has, and those only some arguments add."""

    always: frozenset[str]
    sometimes: frozenset[str] = field(default_factory=frozenset)


def keys(always: str, sometimes: str = "") -> Keys:
    return Keys(frozenset(always.split()), frozenset(sometimes.split()))


#: The vocabulary, per operator as the docs' table names it in its last column.
XCOM_KEYS: dict[str, Keys] = {
    "create user": keys("username created"),
    "delete user": keys("username deleted"),
    "create token": keys("username token", "secret"),
    "revoke token": keys("username revoked_ids", "variables_deleted"),
    "rotate token": keys(
        "username token_name destination dry_run token created revoked_ids kept_ids in_grace_ids spared_ids still_live_ids"
    ),
    "onboard account": keys(
        "username created duckling_config token token_created other_token_ids "
        "granted_roles granted_shares attached_aliases"
    ),
    "bulk onboard": keys(
        "account_count created_usernames token_created_usernames token_ids "
        "granted_roles granted_shares attached_aliases"
    ),
    "offboard account": keys("username revoked_ids deleted variables_deleted", "access"),
    "access audit": keys("accounts shares violations missing_shares"),
    "reconcile": keys(
        "name mode prune plan deletes spared unsafe adopted_usernames", "done failed not_attempted"
    ),
    "token audit": keys("tokens violations"),
    "create Dive embed session": keys("dive_id username session_name destination"),
    "create role": keys("role created"),
    "drop role": keys("role deleted"),
    "grant role": keys("role grantee grantee_type granted"),
    "revoke role": keys("role grantee grantee_type revoked"),
    "create share": keys("share database access visibility update include created_at url username created"),
    "set share include": keys(
        "share database access visibility update include created_at url username changed"
    ),
    "drop share": keys("share username deleted"),
    "grant share": keys("share username grantee grantee_type granted"),
    "revoke share": keys("share username grantee grantee_type revoked"),
    "attach share": keys("username alias created"),
    "detach share": keys("username alias deleted"),
    "create database": keys("database username created"),
    "drop database": keys("database username deleted"),
}

#: Every SQL run's account owns the databases ``orders`` (shared as ``s``, granted to the reader)
#: and ``spare``; the reader is the other side of the grants.
READER = "vocab_reader"


def declaration(username: str) -> dict[str, Any]:
    token = {"name": "airflow", "ttl": "90 days", "variable_key": f"md_{username}"}
    return {"name": "vocab", "service_accounts": [{"username": username, "tokens": [token]}]}


def share_url(emulator: MotherDuckEmulator, user: str) -> str:
    """A share of ``user``'s ``orders``, granted to the reader: its URL."""
    created = execute(MotherDuckCreateShareOperator(task_id="t", share="s", database="orders", as_user=user))
    execute(MotherDuckGrantShareOperator(task_id="t", share="s", to_user=READER, as_user=user))
    return str(created["url"])


#: Each way of running an operator that changes which keys it returns, by its name in the table.
RUNS: list[tuple[str, Callable[[str], BaseOperator]]] = [
    ("create user", lambda user: MotherDuckCreateUserOperator(task_id="t", username="vocab_new")),
    ("delete user", lambda user: MotherDuckDeleteUserOperator(task_id="t", username=user)),
    ("create token", lambda user: MotherDuckCreateTokenOperator(task_id="t", username=user, token_name="n")),
    (
        "create token",
        lambda user: MotherDuckCreateTokenOperator(
            task_id="t", username=user, token_name="n", return_secret=True
        ),
    ),
    (
        "revoke token",
        lambda user: MotherDuckRevokeTokenOperator(
            task_id="t", username=user, token_name="n", missing_ok=True
        ),
    ),
    (
        "revoke token",
        lambda user: MotherDuckRevokeTokenOperator(
            task_id="t", username=user, token_name="n", missing_ok=True, variable_key=f"md_{user}"
        ),
    ),
    (
        "rotate token",
        lambda user: MotherDuckRotateTokenOperator(
            task_id="t", username=user, token_name="airflow", ttl="35 days", variable_key=f"md_{user}"
        ),
    ),
    (
        "onboard account",
        lambda user: MotherDuckOnboardAccountOperator(
            task_id="t", username=user, token_name="airflow", variable_key=f"md_{user}"
        ),
    ),
    (
        "bulk onboard",
        lambda user: MotherDuckBulkOnboardOperator(
            task_id="t", accounts=[{"username": user, "token_name": "airflow", "variable_key": "md_vocab"}]
        ),
    ),
    ("offboard account", lambda user: MotherDuckOffboardAccountOperator(task_id="t", username=user)),
    (
        "reconcile",
        lambda user: MotherDuckReconcileOperator(task_id="t", desired=declaration(user), mode="plan"),
    ),
    (
        "reconcile",
        lambda user: MotherDuckReconcileOperator(task_id="t", desired=declaration(user), mode="apply"),
    ),
    (
        "reconcile",  # an account that exists and is not yet owned: the plan adopts it
        lambda user: MotherDuckReconcileOperator(
            task_id="t",
            desired={"name": "vocab_adopt", "service_accounts": [{"username": user}]},
            mode="apply",
        ),
    ),
    ("token audit", lambda user: MotherDuckTokenAuditOperator(task_id="t")),
    (
        "create Dive embed session",
        lambda user: MotherDuckCreateDiveEmbedSessionOperator(
            task_id="t", dive_id="dive-1", username=user, variable_key="md_embed"
        ),
    ),
]


#: The SQL operators, each built from the run's account (the owner) and what ``prepare`` made.
SQL_RUNS: list[tuple[str, Callable[[str, str], BaseOperator]]] = [
    ("access audit", lambda user, url: MotherDuckAccessAuditOperator(task_id="t")),
    (
        "offboard account",
        lambda user, url: MotherDuckOffboardAccountOperator(task_id="t", username=user, report_access=True),
    ),
    ("create role", lambda user, url: MotherDuckCreateRoleOperator(task_id="t", role=f"r_{user}")),
    ("drop role", lambda user, url: MotherDuckDropRoleOperator(task_id="t", role=f"r_{user}")),
    (
        "grant role",
        lambda user, url: MotherDuckGrantRoleOperator(task_id="t", role="vocab_role", to_user=user),
    ),
    (
        "revoke role",
        lambda user, url: MotherDuckRevokeRoleOperator(task_id="t", role="vocab_role", from_user=READER),
    ),
    (
        "create share",
        lambda user, url: MotherDuckCreateShareOperator(
            task_id="t", share=f"s_{user}", database="orders", as_user=user
        ),
    ),
    (
        "set share include",
        lambda user, url: MotherDuckSetShareIncludeOperator(
            task_id="t", share="s", include=["main.orders"], as_user=user
        ),
    ),
    ("drop share", lambda user, url: MotherDuckDropShareOperator(task_id="t", share="s", as_user=user)),
    (
        "grant share",
        lambda user, url: MotherDuckGrantShareOperator(
            task_id="t", share="s", to_role="vocab_role", as_user=user
        ),
    ),
    (
        "revoke share",
        lambda user, url: MotherDuckRevokeShareOperator(
            task_id="t", share="s", from_user=READER, as_user=user
        ),
    ),
    (
        "attach share",
        lambda user, url: MotherDuckAttachShareOperator(
            task_id="t", url=url, alias=f"a_{user}", as_user=READER
        ),
    ),
    (
        "detach share",
        lambda user, url: MotherDuckDetachShareOperator(task_id="t", alias=f"a_{user}", as_user=READER),
    ),
    (
        "create database",
        lambda user, url: MotherDuckCreateDatabaseOperator(task_id="t", database="staging", as_user=user),
    ),
    (
        "drop database",
        lambda user, url: MotherDuckDropDatabaseOperator(task_id="t", database="spare", as_user=user),
    ),
]


def execute(op: BaseOperator) -> Any:
    """Render and execute ``op`` as a scheduled run would (rotation names its token after the run)."""
    context = cast(
        Context,
        {
            "params": {},
            "run_id": "scheduled__vocab",
            "logical_date": datetime(2025, 1, 6, tzinfo=timezone.utc),
        },
    )
    op.render_template_fields(context)
    return op.execute(context)


#: The keys whose value is a bool.
FLAGS = {
    "created",
    "deleted",
    "adopted",
    "granted",
    "revoked",
    "changed",
    "token_created",
    "dry_run",
    "prune",
}
TOKEN_METADATA = {"id", "name", "token_type", "expire_at", "created_ts", "read_only", "username"}


def keeps_to_the_rules(key: str, value: Any) -> bool:
    """The vocabulary's rules for ``value`` under ``key``."""
    if key in FLAGS:
        return isinstance(value, bool)
    if key.endswith("_ids") or key.endswith("_usernames"):
        strings = value.values() if key == "token_ids" else value
        return isinstance(value, dict if key == "token_ids" else list) and all(
            isinstance(v, str) for v in strings
        )
    if key == "token":
        return value is None or set(value) == TOKEN_METADATA
    return True


def documented() -> dict[str, set[str]]:
    """The docs' table: each operator's name to the keys documented as returned by it."""
    rows: list[list[str]] = []
    for line in DOC.read_text().split(".. list-table::", 1)[1].splitlines()[4:]:  # past the options
        if line.startswith("   * - "):
            rows.append([line[7:]])
        elif line.startswith("     - "):
            rows[-1].append(line[7:])
        elif line.startswith("       ") and rows:
            rows[-1][-1] += " " + line.strip()
        elif line and not line.startswith(" "):
            break
    table: dict[str, set[str]] = {}
    for key_cell, _type, _meaning, returned_by in rows[1:]:  # past the header
        for name in re.sub(r"\([^)]*\)", "", returned_by).split(","):
            if name.strip():
                table.setdefault(name.strip(), set()).update(re.findall(r"``(\w+)``", key_cell))
    return table


def test_the_docs_table_documents_every_key_of_every_operator() -> None:
    assert documented() == {name: set(k.always | k.sometimes) for name, k in XCOM_KEYS.items()}


#: Operators whose XCom is MotherDuck's data (a list, a config), documented on their own pages.
RETURN_MOTHERDUCKS_DATA = {
    "MotherDuckCurrentUserOperator",
    "MotherDuckGetDucklingConfigOperator",
    "MotherDuckListActiveAccountsOperator",
    "MotherDuckListTokensOperator",
    "MotherDuckListUsersOperator",
    "MotherDuckSetDucklingConfigOperator",
}


def test_every_operator_returns_the_keys_of_the_table(emulator: MotherDuckEmulator) -> None:
    seen: dict[str, set[str]] = {}
    ran: set[str] = set()

    def execute_one(op: BaseOperator) -> Any:
        ran.add(type(op).__name__)
        return execute(op)

    def check(name: str, result: Any) -> None:
        assert isinstance(result, Mapping), name
        expected = XCOM_KEYS[name]
        assert expected.always <= set(result) <= expected.always | expected.sometimes, (name, sorted(result))
        seen.setdefault(name, set()).update(result)
        assert [key for key, value in result.items() if not keeps_to_the_rules(key, value)] == [], name

    emulator.add_user(READER)
    execute(MotherDuckCreateRoleOperator(task_id="t", role="vocab_role"))
    for i, (name, build) in enumerate(RUNS):
        user = f"vocab_{i}"  # every run starts from an account of its own, holding a token
        emulator.add_user(user)
        emulator.add_token(user, "n")
        check(name, execute_one(build(user)))
    for i, (name, build_sql) in enumerate(SQL_RUNS):
        user = f"vocab_sql_{i}"  # an owner of its own, with a share granted to the reader
        emulator.add_user(user)
        emulator.add_database(user, "orders", tables={"orders": 1})
        emulator.add_database(user, "spare", tables={"t": 1})
        url = share_url(emulator, user)
        if name == "drop role":
            execute(MotherDuckCreateRoleOperator(task_id="t", role=f"r_{user}"))
        if name == "detach share":
            execute(MotherDuckAttachShareOperator(task_id="t", url=url, alias=f"a_{user}", as_user=READER))
        if name == "revoke role":
            execute(MotherDuckGrantRoleOperator(task_id="t", role="vocab_role", to_user=READER))
        check(name, execute_one(build_sql(user, url)))
    # Every key of the table showed up (no key documented that no run returns).
    assert seen == {name: set(k.always | k.sometimes) for name, k in XCOM_KEYS.items()}
    # Every operator the package exports ran here, or returns MotherDuck's data.
    exported = {name for name in operators.__all__ if name.endswith("Operator")}
    assert exported - RETURN_MOTHERDUCKS_DATA == ran
