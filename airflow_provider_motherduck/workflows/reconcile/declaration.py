"""The declaration: what the organisation must hold, checked before any request.

The invariant: a :class:`Declaration` exists only if every part of it was checked. Every problem
is reported at once, each once, with its path (``service_accounts[3].tokens[0].ttl``) and a short
excerpt of the value (never a whole mapping); a part that is already wrong is left out of the
checks that span parts (duplicates), so one mistake gives one problem.

A declaration is a mapping (or its JSON or YAML text, or a path to such a file, read bounded by
:func:`~airflow_provider_motherduck.workflows.loading.load_declaration`)::

    name: analytics                                  # required: the ownership record's name
    roles:                                           # custom roles the declaration owns
      - name: sales_readers
        includes: [explorer]                         # roles granted to it (it holds what they hold)
    shares:                                          # shares the declaration owns
      - name: sales_share
        owner: sales_owner                           # left out: the connection's account
        database: sales
        access: restricted                           # default restricted; hidden; automatic
        include: [main.orders]                       # left out: the whole database
        grants: {users: [report_reader], roles: [sales_readers]}   # restricted shares only
    service_accounts:
      - username: etl_loader
        read_write: {instance_size: jumbo}          # partial Duckling config, optional
        read_scaling: {flock_size: 2}
        tokens:                                      # left out: tokens not managed
          - {name: airflow, ttl: 90 days, variable_key: motherduck_etl_loader}
        roles: [analysts]                            # held (granted by the admin); left out: not managed
        attach:                                      # read (granted by each owner if needed), attached
          - {share: orders_share, owner: sales_owner, alias: orders}   # alias: default the share's name

Usernames are compared as MotherDuck compares them
(:func:`~airflow_provider_motherduck.validation.fold_username`): ``ETL_Loader`` and ``etl_loader``
are declared twice. Role names are lowercase (MotherDuck stores them so); a share is named by its
owner and its name.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

from airflow_provider_motherduck.arguments import (
    check_count,
    check_unmasked_name,
    check_variable_key,
)
from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.validation import (
    DUCKLING_FIELDS,
    check_alias,
    check_duckling_half,
    check_grantee,
    check_include_pattern,
    check_new_username,
    check_object_name,
    check_role_name,
    check_share_access,
    check_share_update,
    check_share_visibility,
    check_token_name,
    check_token_type,
    check_username,
    fold_username,
    parse_ttl,
)
from airflow_provider_motherduck.workflows.delivery import SecretDestination, SecretSink
from airflow_provider_motherduck.workflows.loading import load_declaration

MODES: Final = ("plan", "check", "apply")
DEFAULT_MAX_DELETES: Final = 5
TOP_KEYS: Final = ("name", "service_accounts", "roles", "shares")
ACCOUNT_KEYS: Final = ("username", "read_write", "read_scaling", "tokens", "roles", "attach")
SHARE_KEYS: Final = ("share", "owner", "alias")
ROLE_KEYS: Final = ("name", "includes")
ORG_SHARE_KEYS: Final = ("name", "owner", "database", "access", "visibility", "update", "include", "grants")
GRANT_KEYS: Final = ("users", "roles")
TOKEN_KEYS: Final = ("name", "token_type", "ttl", "variable_key", "secret_sink", "record_key")

T = TypeVar("T")


@dataclass(frozen=True)
class DeclaredToken:
    """A token an account must hold, and where its secret goes."""

    name: str
    token_type: str
    ttl: int | None
    destination: SecretDestination


@dataclass(frozen=True)
class DeclaredShare:
    """A share an account must reach: ``owner`` grants it read, the account attaches it as ``alias``."""

    share: str
    owner: str
    alias: str


@dataclass(frozen=True)
class DeclaredRole:
    """A custom role the declaration owns, and the roles it includes (granted to it)."""

    name: str
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeclaredOrgShare:
    """A share the declaration owns: ``owner`` (``None``: the connection's account) shares
    ``database``; ``include`` ``None`` shares all of it. ``users`` and ``roles`` may read it
    (restricted shares only)."""

    name: str
    database: str
    owner: str | None = None
    access: str = "restricted"
    visibility: str = "hidden"
    update: str = "automatic"
    include: tuple[str, ...] | None = None
    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeclaredAccount:
    """A service account as declared; ``tokens=None``: its tokens are not managed. ``roles`` and
    ``attach`` are held in addition to what it has (onboarding never revokes or detaches; prune
    revokes only owned roles no longer declared)."""

    username: str
    read_write: dict[str, Any] | None = None
    read_scaling: dict[str, Any] | None = None
    tokens: tuple[DeclaredToken, ...] | None = None
    roles: tuple[str, ...] = ()
    attach: tuple[DeclaredShare, ...] = ()

    @property
    def access_declared(self) -> bool:
        """Whether it declares roles or attachments (its access is read and planned)."""
        return bool(self.roles or self.attach)

    @property
    def key(self) -> str:
        """The username as MotherDuck compares it."""
        return fold_username(self.username)

    @property
    def sizes_declared(self) -> bool:
        return self.read_write is not None or self.read_scaling is not None


@dataclass(frozen=True)
class Declaration:
    """A checked declaration (see :func:`check_declaration`); ``name`` names its ownership record."""

    name: str
    accounts: tuple[DeclaredAccount, ...]
    roles: tuple[DeclaredRole, ...] = ()
    shares: tuple[DeclaredOrgShare, ...] = ()

    def account(self, username: str) -> DeclaredAccount | None:
        """The declared account of that username, whatever its case."""
        key = fold_username(username)
        return next((a for a in self.accounts if a.key == key), None)


class _Problems:
    """Every problem of a declaration, each once with its path; raised together at the end."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.found: list[str] = []

    def check(self, check: Callable[[Any, str], T], value: Any, path: str) -> T | None:
        try:
            return check(value, path)
        except _Reported:
            return None
        except ValueError as err:
            self.found.append(str(err))
            return None

    def add(self, path: str, value: Any, problem: str, allowed: str) -> None:
        self.found.append(str(invalid(path, value, problem, allowed)))

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str]) -> bool:
        """Whether ``value`` is a mapping holding every ``required`` key; each unknown key is a
        problem of its own, with the closest allowed key suggested."""
        if not isinstance(value, Mapping):
            wanted = "a mapping with keys " + ", ".join(allowed)
            self.add(path or self.field, value, f"expected a mapping, got {type(value).__name__}", wanted)
            return False
        suggested = set()
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                suggested.update(close)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(_join(path, key), value[key], f"unknown key{hint}", ", ".join(allowed))
        missing = [k for k in required if value.get(k) is None]
        for key in (k for k in missing if k not in suggested):  # a misspelt key: one problem, not two
            self.add(_join(path, key), None, "missing", f"a {key} (required)")
        return not missing

    def once(self, what: str, items: Iterable[tuple[str, str]], key: Callable[[str], str]) -> None:
        """The one "declared twice" rule: each ``(path, value)`` after the first of its ``key``."""
        first: dict[str, str] = {}
        for where, value in items:
            seen = first.setdefault(key(value), where)
            if seen != where:
                self.add(where, value, f"{what} declared twice (also at {seen})", f"each {what} once")

    def unique(self, accounts: Mapping[str, DeclaredAccount]) -> Mapping[str, DeclaredAccount]:
        """``accounts`` (path -> account), after the "declared twice" rule over usernames (folded),
        token names within each account, and Variable keys (secrets and records)."""
        self.once(
            "username",
            ((f"{p}.username", a.username) for p, a in accounts.items()),
            fold_username,
        )
        for path, account in accounts.items():
            self.once(
                f"token name of {account.username}",
                ((f"{path}.tokens[{j}].name", t.name) for j, t in enumerate(account.tokens or ())),
                str,
            )
        keys = [
            (f"{path}.tokens[{j}].{what}", key)
            for path, account in accounts.items()
            for j, token in enumerate(account.tokens or ())
            for what, key in (
                ("variable_key", token.destination.variable_key),
                ("record_key", token.destination.record_key),
            )
            if key is not None
        ]
        self.once("Variable key", keys, str)
        for path, account in accounts.items():
            self.once(
                f"role of {account.username}",
                ((f"{path}.roles[{j}]", r) for j, r in enumerate(account.roles)),
                str,
            )
            self.once(
                f"alias of {account.username}",
                ((f"{path}.attach[{j}].alias", s.alias) for j, s in enumerate(account.attach)),
                str.casefold,
            )
        return accounts

    def raise_any(self) -> None:
        if self.found:
            lines = "\n".join(f"  - {p}" for p in self.found)
            raise ValueError(f"{self.field}: {len(self.found)} problem(s) in the declaration:\n{lines}")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def check_declaration(
    value: Any, field: str = "desired", *, secret_sinks: Mapping[str, SecretSink] | None = None
) -> Declaration:
    """Check a declaration (see :func:`load_declaration` for the forms it takes) before any request.

    Every problem is reported at once, each with its path, in one ``ValueError``. ``name`` is
    required and names the ownership record. A token's ``secret_sink`` is a callable, or the name
    of one in ``secret_sinks`` (the form a file can hold), and needs ``record_key``. Usernames
    (ignoring case), token names within an account, and Variable keys (secrets and records) must
    each be unique.
    """
    data = load_declaration(value, field)
    problems = _Problems(field)
    problems.mapping(data, "", TOP_KEYS, ("name",))
    if not isinstance(data, Mapping):  # nothing more to check
        problems.raise_any()
    name = None if data.get("name") is None else problems.check(check_unmasked_name, data["name"], "name")
    listed = data.get("service_accounts") or ()
    if not isinstance(listed, (list, tuple)):
        problems.add(
            "service_accounts", listed, "expected a list", "a list of account mappings (may be empty)"
        )
        listed = ()
    accounts = {
        f"service_accounts[{i}]": _account(item, f"service_accounts[{i}]", problems, secret_sinks or {})
        for i, item in enumerate(listed)
    }
    checked = problems.unique({path: a for path, a in accounts.items() if a is not None})
    roles = _positions(data.get("roles"), "roles", problems, "role mappings (or names)", _role(problems))
    problems.once("role", ((f"roles[{j}].name", r.name) for j, r in roles.items()), str)
    _no_cycle(roles, problems)
    shares = _positions(data.get("shares"), "shares", problems, "share mappings", _org_share(problems))
    problems.once(
        "share",
        ((f"shares[{j}]", f"{s.name} of {s.owner or 'the connection'}") for j, s in shares.items()),
        str.casefold,  # share names and usernames alike compare case-insensitively
    )
    problems.raise_any()
    assert name is not None
    return Declaration(name, tuple(checked.values()), tuple(roles.values()), tuple(shares.values()))


