"""Reconcile: bring the organisation's service accounts to a declaration, and show the drift.

The invariant: planning only reads, and applying writes only what the plan lists, so re-running a
converged declaration makes no write; every step is safe to fail and to repeat, so after a failure
part-way the next run's plan lists exactly what is left. Nothing is ever pruned that is a human
user, holds the Admin role, is deprovisioned or matches ``protect``.

How each step keeps it:

* **Read** (:func:`read_state`): the users (``GET /v1/users``, every page), then for each declared
  account that exists its tokens and Duckling config, and which token each declared destination
  holds (:meth:`~airflow_provider_motherduck.workflows.delivery.SecretDestination.delivered`,
  exactly as onboarding recognises it).
* **Plan** (:func:`plan_reconcile`, pure): ``create_user`` for a declared account that is
  missing; ``update_duckling_config`` with the fields that change; ``create_token`` for a declared
  token whose destination holds no live token of that name and type; ``revoke_token`` for tokens an
  earlier try left that nobody holds and, with ``prune``, for tokens of declared names it does not
  declare; with ``prune``, ``delete_user`` for active service accounts it does not name.
* **Apply** (:func:`apply_plan`): each account's actions in that order, accounts side by side on a
  bounded pool. A user found created meanwhile counts as created; the Duckling write is
  read-merge-write (no ``PUT`` when equal); a token goes through
  :func:`~airflow_provider_motherduck.workflows.issuing.issue_token`, whose delivery record lets
  the next try find what this one left; a revoke or delete of something gone is success; a user is
  deleted only after its tokens are revoked
  (:func:`~airflow_provider_motherduck.workflows.onboarding.offboard_account`).

A declaration is a mapping (or its JSON or YAML text, or a path to such a file)::

    service_accounts:
      - username: etl_loader
        read_write: {instance_size: jumbo}          # partial Duckling config, optional
        read_scaling: {flock_size: 2}
        tokens:                                      # left out: tokens not managed
          - {name: airflow, ttl: 90 days, variable_key: motherduck_token_etl_loader}
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, TypeVar

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.arguments import check_count, check_variable_key
from airflow_provider_motherduck.exceptions import (
    MotherDuckConflictError,
    MotherDuckNotFoundError,
    MotherDuckReconcileError,
    invalid,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import (
    DUCKLING_FIELDS,
    check_duckling_half,
    check_new_username,
    check_token_name,
    check_token_type,
    merge_duckling_config,
    parse_ttl,
)
from airflow_provider_motherduck.workflows.delivery import SecretDestination, SecretSink
from airflow_provider_motherduck.workflows.issuing import issue_token
from airflow_provider_motherduck.workflows.naming import name_pattern
from airflow_provider_motherduck.workflows.onboarding import offboard_account
from airflow_provider_motherduck.workflows.pool import HookFactory, run_on_pool

log = logging.getLogger(__name__)

MODES: Final = ("plan", "check", "apply")
DEFAULT_MAX_DELETES: Final = 5
#: File names read as a declaration (JSON is read as JSON, the rest as YAML).
DECLARATION_SUFFIXES: Final = (".json", ".yaml", ".yml")
ACCOUNT_KEYS: Final = ("username", "read_write", "read_scaling", "tokens")
TOKEN_KEYS: Final = ("name", "token_type", "ttl", "variable_key", "secret_sink", "record_key")
#: Actions in the order one account's are applied.
ACTION_ORDER: Final = ("create_user", "update_duckling_config", "create_token", "revoke_token", "delete_user")
DESTRUCTIVE: Final = frozenset({"revoke_token", "delete_user"})

T = TypeVar("T")
R = TypeVar("R")


# -- the declaration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredToken:
    """A token an account must hold, and where its secret goes."""

    name: str
    token_type: str
    ttl: int | None
    destination: SecretDestination


@dataclass(frozen=True)
class DeclaredAccount:
    """A service account as declared; ``tokens=None``: its tokens are not managed."""

    username: str
    read_write: dict[str, Any] | None = None
    read_scaling: dict[str, Any] | None = None
    tokens: tuple[DeclaredToken, ...] | None = None

    @property
    def sizes_declared(self) -> bool:
        return self.read_write is not None or self.read_scaling is not None


@dataclass(frozen=True)
class Declaration:
    """A checked declaration (see :func:`check_declaration`)."""

    accounts: tuple[DeclaredAccount, ...]

    def account(self, username: str) -> DeclaredAccount | None:
        return next((a for a in self.accounts if a.username == username), None)


_SOURCE_FORMS = "a mapping, its JSON or YAML text, or the path of a .json, .yaml or .yml file"


def declaration_path(source: Any) -> Path | None:
    """The file ``source`` names (a ``PathLike``, or a one-line string ending in ``.json``,
    ``.yaml`` or ``.yml``), or ``None`` for a mapping or inline text."""
    if isinstance(source, os.PathLike):
        return Path(source)
    if isinstance(source, str) and "\n" not in source and source.strip().endswith(DECLARATION_SUFFIXES):
        return Path(source.strip()).expanduser()
    return None


def read_declaration_file(path: Path, field: str = "desired") -> str:
    """The text of a declaration file."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise invalid(field, str(path), f"cannot be read ({err.strerror or err})", _SOURCE_FORMS) from None


