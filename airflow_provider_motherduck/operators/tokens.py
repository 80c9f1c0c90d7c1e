"""Operators for access tokens: create, delete and list."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_motherduck._compat import Context, redact
from airflow_provider_motherduck.exceptions import MotherDuckError, MotherDuckNotFoundError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators._base import Check, MotherDuckBaseOperator, check_bool, optional
from airflow_provider_motherduck.operators._delivery import SecretDestination, check_secret_variable
from airflow_provider_motherduck.validation import (
    check_token_id,
    check_token_name,
    check_token_type,
    check_username,
    parse_ttl,
)


def token_metadata(token: Mapping[str, Any], username: str) -> dict[str, Any]:
    """The JSON-able XCom form of a token: its metadata and owner, never the secret."""
    return {
        "id": token.get("id"),
        "name": token.get("name"),
        "token_type": token.get("token_type"),
        "expire_at": token.get("expire_at") or None,
        "created_ts": token.get("created_ts"),
        "read_only": token.get("read_only"),
        "username": username,
    }


#: Hands a new token's secret on (e.g. to a Variable); gets the secret and the token's metadata.
Deliver = Callable[[str, Mapping[str, Any]], None]


def create_delivered_token(
    hook: MotherDuckHook,
    username: str,
    token_name: str,
    *,
    ttl: Any,
    token_type: str,
    deliver: Deliver | None,
    log: Any,
) -> tuple[dict[str, Any], str | None]:
    """Create a token and hand its secret to ``deliver``; revoke the token if delivery fails.

    Returns the token's metadata (:func:`token_metadata`) and its secret. With ``deliver`` the
    secret must be in the answer; a token whose secret could not be delivered is revoked (nobody
    could ever use it) and the delivery error is raised.
    """
    created = hook.create_token(username, token_name, ttl=ttl, token_type=token_type)
    result = token_metadata(created, username)
    log.info(
        "Created MotherDuck %s token %r (id %s) for %s, expiring %s.",
        result["token_type"],
        result["name"],
        result["id"],
        username,
        result["expire_at"] or "never",
    )
    secret = created.get("token") or None
    if deliver is None:
        return result, secret
    try:
        if not secret:
            raise MotherDuckError(f"MotherDuck created token {result['id']} but returned no secret.")
        deliver(secret, result)
    except Exception as err:
        # The original error may quote the secret (a database error shows its parameters): it is
        # reported as text with the secret blanked, and not chained.
        problem = redacted_error(err, secret)
        log.error("Could not deliver the secret of token %s of %s: revoking it.", result["id"], username)
        try:
            hook.delete_token(username, str(result["id"]), missing_ok=True)
            outcome = "the token was revoked again"
        except Exception as revoke_err:
            # No traceback: it would chain the delivery error, which may quote the secret.
            log.error(
                "Could not revoke token %s of %s either (%s): delete it by hand.",
                result["id"],
                username,
                redacted_error(revoke_err, secret),
            )
            outcome = f"revoking it failed too: token {result['id']} is still live, delete it"
        raise MotherDuckError(
            f"Could not deliver the secret of new token {result['id']} of {username}: {problem}; {outcome}."
        ) from None
    return result, secret


def redacted_error(err: BaseException, secret: str | None) -> str:
    """``Type: message`` of an error raised while a secret was in play, with the secret blanked.

    Airflow's masker knows every secret the hook returned; blank it here too, in case a custom
    masker configuration does not apply to exception text.
    """
    text = str(redact(f"{type(err).__name__}: {err}"))
    return text.replace(secret, "***") if secret else text


def revoke_tokens(hook: MotherDuckHook, username: str, token_ids: Iterable[str]) -> list[str]:
    """Delete tokens by id; return the ids deleted now (one already gone is skipped)."""
    return [token_id for token_id in token_ids if hook.delete_token(username, token_id, missing_ok=True)]


class MotherDuckCreateTokenOperator(MotherDuckBaseOperator):
    """Create an access token for a user; the secret is masked in Airflow's logs at once.

    :param username: the token's owner (templated): a service account, or the Admin itself.
    :param token_name: a label, 1 to 255 characters (templated); names need not be unique.
    :param token_type: ``read_write`` (default) or ``read_scaling`` (templated).
    :param ttl: lifetime (templated): ``None`` or ``"never"`` (no expiry), seconds, a
        ``timedelta``, an ISO-8601 duration (``"P30D"``) or ``"90 days"``; 300 s to 365 days.
    :param variable_key: if set, the secret is stored in this Airflow Variable (templated).
        This is the safe way to hand the secret on. If storing fails, the new token is revoked
        so that no orphan token is left, and the task fails. A delivery record (token id and
        a fingerprint, no secret) goes to ``<variable_key>__delivery``, so that
        :class:`~airflow_provider_motherduck.operators.onboarding.MotherDuckOnboardAccountOperator`
        recognises the token later instead of creating another.
    :param return_secret: also put the secret in the XCom (key ``token``). Risky: XCom values
        are stored unmasked in the metadata database, readable by anyone with access to it,
        and shown in plain text in the UI's XCom tab. Prefer ``variable_key``.

    XCom: ``id``, ``name``, ``token_type``, ``expire_at`` (``None`` if it never expires),
    ``created_ts``, ``read_only``, ``username``; ``token`` only with ``return_secret=True``.
    Not idempotent: every run creates one more token (MotherDuck allows duplicate names).
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
        self.validate_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "token_name": check_token_name,
            "token_type": check_token_type,
            "ttl": parse_ttl,
            "variable_key": optional(check_secret_variable),
            "return_secret": check_bool,
        }

    def run(self, args: dict[str, Any], context: Context) -> dict[str, Any]:
        username: str = args["username"]
        destination = SecretDestination(args["variable_key"]) if args["variable_key"] else None
        result, secret = create_delivered_token(
            self.hook,
            username,
            args["token_name"],
            ttl=args["ttl"],
            token_type=args["token_type"],
            deliver=destination.deliver if destination else None,
            log=self.log,
        )
        if destination:
            self.log.info("Stored the secret in %s.", destination.describe())
            try:
                destination.write_record(str(secret), result)
            except Exception as err:
                # The secret is stored and the token works; only later recognition is lost.
                self.log.warning(
                    "Could not write the delivery record %s (%s): onboarding will not recognise this "
                    "token and will create its own.",
                    destination.record,
                    redacted_error(err, secret),
                )
        if self.return_secret:
            if not secret:
                raise MotherDuckError(f"MotherDuck created token {result['id']} but returned no secret.")
            result["token"] = secret
        return result