def _role(problems: _Problems) -> Callable[[Any, str], DeclaredRole]:
    """The check of one role: a name, or ``{name, includes}``."""

    def check(item: Any, path: str) -> DeclaredRole:
        if isinstance(item, str):
            item = {"name": item}
        if not problems.mapping(item, path, ROLE_KEYS, ("name",)):
            raise _Reported
        before = len(problems.found)
        name = problems.check(partial(check_role_name, new=True), item["name"], f"{path}.name")
        includes = _list(item.get("includes"), f"{path}.includes", problems, "role names", check_role_name)
        problems.once("included role", ((f"{path}.includes[{j}]", r) for j, r in enumerate(includes)), str)
        if name in includes:
            problems.add(f"{path}.includes", list(includes), "a role cannot include itself", "other roles")
        if len(problems.found) > before or name is None:
            raise _Reported
        return DeclaredRole(name, includes)

    return check


def _no_cycle(roles: Mapping[int, DeclaredRole], problems: _Problems) -> None:
    """Roles that include one another in a circle (``a`` includes ``b`` includes ``a``)."""
    includes = {r.name: r.includes for r in roles.values()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in includes.get(start, ())
        )

    for j, role in roles.items():
        if any(reaches(n, role.name, {n}) for n in role.includes):
            problems.add(f"roles[{j}].includes", list(role.includes), "it leads back to the role", "no cycle")


