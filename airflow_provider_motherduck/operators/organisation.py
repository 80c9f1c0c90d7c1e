"""Operators over the organisation as a whole: list its users, audit its tokens, embed a Dive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool, check_variable_key, optional
from airflow_provider_motherduck.exceptions import MotherDuckError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.validation import check_embed_session, check_path_segment, check_username
from airflow_provider_motherduck.workflows.audit import (
    DEFAULT_AUDIT_WORKERS,
    RULE_CHECKS,
    AuditRules,
    audit_table,
    audit_tokens,
    check_usernames,
    describe_live_sessions,
    describe_violations,
)
from airflow_provider_motherduck.workflows.delivery import (
    SecretDestination,
    SecretSink,
    check_destination,
    task_identity,
)
from airflow_provider_motherduck.workflows.onboarding import check_max_workers


class MotherDuckListUsersOperator(MotherDuckBaseOperator):
    """List the organisation's users (``GET /v1/users``, every page).

    :param service_accounts: ``None`` (default) every user, ``True`` only service accounts,
        ``False`` only humans.
    :param deprovisioned: ``False`` (default) only active users, ``True`` only deprovisioned
        ones, ``None`` both.

    XCom: a list of ``{"id", "username", "email", "first_name", "last_name",
    "is_service_account", "is_deprovisioned", "roles"}``, ordered by username. Needs an admin,
    builder or explorer token; an older MotherDuck API without the listing raises
    ``MotherDuckRouteNotFoundError`` saying so.
    """

    writes = False

    def __init__(
        self, *, service_accounts: bool | None = None, deprovisioned: bool | None = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.service_accounts = service_accounts
        self.deprovisioned = deprovisioned
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"service_accounts": optional(check_bool), "deprovisioned": optional(check_bool)}

    def execute_checked(self, context: Context) -> list[dict[str, Any]]:
        users = [
            dict(user)
            for user in self.hook.list_users(
                service_accounts=self.service_accounts, deprovisioned=self.deprovisioned
            )
        ]
        self.log.info("%d user(s) listed.", len(users))
        return users


class MotherDuckTokenAuditOperator(MotherDuckBaseOperator):
    """List every token of a set of users and report those breaking the audit rules.

    See :mod:`~airflow_provider_motherduck.workflows.audit` for the rules. Only metadata is
    read: no secret is ever involved. The task log shows a table of every token.

    :param usernames: whose tokens (templated; a list, or its JSON text). Default: every active
        service account without the Admin role. A user deleted meanwhile is skipped.
    :param expiring_within: flag tokens expiring within this long (templated): seconds, a
        ``timedelta``, ``"P14D"`` or ``"14 days"``, as a ``ttl``.
    :param max_age: flag tokens created longer ago than this (templated), same forms.
    :param require_expiry: flag tokens that never expire.
    :param fail_on_violation: fail the task when a token breaks a rule, listing their ids and
        names (for an alert); by default the task succeeds and the XCom says which.
    :param max_workers: users listed at the same time (1 to 128), one HTTP session each.

    XCom: ``{"tokens": [...], "violations": [...]}``, each row ``{"username", "id", "name",
    "token_type", "created_ts", "expire_at" (None: never expires), "session": bool, "breaks":
    [rules], "unchecked": [rules an unreadable timestamp left undecided]}``. ``session`` marks a
    live short-lived SQL session token (the hook mints one to act as a service account): it
    breaks no rule and expires by itself within five minutes; an expired one is left out.
    """

    writes = False

    template_fields: Sequence[str] = ("usernames", "expiring_within", "max_age")

    def __init__(
        self,
        *,
        usernames: Sequence[str] | str | None = None,
        expiring_within: int | float | str | timedelta | None = None,
        max_age: int | float | str | timedelta | None = None,
        require_expiry: bool = False,
        fail_on_violation: bool = False,
        max_workers: int = DEFAULT_AUDIT_WORKERS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.usernames = usernames
        self.expiring_within = expiring_within
        self.max_age = max_age
        self.require_expiry = require_expiry
        self.fail_on_violation = fail_on_violation
        self.max_workers = max_workers
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "usernames": optional(check_usernames),
            **RULE_CHECKS,
            "fail_on_violation": check_bool,
            "max_workers": check_max_workers,
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        self.hook.settings  # noqa: B018  # a bad connection fails here, before any thread starts
        result = audit_tokens(
            lambda: MotherDuckHook(self.motherduck_conn_id, **self.hook_params),
            AuditRules(**{field: getattr(self, field) for field in RULE_CHECKS}),  # checked, in seconds
            usernames=self.usernames,  # checked: a list or None
            max_workers=self.max_workers,
        )
        tokens, violations = result["tokens"], result["violations"]
        self.log.info("Audited %d token(s): %d break a rule.", len(tokens), len(violations))
        for line in audit_table(
            tokens
        ).splitlines():  # a record per line: every log handler keeps it readable
            self.log.info("%s", line)
        sessions = describe_live_sessions(tokens)
        if sessions:
            self.log.info("%s", sessions)
        undecided = [row for row in tokens if row["unchecked"]]
        if undecided:
            self.log.warning(
                "%d token(s) have timestamps that cannot be read; rules left undecided: %s",
                len(undecided),
                ", ".join(f"{row['id']} ({', '.join(row['unchecked'])})" for row in undecided),
            )
        if violations and self.fail_on_violation:
            raise MotherDuckError(
                f"{len(violations)} of {len(tokens)} token(s) break the audit rules:\n"
                + describe_violations(violations)
            )
        return result


def _embed_option(name: str) -> Check:
    """The check of one optional embed-session field, as the hook checks the request body."""

    def check(value: Any, field: str) -> Any:
        return check_embed_session("placeholder", **{name: value}).get(name)  # any valid username

    return check


_EMBED_CHECKS: dict[str, Check] = {
    "dive_id": check_path_segment,
    "username": check_username,
    **{
        name: _embed_option(name)
        for name in ("session_name", "version", "required_resources", "initial_state")
    },
    "variable_key": optional(check_variable_key),
}


class MotherDuckCreateDiveEmbedSessionOperator(MotherDuckBaseOperator):
    """Create a session for embedding a Dive, and deliver its credential like a token's secret.

    The session credential (``POST /v1/dives/{dive_id}/embed-session``) is a secret, backed by a
    read-scaling token of ``username`` for about a day: it is masked at once and goes to the
    Variable ``variable_key`` or to ``secret_sink``, never to XCom or the logs. MotherDuck does
    not list sessions and they expire by themselves, so no delivery record is kept and a re-run
    simply creates (and delivers) a fresh one. Needs MotherDuck's Business plan (403 otherwise).

    :param dive_id: the Dive (templated).
    :param username: the service account the session acts as (templated).
    :param session_name: a name for the session (templated).
    :param version: the Dive version to show, 1 or more (templated; default: the latest).
    :param required_resources: ``[{"url", "alias"?}]``, at most 8,192 bytes as JSON (templated).
    :param initial_state: a JSON object, at most 64 KiB (templated).
    :param variable_key: the Variable that receives the credential (templated). Give this or
        ``secret_sink``.
    :param secret_sink: a callable taking the credential, returning nothing (raises on failure).

    XCom: ``{"dive_id", "username", "session_name", "destination"}`` (where the credential went).
    """

    template_fields: Sequence[str] = (*_EMBED_CHECKS,)
    template_fields_renderers = {"required_resources": "json", "initial_state": "json"}

    def __init__(
        self,
        *,
        dive_id: str,
        username: str,
        session_name: str | None = None,
        version: int | None = None,
        required_resources: Sequence[Mapping[str, str]] | None = None,
        initial_state: Mapping[str, Any] | None = None,
        variable_key: str | None = None,
        secret_sink: SecretSink | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dive_id = dive_id
        self.username = username
        self.session_name = session_name
        self.version = version
        self.required_resources = required_resources
        self.initial_state = initial_state
        self.variable_key = variable_key
        self.secret_sink = secret_sink
        check_destination(f"{type(self).__name__} {self.task_id!r}", variable_key, secret_sink, None)
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return _EMBED_CHECKS  # secret_sink is not templated: check_destination saw it in __init__

    def execute_checked(self, context: Context) -> dict[str, Any]:
        # No record is written, so a sink's destination needs no task identity but the id of this task.
        destination = SecretDestination(
            self.variable_key, self.secret_sink, task=task_identity(context) or self.task_id
        )
        answer = self.hook.create_dive_embed_session(
            self.dive_id,
            self.username,
            session_name=self.session_name,
            version=self.version,
            required_resources=self.required_resources,
            initial_state=self.initial_state,
        )
        label = f"Dive {self.dive_id} embed session"
        destination.deliver(answer["session"], f"MotherDuck {label} for {self.username}")
        where = destination.describe()
        self.log.info("Created a %s for %s; the credential is in %s.", label, self.username, where)
        return {
            "dive_id": self.dive_id,
            "username": self.username,
            "session_name": self.session_name,
            "destination": where,
        }
