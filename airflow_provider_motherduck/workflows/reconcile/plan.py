"""The plan: the typed actions that bring what is there to the declaration, and the guards.

Pure: :func:`plan_reconcile` makes no request and reads no Variable. The invariants it keeps:

* It acts on a user, role or share only if the declaration declares it or owns it (:mod:`.state`):
  what is neither declared nor owned gets no action, whatever the options.
* ``prune`` deletes only owned accounts, drops only owned roles and shares, and revokes only owned
  tokens, role grants and share grants, each no longer declared; never a human user, a user holding
  the Admin role, a deprovisioned user, a name matching ``protect`` (case ignored), or a user whose
  listing is malformed (``roles`` not a list of strings, a flag not a boolean): such a user is
  spared, and the reason says which field.
* A share whose access, visibility, update or database differs from the declaration is replaced
  (dropped and made again: its URL changes, so the declared accounts that attach it attach it
  again) only if owned; a share the declaration does not own is never replaced, and the plan is
  refused instead.
* :meth:`ReconcilePlan.raise_if_unsafe` is the one check that stops before any write: a declared
  name taken by a human or deprovisioned user, a listing that saw fewer users than MotherDuck
  counts (a partial view would plan creates for accounts that exist), a declared share whose owner
  is not an active service account or that differs and is not owned, more deletes than allowed.

Usernames are compared folded; every action carries MotherDuck's spelling when the user exists.
Actions run in phases (:data:`PHASES`): roles, then accounts, then shares and their grants, then
attachments, then what prune takes away (grants, shares, accounts, roles, in that order).
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
    DeclaredOrgShare,
    DeclaredShare,
    DeclaredToken,
)
from airflow_provider_motherduck.workflows.reconcile.state import (
    AccountState,
    OrgState,
    OwnedPath,
    Ownership,
    share_key,
)

log = logging.getLogger(__name__)


# -- the actions ---------------------------------------------------------------------------------

#: When each action runs: roles first (accounts are granted them), then accounts, then shares and
#: their grants (grantees exist by then), then attachments (grants made by then), then what prune
#: takes away, grants before shares before accounts before roles.
ROLES, ACCOUNTS, SHARES, ATTACH, PRUNE_GRANTS, PRUNE_SHARES, PRUNE_USERS, PRUNE_ROLES = range(8)
PHASES: Final = (ROLES, ACCOUNTS, SHARES, ATTACH, PRUNE_GRANTS, PRUNE_SHARES, PRUNE_USERS, PRUNE_ROLES)


@dataclass(frozen=True)
class Action:
    """One step of a plan; each kind is a subclass with its own payload."""

    kind: ClassVar[str]
    destructive: ClassVar[bool] = False
    phase: ClassVar[int] = ACCOUNTS

    @property
    def acting(self) -> str | None:
        """The account it acts as (``None``: the connection's account)."""
        return None

    @property
    def subject(self) -> str:
        """What it acts on, for the log table."""
        raise NotImplementedError

    @property
    def group(self) -> str:
        """Actions of one group run in order in one thread (each group has its own SQL sessions)."""
        raise NotImplementedError

    @property
    def detail(self) -> str:
        """What it does, in words, for the log table; never a secret."""
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        """The kind's own fields, JSON-able."""
        return {}

    def forgets(self) -> tuple[OwnedPath, ...]:
        """What the ownership record drops once this is done (prune's actions only)."""
        return ()

    def as_dict(self) -> dict[str, Any]:
        """The XCom form: ``username`` is the account acted on or as (``None``: the connection's),
        ``subject`` what it acts on (as the log table shows it)."""
        return {
            "action": self.kind,
            "username": self.acting,
            "subject": self.subject,
            "detail": self.detail,
            **self.payload(),
        }


@dataclass(frozen=True)
class AccountAction(Action):
    """An action on one service account."""

    username: str

    @property
    def acting(self) -> str:
        return self.username

    @property
    def subject(self) -> str:
        return self.username

    @property
    def group(self) -> str:
        return self.username


@dataclass(frozen=True)
class CreateUser(AccountAction):
    kind: ClassVar[str] = "create_user"

    @property
    def detail(self) -> str:
        return "new service account"


@dataclass(frozen=True)
class AdoptUser(AccountAction):
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
class UpdateDucklingConfig(AccountAction):
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
class IssueToken(AccountAction):
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
class GrantRole(AccountAction):
    """Grant a role to the account (as the admin)."""

    kind: ClassVar[str] = "grant_role"
    role: str = ""

    @property
    def detail(self) -> str:
        return f"role {self.role}"

    def payload(self) -> dict[str, Any]:
        return {"role": self.role}


@dataclass(frozen=True)
class RevokeRole(GrantRole):
    """Prune: revoke an owned role the account no longer declares (as the admin)."""

    kind: ClassVar[str] = "revoke_role"
    destructive: ClassVar[bool] = True
    phase: ClassVar[int] = PRUNE_GRANTS

    @property
    def detail(self) -> str:
        return f"role {self.role}: no longer declared"

    def forgets(self) -> tuple[OwnedPath, ...]:
        return (("accounts", self.username, "roles", self.role),)


@dataclass(frozen=True)
class _ShareAction(AccountAction):
    share: DeclaredShare = field(kw_only=True)

    def payload(self) -> dict[str, Any]:
        return {"share": self.share.share, "owner": self.share.owner}


@dataclass(frozen=True)
class GrantShare(_ShareAction):
    """Let the account read a share: granted by the share's owner (the admin if it owns it)."""

    kind: ClassVar[str] = "grant_share"
    phase: ClassVar[int] = SHARES

    @property
    def group(self) -> str:
        return _owner_group(self.share.owner)

    @property
    def detail(self) -> str:
        return f"read on share {self.share.share} of {self.share.owner}"


@dataclass(frozen=True)
class AttachShare(_ShareAction):
    """Attach a share as the account itself (a short-lived session as it), under its alias;
    ``again``: detach what the alias holds first (the share was made again, its URL changed)."""

    kind: ClassVar[str] = "attach_share"
    phase: ClassVar[int] = ATTACH
    again: bool = False

    @property
    def detail(self) -> str:
        again = " again (the share was made again)" if self.again else ""
        return f"share {self.share.share} of {self.share.owner} as {self.share.alias!r}{again}"

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "alias": self.share.alias}