def load_declaration(source: Any, field: str = "desired") -> Any:
    """The declaration's data: a mapping as it is, a file (:func:`declaration_path`) read, other
    text parsed as JSON, else as YAML."""
    if isinstance(source, Mapping):
        return source
    path = declaration_path(source)
    if path is not None:
        return _parse(read_declaration_file(path, field), field, json_only=path.suffix == ".json")
    if isinstance(source, str):
        return _parse(source, field, json_only=False)
    raise invalid(field, source, f"expected a mapping or text, got {type(source).__name__}", _SOURCE_FORMS)


def _parse(text: str, field: str, *, json_only: bool) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        if json_only:
            raise invalid(field, text[:40], f"not JSON ({err})", _SOURCE_FORMS) from None
    import yaml  # ships with Airflow; imported only when a YAML declaration is read

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise invalid(field, text[:40], f"neither JSON nor YAML ({err})", _SOURCE_FORMS) from None


class _Problems:
    """Every problem of a declaration, each with its path; raised together at the end."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.found: list[str] = []

    def check(self, check: Callable[[Any, str], T], value: Any, path: str) -> T | None:
        try:
            return check(value, path)
        except ValueError as err:
            self.found.append(str(err))
            return None

    def add(self, path: str, value: Any, problem: str, allowed: str) -> None:
        self.found.append(str(invalid(path, value, problem, allowed)))

    def keys(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str]) -> bool:
        """Whether ``value`` is a mapping with only ``allowed`` keys and every ``required`` one."""
        wanted = "a mapping with keys " + ", ".join(allowed)
        if not isinstance(value, Mapping):
            self.add(path, value, f"expected a mapping, got {type(value).__name__}", wanted)
            return False
        unknown = sorted(str(k) for k in value if k not in allowed)
        missing = [k for k in required if value.get(k) is None]
        parts = ([f"unknown keys {unknown}"] if unknown else []) + (
            [f"missing {', '.join(missing)}"] if missing else []
        )
        if parts:
            self.add(path, dict(value), "; ".join(parts), wanted)
        return not missing

    def raise_any(self) -> None:
        if self.found:
            lines = "\n".join(f"  - {p}" for p in self.found)
            raise ValueError(f"{self.field}: {len(self.found)} problem(s) in the declaration:\n{lines}")


def check_declaration(
    value: Any, field: str = "desired", *, secret_sinks: Mapping[str, SecretSink] | None = None
) -> Declaration:
    """Check a declaration (see :func:`load_declaration` for the forms it takes) before any request.

    Every problem is reported at once, each with its path (``service_accounts[3].tokens[0].ttl``),
    in one ``ValueError``. A token's ``secret_sink`` is a callable, or the name of one in
    ``secret_sinks`` (the form a file can hold), and needs ``record_key``. Usernames, token names
    within an account, and Variable keys (secrets and records) must each be unique.
    """
    data = load_declaration(value, field)
    problems = _Problems(field)
    if not problems.keys(data, field, ("service_accounts",), ("service_accounts",)):
        problems.raise_any()
    listed = data["service_accounts"]
    if not isinstance(listed, (list, tuple)):
        problems.add(
            "service_accounts", listed, "expected a list", "a list of account mappings (may be empty)"
        )
        problems.raise_any()
    accounts = [
        _account(item, f"service_accounts[{i}]", problems, secret_sinks or {})
        for i, item in enumerate(listed)
    ]
    checked = [a for a in accounts if a is not None]
    _unique(problems, "username", [a.username for a in checked])
    for account in checked:
        _unique(problems, f"token name of {account.username}", [t.name for t in account.tokens or ()])
    keys = [
        key
        for account in checked
        for token in account.tokens or ()
        for key in (token.destination.variable_key, token.destination.record)
        if key is not None
    ]
    _unique(problems, "Variable key", keys)
    problems.raise_any()
    return Declaration(tuple(checked))


def _unique(problems: _Problems, what: str, values: Iterable[str]) -> None:
    twice = sorted(k for k, n in Counter(values).items() if n > 1)
    if twice:
        problems.found.append(
            f"service_accounts is invalid: {what} declared twice: {', '.join(twice)}. Allowed: each {what} once."
        )


def _account(
    item: Any, path: str, problems: _Problems, sinks: Mapping[str, SecretSink]
) -> DeclaredAccount | None:
    if not problems.keys(item, path, ACCOUNT_KEYS, ("username",)):
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
            made = [_token(t, f"{path}.tokens[{j}]", problems, sinks) for j, t in enumerate(raw_tokens)]
            tokens = tuple(t for t in made if t is not None)
    if len(problems.found) > before or username is None:
        return None
    return DeclaredAccount(username, halves["read_write"], halves["read_scaling"], tokens)


def _token(
    item: Any, path: str, problems: _Problems, sinks: Mapping[str, SecretSink]
) -> DeclaredToken | None:
    if not problems.keys(item, path, TOKEN_KEYS, ("name",)):
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
    if (variable_key is None) == (item.get("secret_sink") is None):
        problems.add(
            path, dict(item), "give exactly one destination", "variable_key, or secret_sink with record_key"
        )
    elif item.get("secret_sink") is not None and record_key is None:
        problems.add(
            f"{path}.record_key", None, "a secret_sink needs a record key", "an Airflow Variable key"
        )
    if len(problems.found) > before or name is None or token_type is None:
        return None
    try:
        destination = SecretDestination(variable_key, sink, record_key)
    except ValueError as err:  # a sink that is not a callable, record_key == variable_key, ...
        problems.found.append(f"{path}: {err}")
        return None
    return DeclaredToken(name, token_type, ttl, destination)


def check_protect(value: Any, field: str = "protect") -> tuple[str, ...]:
    """Usernames (exact, or ``fnmatch`` patterns such as ``"prod_*"``) that are never pruned."""
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


# -- what is there ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class OrgState:
    """The listed state a plan is made from."""

    users: tuple[Mapping[str, Any], ...]
    """Every user, humans and deprovisioned ones included (``list_users`` fields)."""
    accounts: Mapping[str, AccountState]
    """Declared accounts that exist as active service accounts."""


def read_state(declaration: Declaration, new_hook: HookFactory, *, max_workers: int) -> OrgState:
    """List what a plan needs, reading only: users, then each existing declared account on a pool."""
    hook = new_hook()
    try:
        users = tuple(hook.list_users(deprovisioned=None))
    finally:
        hook.close()
    active_accounts = {
        u["username"] for u in users if u.get("is_service_account") and not u.get("is_deprovisioned")
    }
    present = [a for a in declaration.accounts if a.username in active_accounts]

    def read(hook: MotherDuckHook, account: DeclaredAccount) -> AccountState:
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
        return AccountState(tokens, config, delivered, leftovers)

    results, errors = run_on_pool(present, read, new_hook, max_workers=max_workers, name="md-reconcile-read")
    for error in errors.values():
        if not isinstance(error, MotherDuckNotFoundError):  # not found: deleted since the listing
            raise error
    states = {a.username: s for a, s in zip(present, results, strict=True) if s is not None}
    return OrgState(users, states)


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One write of a plan. ``detail`` says what, for the log table; never a secret."""

    kind: str
    username: str
    detail: str = ""
    token_id: str | None = None
    token_name: str | None = None
    changes: Mapping[str, tuple[Any, Any]] | None = None
    """``update_duckling_config``: ``{"read_write.instance_size": (old, new)}``; old ``None``: unknown."""
    token: DeclaredToken | None = field(default=None, compare=False, repr=False)
    account: DeclaredAccount | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able XCom form."""
        out: dict[str, Any] = {"action": self.kind, "username": self.username, "detail": self.detail}
        if self.token_id is not None:
            out["token_id"] = self.token_id
        if self.token_name is not None:
            out["token_name"] = self.token_name
        if self.token is not None:
            out["token_type"] = self.token.token_type
            out["destination"] = self.token.destination.describe()
        if self.changes is not None:
            out["changes"] = {k: {"from": old, "to": new} for k, (old, new) in self.changes.items()}
        return out


@dataclass(frozen=True)
class ReconcilePlan:
    """What applying would do, and what pruning spares and why."""

    actions: tuple[Action, ...]
    spared: tuple[tuple[str, str], ...] = ()
    """``(username, reason)`` of service accounts or tokens pruning leaves alone."""
    listed: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict, repr=False)
    """The tokens listed per account (issue_token is handed them, saving a request)."""

    @property
    def deletes(self) -> int:
        """How many revokes and user deletions it holds."""
        return sum(a.kind in DESTRUCTIVE for a in self.actions)

    def as_list(self) -> list[dict[str, Any]]:
        return [a.as_dict() for a in self.actions]

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
            + ", ".join(f"{counts[k]} {k}" for k in ACTION_ORDER if counts[k])
        )
        return "\n".join(lines)


def _is_admin(user: Mapping[str, Any]) -> bool:
    return any(str(r).lower() == "admin" for r in user.get("roles") or ())


def _guarded(user: Mapping[str, Any], protect: Sequence[str]) -> str | None:
    """Why pruning must leave a (service account) user alone, or ``None``."""
    if _is_admin(user):
        return "Admin role"
    username = str(user.get("username"))
    if any(username == p or fnmatchcase(username, p) for p in protect):
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
    """The actions that bring ``state`` to ``declaration`` (pure: no request, no Variable).

    Raises :class:`MotherDuckReconcileError` when a declared account is taken by a human user or a
    deprovisioned one: no action can make it a service account.
    """
    by_name = {u["username"]: u for u in state.users}
    clashes = [
        f"{a.username} ({'a human user' if not by_name[a.username].get('is_service_account') else 'deprovisioned'})"
        for a in declaration.accounts
        if a.username in by_name
        and (not by_name[a.username].get("is_service_account") or by_name[a.username].get("is_deprovisioned"))
    ]
    if clashes:
        raise MotherDuckReconcileError(
            "Declared service account(s) taken by users that cannot be one: "
            + ", ".join(clashes)
            + ". Rename them in the declaration."
        )
    actions: list[Action] = []
    spared: list[tuple[str, str]] = []
    for account in declaration.accounts:
        current = state.accounts.get(account.username)
        if current is None:
            actions.append(Action("create_user", account.username, "new service account"))
        actions += _plan_sizes(account, current)
        actions += _plan_tokens(account, current)
        if prune and current is not None and account.tokens is not None:
            pruned = _plan_undeclared_tokens(account, current)
            reason = _guarded(by_name.get(account.username, {"username": account.username}), protect)
            if reason and pruned:
                spared.append((account.username, f"{len(pruned)} undeclared token(s) kept: {reason}"))
            elif pruned:
                actions += pruned
    if prune:
        declared = {a.username for a in declaration.accounts}
        for user in sorted(state.users, key=lambda u: str(u["username"])):
            username = str(user["username"])
            if username in declared or not user.get("is_service_account") or user.get("is_deprovisioned"):
                continue  # humans and deprovisioned users are never candidates
            reason = _guarded(user, protect)
            if reason:
                spared.append((username, f"not declared, kept: {reason}"))
            else:
                actions.append(Action("delete_user", username, "not declared: revoke its tokens, delete it"))
    listed = {name: s.tokens for name, s in state.accounts.items()}
    return ReconcilePlan(tuple(actions), tuple(spared), listed)


def _plan_sizes(account: DeclaredAccount, current: AccountState | None) -> list[Action]:
    if not account.sizes_declared:
        return []
    wanted = {"read_write": account.read_write, "read_scaling": account.read_scaling}
    if current is None or current.config is None:  # a new user: its defaults are MotherDuck's
        changes = {f"{h}.{k}": (None, v) for h, part in wanted.items() for k, v in (part or {}).items()}
    else:
        before = merge_duckling_config(current.config)
        after = merge_duckling_config(current.config, **wanted)
        changes = {
            f"{h}.{k}": (before[h].get(k), after[h].get(k))
            for h in DUCKLING_FIELDS
            for k in DUCKLING_FIELDS[h]
            if before[h].get(k) != after[h].get(k)
        }
    if not changes:
        return []
    detail = "; ".join(
        f"{k}: {'?' if old is None else old} -> {'default' if new is None else new}"
        for k, (old, new) in changes.items()
    )
    return [Action("update_duckling_config", account.username, detail, changes=changes, account=account)]


def _plan_tokens(account: DeclaredAccount, current: AccountState | None) -> list[Action]:
    actions: list[Action] = []
    for token in account.tokens or ():
        leftovers = current.leftovers.get(token.name, ()) if current is not None else ()
        if current is None or token.name not in current.delivered:
            replaces = f"; revokes {len(leftovers)} left by an earlier try" if leftovers else ""
            detail = (
                f"{token.name} ({token.token_type}, {_ttl_words(token.ttl)}) -> "
                f"{token.destination.describe()}{replaces}"
            )
            actions.append(
                Action("create_token", account.username, detail, token_name=token.name, token=token)
            )
            continue  # issue_token revokes the leftovers once the new secret is delivered
        for token_id in leftovers:
            actions.append(
                Action(
                    "revoke_token",
                    account.username,
                    f"{token.name} (id {token_id}): an earlier try made it, nobody holds its secret",
                    token_id=token_id,
                    token_name=token.name,
                )
            )
    return actions


def _plan_undeclared_tokens(account: DeclaredAccount, current: AccountState) -> list[Action]:
    families = [name_pattern(t.name) for t in account.tokens or ()]
    return [
        Action(
            "revoke_token",
            account.username,
            f"{t.get('name')} (id {t.get('id')}): not declared",
            token_id=str(t.get("id")),
            token_name=str(t.get("name")),
        )
        for t in current.tokens
        if not any(f.fullmatch(str(t.get("name", ""))) for f in families)
    ]


# -- applying it ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileResult:
    """What an apply did: each action's XCom form with its ``outcome``, and what failed."""

    done: list[dict[str, Any]]
    failed: dict[str, str]
    """Username -> error, for accounts whose actions stopped (the rest of theirs not attempted)."""
    not_attempted: list[dict[str, Any]]


