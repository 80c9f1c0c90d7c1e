"""Operators for access tokens: create, revoke and list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool, check_variable_key, optional
from airflow_provider_motherduck.exceptions import MotherDuckError, MotherDuckNotFoundError, TokenIssueError
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.validation import (
    check_token_id,
    check_token_name,
    check_token_type,
    check_username,
    parse_ttl,
)
from airflow_provider_motherduck.workflows.delivery import SecretDestination, forget, issuer_of
from airflow_provider_motherduck.workflows.issuing import issue_token, revoke_tokens
from airflow_provider_motherduck.workflows.tokens import token_metadata


class MotherDuckCreateTokenOperator(MotherDuckBaseOperator):
    """Create an access token for a user; the secret is masked in Airflow's logs at once.

    :param username: the token's owner (templated): a service account, or the Admin itself.
    :param token_name: a label, 1 to 255 characters (templated); names need not be unique.
    :param token_type: ``read_write`` (default) or ``read_scaling`` (templated).
    :param ttl: lifetime (templated): ``None`` or ``"never"`` (no expiry), seconds, a
        ``timedelta``, an ISO-8601 duration (``"P30D"``) or ``"90 days"``; 300 s to 365 days.
    :param variable_key: if set, the secret is stored in this Airflow Variable (templated).
        This is the safe way to hand the secret on. If storing fails, the new token is revoked
        so that no orphan token is left, and the task fails. A delivery record (token id and a
        fingerprint, no secret; :mod:`~airflow_provider_motherduck.workflows.delivery`) goes
        beside it, so that
        :class:`~airflow_provider_motherduck.operators.onboarding.MotherDuckOnboardAccountOperator`
        recognises the token later instead of creating another, and a retry after a lost answer
        revokes the token it could not see.
    :param return_secret: also put the secret in the XCom (key ``secret``). Risky: XCom values
        are stored unmasked in the metadata database, readable by anyone with access to it,
        and shown in plain text in the UI's XCom tab. Prefer ``variable_key``.

    XCom: ``{"username", "token": {"id", "name", "token_type", "expire_at" (``None`` if it never
    expires), "created_ts", "read_only", "username"}}``; ``secret`` only with ``return_secret=True``.
    Not idempotent: every run creates one more token (MotherDuck allows duplicate names); with
    ``variable_key``, the tokens of earlier tries that nobody holds are revoked.
    """

    template_fields: Sequence[str] = ("username", "token_name", "token_type", "ttl", "variable_key")

    def __init__(
        self,
        *,
        username: str,
        token_name: str,
        token_type: str = "read_write",
        ttl: int | float | str | timedelta | None = None,
        variable_key: str | None = None,
        return_secret: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.token_name = token_name
        self.token_type = token_type
        self.ttl = ttl
        self.variable_key = variable_key
        self.return_secret = return_secret
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "token_name": check_token_name,
            "token_type": check_token_type,
            "ttl": parse_ttl,
            "variable_key": optional(check_variable_key),
            "return_secret": check_bool,
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        if self.variable_key is None:
            created = self.hook.create_token(
                self.username, self.token_name, ttl=self.ttl, token_type=self.token_type
            )
            token, secret = token_metadata(created, self.username), created.get("token") or ""
            self.log.info(
                "Created MotherDuck %s token %r (id %s) for %s, expiring %s.",
                token["token_type"],
                token["name"],
                token["id"],
                self.username,
                token["expire_at"] or "never",
            )
        else:
            try:
                issued = issue_token(
                    self.hook,
                    self.username,
                    self.token_name,
                    ttl=self.ttl,
                    token_type=self.token_type,
                    destination=SecretDestination(self.variable_key),
                    issuer=issuer_of(context),
                )
            except TokenIssueError as err:
                if not err.delivered or self.return_secret:
                    raise
                # The secret is stored and the token works; only later recognition is lost.
                self.log.warning("%s Onboarding will not recognise this token and will create its own.", err)
                return {"username": self.username, "token": err.token}
            token, secret = issued.token, issued.secret
        result: dict[str, Any] = {"username": self.username, "token": token}
        if self.return_secret:
            if not secret:
                raise MotherDuckError(f"MotherDuck created token {token['id']} but returned no secret.")
            result["secret"] = secret
        return result


class MotherDuckRevokeTokenOperator(MotherDuckBaseOperator):
    """Revoke access tokens of a user, by id or by name.

    :param username: the tokens' owner (templated).
    :param token_id: the id of the token to revoke (templated). Give this or ``token_name``.
    :param token_name: revoke the token with this name (templated); ids are looked up with
        the list endpoint. Give this or ``token_id``.
    :param missing_ok: succeed with nothing revoked if the token (or the user) is missing.
    :param all_matching: with ``token_name``, revoke every token of that name. Without it,
        several tokens of that name are an error listing their ids, and nothing is revoked.
    :param variable_key: the Variable that held the revoked token's secret: deleted afterwards
        with its delivery record, so no revoked secret lingers (templated).
    :param record_key: the delivery record to delete, if not the default one (templated).

    XCom: ``{"username": ..., "revoked_ids": [...]}``, plus ``"variables_deleted": [keys]`` with
    ``variable_key`` or ``record_key``; re-runs with ``missing_ok`` give ``[]``.
    Raises ``MotherDuckNotFoundError`` (by id) or ``MotherDuckError`` (by name) when nothing
    matches and ``missing_ok`` is false.
    """

    template_fields: Sequence[str] = ("username", "token_id", "token_name", "variable_key", "record_key")

    def __init__(
        self,
        *,
        username: str,
        token_id: str | None = None,
        token_name: str | None = None,
        missing_ok: bool = False,
        all_matching: bool = False,
        variable_key: str | None = None,
        record_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.token_id = token_id
        self.token_name = token_name
        self.missing_ok = missing_ok
        self.all_matching = all_matching
        self.variable_key = variable_key
        self.record_key = record_key
        if (token_id is None) == (token_name is None):
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r}: give exactly one of token_id and token_name "
                f"(got token_id={token_id!r}, token_name={token_name!r})."
            )
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "token_id": optional(check_token_id),
            "token_name": optional(check_token_name),
            "missing_ok": check_bool,
            "all_matching": check_bool,
            "variable_key": optional(check_variable_key),
            "record_key": optional(check_variable_key),
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        if self.token_id is not None:
            revoked = self.hook.revoke_token(self.username, self.token_id, missing_ok=self.missing_ok)
            ids = [self.token_id] if revoked else []
        else:
            ids = self._revoke_by_name(self.username, str(self.token_name))  # set when token_id is not
        self.log.info("Revoked %d token(s) of %s: %s", len(ids), self.username, ids)
        result: dict[str, Any] = {"username": self.username, "revoked_ids": ids}
        if self.variable_key is not None or self.record_key is not None:
            result["variables_deleted"] = forget(self.variable_key, self.record_key)
            self.log.info("Deleted Variable(s) %s.", ", ".join(result["variables_deleted"]) or "none")
        return result

    def _revoke_by_name(self, username: str, name: str) -> list[str]:
        try:
            tokens = self.hook.list_tokens(username)
        except MotherDuckNotFoundError:
            if self.missing_ok:
                self.log.info("MotherDuck user %s does not exist (missing_ok=True).", username)
                return []
            raise
        ids = [token["id"] for token in tokens if token.get("name") == name]
        if not ids:
            if self.missing_ok:
                self.log.info("%s has no token named %r (missing_ok=True).", username, name)
                return []
            raise MotherDuckError(
                f"User {username} has no token named {name!r}; set missing_ok=True to allow."
            )
        if len(ids) > 1 and not self.all_matching:
            raise MotherDuckError(
                f"User {username} has {len(ids)} tokens named {name!r} (ids {', '.join(ids)}); nothing was "
                "revoked. Set all_matching=True to revoke them all, or pass one token_id."
            )
        # Listed a moment ago: one revoked meanwhile by someone else is gone either way.
        return revoke_tokens(self.hook, username, ids)


class MotherDuckListTokensOperator(MotherDuckBaseOperator):
    """List a user's access tokens (metadata only: MotherDuck never shows a secret twice).

    :param username: whose tokens (templated).

    XCom: a list of ``{"id", "name", "token_type", "expire_at", "created_ts", "read_only",
    "username"}`` (``expire_at`` is ``None`` for tokens that never expire).
    Raises ``MotherDuckNotFoundError`` if the user does not exist.
    """

    writes = False

    template_fields: Sequence[str] = ("username",)

    def __init__(self, *, username: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"username": check_username}

    def execute_checked(self, context: Context) -> list[dict[str, Any]]:
        tokens = [token_metadata(token, self.username) for token in self.hook.list_tokens(self.username)]
        self.log.info("%s has %d token(s).", self.username, len(tokens))
        return tokens