@dataclass(frozen=True)
class RevokeToken(AccountAction):
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

    def forgets(self) -> tuple[OwnedPath, ...]:
        return (("accounts", self.username, "tokens", self.pruned),) if self.pruned else ()

    def payload(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "token_name": self.token_name}


@dataclass(frozen=True)
class DeleteUser(AccountAction):
    """Revoke every token of an owned account no longer declared, then delete it."""

    kind: ClassVar[str] = "delete_user"
    destructive: ClassVar[bool] = True
    phase: ClassVar[int] = PRUNE_USERS

    @property
    def detail(self) -> str:
        return "owned, no longer declared: revoke its tokens, delete it"

    def forgets(self) -> tuple[OwnedPath, ...]:
        return (("accounts", self.username),)


# -- roles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleAction(Action):
    """An action on one custom role, as the connection's account."""

    phase: ClassVar[int] = ROLES
    role: str

    @property
    def subject(self) -> str:
        return f"role {self.role}"

    @property
    def group(self) -> str:
        return "roles"  # roles include one another: one thread, in plan order

    def payload(self) -> dict[str, Any]:
        return {"role": self.role}


@dataclass(frozen=True)
class CreateRole(RoleAction):
    kind: ClassVar[str] = "create_role"

    @property
    def detail(self) -> str:
        return "new custom role"


@dataclass(frozen=True)
class AdoptRole(RoleAction):
    """An existing role recorded as owned; no MotherDuck write."""

    kind: ClassVar[str] = "adopt_role"

    @property
    def detail(self) -> str:
        return "exists: recorded as owned"