def apply_plan(
    plan: ReconcilePlan,
    new_hook: HookFactory,
    *,
    max_workers: int,
    max_deletes: int | None = DEFAULT_MAX_DELETES,
) -> ReconcileResult:
    """Carry out ``plan``: each account's actions in order, accounts on up to ``max_workers`` threads.

    Refuses, before any write, a plan holding more than ``max_deletes`` revokes and deletions
    (``None``: no limit). An account whose action fails stops there; the others go on. A re-run
    (a new plan from a new read) finishes the job.
    """
    if max_deletes is not None and plan.deletes > max_deletes:
        raise MotherDuckReconcileError(
            f"Refusing to apply: the plan revokes or deletes {plan.deletes} thing(s), more than "
            f"max_deletes={max_deletes}. Check the declaration (is an account or token missing from "
            "it?), protect what must stay, or raise max_deletes.",
            {"plan": plan.as_list(), "deletes": plan.deletes},
        )
    groups: dict[str, list[Action]] = {}
    for action in plan.actions:
        groups.setdefault(action.username, []).append(action)
    order = list(groups)

    def account(hook: MotherDuckHook, username: str) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        for action in groups[username]:
            try:
                outcome = _apply(hook, plan, action)
            except Exception as err:
                raise _Stopped(done, err) from err  # the pool reads the cause
            done.append({**action.as_dict(), "outcome": outcome})
            log.info("Done: %s %s %s", action.kind, action.username, action.detail)
        return done

    results, errors = run_on_pool(order, account, new_hook, max_workers=max_workers, name="md-reconcile")
    done: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    not_attempted: list[dict[str, Any]] = []
    for i, username in enumerate(order):
        error = errors.get(i)
        if error is None:
            done += results[i] or []
            continue
        finished = error.done if isinstance(error, _Stopped) else []
        cause = error.cause if isinstance(error, _Stopped) else error
        done += finished
        not_attempted += [a.as_dict() for a in groups[username][len(finished) :]]
        failed[username] = f"{type(cause).__name__}: {redact(str(cause))}"
    return ReconcileResult(done, failed, not_attempted)


