"""The plan: the typed actions that bring what is there to the declaration, and the guards.

Pure: :func:`plan_reconcile` makes no request and reads no Variable. The invariants it keeps:

* It acts on a user only if the declaration declares it or owns it (:mod:`.state`): an account
  neither declared nor owned gets no action, whatever the options.
* ``prune`` deletes only owned accounts no longer declared, and revokes only tokens of owned names
  no longer declared; never a human user, a user holding the Admin role, a deprovisioned user, a
  name matching ``protect`` (case ignored), or a user whose listing is malformed (``roles`` not a
  list of strings, a flag not a boolean): such a user is spared, and the reason says which field.
* :meth:`ReconcilePlan.raise_if_unsafe` is the one check that stops before any write: a declared
  name taken by a human or deprovisioned user, a listing that saw fewer users than MotherDuck
  counts (a partial view would plan creates for accounts that exist), more deletes than allowed.

Usernames are compared folded; every action carries MotherDuck's spelling when the user exists.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, ClassVar, Final

from airflow_provider_motherduck.exceptions import MotherDuckReconcileError
from airflow_provider_motherduck.validation import DUCKLING_FIELDS, fold_username, merge_duckling_config
from airflow_provider_motherduck.workflows.naming import name_pattern
from airflow_provider_motherduck.workflows.reconcile.declaration import (
    Declaration,
    DeclaredAccount,
    DeclaredShare,
    DeclaredToken,
)
from airflow_provider_motherduck.workflows.reconcile.state import AccountState, OrgState, Ownership

log = logging.getLogger(__name__)


# -- the actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One step of a plan on one account; each kind is a subclass with its own payload."""

    kind: ClassVar[str]
    destructive: ClassVar[bool] = False
    username: str

    @property
    def detail(self) -> str:
        """What it does, in words, for the log table; never a secret."""
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        """The kind's own fields, JSON-able."""
        return {}

    def as_dict(self) -> dict[str, Any]:
        """The XCom form."""
        return {"action": self.kind, "username": self.username, "detail": self.detail, **self.payload()}


@dataclass(frozen=True)
class CreateUser(Action):
    kind: ClassVar[str] = "create_user"

    @property
    def detail(self) -> str:
        return "new service account"


@dataclass(frozen=True)
class AdoptUser(Action):
    """An existing account (and tokens its destinations hold) recorded as owned; no MotherDuck write."""

    kind: ClassVar[str] = "adopt_user"
    token_names: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        tokens = f" with token(s) {', '.join(self.token_names)}" if self.token_names else ""
        return f"exists: recorded as owned{tokens}"

    def payload(self) -> dict[str, Any]:
        return {"token_names": list(self.token_names)}


@dataclass(frozen=True)
class FieldChange:
    """One Duckling field: ``half.key``, its value before (``None``: unknown) and after."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class UpdateDucklingConfig(Action):
    kind: ClassVar[str] = "update_duckling_config"
    changes: tuple[FieldChange, ...] = ()
    read_write: Mapping[str, Any] | None = field(default=None, compare=False)
    read_scaling: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def detail(self) -> str:
        return "; ".join(
            f"{c.field}: {'?' if c.before is None else c.before} -> {'default' if c.after is None else c.after}"
            for c in self.changes
        )

    def payload(self) -> dict[str, Any]:
        return {"changes": {c.field: {"from": c.before, "to": c.after} for c in self.changes}}


@dataclass(frozen=True)
class IssueToken(Action):
    """A new token through ``issue_token``, which also revokes the ``replaces`` an earlier try left."""

    kind: ClassVar[str] = "issue_token"
    token: DeclaredToken = field(compare=False, repr=False, kw_only=True)
    replaces: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        t = self.token
        replaces = f"; revokes {len(self.replaces)} left by an earlier try" if self.replaces else ""
        return f"{t.name} ({t.token_type}, {_ttl_words(t.ttl)}) -> {t.destination.describe()}{replaces}"

    def payload(self) -> dict[str, Any]:
        return {
            "token_name": self.token.name,
            "token_type": self.token.token_type,
            "destination": self.token.destination.describe(),
        }


@dataclass(frozen=True)
class GrantRole(Action):
    """Grant a role to the account (as the admin)."""

    kind: ClassVar[str] = "grant_role"
    role: str = ""

    @property
    def detail(self) -> str:
        return f"role {self.role}"

    def payload(self) -> dict[str, Any]:
        return {"role": self.role}


@dataclass(frozen=True)
class _ShareAction(Action):
    share: DeclaredShare = field(kw_only=True)

    def payload(self) -> dict[str, Any]:
        return {"share": self.share.share, "owner": self.share.owner}


@dataclass(frozen=True)
class GrantShare(_ShareAction):
    """Let the account read a share: granted by the share's owner (the admin if it owns it)."""

    kind: ClassVar[str] = "grant_share"

    @property
    def detail(self) -> str:
        return f"read on share {self.share.share} of {self.share.owner}"