@dataclass(frozen=True)
class IncludeRole(RoleAction):
    """Grant ``included`` to the role, so it holds what ``included`` holds."""

    kind: ClassVar[str] = "include_role"
    included: str = ""

    @property
    def detail(self) -> str:
        return f"includes {self.included}"

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "included": self.included}


@dataclass(frozen=True)
class ExcludeRole(IncludeRole):
    """Prune: revoke an owned inclusion no longer declared."""

    kind: ClassVar[str] = "exclude_role"
    destructive: ClassVar[bool] = True
    phase: ClassVar[int] = PRUNE_GRANTS

    @property
    def detail(self) -> str:
        return f"no longer includes {self.included}"

    def forgets(self) -> tuple[OwnedPath, ...]:
        return (("roles", self.role, "includes", self.included),)


@dataclass(frozen=True)
class DropRole(RoleAction):
    """Prune: drop an owned role no longer declared (whoever holds it loses it)."""

    kind: ClassVar[str] = "drop_role"
    destructive: ClassVar[bool] = True
    phase: ClassVar[int] = PRUNE_ROLES

    @property
    def detail(self) -> str:
        return "owned, no longer declared: dropped"

    def forgets(self) -> tuple[OwnedPath, ...]:
        return (("roles", self.role),)


# -- shares --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareAction(Action):
    """An action on one share, as its owner (``owner`` is MotherDuck's spelling)."""

    phase: ClassVar[int] = SHARES
    owner: str
    share: str

    @property
    def acting(self) -> str:
        return self.owner

    @property
    def subject(self) -> str:
        return f"share {self.owner}/{self.share}"

    @property
    def group(self) -> str:
        return _owner_group(self.owner)

    def payload(self) -> dict[str, Any]:
        return {"share": self.share, "owner": self.owner}


def _owner_group(owner: str) -> str:
    """The group of every action run as one share owner (one session as it)."""
    return f"shares of {fold_username(owner)}"


@dataclass(frozen=True)
class CreateShare(ShareAction):
    kind: ClassVar[str] = "create_share"
    declared: DeclaredOrgShare = field(kw_only=True, compare=False)

    @property
    def detail(self) -> str:
        d = self.declared
        include = "all tables" if d.include is None else f"include {', '.join(d.include) or 'nothing'}"
        return f"of database {d.database} ({d.access}, {d.visibility}, {d.update}; {include})"


@dataclass(frozen=True)
class ReplaceShare(CreateShare):
    """Drop an owned share whose options differ and make it again (its URL changes)."""

    kind: ClassVar[str] = "replace_share"
    destructive: ClassVar[bool] = True
    changes: tuple[FieldChange, ...] = ()

    @property
    def detail(self) -> str:
        changed = "; ".join(f"{c.field}: {c.before} -> {c.after}" for c in self.changes)
        return f"{changed}: dropped and made again (its URL changes)"

    def payload(self) -> dict[str, Any]:
        return {
            **super().payload(),
            "changes": {c.field: {"from": c.before, "to": c.after} for c in self.changes},
        }


@dataclass(frozen=True)
class AdoptShare(ShareAction):
    """An existing share recorded as owned; no MotherDuck write."""

    kind: ClassVar[str] = "adopt_share"

    @property
    def detail(self) -> str:
        return "exists: recorded as owned"


@dataclass(frozen=True)
class SetShareInclude(ShareAction):
    """Change which tables a share shows, in place (its URL stays)."""

    kind: ClassVar[str] = "set_share_include"
    include: tuple[str, ...] | None = None
    before: tuple[str, ...] | None = None

    @property
    def detail(self) -> str:
        def words(include: tuple[str, ...] | None) -> str:
            return "all tables" if include is None else ", ".join(include) or "nothing"

        return f"include: {words(self.before)} -> {words(self.include)}"

    def payload(self) -> dict[str, Any]:
        include = None if self.include is None else list(self.include)
        return {**super().payload(), "include": include}