def _org_share(problems: _Problems) -> Callable[[Any, str], DeclaredOrgShare]:
    """The check of one share the declaration owns."""

    def check(item: Any, path: str) -> DeclaredOrgShare:
        if not problems.mapping(item, path, ORG_SHARE_KEYS, ("name", "database")):
            raise _Reported
        before = len(problems.found)
        grants = item.get("grants") or {}
        users: tuple[str, ...] = ()
        roles: tuple[str, ...] = ()
        if problems.mapping(grants, f"{path}.grants", GRANT_KEYS, ()):
            users = _list(grants.get("users"), f"{path}.grants.users", problems, "usernames", check_grantee)
            roles = _list(
                grants.get("roles"), f"{path}.grants.roles", problems, "role names", check_role_name
            )
            problems.once(
                "grantee", ((f"{path}.grants.users[{j}]", u) for j, u in enumerate(users)), fold_username
            )
            problems.once("grantee", ((f"{path}.grants.roles[{j}]", r) for j, r in enumerate(roles)), str)
        options = {
            key: problems.check(checker, item.get(key, default), f"{path}.{key}")
            for key, checker, default in (
                ("access", check_share_access, "restricted"),
                ("visibility", check_share_visibility, "hidden"),
                ("update", check_share_update, "automatic"),
            )
        }
        if (users or roles) and options["access"] not in (None, "restricted"):
            problems.add(
                f"{path}.grants",
                grants,
                f"grants apply to restricted shares only, and this one is {options['access']}",
                "no grants, or access: restricted",
            )
        share = DeclaredOrgShare(
            name=problems.check(check_object_name, item["name"], f"{path}.name") or "",
            database=problems.check(check_object_name, item["database"], f"{path}.database") or "",
            owner=None
            if item.get("owner") is None
            else problems.check(check_username, item["owner"], f"{path}.owner"),
            include=None
            if item.get("include") is None
            else problems.check(check_include_pattern, item["include"], f"{path}.include"),
            users=users,
            roles=roles,
            **{k: v for k, v in options.items() if v is not None},
        )
        if len(problems.found) > before:
            raise _Reported
        return share

    return check


