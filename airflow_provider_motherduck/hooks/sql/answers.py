"""The typed answers of the SQL hook methods: small frozen dataclasses built from result rows.

Rows are read leniently (MotherDuck's live values are uppercase where its docs say lowercase;
timestamps arrive as text or datetimes; lists as lists or JSON text): each ``from_row`` turns
what it gets into one spelling, lowercase for enums and text for times, so answers compare and
serialise alike over either transport. :func:`as_xcom` gives the JSON-able dict operators push.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _lower(value: Any) -> str:
    return str(value or "").lower()


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "t", "1")


def _names(value: Any) -> tuple[str, ...] | None:
    """A list of names from a list, JSON text or comma-separated text; ``None`` stays ``None``."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
        if isinstance(value, str):
            return tuple(p for p in value.split(",") if p)
    return None if value is None else tuple(str(v) for v in value)


def as_xcom(answer: Any) -> dict[str, Any]:
    """A dataclass answer as a JSON-able dict (tuples as lists)."""
    out: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(answer)))
    return out


@dataclass(frozen=True)
class Role:
    """A role: ``preset`` (admin, builder, explorer) or ``custom``, and the roles it includes."""

    name: str
    type: str
    included_roles: tuple[str, ...] = ()
    created_at: str | None = None
    #: Whether the call that answered created it.
    created: bool = field(default=False, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Role:
        return cls(
            name=str(row["role_name"]),
            type=_lower(row.get("role_type")),
            included_roles=_names(row.get("included_roles")) or (),
            created_at=_text(row.get("created_at")),
        )


@dataclass(frozen=True)
class RoleGrant:
    """A role held by a user or role: ``direct`` if granted to it, else through another role."""

    role: str
    type: str
    direct: bool
    granted_at: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RoleGrant:
        return cls(
            role=str(row["role_name"]),
            type=_lower(row.get("role_type")),
            direct=_flag(row.get("is_direct")),
            granted_at=_text(row.get("granted_at")),
        )


@dataclass(frozen=True)
class Share:
    """A share the session's account owns. ``include``: ``None`` shares the whole database.

    ``url`` (``md:_share/<database>/<token>``) is how readers attach it; for a hidden share open
    to the organisation it is all a reader needs, so treat it with care.
    """

    name: str
    database: str
    access: str
    visibility: str
    update: str
    url: str
    include: tuple[str, ...] | None = None
    created_at: str | None = None
    created: bool = field(default=False, compare=False)
    #: Whether the call that answered changed its include pattern in place.
    changed: bool = field(default=False, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Share:
        return cls(
            name=str(row["name"]),
            database=str(row.get("source_db_name") or ""),
            access=_lower(row.get("access")),
            visibility=_lower(row.get("visibility")),
            update=_lower(row.get("update")),
            url=str(row.get("url") or ""),
            include=_names(row.get("include_pattern")),
            created_at=_text(row.get("created_ts")),
        )


@dataclass(frozen=True)
class ShareGrant:
    """Who may read a share: ``grantee_type`` ``user``, ``role``, ``organization`` or ``domain``."""

    share_owner: str
    grantee: str
    grantee_type: str
    privilege: str
    granted_at: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ShareGrant:
        return cls(
            share_owner=str(row.get("share_owner") or ""),
            grantee=str(row["grantee_name"]),
            grantee_type=_lower(row.get("grantee_type")),
            privilege=_lower(row.get("privilege")),
            granted_at=_text(row.get("granted_at")),
        )


@dataclass(frozen=True)
class Attachment:
    """A database or share attached by the session's account, under ``alias``."""

    alias: str
    type: str
    name: str = ""
    created: bool = field(default=False, compare=False)

    @property
    def is_share(self) -> bool:
        """Whether it is an attached share (``type`` ``motherduck share``), not a database of the account."""
        return "share" in self.type

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Attachment:
        return cls(
            alias=str(row["alias"]),
            type=_lower(row.get("type")),
            name=str(row.get("fully_qualified_name") or ""),
        )


@dataclass(frozen=True)
class Database:
    """A database of the session's account: ``type`` ``default`` or ``ducklake``."""

    name: str
    type: str
    transient: bool = False
    uuid: str | None = None
    created_at: str | None = None
    created: bool = field(default=False, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Database:
        kind = _lower(row.get("type"))
        return cls(
            name=str(row["name"]),
            type="ducklake" if "ducklake" in kind else "default",
            transient=_flag(row.get("transient")),
            uuid=_text(row.get("uuid")),
            created_at=_text(row.get("created_ts")),
        )
