"""Apache Airflow provider for the MotherDuck admin REST API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

DEFAULT_API_URL = "https://api.motherduck.com"

_PACKAGE = "airflow_provider_motherduck"
_INTEGRATION = "MotherDuck"


#: The connection's extras as form fields (Airflow 3.2+ reads them declaratively).
CONN_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Seconds one attempt may take: connecting and the whole answer.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "retry_limit": {
        "label": "Retry limit",
        "description": "Retries after a throttled (429) or failed (5xx) call.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "retry_delay": {
        "label": "Retry delay (seconds)",
        "description": "First backoff delay; doubles on every retry, with jitter.",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "allow_insecure_http": {
        "label": "Allow plain http",
        "description": "Send the token over http:// to a remote host (not recommended).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "sql_transport": {
        "label": "SQL transport",
        "description": "How roles, shares and grants reach MotherDuck's SQL: duckdb (the motherduck "
        "extension, extra [duckdb]) or postgres (the Postgres endpoint, extra [postgres]).",
        "schema": {"type": ["string", "null"], "enum": ["duckdb", "postgres", None], "default": "duckdb"},
    },
    "postgres_host": {
        "label": "Postgres endpoint host",
        "description": "Host of MotherDuck's Postgres endpoint, e.g. pg.us-east-1-aws.motherduck.com "
        "(default: from the region). TLS is verified; plain TCP only to a loopback host.",
        "schema": {"type": ["string", "null"]},
    },
    "postgres_port": {
        "label": "Postgres endpoint port",
        "description": "Port of the Postgres endpoint (default 5432).",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
    },
    "region": {
        "label": "Region",
        "description": "The organisation's region (e.g. us-east-1-aws) when postgres_host is empty.",
        "schema": {"type": ["string", "null"]},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "API URL", "password": "Admin access token"},
    "placeholders": {"host": DEFAULT_API_URL, "password": "read/write token of an Admin user"},
}


def _modules(kind: str, *names: str) -> list[dict[str, Any]]:
    return [{"integration-name": _INTEGRATION, "python-modules": [f"{_PACKAGE}.{kind}.{n}" for n in names]}]


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (registration only, imports nothing)."""
    return {
        "package-name": "airflow-provider-motherduck",
        "name": "MotherDuck",
        "description": "Administer a MotherDuck organisation from Airflow: service accounts, access "
        "tokens, Duckling sizing, active accounts, and roles, shares, grants and databases over SQL.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://motherduck.com/docs/sql-reference/rest-api/motherduck-rest-api/",
                "tags": ["service"],
            }
        ],
        "operators": _modules(
            "operators",
            "users",
            "tokens",
            "ducklings",
            "accounts",
            "current_user",
            "rotation",
            "onboarding",
            "organisation",
            "reconcile",
            "access",
            "access_audit",
        ),
        "sensors": _modules("sensors", "accounts"),
        "hooks": _modules("hooks", "motherduck"),
        "triggers": _modules("triggers", "accounts"),
        "connection-types": [
            {
                "connection-type": "motherduck",
                "hook-class-name": f"{_PACKAGE}.hooks.motherduck.MotherDuckHook",
                "hook-name": "MotherDuck",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