class _Stopped(Exception):
    """An account's actions stopped: those done, and why."""

    def __init__(self, done: list[dict[str, Any]], cause: Exception) -> None:
        super().__init__(str(cause))
        self.done = done
        self.cause = cause


def _apply(hook: MotherDuckHook, plan: ReconcilePlan, action: Action) -> dict[str, Any]:
    """One action; returns its outcome (ids and metadata, never a secret)."""
    username = action.username
    if action.kind == "create_user":
        try:
            hook.create_user(username)
        except MotherDuckConflictError:  # created meanwhile (or by a try whose answer was lost)
            return {"created": False}
        return {"created": True}
    if action.kind == "update_duckling_config":
        assert action.account is not None
        config = hook.update_duckling_config(
            username, read_write=action.account.read_write, read_scaling=action.account.read_scaling
        )
        return {"duckling_config": dict(config)}
    if action.kind == "create_token":
        assert action.token is not None
        issued = issue_token(
            hook,
            username,
            action.token.name,
            ttl=action.token.ttl,
            token_type=action.token.token_type,
            destination=action.token.destination,
            listed=plan.listed.get(username, ()),
        )
        return {"token": issued.token, "replaced": issued.replaced}
    if action.kind == "revoke_token":
        assert action.token_id is not None
        return {"revoked": hook.revoke_token(username, action.token_id, missing_ok=True)}
    if action.kind == "delete_user":
        gone = offboard_account(hook, username, forget_variables=False)
        return {"revoked_ids": gone["revoked_ids"], "deleted": gone["deleted"]}
    raise AssertionError(f"unknown action {action.kind}")


