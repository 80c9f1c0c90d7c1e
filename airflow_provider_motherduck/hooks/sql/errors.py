"""From a SQL client's error text to the provider's exceptions, and the retry rule's transient texts.

MotherDuck's SQL errors carry no codes, only texts (DuckDB's ``Catalog Error: ...``, or the
same text through the Postgres endpoint). The texts below come from MotherDuck's own Terraform
provider (facts, sections 1, 3, 5 and 6). Where a text is not known (live "already exists",
"permission" and plan messages), the common wordings are matched and the assumption is said.
Invariant: no token ever reaches a message; :func:`scrub` removes one before anything here sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

from airflow_provider_motherduck.exceptions import (
    MotherDuckPlanLimitError,
    MotherDuckSQLError,
    MotherDuckSQLExistsError,
    MotherDuckSQLNotFoundError,
    MotherDuckSQLPermissionError,
    MotherDuckSQLUnsupportedError,
)
from airflow_provider_motherduck.hooks.sql.statements import Statement

#: The retry rule's texts (facts, section 1): only these failures are worth another attempt.
TRANSIENT_TEXTS = (
    "deadline_exceeded",
    "unavailable",
    "request timed out",
    "failed to connect to all addresses",
    "network is unreachable",
)
NOT_FOUND_TEXTS = ("does not exist", "not found", "no database/share named", "unable to find user")
EXISTS_TEXTS = ("already exists", "already attached", "duplicate")  # assumed: no live text recorded
PERMISSION_TEXTS = (
    "permission",
    "not allowed",
    "not authorized",
    "unauthorized",
    "forbidden",
    "access denied",
    "privilege",
    "must be owner",
    "password authentication failed",
    "invalid token",
)
PLAN_TEXTS = ("business plan", "free trial", "invalid config for tier", "upgrade your plan")
UNSUPPORTED_TEXTS = (
    "syntax error",
    "parser error",
    "not implemented",
    "unrecognized",
    "unsupported",
    "not supported",
)

OTHER_TRANSPORT = {"duckdb": "postgres", "postgres": "duckdb"}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def is_transient(text: str) -> bool:
    """Whether a failure's text is one that the retry rule retries (for reads, drops and revokes)."""
    lowered = text.lower()
    return any(t in lowered for t in TRANSIENT_TEXTS)


def _who_may(statement: Statement) -> str:
    label = statement.label
    if "ROLE" in label:
        return "Managing roles and role grants needs an Admin (role administration permissions)."
    if "SHARE" in label and label != "CREATE SHARE":
        return (
            "Share grants and dropping a share run as the share's owner: pass as_user=<owner> "
            "(a service account) or use the owner's connection."
        )
    if label in ("ATTACH", "DETACH"):
        return (
            "Attaching runs as the account itself with its read/write token: pass as_user=<account> "
            "(a read-scaling token cannot attach a share for the first time)."
        )
    return "The session's account may not do this: use an Admin's token or the owner's (as_user=)."


def map_error(statement: Statement, transport: str, text: str) -> MotherDuckSQLError:
    """The provider's exception for a failed ``statement``, from the client's (scrubbed) ``text``."""
    lowered = text.lower()
    shown = statement.shown
    if (
        "table function with name" in lowered
        or "scalar function with name" in lowered
        or any(t in lowered for t in UNSUPPORTED_TEXTS)
    ):
        # A missing MotherDuck function (md_list_share_grantees, ...) is a client that lacks it,
        # not a missing object: it must not read as "not found".
        return MotherDuckSQLUnsupportedError(
            text,
            shown,
            transport,
            f"{statement.label} is not supported over the {transport} transport: set the connection "
            f"extra sql_transport to {OTHER_TRANSPORT.get(transport, 'duckdb')!r} "
            "(DuckDB with the motherduck extension is MotherDuck's complete client).",
        )
    if any(t in lowered for t in PLAN_TEXTS):
        return MotherDuckPlanLimitError(
            text,
            shown,
            transport,
            "Custom roles and filtered shares (include patterns) need a MotherDuck Business plan or an "
            "active free trial.",
        )
    if any(t in lowered for t in PERMISSION_TEXTS):
        return MotherDuckSQLPermissionError(text, shown, transport, _who_may(statement))
    if any(t in lowered for t in NOT_FOUND_TEXTS):
        advice = (
            "Grant to a service account's username: a personal token's email, a session name or "
            "md_user() may not be grantable."
            if "unable to find user" in lowered
            else ""
        )
        return MotherDuckSQLNotFoundError(text, shown, transport, advice)
    if any(t in lowered for t in EXISTS_TEXTS):
        return MotherDuckSQLExistsError(text, shown, transport)
    return MotherDuckSQLError(text, shown, transport)