@dataclass(frozen=True)
class GrantShareToRole(ShareAction):
    """Let a role read the share (granted by its owner)."""

    kind: ClassVar[str] = "grant_share_to_role"
    role: str = ""

    @property
    def detail(self) -> str:
        return f"read to role {self.role}"

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "role": self.role}


@dataclass(frozen=True)
class RevokeShare(ShareAction):
    """Prune: take back an owned read grant no longer declared (``grantee_type`` user or role)."""

    kind: ClassVar[str] = "revoke_share"
    destructive: ClassVar[bool] = True
    phase: ClassVar[int] = PRUNE_GRANTS
    grantee_type: str = "user"
    grantee: str = ""

    @property
    def detail(self) -> str:
        return f"read of {self.grantee_type} {self.grantee}: no longer declared"

    def forgets(self) -> tuple[OwnedPath, ...]:
        return (("shares", share_key(self.owner, self.share), f"{self.grantee_type}s", self.grantee),)

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "grantee_type": self.grantee_type, "grantee": self.grantee}


@dataclass(frozen=True)
class DropShare(ShareAction):
    """Prune: drop an owned share no longer declared (its readers' attachments break)."""

    kind: ClassVar[str] = "drop_share"
    destructive: ClassVar[bool] = True
    phase: ClassVar[int] = PRUNE_SHARES

    @property
    def detail(self) -> str:
        return "owned, no longer declared: dropped"

    def forgets(self) -> tuple[OwnedPath, ...]:
        return (("shares", share_key(self.owner, self.share)),)