def _account(
    item: Any,
    path: str,
    problems: _Problems,
    sinks: Mapping[str, SecretSink],
    destination: SecretDestination | None = None,
) -> DeclaredAccount | None:
    if not problems.mapping(item, path, ACCOUNT_KEYS, ("username",)):
        return None
    before = len(problems.found)
    username = problems.check(check_new_username, item["username"], f"{path}.username")
    halves: dict[str, dict[str, Any] | None] = {}
    for half in DUCKLING_FIELDS:
        raw = item.get(half)
        try:
            halves[half] = None if raw is None else check_duckling_half(half, raw, complete=False)
        except ValueError as err:  # its message names the half: put the account's path in front
            problems.found.append(f"{path}.{err}")
    tokens: tuple[DeclaredToken, ...] | None = None
    if item.get("tokens") is not None:
        raw_tokens = item["tokens"]
        if not isinstance(raw_tokens, (list, tuple)):
            problems.add(
                f"{path}.tokens", raw_tokens, "expected a list", "a list of token mappings (may be empty)"
            )
        else:
            made = [
                _token(t, f"{path}.tokens[{j}]", problems, sinks, destination)
                for j, t in enumerate(raw_tokens)
            ]
            tokens = tuple(t for t in made if t is not None)
    roles = _list(item.get("roles"), f"{path}.roles", problems, "role names", check_role_name)
    attach = _list(item.get("attach"), f"{path}.attach", problems, "share mappings", _share(problems))
    if len(problems.found) > before or username is None:
        return None
    return DeclaredAccount(username, halves["read_write"], halves["read_scaling"], tokens, roles, attach)


