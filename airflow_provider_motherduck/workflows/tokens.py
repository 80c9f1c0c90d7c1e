"""What a listed or created token says: its XCom form, its timestamps, whether it has expired."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pendulum


def token_metadata(token: Mapping[str, Any], username: str) -> dict[str, Any]:
    """The JSON-able XCom form of a token: its metadata and owner, never the secret."""
    return {
        "id": token.get("id"),
        "name": token.get("name"),
        "token_type": token.get("token_type"),
        "expire_at": token.get("expire_at") or None,
        "created_ts": token.get("created_ts"),
        "read_only": token.get("read_only"),
        "username": username,
    }


def parse_timestamp(value: Any) -> datetime | None:
    """An API timestamp (ISO-8601, ``Z`` or offset; naive means UTC), or ``None`` if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:  # any other ISO-8601 spelling
            parsed = pendulum.parse(value)
        except (ValueError, TypeError):
            return None
        if not isinstance(parsed, datetime):
            return None
        when = parsed
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def is_expired(token: Mapping[str, Any], now: datetime) -> bool:
    """Whether ``expire_at`` has passed; an unreadable one counts as live (MotherDuck still lists it)."""
    expire_at = parse_timestamp(token.get("expire_at"))
    return expire_at is not None and expire_at <= now