@dataclass(frozen=True)
class AttachShare(_ShareAction):
    """Attach a share as the account itself (a short-lived session as it), under its alias."""

    kind: ClassVar[str] = "attach_share"

    @property
    def detail(self) -> str:
        return f"share {self.share.share} of {self.share.owner} as {self.share.alias!r}"

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "alias": self.share.alias}


@dataclass(frozen=True)
class RevokeToken(Action):
    """Revoke one token: a leftover nobody holds, or (``pruned``) one of an owned name no longer declared."""

    kind: ClassVar[str] = "revoke_token"
    destructive: ClassVar[bool] = True
    token_id: str = ""
    token_name: str = ""
    pruned: str | None = None
    """The owned token name it prunes (removed from the record once revoked); ``None``: a leftover."""

    @property
    def detail(self) -> str:
        why = "no longer declared" if self.pruned else "an earlier try made it, nobody holds its secret"
        return f"{self.token_name} (id {self.token_id}): {why}"

    def payload(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "token_name": self.token_name}


@dataclass(frozen=True)
class DeleteUser(Action):
    """Revoke every token of an owned account no longer declared, then delete it."""

    kind: ClassVar[str] = "delete_user"
    destructive: ClassVar[bool] = True

    @property
    def detail(self) -> str:
        return "owned, no longer declared: revoke its tokens, delete it"


#: Action kinds in the order one account's are applied.
ACTION_ORDER: Final[tuple[type[Action], ...]] = (
    CreateUser,
    AdoptUser,
    UpdateDucklingConfig,
    IssueToken,
    GrantRole,
    GrantShare,
    AttachShare,
    RevokeToken,
    DeleteUser,
)


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcilePlan:
    """What applying would do, what pruning spares and why, and what makes it unsafe."""

    name: str
    """The declaration's name (its ownership record)."""
    actions: tuple[Action, ...]
    spared: tuple[tuple[str, str], ...] = ()
    """``(username, reason)`` of accounts or tokens pruning leaves alone."""
    refusals: tuple[str, ...] = ()
    """Why no write may be made from this plan (see :meth:`raise_if_unsafe`)."""
    listed: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict, repr=False)
    """The tokens listed per account, by folded username (issue_token is handed them)."""
    owns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """What applying records as owned before any write: every declared account (MotherDuck's
    spelling) with its declared token names."""

    @property
    def deletes(self) -> int:
        """How many revokes and user deletions it holds."""
        return sum(a.destructive for a in self.actions)

    def as_list(self) -> list[dict[str, Any]]:
        return [a.as_dict() for a in self.actions]

    def unsafe(self, max_deletes: int | None) -> list[str]:
        """Every reason this plan must not be applied (empty: safe)."""
        reasons = list(self.refusals)
        if max_deletes is not None and self.deletes > max_deletes:
            reasons.append(
                f"the plan revokes or deletes {self.deletes} thing(s), more than max_deletes={max_deletes}. "
                "Check the declaration (is an account or token missing from it?), protect what must stay, "
                "or raise max_deletes"
            )
        return reasons

    def raise_if_unsafe(self, max_deletes: int | None, summary: Mapping[str, Any] | None = None) -> None:
        """The one guard before any write: raise naming every reason :meth:`unsafe` finds."""
        reasons = self.unsafe(max_deletes)
        if reasons:
            raise MotherDuckReconcileError(
                "Refusing to write: " + "; ".join(reasons) + ".",
                {"plan": self.as_list(), "deletes": self.deletes, "unsafe": reasons, **(summary or {})},
            )

    def table(self) -> str:
        """The plan as a readable table (the task log shows it)."""
        if not self.actions:
            return "No changes: MotherDuck matches the declaration."
        rows = [("action", "username", "what"), *((a.kind, a.username, a.detail) for a in self.actions)]
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows]
        lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 4}")
        counts = Counter(a.kind for a in self.actions)
        lines.append(
            f"{len(self.actions)} action(s): "
            + ", ".join(f"{counts[k.kind]} {k.kind}" for k in ACTION_ORDER if counts[k.kind])
        )
        return "\n".join(lines)