def _list(
    raw: Any, path: str, problems: _Problems, what: str, check: Callable[[Any, str], T]
) -> tuple[T, ...]:
    """Each item of an optional list checked with ``check`` (``None``: an empty list)."""
    return tuple(_positions(raw, path, problems, what, check).values())


def _positions(
    raw: Any, path: str, problems: _Problems, what: str, check: Callable[[Any, str], T]
) -> dict[int, T]:
    """:func:`_list`'s items that passed, by their position in ``raw``."""
    if raw is None:
        return {}
    if isinstance(raw, (str, Mapping)) or not isinstance(raw, (list, tuple)):
        problems.add(path, raw, "expected a list", f"a list of {what} (may be empty)")
        return {}
    made = {j: problems.check(check, value, f"{path}[{j}]") for j, value in enumerate(raw)}
    return {j: m for j, m in made.items() if m is not None}


def _share(problems: _Problems) -> Callable[[Any, str], DeclaredShare]:
    """The check of one ``{share, owner, alias}`` mapping; its problems go to ``problems``."""

    def check(item: Any, path: str) -> DeclaredShare:
        if isinstance(item, DeclaredShare):  # checked before (an operator checks again after rendering)
            return item
        if not problems.mapping(item, path, SHARE_KEYS, ("share", "owner")):
            raise _Reported
        before = len(problems.found)
        share = problems.check(check_object_name, item["share"], f"{path}.share")
        owner = problems.check(check_username, item["owner"], f"{path}.owner")
        alias = problems.check(check_alias, item.get("alias", share), f"{path}.alias")
        if len(problems.found) > before or share is None or owner is None or alias is None:
            raise _Reported
        return DeclaredShare(share, owner, alias)

    return check


def check_roles(value: Any, field: str = "roles") -> tuple[str, ...]:
    """The flat form's ``roles``: a list of role names (or its JSON text), each once."""
    problems = _Problems(field)
    roles = _list(_json_list(value), field, problems, "role names", check_role_name)
    problems.once("role", ((f"{field}[{j}]", r) for j, r in enumerate(roles)), str)
    problems.raise_any()
    return roles


def check_shares(value: Any, field: str = "shares") -> tuple[DeclaredShare, ...]:
    """The flat form's ``shares``: a list of ``{share, owner, alias}`` (or its JSON text), each
    alias once; every problem at once, with its path (``shares[1].owner``)."""
    problems = _Problems(field)
    shares = _list(_json_list(value), field, problems, "share mappings", _share(problems))
    problems.once("alias", ((f"{field}[{j}].alias", s.alias) for j, s in enumerate(shares)), str.casefold)
    problems.raise_any()
    return shares


