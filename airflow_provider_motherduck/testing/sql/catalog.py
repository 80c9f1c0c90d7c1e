"""The organisation's SQL side: roles, role grants, databases, shares, share grants, attachments.

It lives beside the REST ``State`` and under its lock, keyed by each user's id (not the name),
so an account deleted over REST takes its grants and attachments with it and a new account of
the same name starts clean. The preset roles a user holds are the REST user's ``roles``: a
``GRANT ROLE "admin"`` over SQL is what ``GET /v1/users`` then shows, and the reverse.

Who may do what (facts, sections 3 to 7): role definitions and role grants need the Admin role
(directly or through a role that includes it); ``SHOW ALL ROLES`` needs nothing; a share belongs
to the account that created it, and only that account grants on it; the account itself attaches
and detaches. Custom roles and filtered shares need the Business plan (``State.business_plan``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from airflow_provider_motherduck.testing.sql.errors import (
    INVALID_CATALOG,
    SqlError,
    catalog_exists,
    catalog_missing,
    invalid,
    no_database,
    permission,
    plan_limit,
    share_missing,
    user_missing,
)
from airflow_provider_motherduck.testing.state import State, User

PRESETS = ("admin", "builder", "explorer")
PRESET_INCLUDES = {"admin": ("builder",), "builder": ("explorer",), "explorer": ()}
NO_ROLE = "member"  # the REST side's word for a user without a preset role
ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{2,254}")
ACCESS = ("organization", "restricted", "unrestricted")
VISIBILITY = ("discoverable", "hidden")
UPDATE = ("automatic", "manual")
DEFAULT_DATABASE = "my_db"
INCLUDE_PATTERN_MAX = 16_384


@dataclass
class Role:
    """A custom role: the roles granted to it (``includes``, name -> granted_at)."""

    name: str
    created: datetime
    includes: dict[str, datetime] = field(default_factory=dict)


@dataclass(eq=False)
class Database:
    """A database of one account; ``tables`` maps ``schema.table`` to a row count."""

    name: str
    created: datetime
    transient: bool = False
    kind: str = "default"
    retention_days: int | None = 7
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    tables: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False)
class Share:
    """A share of one of its owner's databases, and the read grants on it."""

    name: str
    owner_id: str
    database: Database
    access: str
    visibility: str
    update: str
    include: list[str] | None
    created: datetime
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    users: dict[str, datetime] = field(default_factory=dict)  # user id -> granted_at
    roles: dict[str, datetime] = field(default_factory=dict)  # role name -> granted_at

    @property
    def url(self) -> str:
        """``md:_share/<source database>/<share token>`` (facts, section 4)."""
        return f"md:_share/{self.database.name}/{self.token}"

    def shows(self, table: str) -> bool:
        """Whether the include pattern lets ``schema.table`` through (None: the whole database)."""
        return self.include is None or any(fnmatchcase(table, p.strip()) for p in self.include if p.strip())


@dataclass
class Account:
    """What one user has on the SQL side (roles granted, databases, shares, attachments)."""

    roles: dict[str, datetime] = field(default_factory=dict)  # custom and SQL-granted presets
    databases: dict[str, Database] = field(default_factory=dict)  # lowercased name -> database
    detached: set[str] = field(default_factory=set)  # lowercased names of own databases detached
    shares: dict[str, Share] = field(default_factory=dict)  # lowercased name -> share
    attached: dict[str, tuple[str, Share]] = field(default_factory=dict)  # lowercased alias -> share
    initialised: bool = False  # a first session has opened (and created my_db)


def _key(name: str) -> str:
    return name.lower()