def malformed(user: Mapping[str, Any]) -> str | None:
    """The field of a listed user that is not what MotherDuck documents, or ``None``."""
    roles = user.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        return "roles"
    for flag in ("is_service_account", "is_deprovisioned"):
        if not isinstance(user.get(flag), bool):
            return flag
    return None


def _guarded(user: Mapping[str, Any] | None, protect: Sequence[str]) -> str | None:
    """Why pruning must leave this user (or its tokens) alone, or ``None``."""
    if user is None:
        return None
    bad = malformed(user)
    if bad is not None:
        log.warning(
            "Not pruning %s: its listing's %r is malformed (%r).", user.get("username"), bad, user.get(bad)
        )
        return f"malformed {bad} in the listing"
    if not user["is_service_account"]:
        return "a human user"
    if user["is_deprovisioned"]:
        return "deprovisioned"
    if any(r.lower() == "admin" for r in user["roles"]):
        return "Admin role"
    username = fold_username(str(user.get("username")))
    if any(fnmatchcase(username, fold_username(p)) for p in protect):
        return "protected"
    return None


def _ttl_words(seconds: int | None) -> str:
    if seconds is None:
        return "never expires"
    days, rest = divmod(seconds, 86_400)
    return f"ttl {days} days" if not rest else f"ttl {seconds} s"


def plan_reconcile(
    declaration: Declaration, state: OrgState, *, prune: bool = False, protect: Sequence[str] = ()
) -> ReconcilePlan:
    """The actions that bring ``state`` to ``declaration`` (pure: no request, no Variable)."""
    owned = state.owned or Ownership(declaration.name)
    refusals: list[str] = []
    if state.partial:
        refusals.append(state.partial + "; re-run once the organisation is still")
    clashes = []
    for account in declaration.accounts:
        user = state.user(account.username)
        if user is not None and (
            user.get("is_service_account") is not True or user.get("is_deprovisioned") is not False
        ):
            what = (
                "a human user" if user.get("is_service_account") is not True else "deprovisioned or malformed"
            )
            clashes.append(f"{user.get('username')} ({what})")
    if clashes:
        refusals.append(
            "declared service account(s) taken by users that cannot be one: "
            + ", ".join(clashes)
            + ". Rename them in the declaration"
        )
    actions: list[Action] = []
    spared: list[tuple[str, str]] = []
    for account in declaration.accounts:
        user = state.user(account.username)
        current = state.account(account.username)
        username = str(user["username"]) if user is not None else account.username
        if user is None:
            actions.append(CreateUser(username))
        elif state.owned is not None and current is not None and not _all_owned(account, current, owned):
            held = tuple(n for n in current.delivered if n not in owned.tokens(username))
            actions.append(AdoptUser(username, held))
        actions += _plan_sizes(account, current, username)
        actions += _plan_tokens(account, current, username)
        actions += _plan_access(account, current, username)
        if prune and current is not None:
            pruned = _plan_undeclared_tokens(account, current, owned, username)
            reason = _guarded(user, protect)
            if reason and pruned:
                spared.append((username, f"{len(pruned)} owned undeclared token(s) kept: {reason}"))
            elif pruned:
                actions += pruned
    if prune:
        declared = {a.key for a in declaration.accounts}
        for key, (spelled, _) in sorted(owned.accounts.items()):
            user = state.user(spelled)
            if key in declared or user is None:
                continue  # declared, or gone already
            reason = _guarded(user, protect)
            if reason:
                spared.append((str(user["username"]), f"owned, not declared, kept: {reason}"))
            else:
                actions.append(DeleteUser(str(user["username"])))
    listed = {key: s.tokens for key, s in state.accounts.items()}
    owns = {
        str((state.user(a.username) or {"username": a.username})["username"]): tuple(
            t.name for t in a.tokens or ()
        )
        for a in declaration.accounts
    }
    return ReconcilePlan(declaration.name, tuple(actions), tuple(spared), tuple(refusals), listed, owns)


