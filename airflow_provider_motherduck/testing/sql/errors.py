"""SQL errors as the emulator's Postgres endpoint sends them: a SQLSTATE and DuckDB's message text.

The texts follow the facts file (sections 3 to 7) where it records them; where it does not, the
DuckDB shape (``<Kind> Error: ...``) is assumed, and the function says so.
"""

from __future__ import annotations

# SQLSTATEs (PostgreSQL's codes; MotherDuck's endpoint's own mapping is not documented).
SYNTAX = "42601"
UNDEFINED_OBJECT = "42704"
INVALID_CATALOG = "3D000"
DUPLICATE_OBJECT = "42710"
PERMISSION = "42501"
NOT_SUPPORTED = "0A000"
INVALID_PARAMETER = "22023"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
PROTOCOL_VIOLATION = "08P01"
INTERNAL = "XX000"


class SqlError(Exception):
    """An ErrorResponse: ``sqlstate``, ``message`` and ``severity`` (FATAL ends the session)."""

    def __init__(self, sqlstate: str, message: str, *, severity: str = "ERROR") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.severity = severity


def parser_error(near: str) -> SqlError:
    """DuckDB's ``Parser Error: syntax error at or near "..."``."""
    return SqlError(SYNTAX, f'Parser Error: syntax error at or near "{near}"')


def not_supported(statement: str) -> SqlError:
    """A statement the emulator does not play (the client's "unsupported" test matches it)."""
    words = " ".join(statement.split()[:3])
    return SqlError(
        NOT_SUPPORTED,
        f"Not implemented Error: {words} ... is not supported by the MotherDuck emulator's Postgres endpoint",
    )


def catalog_missing(message: str) -> SqlError:
    """A ``Catalog Error`` for something that does not exist (the facts' not-found family)."""
    return SqlError(UNDEFINED_OBJECT, f"Catalog Error: {message}")


def catalog_exists(kind: str, name: str) -> SqlError:
    """Assumed text (facts, section 11: no live "already exists" text recorded): DuckDB's shape."""
    return SqlError(DUPLICATE_OBJECT, f'Catalog Error: {kind} with name "{name}" already exists!')


def no_database(name: str, action: str = "attach") -> SqlError:
    """The facts' ``Failed to attach 'x': no database/share named 'x' found`` (section 6)."""
    return SqlError(INVALID_CATALOG, f"Failed to {action} '{name}': no database/share named '{name}' found")


def share_missing(name: str) -> SqlError:
    """The facts' ``Catalog Error: Database share <name> not found`` (section 5)."""
    return catalog_missing(f"Database share {name} not found")


def user_missing(name: str) -> SqlError:
    """The facts' ``Catalog Error: Unable to find user <name>`` (section 5)."""
    return catalog_missing(f"Unable to find user {name}")


def permission(message: str) -> SqlError:
    """Assumed text (not in the facts): ``Permission Error: <who may do it>``."""
    return SqlError(PERMISSION, f"Permission Error: {message}")


def plan_limit(feature: str) -> SqlError:
    """The access-control guide's plan sentence (facts, sections 3 and 4), as a Permission Error."""
    return permission(f"{feature} require a MotherDuck Business plan or an active free trial")


def invalid(message: str) -> SqlError:
    """DuckDB's ``Invalid Input Error``."""
    return SqlError(INVALID_PARAMETER, f"Invalid Input Error: {message}")