def reconcile_accounts(
    declaration: Declaration,
    new_hook: HookFactory,
    *,
    mode: str = "apply",
    prune: bool = False,
    protect: Sequence[str] = (),
    max_deletes: int | None = DEFAULT_MAX_DELETES,
    max_workers: int = 8,
) -> dict[str, Any]:
    """Read, plan, log the plan as a table, then act as ``mode`` says; returns the summary (XCom).

    ``plan`` makes no write. ``check`` makes no write and raises :class:`MotherDuckReconcileError`
    when the plan is not empty (drift). ``apply`` carries the plan out (see :func:`apply_plan`)
    and raises, after finishing what it could, if an account's actions failed. The summary:
    ``mode``, ``prune``, ``plan`` (the actions), ``deletes``, ``spared``, and for ``apply`` also
    ``done`` (each action with its outcome), ``failed`` and ``not_attempted``. Never a secret.
    """
    check_mode(mode)
    state = read_state(declaration, new_hook, max_workers=max_workers)
    plan = plan_reconcile(declaration, state, prune=prune, protect=protect)
    summary: dict[str, Any] = {
        "mode": mode,
        "prune": prune,
        "plan": plan.as_list(),
        "deletes": plan.deletes,
        "spared": [{"username": u, "reason": r} for u, r in plan.spared],
    }
    log.info(
        "Plan for %d declared service account(s) (%s, prune=%s):\n%s",
        len(declaration.accounts),
        mode,
        prune,
        plan.table(),
    )
    for username, reason in plan.spared:
        log.info("Not pruned: %s (%s).", username, reason)
    if mode == "plan":
        if max_deletes is not None and plan.deletes > max_deletes:
            log.warning(
                "Applying this plan would be refused: %d deletes > max_deletes=%d.", plan.deletes, max_deletes
            )
        return summary
    if mode == "check":
        if plan.actions:
            raise MotherDuckReconcileError(
                f"Drift: MotherDuck differs from the declaration by {len(plan.actions)} action(s):\n"
                + plan.table(),
                summary,
            )
        return summary
    result = apply_plan(plan, new_hook, max_workers=max_workers, max_deletes=max_deletes)
    summary.update(done=result.done, failed=result.failed, not_attempted=result.not_attempted)
    log.info("Applied %d of %d action(s).", len(result.done), len(plan.actions))
    if result.failed:
        lines = "\n".join(f"  - {name}: {error}" for name, error in result.failed.items())
        raise MotherDuckReconcileError(
            f"{len(result.failed)} account(s) not reconciled; {len(result.done)} action(s) done, "
            f"{len(result.not_attempted)} not attempted. A re-run finishes them:\n{lines}",
            summary,
        )
    return summary