def _all_owned(account: DeclaredAccount, current: AccountState, owned: Ownership) -> bool:
    return owned.owns(account.username) and all(
        n in owned.tokens(account.username) for n in current.delivered
    )


def _plan_sizes(account: DeclaredAccount, current: AccountState | None, username: str) -> list[Action]:
    if not account.sizes_declared:
        return []
    wanted = {"read_write": account.read_write, "read_scaling": account.read_scaling}
    if current is None or current.config is None:  # a new user: its defaults are MotherDuck's
        changes = [
            FieldChange(f"{h}.{k}", None, v) for h, part in wanted.items() for k, v in (part or {}).items()
        ]
    else:
        before = merge_duckling_config(current.config)
        after = merge_duckling_config(current.config, **wanted)
        changes = [
            FieldChange(f"{h}.{k}", before[h].get(k), after[h].get(k))
            for h in DUCKLING_FIELDS
            for k in DUCKLING_FIELDS[h]
            if before[h].get(k) != after[h].get(k)
        ]
    if not changes:
        return []
    return [UpdateDucklingConfig(username, tuple(changes), account.read_write, account.read_scaling)]


def _plan_tokens(account: DeclaredAccount, current: AccountState | None, username: str) -> list[Action]:
    actions: list[Action] = []
    for token in account.tokens or ():
        leftovers = current.leftovers.get(token.name, ()) if current is not None else ()
        if current is None or token.name not in current.delivered:
            actions.append(IssueToken(username, leftovers, token=token))
            continue  # issue_token revokes the leftovers once the new secret is delivered
        actions += [RevokeToken(username, token_id, token.name) for token_id in leftovers]
    return actions


def _plan_access(account: DeclaredAccount, current: AccountState | None, username: str) -> list[Action]:
    """What the declared roles and shares lack (all of it for a new account); never a revoke."""
    access = current.access if current is not None else None
    actions: list[Action] = [
        GrantRole(username, role) for role in account.roles if access is None or role not in access.roles
    ]
    actions += [
        GrantShare(username, share=s) for s in account.shares if access is None or not access.reads(s)
    ]
    actions += [
        AttachShare(username, share=s)
        for s in account.shares
        if access is None or s.alias.casefold() not in access.attached
    ]
    return actions


def _plan_undeclared_tokens(
    account: DeclaredAccount, current: AccountState, owned: Ownership, username: str
) -> list[Action]:
    """Revokes of the tokens of owned names the account no longer declares (with ``tokens`` listed)."""
    if account.tokens is None:
        return []
    declared = {t.name for t in account.tokens}
    families = {name: name_pattern(name) for name in owned.tokens(username) - declared}
    return [
        RevokeToken(username, str(t.get("id")), str(t.get("name")), pruned=name)
        for t in current.tokens
        for name, family in sorted(families.items())
        if family.fullmatch(str(t.get("name", "")))
    ]
