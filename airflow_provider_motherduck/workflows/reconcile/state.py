"""What is there: the organisation as listed, and what a declaration owns.

Reading only: nothing here writes to MotherDuck. The one write is the ownership record, an Airflow
Variable per declaration name (``motherduck_owned_<name>``; JSON, no secret, shown in the UI)::

    {"kind": "motherduck-ownership", "declaration": "analytics",
     "accounts": {"etl_loader": {"tokens": ["airflow"]}}}

It lists the service accounts the declaration created or adopted and the token names it issued
for them. Prune acts only on what it lists, so an account or token it does not list is never
touched. The invariants, under any interleaving of runs (Airflow Variables have no compare-and-set,
so two writers' read-merge-writes may lose one another's update):

* A name is added before the write that creates or adopts it (:func:`own`), so a crash after a
  create cannot leave an account the record does not list.
* A lost update can only drop names from the record: the record then *forgets* an account, and a
  forgotten account is never pruned, which is the safe direction. Each apply adds again everything
  it declares, so the next apply of a declaration restores what a lost update dropped.
* A name is removed (:func:`disown`) only after MotherDuck confirmed its deletion or revoke.

Usernames are compared folded (:func:`~airflow_provider_motherduck.validation.fold_username`) and
kept in MotherDuck's spelling.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
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
from airflow_provider_motherduck.hooks.sql.answers import Attachment
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


@dataclass(frozen=True)
class Ownership:
    """What a declaration owns: folded username -> (MotherDuck's spelling, owned token names)."""

    name: str
    accounts: Mapping[str, tuple[str, frozenset[str]]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return OWNED_PREFIX + self.name

    def owns(self, username: str) -> bool:
        return fold_username(username) in self.accounts

    def tokens(self, username: str) -> frozenset[str]:
        """The token names owned for that account (empty if the account is not owned)."""
        return self.accounts.get(fold_username(username), ("", frozenset()))[1]

    def dumps(self) -> str:
        accounts = {spelled: {"tokens": sorted(names)} for spelled, names in sorted(self.accounts.values())}
        return json.dumps({"kind": _KIND, "declaration": self.name, "accounts": accounts}, sort_keys=True)

    @classmethod
    def parse(cls, name: str, text: str | None) -> Ownership:
        """The record's content; absent: owns nothing. A record that cannot be read stops the
        run (guessing could prune what another run owns, or forget what this one does)."""
        if text is None:
            return cls(name)
        try:
            data = json.loads(text)
            accounts = {
                fold_username(str(user)): (str(user), frozenset(str(n) for n in entry.get("tokens", ())))
                for user, entry in data["accounts"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MotherDuckReconcileError(
                f"The ownership record (Airflow Variable {OWNED_PREFIX + name}) cannot be read. Fix or "
                "delete it: deleted, the declaration owns nothing until its next apply adopts what it declares."
            ) from None
        return cls(name, accounts)


def read_ownership(name: str, store: VariableStore) -> Ownership:
    """The ownership record of the declaration ``name``."""
    return Ownership.parse(name, store.get(OWNED_PREFIX + name))


def own(name: str, store: VariableStore, owned: Mapping[str, Iterable[str]]) -> Ownership:
    """Add ``{username: token names}`` to the record (read, merge, write; no write if nothing is new)."""
    return _change(name, store, owned, add=True)


def disown(name: str, store: VariableStore, gone: Mapping[str, Iterable[str] | None]) -> Ownership:
    """Remove token names (``None``: the whole account) from the record, after MotherDuck confirmed."""
    return _change(name, store, gone, add=False)


def _change(name: str, store: VariableStore, change: Mapping[str, Any], *, add: bool) -> Ownership:
    with _RECORD_LOCK:
        before = read_ownership(name, store)
        accounts = dict(before.accounts)
        for username, names in change.items():
            key = fold_username(username)
            spelled, held = accounts.get(key, (username, frozenset()))
            if add:
                accounts[key] = (spelled, held | frozenset(names))
            elif names is None:
                accounts.pop(key, None)
            elif key in accounts:
                accounts[key] = (spelled, held - frozenset(names))
        after = Ownership(name, accounts)
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
    """``(share, owner)``, folded, of declared shares it may read already (a user grant, or a share
    open to the organisation)."""
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
    hook: MotherDuckHook, account: DeclaredAccount, sessions: ActingSessions | None = None
) -> AccountAccess:
    """The account's direct roles and its grants on the declared shares (as the admin: no token),
    and its attachments (as the account: in ``sessions`` if given, else one short-lived token).

    A share's grants read as the admin name their owner; a share of that name owned by someone
    else (or none visible) counts as not readable, and the grant (made as the owner, reading
    first) sorts it out.
    """
    username = account.username
    roles = frozenset(g.role.casefold() for g in hook.roles_of(username) if g.direct)
    readable = set()
    for share in account.shares:
        try:
            grants = hook.share_grants(share.share)
        except MotherDuckSQLNotFoundError:
            continue
        if any(
            fold_username(g.share_owner) == fold_username(share.owner)
            and (
                g.grantee_type in ("organization", "domain")
                or (g.grantee_type == "user" and fold_username(g.grantee) == account.key)
            )
            for g in grants
        ):
            readable.add((share.share.casefold(), fold_username(share.owner)))
    attached: dict[str, Attachment] = {}
    if account.shares:
        as_user = sessions.hold(username) if sessions is not None else username
        attached = {a.alias.casefold(): a for a in hook.attached_databases(as_user=as_user)}
    return AccountAccess(roles, frozenset(readable), attached)


def read_account(
    hook: MotherDuckHook, account: DeclaredAccount, sessions: ActingSessions | None = None
) -> AccountState:
    """One existing account's tokens, config (if sized) and which token each destination holds,
    and its access if it declares roles or shares (:func:`read_access`)."""
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
    access = read_access(hook, account, sessions) if account.access_declared else None
    return AccountState(tokens, config, delivered, leftovers, access)


def read_state(
    declaration: Declaration, new_hook: HookFactory, *, max_workers: int, store: VariableStore | None = None
) -> OrgState:
    """List what a plan needs, reading only: the ownership record (with ``store``), the users, then
    each existing declared account on a pool."""
    owned = read_ownership(declaration.name, store) if store is not None else None
    hook = new_hook()
    try:
        users = hook.list_users(deprovisioned=None)
    finally:
        hook.close()
    active = {
        fold_username(str(u["username"]))
        for u in users
        if u.get("is_service_account") is True and u.get("is_deprovisioned") is False
    }
    present = [a for a in declaration.accounts if a.key in active]
    results, errors = run_on_pool(
        present, read_account, new_hook, max_workers=max_workers, name="md-reconcile-read"
    )
    for error in errors.values():
        if not isinstance(error, MotherDuckNotFoundError):  # not found: deleted since the listing
            raise error
    states = {a.key: s for a, s in zip(present, results, strict=True) if s is not None}
    return OrgState(tuple(users), states, owned, users.total_count)