#: Action kinds in the order the log table counts them.
ACTION_ORDER: Final[tuple[type[Action], ...]] = (
    CreateRole,
    AdoptRole,
    IncludeRole,
    CreateUser,
    AdoptUser,
    UpdateDucklingConfig,
    IssueToken,
    GrantRole,
    RevokeToken,
    CreateShare,
    AdoptShare,
    ReplaceShare,
    SetShareInclude,
    GrantShare,
    GrantShareToRole,
    AttachShare,
    RevokeRole,
    ExcludeRole,
    RevokeShare,
    DropShare,
    DeleteUser,
    DropRole,
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
    owns: tuple[OwnedPath, ...] = ()
    """What applying records as owned before any write: every declared account (MotherDuck's
    spelling) with its declared token names and roles, every declared role with its inclusions,
    every declared share with its grants."""

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
        rows = [("action", "subject", "what"), *((a.kind, a.subject, a.detail) for a in self.actions)]
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
    actions: list[Action] = _plan_roles(declaration, state, owned, prune=prune)
    share_actions, replaced, share_refusals = _plan_shares(declaration, state, owned, prune=prune)
    refusals += share_refusals
    spared: list[tuple[str, str]] = []
    for account in declaration.accounts:
        user = state.user(account.username)
        current = state.account(account.username)
        username = state.spelled(account.username)
        if user is None:
            actions.append(CreateUser(username))
        elif state.owned is not None and current is not None and not _all_owned(account, current, owned):
            held = tuple(n for n in current.delivered if n not in owned.tokens(username))
            actions.append(AdoptUser(username, held))
        actions += _plan_sizes(account, current, username)
        actions += _plan_tokens(account, current, username)
        actions += _plan_access(account, current, username, declaration, state, replaced)
        if prune and current is not None:
            pruned = _plan_undeclared_tokens(account, current, owned, username)
            pruned += _plan_undeclared_roles(account, current, owned, username)
            reason = _guarded(user, protect)
            if reason and pruned:
                kinds = Counter("role(s)" if isinstance(a, RevokeRole) else "token(s)" for a in pruned)
                what = " and ".join(f"{n} owned undeclared {kind}" for kind, n in kinds.items())
                spared.append((username, f"{what} kept: {reason}"))
            elif pruned:
                actions += pruned
    actions += share_actions
    if prune:
        declared = {a.key for a in declaration.accounts}
        for spelled in owned.names("accounts"):
            user = state.user(spelled)
            if fold_username(spelled) in declared or user is None:
                continue  # declared, or gone already
            reason = _guarded(user, protect)
            if reason:
                spared.append((str(user["username"]), f"owned, not declared, kept: {reason}"))
            else:
                actions.append(DeleteUser(str(user["username"])))
    listed = {key: s.tokens for key, s in state.accounts.items()}
    ordered = tuple(sorted(actions, key=lambda a: a.phase))  # stable: plan order within a phase
    return ReconcilePlan(
        declaration.name, ordered, tuple(spared), tuple(refusals), listed, _owns(declaration, state)
    )


def _owns(declaration: Declaration, state: OrgState) -> tuple[OwnedPath, ...]:
    """Everything the declaration declares, as the record names it (MotherDuck's spellings)."""
    paths: list[OwnedPath] = []
    for account in declaration.accounts:
        spelled = state.spelled(account.username)
        paths.append(("accounts", spelled))
        paths += [("accounts", spelled, "tokens", t.name) for t in account.tokens or ()]
        paths += [("accounts", spelled, "roles", r) for r in account.roles]
    for role in declaration.roles:
        paths.append(("roles", role.name))
        paths += [("roles", role.name, "includes", r) for r in role.includes]
    for share in declaration.shares:
        key = share_key(state.owner(share.owner), share.name)
        paths.append(("shares", key))
        paths += [("shares", key, "users", state.spelled(u)) for u in share.users]
        paths += [("shares", key, "roles", r) for r in share.roles]
    return tuple(paths)


def _plan_roles(declaration: Declaration, state: OrgState, owned: Ownership, *, prune: bool) -> list[Action]:
    """Create (or adopt) every declared role, then the inclusions they lack; with ``prune``, take
    back owned inclusions and drop owned roles no longer declared."""
    actions: list[Action] = []
    for role in declaration.roles:
        if role.name not in state.roles:
            actions.append(CreateRole(role.name))
        elif state.owned is not None and not owned.owns(role.name, "roles"):
            actions.append(AdoptRole(role.name))
    for role in declaration.roles:
        found = state.roles.get(role.name)
        have = frozenset(r.casefold() for r in found.included_roles) if found is not None else frozenset()
        actions += [IncludeRole(role.name, included=r) for r in role.includes if r not in have]
        if prune:
            gone = sorted(owned.items("roles", role.name, "includes") - set(role.includes))
            actions += [ExcludeRole(role.name, included=r) for r in gone if r in have]
    if prune:
        declared = {r.name for r in declaration.roles}
        actions += [DropRole(r) for r in owned.names("roles") if r not in declared and r in state.roles]
    return actions


def _plan_shares(
    declaration: Declaration, state: OrgState, owned: Ownership, *, prune: bool
) -> tuple[list[Action], frozenset[str], list[str]]:
    """The declared shares' actions, the folded keys of those made again, and why applying must be
    refused (an owner that cannot own, an unowned share that differs)."""
    actions: list[Action] = []
    replaced: set[str] = set()
    refusals: list[str] = []
    for declared in declaration.shares:
        owner = state.owner(declared.owner)
        key = share_key(owner, declared.name)
        if fold_username(owner) in state.missing_owners:
            refusals.append(
                f"the share {declared.name} is declared for the owner {owner}, which is not an active "
                "service account (create it first, or name another owner)"
            )
            continue
        found = state.share(owner, declared.name)
        is_owned = owned.owns(key, "shares")
        held: dict[str, frozenset[str]] = {"user": frozenset(), "role": frozenset()}
        if found is None:
            actions.append(CreateShare(owner, declared.name, declared=declared))
        else:
            changes = tuple(
                FieldChange(f, getattr(found.share, f), getattr(declared, f))
                for f in ("database", "access", "visibility", "update")
                if getattr(found.share, f) != getattr(declared, f)
            )
            if changes and not is_owned:
                differs = ", ".join(f"{c.field} {c.before} (declared {c.after})" for c in changes)
                refusals.append(
                    f"the share {declared.name} of {owner} has {differs} and the declaration does not own "
                    "it: it is not replaced (its readers' attachments would break). Align the "
                    "declaration, or drop the share so the declaration makes it"
                )
                continue
            if not is_owned and state.owned is not None:
                actions.append(AdoptShare(owner, declared.name))
            if changes:
                actions.append(ReplaceShare(owner, declared.name, declared=declared, changes=changes))
                replaced.add(fold_username(key))
            else:
                if found.share.include != declared.include:
                    actions.append(
                        SetShareInclude(owner, declared.name, declared.include, found.share.include)
                    )
                held = {"user": found.grantees("user"), "role": found.grantees("role")}
        actions += [
            GrantShare(state.spelled(u), share=DeclaredShare(declared.name, owner, declared.name))
            for u in declared.users
            if fold_username(u) not in held["user"]
        ]
        actions += [
            GrantShareToRole(owner, declared.name, role=r) for r in declared.roles if r not in held["role"]
        ]
        if prune:
            attaching = tuple(
                a.username
                for a in declaration.accounts
                if any(fold_username(share_key(s.owner, s.share)) == fold_username(key) for s in a.attach)
            )  # an account that attaches the share keeps its read
            for kind, part, wanted in (
                ("user", "users", declared.users + attaching),
                ("role", "roles", declared.roles),
            ):
                keep = {fold_username(n) for n in wanted}
                actions += [
                    RevokeShare(owner, declared.name, grantee_type=kind, grantee=name)
                    for name in sorted(owned.items("shares", key, part))
                    if fold_username(name) not in keep and fold_username(name) in held[kind]
                ]
    if prune:
        declared_keys = {fold_username(share_key(state.owner(d.owner), d.name)) for d in declaration.shares}
        for key in owned.names("shares"):
            owner, _, name = key.rpartition("/")
            if fold_username(key) not in declared_keys and state.share(owner, name) is not None:
                actions.append(DropShare(owner, name))
    return actions, frozenset(replaced), refusals


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


def _plan_access(
    account: DeclaredAccount,
    current: AccountState | None,
    username: str,
    declaration: Declaration,
    state: OrgState,
    replaced: frozenset[str],
) -> list[Action]:
    """What the declared roles and attachments lack (all of it for a new account); never a revoke.
    A share the declaration grants the account (itself, a role it declares, or the organisation)
    needs no grant of its own; a share made again is attached again."""
    access = current.access if current is not None else None
    actions: list[Action] = [
        GrantRole(username, role) for role in account.roles if access is None or role not in access.roles
    ]
    for share in account.attach:
        again = fold_username(share_key(share.owner, share.share)) in replaced
        reads = access is not None and access.reads(share) and not again
        if not reads and not _granted_by_declaration(account, share, declaration, state):
            actions.append(GrantShare(username, share=share))
        attached = access is not None and share.alias.casefold() in access.attached
        if again or not attached:
            actions.append(AttachShare(username, share=share, again=again and attached))
    return actions


def _granted_by_declaration(
    account: DeclaredAccount, share: DeclaredShare, declaration: Declaration, state: OrgState
) -> bool:
    key = fold_username(share_key(share.owner, share.share))
    for declared in declaration.shares:
        if fold_username(share_key(state.owner(declared.owner), declared.name)) == key:
            return (
                declared.access != "restricted"
                or account.key in {fold_username(u) for u in declared.users}
                or bool(set(declared.roles) & set(account.roles))
            )
    return False


def _plan_undeclared_roles(
    account: DeclaredAccount, current: AccountState, owned: Ownership, username: str
) -> list[Action]:
    """Revokes of the owned roles the account holds directly and no longer declares."""
    if current.access is None:
        return []
    gone = owned.items("accounts", username, "roles") - set(account.roles)
    return [RevokeRole(username, role) for role in sorted(gone) if role in current.access.roles]


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