def _json_list(value: Any) -> Any:
    """A rendered template's JSON text of a list, parsed; anything else as it is."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class _Reported(ValueError):
    """A part whose problems are already reported (``_Problems.check`` adds nothing for it)."""


def _token(
    item: Any,
    path: str,
    problems: _Problems,
    sinks: Mapping[str, SecretSink],
    destination: SecretDestination | None = None,
) -> DeclaredToken | None:
    if not problems.mapping(item, path, TOKEN_KEYS, ("name",)):
        return None
    before = len(problems.found)
    name = problems.check(check_token_name, item["name"], f"{path}.name")
    token_type = problems.check(check_token_type, item.get("token_type", "read_write"), f"{path}.token_type")
    ttl = problems.check(parse_ttl, item.get("ttl"), f"{path}.ttl")
    variable_key = item.get("variable_key")
    record_key = item.get("record_key")
    sink = item.get("secret_sink")
    for key in ("variable_key", "record_key"):
        if item.get(key) is not None:
            problems.check(check_variable_key, item[key], f"{path}.{key}")
    if isinstance(sink, str):
        if sink not in sinks:
            known = ", ".join(sorted(sinks)) or "none given"
            problems.add(f"{path}.secret_sink", sink, "names no sink in secret_sinks", f"one of: {known}")
        sink = sinks.get(sink)
    if destination is not None:  # checked by the caller (a sink's record may come from its task)
        pass
    elif (variable_key is None) == (item.get("secret_sink") is None):
        problems.add(
            path, item, "give exactly one destination", "variable_key, or secret_sink with record_key"
        )
    elif item.get("secret_sink") is not None and record_key is None:
        problems.add(
            f"{path}.record_key", None, "a secret_sink needs a record key", "an Airflow Variable key"
        )
    if len(problems.found) > before or name is None or token_type is None:
        return None
    try:
        destination = destination or SecretDestination(variable_key, sink, record_key)
    except ValueError as err:  # a sink that is not a callable, record_key == variable_key, ...
        problems.found.append(f"{path}: {err}")
        return None
    return DeclaredToken(name, token_type, ttl, destination)


def check_protect(value: Any, field: str = "protect") -> tuple[str, ...]:
    """Usernames (exact, or ``fnmatch`` patterns such as ``"prod_*"``; case is ignored) that are
    never pruned."""
    allowed = "a list of usernames or glob patterns (prod_*, *_keep)"
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise invalid(field, value, "expected a list", allowed)
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise invalid(field, list(value), f"not a name or pattern: {bad!r}", allowed)
    return tuple(value)


def check_mode(value: Any, field: str = "mode") -> str:
    """``plan``, ``check`` or ``apply``."""
    if value not in MODES:
        raise invalid(field, value, "unknown mode", ", ".join(MODES))
    return str(value)


def check_max_deletes(value: Any, field: str = "max_deletes") -> int:
    """How many revokes and deletes one apply may make: 0 or more."""
    return check_count(value, field, 0)


#: The onboarding operators' flat form of one account: one token, its keys beside the account's.
FLAT_KEYS: Final = (
    "username",
    "token_name",
    "token_type",
    "ttl",
    "variable_key",
    "record_key",
    "read_write",
    "read_scaling",
    "roles",
    "shares",
)
_FLAT_ACCOUNT: Final = {"shares": "attach"}  # the flat form names an account's attachments "shares"
_FLAT_TOKEN: Final = {
    "token_name": "name",
    "token_type": "token_type",
    "ttl": "ttl",
    "variable_key": "variable_key",
    "record_key": "record_key",
}


def check_flat_accounts(
    values: Sequence[Any], field: str, *, destination: SecretDestination | None = None
) -> tuple[DeclaredAccount, ...]:
    """Accounts in the flat form (:data:`FLAT_KEYS`; ``username``, ``token_name`` and
    ``variable_key`` required), as the declared accounts a YAML declaration gives: the same
    checks and the same "declared twice" rule, every problem at once with its flat path
    (``accounts[3].token_name``). ``destination`` (one account only): its token's destination,
    already checked (a secret sink whose record key comes from the task)."""
    problems = _Problems(field)
    nested: list[Any] = []
    for i, flat in enumerate(values):
        path = f"{field}[{i}]" if len(values) > 1 or field == "accounts" else field
        required = ("username", "token_name") + (("variable_key",) if destination is None else ())
        if not problems.mapping(flat, path, FLAT_KEYS, required):
            continue
        token = {_FLAT_TOKEN[k]: v for k, v in flat.items() if k in _FLAT_TOKEN and v is not None}
        halves = {
            _FLAT_ACCOUNT.get(k, k): flat[k]
            for k in ("read_write", "read_scaling", "roles", "shares")
            if flat.get(k) is not None
        }
        nested.append((path, {"username": flat["username"], **halves, "tokens": [token]}))
    accounts = {path: _account(item, path, problems, {}, destination) for path, item in nested}
    checked = problems.unique({path: a for path, a in accounts.items() if a is not None})
    problems.found = [
        p.replace(".tokens[0].name", ".token_name").replace(".tokens[0]", "").replace(".attach[", ".shares[")
        for p in problems.found
    ]
    problems.raise_any()
    return tuple(checked.values())
