"""The organisation as code: one operator that plans, checks or applies a declaration of service accounts.

The work is :mod:`airflow_provider_motherduck.workflows.reconcile`'s; this is its task shell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool
from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.workflows.delivery import SecretSink, issuer_of, variable_store
from airflow_provider_motherduck.workflows.loading import declaration_path, read_declaration_file
from airflow_provider_motherduck.workflows.onboarding import check_max_workers
from airflow_provider_motherduck.workflows.reconcile import (
    DEFAULT_MAX_DELETES,
    Declaration,
    check_declaration,
    check_max_deletes,
    check_mode,
    check_protect,
    reconcile_accounts,
)


class MotherDuckReconcileOperator(MotherDuckBaseOperator):
    """Bring the organisation's service accounts to a declaration: plan, check (drift) or apply.

    ``desired`` declares service accounts, each with an optional partial Duckling config and the
    tokens it must hold, each token delivered to a Variable or a ``secret_sink`` like onboarding's
    (see :doc:`/guides/organisation-as-code`). It is checked before any request, every problem
    reported at once with its path (``service_accounts[3].tokens[0].ttl``).

    * ``mode="plan"``: no write; returns the plan.
    * ``mode="check"``: no write; fails when the plan is not empty (a drift alert).
    * ``mode="apply"``: carries the plan out, ``max_workers`` accounts at a time. A failure
      part-way leaves a state the next run finishes from; a converged declaration makes no write.

    A declaration manages only what it owns: its ``name`` names an ownership record (the Variable
    ``motherduck_owned_<name>``) of the accounts and token names it created or adopted (a declared
    account that exists is adopted). With ``prune=True`` it also deletes owned service accounts the
    declaration no longer names, and revokes tokens of owned names a declared account no longer
    declares; an account neither declared nor owned is never touched. Never pruned: human users,
    users with the Admin role, deprovisioned users, names matching ``protect`` (case ignored), and
    users whose listing is malformed. No write is made from a partial user listing, and a plan
    revoking or deleting more than ``max_deletes`` things is not applied.

    :param desired: a mapping, its JSON or YAML text, or the path of a ``.json``, ``.yaml`` or
        ``.yml`` file (templated; a relative path is taken from the DAG file's folder; the file's
        text is rendered with Jinja when the task runs, then checked).
    :param mode: ``plan``, ``check`` or ``apply`` (templated).
    :param prune: delete and revoke what the declaration does not name.
    :param protect: usernames or glob patterns never pruned (templated).
    :param max_deletes: most revokes and deletions one run may make (default 5).
    :param max_workers: accounts read and changed at the same time (1 to 128).
    :param secret_sinks: callables a declaration's ``secret_sink`` may name (a file cannot hold a
        callable): ``{"vault": write_to_vault}``.

    XCom: ``name``, ``mode``, ``prune``, ``plan`` (a list of ``{"action", "username", "detail",
    ...}``), ``deletes``, ``spared``, ``unsafe`` (why applying would be refused),
    ``adopted_usernames``, and in apply mode ``done`` (actions with their outcome), ``failed``,
    ``not_attempted``. Never a secret. See :doc:`/reference/xcom`.
    """

    template_fields: Sequence[str] = ("desired", "mode", "protect")
    template_fields_renderers = {"desired": "json"}

    def __init__(
        self,
        *,
        desired: Mapping[str, Any] | str | Path,
        mode: str = "apply",
        prune: bool = False,
        protect: Sequence[str] = (),
        max_deletes: int = DEFAULT_MAX_DELETES,
        max_workers: int = 8,
        secret_sinks: Mapping[str, SecretSink] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.desired = str(desired) if isinstance(desired, Path) else desired
        self.mode = mode
        self.prune = prune
        self.protect = protect
        self.max_deletes = max_deletes
        self.max_workers = max_workers
        self.secret_sinks = dict(secret_sinks or {})
        bad = [k for k, v in self.secret_sinks.items() if not isinstance(k, str) or not callable(v)]
        if bad:
            raise invalid("secret_sinks", bad, "not a name -> callable entry", "{name: callable}")
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "desired": self._check_desired,
            "mode": check_mode,
            "prune": check_bool,
            "protect": check_protect,
            "max_deletes": check_max_deletes,
            "max_workers": check_max_workers,
        }

    def _check_desired(self, value: Any, field: str) -> Any:
        if isinstance(value, Declaration):
            return value
        if declaration_path(value) is not None:  # read (and rendered) when the task runs
            return value
        return check_declaration(value, field, secret_sinks=self.secret_sinks)

    def execute(self, context: Context) -> Any:
        """Read and render a declaration file, then check and reconcile."""
        path = declaration_path(self.desired)
        if path is not None:
            if not path.is_absolute() and self.has_dag():  # type: ignore[no-untyped-call]
                path = Path(self.dag.folder) / path
            with self.naming_the_task():
                text = read_declaration_file(path, "desired")
            self.desired = self.render_template(text, context)
        return super().execute(context)

    def execute_checked(self, context: Context) -> dict[str, Any]:
        assert isinstance(self.desired, Declaration)
        return reconcile_accounts(
            self.desired,
            lambda: MotherDuckHook(self.motherduck_conn_id, **self.hook_params),
            variable_store(),
            mode=self.mode,
            prune=self.prune,
            protect=self.protect,
            max_deletes=self.max_deletes,
            max_workers=self.max_workers,
            issuer=issuer_of(context),
        )
