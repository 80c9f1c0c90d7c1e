"""Token audit: every token of a set of users, and the rules each one breaks. No secret involved.

MotherDuck lists a token's metadata only (``id``, ``name``, ``token_type``, ``created_ts``,
``expire_at``), so an audit never sees a secret. The rules (:class:`AuditRules`), each off unless
asked for:

``expires_soon``
    ``expire_at`` is at most ``expiring_within`` away (an expired token, still listed, too).
``too_old``
    ``created_ts`` is more than ``max_age`` ago.
``never_expires``
    with ``require_expiry``: the token has no ``expire_at``.

A rule that needs a timestamp MotherDuck wrote in a form that cannot be read is not guessed: the
row names it under ``unchecked``.

Short-lived SQL session tokens (the hook mints them to act as a service account for one step;
:func:`~airflow_provider_motherduck.hooks.sql.session.is_session_token`) are no leftovers: an
expired one (past its ``expire_at``, or, unreadable, past ``created_ts`` plus their TTL) gets no
row at all, a live one a row with ``session=True`` that breaks no rule, since it expires by
itself within five minutes. :func:`judge_tokens` applies the rules (pure: given the tokens
and ``now``); :func:`audit_tokens` lists the tokens first, ``max_workers`` users at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from airflow_provider_motherduck.arguments import Check, check_bool, check_name_list, optional
from airflow_provider_motherduck.exceptions import MotherDuckNotFoundError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql.session import SESSION_TOKEN_TTL, is_session_token
from airflow_provider_motherduck.validation import check_username, parse_duration
from airflow_provider_motherduck.workflows.pool import HookFactory, run_on_pool
from airflow_provider_motherduck.workflows.tokens import parse_timestamp, token_metadata

log = logging.getLogger(__name__)

RULES: Final = ("expires_soon", "too_old", "never_expires")
DEFAULT_AUDIT_WORKERS: Final = 8
#: The argument checks of the rules; durations take every form a token's ``ttl`` takes.
RULE_CHECKS: dict[str, Check] = {
    "expiring_within": optional(parse_duration),
    "max_age": optional(parse_duration),
    "require_expiry": check_bool,
}
_ROW_KEYS = ("username", "id", "name", "token_type", "created_ts", "expire_at")


@dataclass(frozen=True)
class AuditRules:
    """Which rules apply: durations in seconds (``None``: that rule is off).

    :meth:`parse` reads durations in the forms a token's ``ttl`` takes (``"14 days"``, ``"P90D"``,
    seconds, a ``timedelta``).
    """

    expiring_within: float | None = None
    max_age: float | None = None
    require_expiry: bool = False

    @classmethod
    def parse(
        cls, *, expiring_within: Any = None, max_age: Any = None, require_expiry: Any = False
    ) -> AuditRules:
        """The rules from arguments as a DAG gives them; ``ValueError`` naming the field otherwise."""
        given = {"expiring_within": expiring_within, "max_age": max_age, "require_expiry": require_expiry}
        return cls(**{field: check(given[field], field) for field, check in RULE_CHECKS.items()})

    def judge(self, token: Mapping[str, Any], now: datetime) -> tuple[list[str], list[str]]:
        """The rules ``token`` breaks, and those its unreadable timestamps leave undecided."""
        breaks: list[str] = []
        unchecked: list[str] = []
        expire_at = token.get("expire_at") or None
        if self.expiring_within is not None and expire_at is not None:
            expires = parse_timestamp(expire_at)
            if expires is None:
                unchecked.append("expires_soon")
            elif (expires - now).total_seconds() <= self.expiring_within:
                breaks.append("expires_soon")
        if self.max_age is not None:
            created = parse_timestamp(token.get("created_ts"))
            if created is None:
                unchecked.append("too_old")
            elif (now - created).total_seconds() > self.max_age:
                breaks.append("too_old")
        if self.require_expiry and expire_at is None:
            breaks.append("never_expires")
        return breaks, unchecked


def session_token_expired(token: Mapping[str, Any], now: datetime) -> bool:
    """Whether a session token is past its ``expire_at`` (unreadable: past ``created_ts`` plus the
    session TTL; both unreadable: not known to be, so it stays in the audit)."""
    expires = parse_timestamp(token.get("expire_at") or None)
    if expires is None:
        created = parse_timestamp(token.get("created_ts"))
        if created is None:
            return False
        return (now - created).total_seconds() >= SESSION_TOKEN_TTL
    return expires <= now


def judge_tokens(
    tokens: Iterable[Mapping[str, Any]], rules: AuditRules, now: datetime
) -> list[dict[str, Any]]:
    """One audit row per token (each with its ``username``): its metadata, ``session``, ``breaks``
    and ``unchecked``.

    Pure: the same tokens, rules and ``now`` give the same rows. ``expire_at`` is ``None`` for a
    token that never expires. An expired SQL session token gets no row; a live one breaks no rule.
    """
    rows = []
    for token in tokens:
        session = is_session_token(str(token.get("name") or ""))
        if session and session_token_expired(token, now):
            continue
        breaks, unchecked = ([], []) if session else rules.judge(token, now)
        row = {key: token.get(key) for key in _ROW_KEYS}
        row["expire_at"] = row["expire_at"] or None
        rows.append({**row, "session": session, "breaks": breaks, "unchecked": unchecked})
    return rows


def check_usernames(value: Any, field: str) -> list[str]:
    """A list of existing users' names (or its JSON text), each checked, duplicates (ignoring case)
    dropped."""
    allowed = "a list of usernames (or its JSON text), or None for every active service account"
    return check_name_list(value, field, check_username, allowed)


def audited_users(hook: MotherDuckHook) -> list[str]:
    """The default audit: every active service account without the Admin role, by username.

    Humans and deprovisioned users hold no token the organisation's automation manages; Admins
    are left to their owners (name them in ``usernames`` to audit them too).
    """
    return [
        user["username"]
        for user in hook.list_users(service_accounts=True)
        if "admin" not in {str(role).lower() for role in user.get("roles") or ()}
    ]


def list_tokens_of(
    usernames: Sequence[str], new_hook: HookFactory, *, max_workers: int
) -> list[dict[str, Any]]:
    """The tokens of every user in ``usernames`` (metadata with ``username``), in that order.

    Lists ``max_workers`` users at a time, one hook per worker thread. A user deleted since it
    was named (404) is skipped. Any other error stops the listing and is raised once the threads
    in flight are done.
    """
    log.info("Listing the tokens of %d user(s), %d at a time.", len(usernames), max_workers)

    def tokens_of(hook: MotherDuckHook, username: str) -> list[dict[str, Any]]:
        try:
            return [token_metadata(token, username) for token in hook.list_tokens(username)]
        except MotherDuckNotFoundError:
            log.info("%s no longer exists: skipped.", username)
            return []

    listed, errors = run_on_pool(
        usernames, tokens_of, new_hook, max_workers=max_workers, name="md-audit", stops=lambda err: True
    )
    if errors:
        # Workers take users in order, so the first error in input order is the one that stopped
        # the pool; the users after it were skipped.
        raise errors[min(errors)]
    return [token for tokens in listed if tokens for token in tokens]


def audit_tokens(
    new_hook: HookFactory,
    rules: AuditRules,
    *,
    usernames: Sequence[str] | None = None,
    max_workers: int = DEFAULT_AUDIT_WORKERS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Audit the tokens of ``usernames`` (default: :func:`audited_users`) against ``rules``.

    ``new_hook`` makes the hooks (``MotherDuckHook`` itself for ``motherduck_default``). ``now``
    defaults to the time the listing is done. Returns ``{"tokens": [rows], "violations": [rows
    breaking a rule]}`` (rows of :func:`judge_tokens`).
    """
    if usernames is None:
        hook = new_hook()
        try:
            usernames = audited_users(hook)
        finally:
            hook.close()
    tokens = list_tokens_of(usernames, new_hook, max_workers=max_workers)
    rows = judge_tokens(tokens, rules, now or datetime.now(timezone.utc))
    return {"tokens": rows, "violations": [row for row in rows if row["breaks"]]}