class Catalog:
    """Every SQL object of the organisation; each method checks who may call it, then acts.

    Every method runs under ``state.lock`` (the caller takes it), so a statement is one step
    for the REST side too.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self.org_id = str(uuid.uuid4())
        self.org_name = "emulated-organisation"
        self.region = "us-east-1"
        self.started = state.clock()
        self.roles: dict[str, Role] = {}
        self._accounts: dict[str, Account] = {}

    # people

    def account(self, user: User) -> Account:
        """The user's SQL side (empty until it is given something or opens a session)."""
        return self._accounts.setdefault(user.id, Account())

    def open(self, user: User) -> Account:
        """The account of a user opening a session: the first one initialises it with ``my_db``
        (assumed: the facts say a fresh account "can create the platform default ``my_db``")."""
        account = self.account(user)
        if not account.initialised:
            account.initialised = True
            account.databases.setdefault(DEFAULT_DATABASE, Database(DEFAULT_DATABASE, self.state.clock()))
        return account

    def find_user(self, name: str) -> User:
        """The user named ``name`` (case-insensitive; an email works too), or ``Unable to find user``."""
        wanted = _key(name)
        with self.state.lock:
            for username in self.state.usernames():
                user = self.state.user(username)
                if _key(user.username) == wanted or (user.email is not None and _key(user.email) == wanted):
                    return user
        raise user_missing(name)

    def user_by_id(self, user_id: str) -> User | None:
        """The user with this id, if it still exists."""
        for username in self.state.usernames():
            user = self.state.user(username)
            if user.id == user_id:
                return user
        return None

    def describe(self) -> dict[str, Any]:
        """Everything on the SQL side, for tests: custom roles with the roles they include, and
        per user (MotherDuck's spelling) its direct roles, databases, shares with their grants,
        and attachments. Times are left out; usernames of grants are current spellings."""
        users: dict[str, Any] = {}
        for username in self.state.usernames():
            user = self.state.user(username)
            account = self._accounts.get(user.id) or Account()
            users[username] = {
                "roles": sorted({r for r in user.roles if r in PRESETS} | set(account.roles)),
                "databases": sorted(d.name for d in account.databases.values()),
                "shares": [self._describe_share(s) for _, s in sorted(account.shares.items())],
                "attached": sorted(
                    ({"alias": alias, "url": share.url} for alias, share in account.attached.values()),
                    key=lambda a: a["alias"].lower(),
                ),
            }
        return {
            "roles": {name: sorted(role.includes) for name, role in sorted(self.roles.items())},
            "users": users,
        }

    def _describe_share(self, share: Share) -> dict[str, Any]:
        row = _share_row(share)
        del row["created_ts"], row["source_db_uuid"]
        grantees = [self.user_by_id(user_id) for user_id in share.users]
        return {
            **row,
            "users": sorted(u.username for u in grantees if u is not None),
            "roles": sorted(share.roles),
        }

    # roles

    def role_exists(self, name: str) -> bool:
        """Whether ``name`` is a preset or a custom role (role names are stored lowercase)."""
        return _key(name) in PRESETS or _key(name) in self.roles

    def includes(self, role: str) -> dict[str, datetime]:
        """The roles granted to ``role``, with when."""
        if role in PRESET_INCLUDES:
            return dict.fromkeys(PRESET_INCLUDES[role], self.started)
        return dict(self.roles[role].includes) if role in self.roles else {}

    def direct_roles(self, user: User) -> dict[str, datetime]:
        """The roles granted to the user itself: its REST preset roles and its SQL grants."""
        account = self._accounts.get(user.id) or Account()
        presets = {r: account.roles.get(r, self.started) for r in user.roles if r in PRESETS}
        return {**presets, **{r: t for r, t in account.roles.items() if r not in PRESETS}}

    def closure(self, direct: dict[str, datetime]) -> Iterator[tuple[str, bool, datetime]]:
        """Every role reached from ``direct`` (role, is_direct, granted_at), each once."""
        seen: set[str] = set()
        queue = [(r, True, t) for r, t in direct.items()]
        while queue:
            role, is_direct, granted = queue.pop(0)
            if role in seen:
                continue
            seen.add(role)
            yield role, is_direct, granted
            queue.extend((r, False, t) for r, t in self.includes(role).items())

    def effective_roles(self, user: User) -> set[str]:
        """Every role the user holds, directly or through another role."""
        return {role for role, _, _ in self.closure(self.direct_roles(user))}

    def is_admin(self, user: User) -> bool:
        """Whether the user holds Admin (the role-administration permissions are Admin's)."""
        return "admin" in self.effective_roles(user)

    def require_admin(self, user: User, what: str) -> None:
        """Permission Error unless ``user`` holds Admin (assumed text)."""
        if not self.is_admin(user):
            raise permission(f"{what} requires the Admin role; {user.username} does not hold it")

    def create_role(self, caller: User, name: str) -> None:
        """CREATE ROLE (Admin; Business plan; name rules of the facts, section 3)."""
        self.require_admin(caller, "CREATE ROLE")
        role = _key(name)
        if role in PRESETS or role in self.roles:
            raise catalog_exists("Role", role)
        if not ROLE_NAME.fullmatch(role):
            raise invalid(
                f"role name {name!r} must be 3 to 255 characters, start with a letter and hold only"
                " letters, digits, '-' and '_'"
            )
        if not self.state.business_plan:
            raise plan_limit("Custom roles")
        self.roles[role] = Role(role, self.state.clock())

    def drop_role(self, caller: User, name: str, if_exists: bool) -> None:
        """DROP ROLE [IF EXISTS]: the role leaves every user, role and share grant."""
        self.require_admin(caller, "DROP ROLE")
        role = _key(name)
        if role in PRESETS:
            raise permission(f"the preset role {role} cannot be dropped")
        if role not in self.roles:
            if if_exists:
                return
            raise catalog_missing(f"Role with name {role} does not exist!")
        del self.roles[role]
        for other in self.roles.values():
            other.includes.pop(role, None)
        for account in self._accounts.values():
            account.roles.pop(role, None)
            for share in account.shares.values():
                share.roles.pop(role, None)

    def check_role(self, name: str) -> str:
        """The stored (lowercase) name of an existing role, or a Catalog Error."""
        role = _key(name)
        if not self.role_exists(role):
            raise catalog_missing(f"Role with name {role} does not exist!")
        return role

    def grant_role(
        self, caller: User, name: str, *, user: str | None = None, role: str | None = None
    ) -> None:
        """GRANT ROLE ... TO USER|ROLE (Admin). A grant held already changes nothing (assumed)."""
        self.require_admin(caller, "GRANT ROLE")
        granted = self.check_role(name)
        now = self.state.clock()
        if user is not None:
            target = self.find_user(user)
            if granted in PRESETS and granted not in target.roles:
                target.roles = (*(r for r in target.roles if r != NO_ROLE), granted)
            self.account(target).roles.setdefault(granted, now)
            return
        assert role is not None
        holder = self.check_role(role)
        if holder in PRESETS:
            raise permission(f"the preset role {holder} cannot be changed")
        if holder == granted or holder in {r for r, _, _ in self.closure({granted: now})}:
            raise invalid(f"granting role {granted} to role {holder} would make a cycle")
        self.roles[holder].includes.setdefault(granted, now)

    def revoke_role(
        self, caller: User, name: str, *, user: str | None = None, role: str | None = None
    ) -> None:
        """REVOKE ROLE ... FROM USER|ROLE (Admin). A grant not held changes nothing (assumed)."""
        self.require_admin(caller, "REVOKE ROLE")
        revoked = self.check_role(name)
        if user is not None:
            target = self.find_user(user)
            self.account(target).roles.pop(revoked, None)
            if revoked in target.roles:
                target.roles = tuple(r for r in target.roles if r != revoked) or (NO_ROLE,)
            return
        assert role is not None
        holder = self.check_role(role)
        if holder in self.roles:
            self.roles[holder].includes.pop(revoked, None)

    def all_roles(self) -> list[dict[str, Any]]:
        """SHOW ALL ROLES rows (presets first, then custom roles by name)."""
        rows = [
            {
                "role_name": r,
                "role_type": "preset",
                "included_roles": list(PRESET_INCLUDES[r]),
                "created_at": self.started,
            }
            for r in PRESETS
        ]
        rows += [
            {
                "role_name": r.name,
                "role_type": "custom",
                "included_roles": sorted(r.includes),
                "created_at": r.created,
            }
            for _, r in sorted(self.roles.items())
        ]
        return rows

    def roles_to(
        self, caller: User, *, user: str | None = None, role: str | None = None
    ) -> list[dict[str, Any]]:
        """SHOW ROLES TO USER|ROLE: transitive, ``is_direct`` marks the grants themselves.

        One's own roles need nothing; anyone else's need Admin (D: "View organization-wide role
        membership", an Admin permission).
        """
        if user is not None:
            target = self.find_user(user)
            if target.id != caller.id:
                self.require_admin(caller, "SHOW ROLES TO USER")
            direct = self.direct_roles(target)
        else:
            assert role is not None
            self.require_admin(caller, "SHOW ROLES TO ROLE")
            direct = self.includes(self.check_role(role))
        return [
            {
                "role_name": r,
                "role_type": "preset" if r in PRESETS else "custom",
                "is_direct": is_direct,
                "granted_at": granted,
            }
            for r, is_direct, granted in self.closure(direct)
        ]

    def users_of(self, caller: User, name: str) -> list[dict[str, Any]]:
        """SHOW USERS OF ROLE: the users granted the role directly (assumed: not through roles)."""
        self.require_admin(caller, "SHOW USERS OF ROLE")
        role = self.check_role(name)
        rows = []
        for username in self.state.usernames():
            user = self.state.user(username)
            granted = self.direct_roles(user).get(role)
            if granted is not None:
                rows.append(
                    {
                        "username": user.username,
                        "email": user.email,
                        "is_service_account": user.service_account,
                        "granted_at": granted,
                    }
                )
        return rows

    def roles_of(self, caller: User, name: str) -> list[dict[str, Any]]:
        """SHOW ROLES OF ROLE: the roles the role is granted to, as SHOW USERS OF ROLE lists the
        users holding it (assumed reading; the facts give only the columns)."""
        self.require_admin(caller, "SHOW ROLES OF ROLE")
        role = self.check_role(name)
        holders = [
            (r, t) for r in [*PRESETS, *sorted(self.roles)] for n, t in self.includes(r).items() if n == role
        ]
        return [{"role_name": r, "granted_at": t} for r, t in holders]

    # databases

    def database(self, user: User, name: str) -> Database:
        """One of the user's own databases, or a Catalog Error."""
        found = self.account(user).databases.get(_key(name))
        if found is None:
            raise catalog_missing(f"Database with name {name} does not exist!")
        return found

    def create_database(
        self,
        caller: User,
        name: str,
        *,
        if_not_exists: bool,
        transient: bool,
        kind: str,
        retention: int | None,
    ) -> None:
        """CREATE DATABASE [IF NOT EXISTS] (the caller's own)."""
        _check_object_name(name, "database")
        account = self.account(caller)
        if _key(name) in account.databases or _key(name) in account.attached:
            if if_not_exists:
                return
            raise catalog_exists("Database", name)
        if kind == "ducklake" and transient:
            raise invalid("a DuckLake database cannot be transient")
        account.databases[_key(name)] = Database(
            name, self.state.clock(), transient, kind, None if kind == "ducklake" else retention
        )

    def drop_database(self, caller: User, name: str, *, if_exists: bool, cascade: bool, current: str) -> None:
        """DROP DATABASE [IF EXISTS] [CASCADE]; shares of it need CASCADE (assumed), which drops them."""
        account = self.account(caller)
        found = account.databases.get(_key(name))
        if found is None:
            if if_exists:
                return
            raise catalog_missing(f"Database with name {name} does not exist!")
        if _key(current) == _key(name):
            raise SqlError(
                INVALID_CATALOG,
                f'Catalog Error: Cannot drop database "{name}" because it is the current database',
            )
        dependent = [s for s in account.shares.values() if s.database is found]
        if dependent and not cascade:
            raise invalid(
                f"cannot drop database {found.name} because shares depend on it"
                f" ({', '.join(sorted(s.name for s in dependent))}); use DROP DATABASE ... CASCADE"
            )
        for share in dependent:
            del account.shares[_key(share.name)]
        del account.databases[_key(name)]
        account.detached.discard(_key(name))

    def databases(self, caller: User) -> list[dict[str, Any]]:
        """MD_INFORMATION_SCHEMA.DATABASES rows (the caller's own databases, by name)."""
        return [
            {
                "name": d.name,
                "uuid": d.uuid,
                "created_ts": d.created,
                "type": d.kind,
                "transient": d.transient,
                "historical_snapshot_retention": None
                if d.retention_days is None
                else f"{d.retention_days} days",
            }
            for _, d in sorted(self.account(caller).databases.items())
        ]

    def add_table(self, user: User, database: str, table: str, rows: int) -> None:
        """Seed a table (``schema.table`` or ``table`` for ``main.table``) with ``rows`` rows."""
        qualified = table if "." in table else f"main.{table}"
        self.database(user, database).tables[qualified.lower()] = rows

    # shares

    def owned_share(self, caller: User, name: str) -> Share:
        """A share the caller owns, by name, or ``Database share <name> not found``."""
        found = self.account(caller).shares.get(_key(name))
        if found is None:
            raise share_missing(name)
        return found

    def share_for_reading_grants(self, caller: User, name: str) -> Share:
        """The caller's share of that name, or for an Admin any share of that name (D: Admin may
        "View all organization Shares"); anyone else gets share-not-found (facts, section 5)."""
        own = self.account(caller).shares.get(_key(name))
        if own is not None:
            return own
        if self.is_admin(caller):
            for share in self.all_shares():
                if _key(share.name) == _key(name):
                    return share
        raise share_missing(name)

    def create_share(
        self,
        caller: User,
        name: str,
        database: str,
        options: dict[str, str | None],
        *,
        if_not_exists: bool,
        replace: bool,
    ) -> None:
        """CREATE [OR REPLACE] SHARE [IF NOT EXISTS] name FROM db (options).

        Defaults when an option is left out are assumed: ACCESS ORGANIZATION, VISIBILITY
        DISCOVERABLE (HIDDEN for a restricted or unrestricted share), UPDATE MANUAL.
        OR REPLACE gives a new URL and drops the old grants (D: the URL changes).
        """
        _check_object_name(name, "share")
        account = self.account(caller)
        source = self.database(caller, database)
        if _key(name) in account.shares and not replace:
            if if_not_exists:
                return
            raise catalog_exists("Share", name)
        access = options.get("access") or "organization"
        default_visibility = "discoverable" if access == "organization" else "hidden"
        pattern = options.get("include_pattern")
        include = None if pattern is None else _include(pattern)
        if include is not None:
            self._check_filter(source)
        account.shares[_key(name)] = Share(
            name,
            caller.id,
            source,
            access,
            options.get("visibility") or default_visibility,
            options.get("update") or "manual",
            include,
            self.state.clock(),
        )

    def _check_filter(self, source: Database) -> None:
        if not self.state.business_plan:
            raise plan_limit("Filtered shares")
        if source.kind == "ducklake":
            raise invalid("DuckLake databases cannot be shared with an include pattern")

    def alter_share(self, caller: User, name: str, pattern: str | None) -> None:
        """ALTER SHARE SET INCLUDE_PATTERN 'p' (``pattern``) or RESET INCLUDE_PATTERN (None), by the
        owner only (anyone else does not find the share); a pattern needs the Business plan."""
        share = self.owned_share(caller, name)
        if pattern is not None:
            self._check_filter(share.database)
        share.include = None if pattern is None else _include(pattern)

    def drop_share(self, caller: User, name: str, if_exists: bool) -> None:
        """DROP SHARE [IF EXISTS]: readers' attachments of it stop working."""
        account = self.account(caller)
        if _key(name) not in account.shares:
            if if_exists:
                return
            raise share_missing(name)
        del account.shares[_key(name)]

    def owned_shares(self, caller: User) -> list[dict[str, Any]]:
        """MD_INFORMATION_SCHEMA.OWNED_SHARES rows, by name."""
        return [_share_row(s) for _, s in sorted(self.account(caller).shares.items())]

    def describe_share(self, caller: User, ref: str) -> dict[str, Any]:
        """DESCRIBE SHARE / md_describe_database_share: the owner may name the share, a reader
        must give its URL (D); a URL the caller may not read is not found."""
        if not ref.startswith("md:_share/"):
            return _share_row(self.owned_share(caller, ref))
        share = self.share_by_url(ref)
        if share is None or not self.can_read(caller, share):
            raise share_missing(ref)
        return _share_row(share)

    def all_shares(self) -> Iterator[Share]:
        """Every share that exists, in the order of their owners' first sessions (a user deleted
        over REST takes its data, and so its shares, with it)."""
        live = {self.state.user(name).id for name in self.state.usernames()}
        for user_id, account in self._accounts.items():
            if user_id in live:
                yield from account.shares.values()

    def exists(self, share: Share) -> bool:
        """Whether ``share`` still exists (not dropped, its owner not deleted)."""
        return any(s is share for s in self.all_shares())

    def can_read(self, user: User, share: Share) -> bool:
        """Owner; everyone for organization and unrestricted shares; for a restricted share, a
        grant to the user or to any role it holds (through other roles too)."""
        if share.owner_id == user.id or share.access != "restricted":
            return True
        return user.id in share.users or bool(self.effective_roles(user).intersection(share.roles))

    def shared_with_me(self, caller: User) -> list[dict[str, Any]]:
        """MD_INFORMATION_SCHEMA.SHARED_WITH_ME: others' discoverable shares the caller may read
        ("Hidden shares can be accessed by URL but are not listed")."""
        rows = []
        for share in self.all_shares():
            owner = self.user_by_id(share.owner_id)
            if (
                owner is None
                or share.owner_id == caller.id
                or share.visibility != "discoverable"
                or not self.can_read(caller, share)
            ):
                continue
            rows.append(
                {
                    "name": share.name,
                    "source_db_name": share.database.name,
                    "owner": owner.username,
                    "url": share.url,
                    "created_ts": share.created,
                }
            )
        return sorted(rows, key=lambda r: (r["name"], r["owner"]))

    def grant_share(
        self, caller: User, name: str, *, user: str | None = None, role: str | None = None
    ) -> None:
        """GRANT READ ON SHARE (the share's owner only: anyone else does not find the share)."""
        share = self.owned_share(caller, name)
        now = self.state.clock()
        if user is not None:
            share.users.setdefault(self.find_user(user).id, now)
        else:
            assert role is not None
            share.roles.setdefault(self.check_role(role), now)

    def revoke_share(
        self, caller: User, name: str, *, user: str | None = None, role: str | None = None
    ) -> None:
        """REVOKE READ ON SHARE (the owner); a grant not held changes nothing (assumed)."""
        share = self.owned_share(caller, name)
        if user is not None:
            share.users.pop(self.find_user(user).id, None)
        else:
            assert role is not None
            share.roles.pop(self.check_role(role), None)

    def share_grantees(self, caller: User, name: str) -> list[dict[str, Any]]:
        """MD_LIST_SHARE_GRANTEES rows: one per access kind, or the user and role grants of a
        restricted share (facts, section 5's table)."""
        share = self.share_for_reading_grants(caller, name)
        owner = self.user_by_id(share.owner_id)
        base = {"share_owner": owner.username if owner else None, "privilege": "read"}
        if share.access == "organization":
            return [
                {
                    **base,
                    "grantee_name": "ENTIRE_ORGANIZATION",
                    "grantee_type": "organization",
                    "granted_at": share.created,
                }
            ]
        if share.access == "unrestricted":
            return [
                {**base, "grantee_name": "ALL_USERS", "grantee_type": "domain", "granted_at": share.created}
            ]
        rows = []
        for user_id, granted in share.users.items():
            grantee = self.user_by_id(user_id)
            if grantee is not None:
                rows.append(
                    {**base, "grantee_name": grantee.username, "grantee_type": "user", "granted_at": granted}
                )
        rows += [
            {**base, "grantee_name": r, "grantee_type": "role", "granted_at": t}
            for r, t in share.roles.items()
        ]
        return rows

    # attachments

    def share_by_url(self, url: str) -> Share | None:
        """The live share behind a ``md:_share/<db>/<token>`` URL."""
        return next((s for s in self.all_shares() if s.url == url), None)

    def attach(self, caller: User, target: str, alias: str | None, *, if_not_exists: bool) -> None:
        """ATTACH 'md:_share/...' [AS alias] (a share the caller may read) or 'md:<db>' (its own)."""
        account = self.account(caller)
        if target == "md:":  # the account's workspace: attached already
            return
        if not target.startswith("md:_share/"):
            name = target.removeprefix("md:")
            if not target.startswith("md:") or _key(name) not in account.databases:
                raise no_database(target)
            if _key(name) in account.detached:
                account.detached.discard(_key(name))
            elif not if_not_exists:
                raise catalog_exists("Database", name)
            return
        share = self.share_by_url(target)
        # A restricted share the caller may not read is not shown to it (assumed: not-found
        # rather than a permission text).
        if share is None or not self.can_read(caller, share):
            raise no_database(target)
        name = alias if alias is not None else share.database.name
        _check_object_name(name, "alias")
        stale = account.attached.get(_key(name))
        if stale is not None and not self.exists(stale[1]):
            del account.attached[_key(name)]  # its share was dropped: the attachment went with it
        if _key(name) in account.databases or _key(name) in account.attached:
            attached = account.attached.get(_key(name))
            if if_not_exists and attached is not None and attached[1] is share:
                return
            raise catalog_exists("Database", name)
        account.attached[_key(name)] = (name, share)

    def detach(self, caller: User, alias: str, *, if_exists: bool) -> None:
        """DETACH [DATABASE] [IF EXISTS] alias (an attached share, or one of its own databases)."""
        account = self.account(caller)
        if account.attached.pop(_key(alias), None) is not None:
            return
        if _key(alias) in account.databases and _key(alias) not in account.detached:
            account.detached.add(_key(alias))
            return
        if not if_exists:
            raise no_database(alias, "detach")

    def all_databases(self, caller: User, *, attached_only: bool) -> list[dict[str, Any]]:
        """MD_ALL_DATABASES() / md_attached_databases() / SHOW ALL DATABASES rows (one column set
        for the three, assumed: ``alias``, ``name``, ``is_attached``, ``type``,
        ``fully_qualified_name``); an attached share that was dropped is no longer listed."""
        account = self.account(caller)
        rows = [
            {
                "alias": d.name,
                "name": d.name,
                "is_attached": key not in account.detached,
                "type": "motherduck ducklake" if d.kind == "ducklake" else "motherduck",
                "fully_qualified_name": f"md:{d.name}",
            }
            for key, d in account.databases.items()
        ]
        live = set(map(id, self.all_shares()))
        rows += [
            {
                "alias": alias,
                "name": share.name,
                "is_attached": True,
                "type": "motherduck share",
                "fully_qualified_name": share.url,
            }
            for alias, share in account.attached.values()
            if id(share) in live
        ]
        rows = [r for r in rows if r["is_attached"] or not attached_only]
        return sorted(rows, key=lambda r: (r["alias"].lower(), r["name"]))

    def count_rows(self, caller: User, alias: str, table: str) -> int:
        """``count(*)`` of ``alias.schema.table``: an own database, or a share through its
        attachment (while the share exists, the caller may read it and its pattern shows the table)."""
        account = self.account(caller)
        database: Database | None = None
        share: Share | None = None
        if _key(alias) in account.attached:
            share = account.attached[_key(alias)][1]
            if not self.exists(share) or not self.can_read(caller, share):
                raise catalog_missing(f"Database share {alias} not found")
            database = share.database
        elif _key(alias) in account.databases and _key(alias) not in account.detached:
            database = account.databases[_key(alias)]
        if database is None:
            raise catalog_missing(f"Table with name {alias}.{table} does not exist!")
        if table.lower() not in database.tables or (share is not None and not share.shows(table.lower())):
            raise catalog_missing(f"Table with name {table} does not exist!")
        return database.tables[table.lower()]


def _share_row(share: Share) -> dict[str, Any]:
    """A share as MotherDuck's share views show it: access, visibility and update in capitals
    (as the live service answers, facts section 4)."""
    return {
        "name": share.name,
        "url": share.url,
        "source_db_name": share.database.name,
        "source_db_uuid": share.database.uuid,
        "access": share.access.upper(),
        "visibility": share.visibility.upper(),
        "update": share.update.upper(),
        "include_pattern": None if share.include is None else list(share.include),
        "created_ts": share.created,
    }


def _include(pattern: str) -> list[str]:
    """An INCLUDE_PATTERN literal as its list; ``''`` is the empty list (nothing shared)."""
    if len(pattern) > INCLUDE_PATTERN_MAX:
        raise invalid(f"INCLUDE_PATTERN is longer than {INCLUDE_PATTERN_MAX} characters")
    return [p for p in pattern.split(",") if p] if pattern else []


def _check_object_name(name: str, what: str) -> None:
    """Share, database and alias names: non-empty, no surrounding whitespace (facts, section 2)."""
    if not name or name != name.strip():
        raise invalid(f"{what} name {name!r} must be non-empty, without surrounding whitespace")
