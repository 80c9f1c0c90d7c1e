"""What the active-accounts sensor and trigger wait for: their arguments and the one matching rule.

Both import from here, so a poke in a worker and a poll in the triggerer decide alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from airflow_provider_motherduck.arguments import is_literal
from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.validation import check_username

DUCKLING_TYPES: Final = ("read_write", "read_scaling")
DUCKLING_STATUSES: Final = ("active", "cooldown")
MATCH_MODES: Final = ("any", "all")

_USERNAMES_ALLOWED = (
    "None (any account), a username, a list of usernames, or a comma-separated or JSON-list string "
    "of usernames"
)
_COLLECTIONS = (list, tuple, set, frozenset)


def check_usernames_at_parse_time(usernames: Any) -> None:
    """Check what can be checked before rendering: literal names, types, emptiness.

    Jinja strings and values Airflow resolves at run time (``XComArg``) are left for
    :func:`normalize_usernames`, which runs after rendering.
    """
    if isinstance(usernames, _COLLECTIONS):
        if not usernames:
            raise invalid("usernames", usernames, "it is empty", _USERNAMES_ALLOWED)
        for item in usernames:
            if is_literal(item):
                check_username(item, "usernames")
    elif usernames is not None and is_literal(usernames):
        normalize_usernames(usernames)


def normalize_usernames(usernames: Any) -> tuple[str, ...] | None:
    """The rendered ``usernames`` as a tuple of valid names without repeats, or ``None`` for any."""
    if usernames is None:
        return None
    if isinstance(usernames, str):
        text = usernames.strip()
        if text.startswith("["):
            try:
                items: list[Any] = json.loads(text)
            except ValueError:
                raise invalid("usernames", usernames, "not a JSON list", _USERNAMES_ALLOWED) from None
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    elif isinstance(usernames, _COLLECTIONS):
        items = sorted(usernames) if isinstance(usernames, (set, frozenset)) else list(usernames)
    else:
        raise invalid(
            "usernames", usernames, f"unsupported type {type(usernames).__name__}", _USERNAMES_ALLOWED
        )
    if not isinstance(items, list) or not items:
        raise invalid("usernames", usernames, "it names no user", _USERNAMES_ALLOWED)
    names = [check_username(item, "usernames") for item in items]
    return tuple(dict.fromkeys(names))


def normalize_statuses(statuses: Any) -> tuple[str, ...]:
    """``statuses`` as a tuple in canonical order; a single string counts as one status."""
    allowed = "a non-empty subset of " + ", ".join(DUCKLING_STATUSES)
    items = [statuses] if isinstance(statuses, str) else statuses
    if not isinstance(items, _COLLECTIONS) or not items:
        raise invalid("statuses", statuses, "expected a non-empty list of statuses", allowed)
    unknown = [s for s in items if s not in DUCKLING_STATUSES]
    if unknown:
        raise invalid("statuses", statuses, f"unknown status {unknown[0]!r}", allowed)
    return tuple(s for s in DUCKLING_STATUSES if s in items)


class Outcome(NamedTuple):
    """One look at the active accounts: done or not, the matching accounts, and who is awaited."""

    done: bool
    accounts: list[dict[str, Any]]
    waiting_for: list[str]


@dataclass(frozen=True)
class AccountsQuery:
    """Which accounts and Ducklings count, and what state ends the wait. Build it with :meth:`build`."""

    usernames: tuple[str, ...] | None
    duckling_type: str | None
    statuses: tuple[str, ...]
    match: str
    expect_active: bool

    @classmethod
    def build(
        cls,
        usernames: Any = None,
        duckling_type: Any = None,
        statuses: Any = ("active",),
        match: Any = "any",
        expect_active: Any = True,
    ) -> AccountsQuery:
        """Validate every argument (``usernames`` as rendered); raise ValueError naming the field."""
        names = normalize_usernames(usernames)
        return cls(names, *check_options(names is None, duckling_type, statuses, match, expect_active))

    def evaluate(self, accounts: Iterable[Mapping[str, Any]]) -> Outcome:
        """Decide on the answer of ``list_active_accounts``.

        A matching account is one of ``usernames`` (any account if ``None``) with a Duckling of
        ``duckling_type`` (any if ``None``) in one of ``statuses``; it is returned with those
        Ducklings only. ``expect_active=True``: done when one (``match="any"``) or every
        (``match="all"``) named account matches. ``expect_active=False``: done when none does.
        """
        wanted = set(self.usernames) if self.usernames is not None else None
        matching: list[dict[str, Any]] = []
        for account in accounts:
            if not isinstance(account, Mapping):
                continue
            name = account.get("username")
            if not isinstance(name, str) or (wanted is not None and name not in wanted):
                continue
            ducklings = [
                dict(d)
                for d in account.get("ducklings") or []
                if isinstance(d, Mapping)
                and d.get("status") in self.statuses
                and (self.duckling_type is None or d.get("type") == self.duckling_type)
            ]
            if ducklings:
                matching.append({"username": name, "ducklings": ducklings})
        found = [a["username"] for a in matching]
        if not self.expect_active:
            return Outcome(not matching, matching, found)
        if self.match == "all" and self.usernames is not None:
            missing = [n for n in self.usernames if n not in found]
            return Outcome(not missing, matching, missing)
        return Outcome(bool(matching), matching, [] if matching else list(self.usernames or ["any account"]))

    def describe(self) -> str:
        """The wait in words, for logs."""
        who = ", ".join(self.usernames) if self.usernames is not None else "any account"
        kind = f"{self.duckling_type} " if self.duckling_type else ""
        state = "/".join(self.statuses)
        if not self.expect_active:
            return f"no {kind}Duckling {state} for {who}"
        scope = "every one of" if self.match == "all" and self.usernames is not None else "one of"
        return f"a {kind}Duckling {state} for {scope} {who}"


def check_options(
    any_account: bool, duckling_type: Any, statuses: Any, match: Any, expect_active: Any
) -> tuple[str | None, tuple[str, ...], str, bool]:
    """Validate the arguments other than ``usernames`` (``any_account``: ``usernames`` is None)."""
    if duckling_type is not None and duckling_type not in DUCKLING_TYPES:
        raise invalid(
            "duckling_type",
            duckling_type,
            "unknown Duckling type",
            "None (any), " + " or ".join(DUCKLING_TYPES),
        )
    checked_statuses = normalize_statuses(statuses)
    if match not in MATCH_MODES:
        raise invalid("match", match, "unknown match mode", " or ".join(MATCH_MODES))
    if match == "all" and any_account:
        raise invalid(
            "match", match, "'all' needs usernames to name the accounts", "'any' when usernames=None"
        )
    if not isinstance(expect_active, bool):
        raise invalid(
            "expect_active",
            expect_active,
            f"expected a bool, got {type(expect_active).__name__}",
            "True or False",
        )
    return duckling_type, checked_statuses, match, expect_active
