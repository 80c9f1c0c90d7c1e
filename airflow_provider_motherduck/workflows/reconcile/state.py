"""What is there: the organisation as listed, and what a declaration owns.

Reading only: nothing here writes to MotherDuck. The one write is the ownership record, an Airflow
Variable per declaration name (``motherduck_owned_<name>``; JSON, no secret, shown in the UI)::

    {"kind": "motherduck-ownership", "declaration": "analytics",
     "accounts": {"etl_loader": {"tokens": ["airflow"], "roles": ["sales_readers"]}},
     "roles": {"sales_readers": {"includes": ["explorer"]}},
     "shares": {"sales_owner/sales_share": {"users": ["etl_loader"], "roles": ["sales_readers"]}}}

It lists what the declaration created or adopted: service accounts with the token names it issued
and the roles it granted them, custom roles with the roles it made them include, and shares (by
owner) with the grants it made on them. Prune acts only on what it lists, so an account, token,
role, share or grant it does not list is never touched. The invariants, under any interleaving of
runs (Airflow Variables have no compare-and-set, so two writers' read-merge-writes may lose one
another's update):

* A name is added before the write that creates, grants or adopts it (:func:`own`), so a crash
  after a create cannot leave anything the record does not list.
* A lost update can only drop names from the record: the record then *forgets* them, and what is
  forgotten is never pruned, which is the safe direction. Each apply adds again everything it
  declares, so the next apply of a declaration restores what a lost update dropped.
* A name is removed (:func:`disown`) only after MotherDuck confirmed its deletion or revoke.

Usernames are compared folded (:func:`~airflow_provider_motherduck.validation.fold_username`) and
kept in MotherDuck's spelling.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from airflow_provider_motherduck.exceptions import (
    MotherDuckNotFoundError,
    MotherDuckReconcileError,
    MotherDuckSQLNotFoundError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.hooks.sql.answers import Attachment, Role, Share, ShareGrant
from airflow_provider_motherduck.validation import fold_username
from airflow_provider_motherduck.workflows.delivery import VariableStore
from airflow_provider_motherduck.workflows.naming import name_pattern
from airflow_provider_motherduck.workflows.pool import HookFactory, run_on_pool
from airflow_provider_motherduck.workflows.reconcile.declaration import (
    Declaration,
    DeclaredAccount,
    DeclaredShare,
)

log = logging.getLogger(__name__)

#: The ownership record's key: this and the declaration's name.
OWNED_PREFIX: Final = "motherduck_owned_"
_KIND: Final = "motherduck-ownership"
# Read-merge-writes of one process take turns; between processes a lost update only forgets.
_RECORD_LOCK = threading.Lock()


# -- the ownership record ------------------------------------------------------------------------


#: An owned thing, ``(section, name)``, or one name it owns, ``(section, name, part, item)``:
#: ``("accounts", "etl_loader", "tokens", "airflow")``, ``("shares", "sales_owner/s", "users", "bot")``.
OwnedPath = tuple[str, ...]
SECTIONS: Final = ("accounts", "roles", "shares")


def share_key(owner: str, share: str) -> str:
    """A share's name in the record: its owner and its name (``sales_owner/sales_share``)."""
    return f"{owner}/{share}"


