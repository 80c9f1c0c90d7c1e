"""The hook's SQL path: statements built in one module, run through one session over one of two transports.

operator -> hook method (:mod:`.admin`) -> statement builder (:mod:`.statements`) ->
:class:`~.session.SQLSession` (retry rule, error mapping, acting as a service account) ->
transport (:mod:`.transports`: DuckDB ``md:`` or the Postgres endpoint).
"""

from __future__ import annotations

from airflow_provider_motherduck.hooks.sql.answers import (
    Attachment,
    Database,
    Role,
    RoleGrant,
    Share,
    ShareGrant,
    as_xcom,
)
from airflow_provider_motherduck.hooks.sql.session import (
    SESSION_TOKEN_PREFIX,
    SESSION_TOKEN_TTL,
    SQLSession,
    is_session_token,
    session_token_name,
)

__all__ = [
    "SESSION_TOKEN_PREFIX",
    "SESSION_TOKEN_TTL",
    "Attachment",
    "Database",
    "Role",
    "RoleGrant",
    "SQLSession",
    "Share",
    "ShareGrant",
    "as_xcom",
    "is_session_token",
    "session_token_name",
]
