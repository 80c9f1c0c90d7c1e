"""MotherDuckRotateTokenOperator: replace a token without a moment in which the destination holds none.

The steps and their safety are :func:`~airflow_provider_motherduck.workflows.rotation.rotate_token`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool, check_count, check_variable_key, optional
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.validation import check_token_type, check_username, parse_duration, parse_ttl
from airflow_provider_motherduck.workflows.delivery import (
    SecretDestination,
    SecretSink,
    check_destination,
    issuer_of,
    task_identity,
)
from airflow_provider_motherduck.workflows.naming import check_logical_name, run_marker
from airflow_provider_motherduck.workflows.rotation import rotate_token


class MotherDuckRotateTokenOperator(MotherDuckBaseOperator):
    """Rotate a user's access token: create a new one, deliver its secret, then revoke older ones.

    Safe at every step (see :mod:`airflow_provider_motherduck.workflows.rotation` for the design):

    1. Lists the user's tokens (the only request of a ``dry_run``).
    2. Creates ``<token_name>@<run marker>`` unless this run's token was created and delivered
       already (a re-run after a failed revoke creates no second token).
    3. Delivers the secret to ``variable_key`` or ``secret_sink``, then writes the delivery record.
       If delivering fails, the new token is revoked again and the task fails; old tokens are not
       touched and the destination keeps the previous secret. If only the record cannot be
       written, the secret is out and valid: the new token stays, old tokens are not touched, the
       task fails, and a re-run delivers a fresh token and revokes this one.
    4. Revokes older tokens of the logical name (the bare ``token_name`` and any
       ``token_name@<marker>``), keeping the ``keep`` newest (the new one included). Expired ones
       are revoked too. With ``revoke_after``, tokens younger than that are left for a later run.
       If a revoke fails, the others are still tried, then the task fails with
       :class:`MotherDuckRotationError` naming the ids still live; a re-run finishes the job.

    :param username: the token's owner (templated).
    :param token_name: the logical token name, 1 to 231 characters (templated); MotherDuck names
        the new token ``<token_name>@<run marker>``.
    :param ttl: the new token's lifetime (templated), as for :class:`MotherDuckCreateTokenOperator`:
        seconds, a ``timedelta``, ``"P30D"``, ``"35 days"``; ``None``/``"never"`` for no expiry.
        Make it longer than the schedule interval plus ``revoke_after``.
    :param token_type: ``read_write`` (default) or ``read_scaling`` (templated).
    :param variable_key: the Airflow Variable that receives the secret (templated). Give this or
        ``secret_sink``.
    :param secret_sink: instead of a Variable: a callable taking the secret and returning nothing
        (e.g. writing it to a secrets manager); it must raise if it could not store the secret.
        Not templated.
    :param record_key: the Airflow Variable holding the delivery record (templated); default
        ``motherduck_delivery_<hash>`` of the Variable, or of the task (DAG, task, map index)
        for a ``secret_sink``.
    :param keep: how many of the newest tokens of the logical name survive, the new one
        included (1 or more; default 1).
    :param revoke_after: optional grace (templated): only tokens older than this are revoked,
        so consumers have time to pick up the new secret. ``"2 days"``, ``"PT12H"``, seconds or a
        ``timedelta``.
    :param dry_run: only list the tokens and say what would be done; writes nothing.

    ``max_active_tis_per_dag`` defaults to 1, as for every writing operator
    (:class:`~airflow_provider_motherduck.operators._base.MotherDuckBaseOperator`).

    XCom (never a secret)::

        {"username", "token_name", "destination", "dry_run",
         "token": {"id", "name", "token_type", "expire_at", "created_ts", "read_only", "username"},
         "created": bool, "revoked_ids": [...], "kept_ids": [...], "in_grace_ids": [...],
         "still_live_ids": []}

    ``token`` is the token whose secret the destination now holds and ``created`` whether
    this run made it (``False`` on a re-run that found it delivered). ``kept_ids`` includes the
    new token. With ``dry_run``, ``created`` and ``revoked_ids`` say what a real run would do and
    ``token`` is ``None`` when a token would be created.
    """

    template_fields: Sequence[str] = (
        "username",
        "token_name",
        "token_type",
        "ttl",
        "variable_key",
        "record_key",
        "revoke_after",
    )

    def __init__(
        self,
        *,
        username: str,
        token_name: str,
        ttl: int | float | str | timedelta | None,
        token_type: str = "read_write",
        variable_key: str | None = None,
        secret_sink: SecretSink | None = None,
        record_key: str | None = None,
        keep: int = 1,
        revoke_after: int | float | str | timedelta | None = None,
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.token_name = token_name
        self.ttl = ttl
        self.token_type = token_type
        self.variable_key = variable_key
        self.secret_sink = secret_sink
        self.record_key = record_key
        self.keep = keep
        self.revoke_after = revoke_after
        # Not ``self.dry_run``: that is BaseOperator.dry_run(), which ``airflow tasks test --dry-run`` calls.
        self.plan_only = dry_run
        check_destination(f"{type(self).__name__} {self.task_id!r}", variable_key, secret_sink, record_key)
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "token_name": check_logical_name,
            "token_type": check_token_type,
            "ttl": parse_ttl,
            "variable_key": optional(check_variable_key),
            "record_key": optional(check_variable_key),
            "keep": lambda value, field: check_count(value, field, 1),
            "revoke_after": optional(parse_duration),
            "plan_only": lambda value, field: check_bool(value, "dry_run"),
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        destination = SecretDestination(
            self.variable_key, self.secret_sink, self.record_key, task=task_identity(context)
        )
        return rotate_token(
            self.hook,
            self.username,
            self.token_name,
            destination,
            marker=run_marker(context),
            ttl=self.ttl,
            token_type=self.token_type,
            keep=self.keep,
            revoke_after=cast("float | None", self.revoke_after),  # seconds, once checked
            dry_run=self.plan_only,
            issuer=issuer_of(context),
        )