@dataclass(frozen=True)
class Ownership:
    """What a declaration owns: per section, folded name -> (its spelling, owned names per part)."""

    name: str
    entries: Mapping[tuple[str, str], tuple[str, Mapping[str, frozenset[str]]]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return OWNED_PREFIX + self.name

    def owns(self, name: str, section: str = "accounts") -> bool:
        return (section, fold_username(name)) in self.entries

    def names(self, section: str) -> list[str]:
        """The owned names of a section, as spelled, sorted."""
        return sorted(spelled for (sec, _), (spelled, _) in self.entries.items() if sec == section)

    def items(self, section: str, name: str, part: str) -> frozenset[str]:
        """The names owned under one entry (empty if the entry is not owned)."""
        return self.entries.get((section, fold_username(name)), ("", {}))[1].get(part, frozenset())

    def tokens(self, username: str) -> frozenset[str]:
        """The token names owned for that account (empty if the account is not owned)."""
        return self.items("accounts", username, "tokens")

    def dumps(self) -> str:
        data: dict[str, Any] = {"kind": _KIND, "declaration": self.name}
        for section in SECTIONS:
            entries = {
                spelled: {
                    **({"tokens": []} if section == "accounts" else {}),  # every account lists its tokens
                    **{part: sorted(names) for part, names in sorted(parts.items())},
                }
                for (sec, _), (spelled, parts) in sorted(self.entries.items())
                if sec == section
            }
            if entries or section == "accounts":
                data[section] = entries
        return json.dumps(data, sort_keys=True)

    @classmethod
    def parse(cls, name: str, text: str | None) -> Ownership:
        """The record's content; absent: owns nothing. A record that cannot be read stops the
        run (guessing could prune what another run owns, or forget what this one does)."""
        if text is None:
            return cls(name)
        try:
            data = json.loads(text)
            if not isinstance(data["accounts"], Mapping):  # every record has its accounts
                raise TypeError
            entries = {
                (section, fold_username(str(spelled))): (
                    str(spelled),
                    {str(part): frozenset(str(n) for n in names) for part, names in parts.items()},
                )
                for section in SECTIONS
                for spelled, parts in data.get(section, {}).items()
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MotherDuckReconcileError(
                f"The ownership record (Airflow Variable {OWNED_PREFIX + name}) cannot be read. Fix or "
                "delete it: deleted, the declaration owns nothing until its next apply adopts what it declares."
            ) from None
        return cls(name, entries)


def read_ownership(name: str, store: VariableStore) -> Ownership:
    """The ownership record of the declaration ``name``."""
    return Ownership.parse(name, store.get(OWNED_PREFIX + name))


def own(name: str, store: VariableStore, owned: Iterable[OwnedPath]) -> Ownership:
    """Add what ``owned`` names to the record (read, merge, write; no write if nothing is new)."""
    return _change(name, store, owned, add=True)


def disown(name: str, store: VariableStore, gone: Iterable[OwnedPath]) -> Ownership:
    """Remove what ``gone`` names (a two-part path: the whole entry), after MotherDuck confirmed."""
    return _change(name, store, gone, add=False)


def _change(name: str, store: VariableStore, change: Iterable[OwnedPath], *, add: bool) -> Ownership:
    with _RECORD_LOCK:
        before = read_ownership(name, store)
        entries = dict(before.entries)
        for path in change:
            section, spelled, *item = path
            key = (section, fold_username(spelled))
            spelling, parts = entries.get(key, (spelled, {}))
            if add:
                parts = {**parts, **({item[0]: parts.get(item[0], frozenset()) | {item[1]}} if item else {})}
                entries[key] = (spelling, parts)
            elif not item:
                entries.pop(key, None)
            elif key in entries:
                entries[key] = (spelling, {**parts, item[0]: parts.get(item[0], frozenset()) - {item[1]}})
        after = Ownership(name, entries)
        if after != before:
            store.set(
                after.key,
                after.dumps(),
                description=f"What the MotherDuck declaration {name!r} created or adopted (no secret here)",
            )
        return after


# -- what is there ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountAccess:
    """What a declared account's roles and shares are now (read only when it declares some)."""

    roles: frozenset[str] = frozenset()
    """Roles it holds directly (what ``grant_role`` makes)."""
    readable: frozenset[tuple[str, str]] = frozenset()
    """``(share, owner)``, folded, of declared shares it may read already (a grant to it or to a
    role it holds, directly or not, or a share open to the organisation)."""
    attached: Mapping[str, Attachment] = field(default_factory=dict)
    """What it has attached, by folded alias."""

    def reads(self, share: DeclaredShare) -> bool:
        return (share.share.casefold(), fold_username(share.owner)) in self.readable


@dataclass(frozen=True)
class AccountState:
    """A declared account that exists: what was listed, and what its destinations hold."""

    tokens: tuple[Mapping[str, Any], ...] = ()
    config: Mapping[str, Any] | None = None
    """Its Duckling config, read only when the declaration sizes it."""
    delivered: Mapping[str, str] = field(default_factory=dict)
    """Declared token name -> id of the live token whose secret its destination holds."""
    leftovers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Declared token name -> ids of tokens an earlier try created for it and nobody holds."""
    access: AccountAccess | None = None
    """Its roles, share grants and attachments (``None``: it declares none, so none were read)."""


@dataclass(frozen=True)
class ShareState:
    """A share as its owner lists it, and who may read it."""

    share: Share
    grants: tuple[ShareGrant, ...] = ()

    def grantees(self, kind: str) -> frozenset[str]:
        """The folded names granted read, of one kind (``user`` or ``role``)."""
        return frozenset(fold_username(g.grantee) for g in self.grants if g.grantee_type == kind)


@dataclass(frozen=True)
class OrgState:
    """The listed state a plan is made from."""

    users: tuple[Mapping[str, Any], ...]
    """Every user, humans and deprovisioned ones included (``list_users`` fields)."""
    accounts: Mapping[str, AccountState]
    """Declared accounts that exist as active service accounts, by folded username."""
    owned: Ownership | None = None
    """The declaration's ownership record (``None``: none kept, as for onboarding, which never
    prunes: nothing is owned and nothing adopted)."""
    total_count: int | None = None
    """How many users MotherDuck said there are (``None``: not said)."""
    me: str = ""
    """The connection's account (MotherDuck's spelling): the owner of shares declared without one.
    Read only when the declaration or its record has shares."""
    roles: Mapping[str, Role] = field(default_factory=dict)
    """Every role, by name (read only when the declaration or its record has roles)."""
    shares: Mapping[str, ShareState] = field(default_factory=dict)
    """The declared and owned shares that exist, by folded :func:`share_key`."""
    missing_owners: frozenset[str] = frozenset()
    """Folded owners of declared or owned shares that are not active service accounts (their
    shares cannot be read or made)."""

    def spelled(self, username: str) -> str:
        """A username as MotherDuck spells it (as given if no such user is listed)."""
        user = self.user(username)
        return str(user["username"]) if user is not None else username

    def owner(self, owner: str | None) -> str:
        """A declared share's owner as MotherDuck spells it (``None``: the connection's account)."""
        return self.me if owner is None else self.spelled(owner)

    def share(self, owner: str, name: str) -> ShareState | None:
        return self.shares.get(fold_username(share_key(owner, name)))

    @property
    def partial(self) -> str | None:
        """Why the listing may have missed users, or ``None`` when it saw them all."""
        if self.total_count is None or self.total_count == len(self.users):
            return None
        return (
            f"the user listing showed {len(self.users)} user(s) but MotherDuck counts {self.total_count} "
            "(users created or deleted during the listing, or a truncated page)"
        )

    def user(self, username: str) -> Mapping[str, Any] | None:
        """The listed user of that name, whatever its case."""
        key = fold_username(username)
        return next((u for u in self.users if fold_username(str(u.get("username"))) == key), None)

    def account(self, username: str) -> AccountState | None:
        return self.accounts.get(fold_username(username))


class ActingSessions:
    """The SQL sessions one account's run acts in, each opened once and kept until :meth:`close`:
    one short-lived token per account acted as, revoked when the run ends, however it ends (the
    hook's blocks nest, so its SQL methods called ``as_user`` one of these run in its session)."""

    def __init__(self, hook: MotherDuckHook) -> None:
        self.hook = hook
        self._stack = ExitStack()
        self._held: set[str] = set()
        self._own: str | None = None

    def hold(self, username: str) -> str:
        """Open (once) the session as ``username``; returns it, for ``as_user=``."""
        key = fold_username(username)
        if key not in self._held:
            self._stack.enter_context(self.hook.sql_session(as_user=username))
            self._held.add(key)
        return username

    def as_owner(self, owner: str) -> str | None:
        """``as_user`` for a share's owner: ``None`` when it is the connection's own user (no token)."""
        if self._own is None:
            self._own = fold_username(self.hook.get_current_user()["username"])
        return None if fold_username(owner) == self._own else self.hold(owner)

    def share_url(self, share: DeclaredShare) -> str:
        """The URL of ``share`` as its owner lists it (a reader attaches by URL)."""
        owned = self.hook.list_shares(as_user=self.as_owner(share.owner))
        found = next((s for s in owned if s.name.casefold() == share.share.casefold()), None)
        if found is None:
            raise MotherDuckSQLNotFoundError(
                f"{share.owner} owns no share named {share.share!r}", "MD_INFORMATION_SCHEMA.OWNED_SHARES"
            )
        return found.url

    def close(self) -> None:
        self._stack.close()
        self._held.clear()

    def __enter__(self) -> ActingSessions:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_access(
    hook: MotherDuckHook,
    account: DeclaredAccount,
    sessions: ActingSessions | None = None,
) -> AccountAccess:
    """The account's roles and its grants on the shares it attaches (as the admin: no token), and
    its attachments (as the account: in ``sessions`` if given, else one short-lived token).

    A share's grants read as the admin name their owner; a share of that name owned by someone
    else (or none visible) counts as not readable, and the grant (made as the owner, reading
    first) sorts it out.
    """
    username = account.username
    held = hook.roles_of(username)
    roles = frozenset(g.role.casefold() for g in held if g.direct)
    every_role = frozenset(g.role.casefold() for g in held)
    readable = set()
    for share in account.attach:
        try:
            grants = hook.share_grants(share.share)
        except MotherDuckSQLNotFoundError:
            continue
        if any(
            fold_username(g.share_owner) == fold_username(share.owner)
            and (
                g.grantee_type in ("organization", "domain")
                or (g.grantee_type == "user" and fold_username(g.grantee) == account.key)
                or (g.grantee_type == "role" and g.grantee.casefold() in every_role)
            )
            for g in grants
        ):
            readable.add((share.share.casefold(), fold_username(share.owner)))
    attached: dict[str, Attachment] = {}
    if account.attach:
        as_user = sessions.hold(username) if sessions is not None else username
        attached = {a.alias.casefold(): a for a in hook.attached_databases(as_user=as_user)}
    return AccountAccess(roles, frozenset(readable), attached)


def read_account(
    hook: MotherDuckHook,
    account: DeclaredAccount,
    sessions: ActingSessions | None = None,
    *,
    owns_roles: bool = False,
) -> AccountState:
    """One existing account's tokens, config (if sized) and which token each destination holds,
    and its access (:func:`read_access`) if it declares roles or attachments or (``owns_roles``)
    holds roles the declaration granted."""
    tokens = tuple(hook.list_tokens(account.username)) if account.tokens is not None else ()
    config = hook.get_duckling_config(account.username) if account.sizes_declared else None
    delivered: dict[str, str] = {}
    leftovers: dict[str, tuple[str, ...]] = {}
    for token in account.tokens or ():
        found, unheld = token.destination.find(
            tokens, account.username, name_pattern(token.name), token.token_type
        )
        if found is not None:
            delivered[token.name] = str(found["id"])
        if unheld:
            leftovers[token.name] = tuple(str(t.get("id")) for t in unheld)
    access = read_access(hook, account, sessions) if account.access_declared or owns_roles else None
    return AccountState(tokens, config, delivered, leftovers, access)


def _read_shares(hook: MotherDuckHook, owner: str, names: frozenset[str], me: str) -> list[ShareState]:
    """The shares of ``names`` (folded) that ``owner`` owns, with their grants, read as the owner
    (one short-lived token, unless the owner is the connection's account)."""
    as_user = None if fold_username(owner) == fold_username(me) else owner
    with hook.sql_session(as_user=as_user):  # one session for every read below
        owned = [s for s in hook.list_shares(as_user=as_user) if s.name.casefold() in names]
        return [ShareState(s, tuple(hook.share_grants(s.name, as_user=as_user))) for s in owned]


def _read_org(
    declaration: Declaration,
    owned: Ownership | None,
    users: Sequence[Mapping[str, Any]],
    active: frozenset[str],
    new_hook: HookFactory,
    max_workers: int,
) -> dict[str, Any]:
    """The roles and shares a declaration declares or owns (only what it needs is read)."""
    owned = owned or Ownership(declaration.name)
    found: dict[str, Any] = {}
    if not (declaration.roles or declaration.shares or owned.names("roles") or owned.names("shares")):
        return found
    hook = new_hook()
    try:
        found["roles"] = {r.name.casefold(): r for r in hook.list_roles()}
        if not (declaration.shares or owned.names("shares")):
            return found
        me = str(hook.get_current_user()["username"])
    finally:
        hook.close()
    spelled = {fold_username(str(u["username"])): str(u["username"]) for u in users}
    wanted: dict[str, set[str]] = {}
    for share in declaration.shares:
        owner = share.owner or me
        wanted.setdefault(fold_username(owner), set()).add(share.name.casefold())
    for key in owned.names("shares"):
        owner, _, name = key.rpartition("/")
        wanted.setdefault(fold_username(owner), set()).add(name.casefold())
    me_key = fold_username(me)
    readable = [o for o in sorted(wanted) if o == me_key or o in active]
    results, errors = run_on_pool(
        readable,
        lambda h, o: _read_shares(h, spelled.get(o, me), frozenset(wanted[o]), me),
        new_hook,
        max_workers=max_workers,
        name="md-reconcile-read-shares",
    )
    for error in errors.values():
        raise error
    found["me"] = me
    found["shares"] = {
        fold_username(share_key(owner, s.share.name)): s
        for owner, states in zip(readable, results, strict=True)
        for s in states or ()
    }
    found["missing_owners"] = frozenset(wanted) - frozenset(readable)
    return found


def read_state(
    declaration: Declaration, new_hook: HookFactory, *, max_workers: int, store: VariableStore | None = None
) -> OrgState:
    """List what a plan needs, reading only: the ownership record (with ``store``), the users, the
    roles and shares the declaration declares or owns, then each existing declared account on a pool."""
    owned = read_ownership(declaration.name, store) if store is not None else None
    hook = new_hook()
    try:
        users = hook.list_users(deprovisioned=None)
    finally:
        hook.close()
    active = frozenset(
        fold_username(str(u["username"]))
        for u in users
        if u.get("is_service_account") is True and u.get("is_deprovisioned") is False
    )
    org = _read_org(declaration, owned, users, active, new_hook, max_workers)
    present = [a for a in declaration.accounts if a.key in active]
    with_roles = {
        a.key for a in present if owned is not None and owned.items("accounts", a.username, "roles")
    }
    results, errors = run_on_pool(
        present,
        lambda h, a: read_account(h, a, owns_roles=a.key in with_roles),
        new_hook,
        max_workers=max_workers,
        name="md-reconcile-read",
    )
    for error in errors.values():
        if not isinstance(error, MotherDuckNotFoundError):  # not found: deleted since the listing
            raise error
    states = {a.key: s for a, s in zip(present, results, strict=True) if s is not None}
    return OrgState(tuple(users), states, owned, users.total_count, **org)