def audit_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a fixed-width text table, for a task log: user, id, name, type, created,
    expires (``never``) and the rules broken (``-``: none; ``?rule``: undecided; ``session``: a
    live SQL session token, which expires by itself)."""
    header = ("username", "id", "name", "type", "created", "expires", "breaks")
    lines = [
        (
            str(row["username"]),
            str(row["id"]),
            str(row["name"]),
            str(row["token_type"]),
            str(row["created_ts"]),
            str(row["expire_at"] or "never"),
            ", ".join([*row["breaks"], *(f"?{rule}" for rule in row.get("unchecked", ()))])
            or ("session" if row.get("session") else "-"),
        )
        for row in rows
    ]
    return text_table(header, lines)


def text_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """Fixed-width columns, two spaces apart, for a task log (one record per line)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *lines)
    )


def describe_live_sessions(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """A log line on the live SQL session tokens among ``rows``, or ``None`` if there is none."""
    live = [row for row in rows if row.get("session")]
    if not live:
        return None
    return (
        f"{len(live)} live SQL session token(s) ("
        + ", ".join(f"{row['username']}: {row['id']}" for row in live)
        + f"): each is a short-lived session token a task minted to act as the account; it expires by "
        f"itself within {SESSION_TOKEN_TTL // 60} minutes and is no leftover."
    )


def describe_violations(violations: Sequence[Mapping[str, Any]]) -> str:
    """One line per token breaking a rule: user, id, name and the rules (never a secret)."""
    return "\n".join(
        f"  - {row['username']}: token {row['id']} ({row['name']!r}): {', '.join(row['breaks'])}"
        for row in violations
    )