class MotherDuckDeleteTokenOperator(MotherDuckBaseOperator):
    """Invalidate access tokens of a user, by id or by name.

    :param username: the tokens' owner (templated).
    :param token_id: the id of the token to delete (templated). Give this or ``token_name``.
    :param token_name: delete the token with this name (templated); ids are looked up with
        the list endpoint. Give this or ``token_id``.
    :param missing_ok: succeed with nothing deleted if the token (or the user) is missing.
    :param all_matching: with ``token_name``, delete every token of that name. Without it,
        several tokens of that name are an error listing their ids, and nothing is deleted.

    XCom: ``{"username": ..., "deleted": [ids]}``; re-runs with ``missing_ok`` give ``[]``.
    Raises ``MotherDuckNotFoundError`` (by id) or ``MotherDuckError`` (by name) when nothing
    matches and ``missing_ok`` is false.
    """

    template_fields: Sequence[str] = ("username", "token_id", "token_name")

    def __init__(
        self,
        *,
        username: str,
        token_id: str | None = None,
        token_name: str | None = None,
        missing_ok: bool = False,
        all_matching: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.token_id = token_id
        self.token_name = token_name
        self.missing_ok = missing_ok
        self.all_matching = all_matching
        if (token_id is None) == (token_name is None):
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r}: give exactly one of token_id and token_name "
                f"(got token_id={token_id!r}, token_name={token_name!r})."
            )
        self.validate_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "token_id": optional(check_token_id),
            "token_name": optional(check_token_name),
            "missing_ok": check_bool,
            "all_matching": check_bool,
        }

    def run(self, args: dict[str, Any], context: Context) -> dict[str, Any]:
        username: str = args["username"]
        token_id: str | None = args["token_id"]
        if token_id is not None:
            deleted = self.hook.delete_token(username, token_id, missing_ok=self.missing_ok)
            ids = [token_id] if deleted else []
        else:
            ids = self._delete_by_name(username, args["token_name"])
        self.log.info("Deleted %d token(s) of %s: %s", len(ids), username, ids)
        return {"username": username, "deleted": ids}

    def _delete_by_name(self, username: str, name: str) -> list[str]:
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
                "deleted. Set all_matching=True to delete them all, or pass one token_id."
            )
        # Listed a moment ago: one deleted meanwhile by someone else is gone either way.
        return revoke_tokens(self.hook, username, ids)


class MotherDuckListTokensOperator(MotherDuckBaseOperator):
    """List a user's access tokens (metadata only: MotherDuck never shows a secret twice).

    :param username: whose tokens (templated).

    XCom: a list of ``{"id", "name", "token_type", "expire_at", "created_ts", "read_only",
    "username"}`` (``expire_at`` is ``None`` for tokens that never expire).
    Raises ``MotherDuckNotFoundError`` if the user does not exist.
    """

    template_fields: Sequence[str] = ("username",)

    def __init__(self, *, username: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.validate_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"username": check_username}

    def run(self, args: dict[str, Any], context: Context) -> list[dict[str, Any]]:
        username: str = args["username"]
        tokens = [token_metadata(token, username) for token in self.hook.list_tokens(username)]
        self.log.info("%s has %d token(s).", username, len(tokens))
        return tokens
