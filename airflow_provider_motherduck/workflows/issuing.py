"""``issue_token``: the one transaction that creates a token and hands its secret to a destination.

The steps, each safe to fail:

1. Read the destination's record and list the user's tokens (unless the caller has).
2. Write the intent: ``pending`` with the ids of the tokens of that name that exist now.
3. Create the token (the hook masks its secret at once).
4. Note the new token as ``delivering`` (with the secret's fingerprint), then deliver the secret.
   If either fails, the new token is revoked again: nobody holds its secret. This is the only
   revoke-on-failure path of the package.
5. Revoke the tokens an earlier try of this destination created and nobody holds (their create
   answer was lost, or their delivery never happened), then write the final record.

So a task retry after any single fault leaves no second live token whose secret is stored nowhere:
the next try's step 1 finds what the failed one left and step 5 removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import MotherDuckError, TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import TTLInput
from airflow_provider_motherduck.workflows.delivery import (
    Delivered,
    DeliveryRecord,
    Pending,
    SecretDestination,
    fingerprint,
    with_delivering,
)
from airflow_provider_motherduck.workflows.tokens import token_metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedToken:
    """A token whose secret is at its destination.

    ``token``: its metadata (the XCom form, no secret); ``secret``: kept out of ``repr``;
    ``replaced``: ids of tokens an earlier try left behind, revoked now.
    """

    token: dict[str, Any]
    secret: str = field(repr=False)
    replaced: list[str] = field(default_factory=list)


def redacted_error(err: BaseException, secret: str | None) -> str:
    """``Type: message`` of an error raised while a secret was in play, with the secret blanked.

    Airflow's masker knows every secret the hook returned; blank it here too, in case a custom
    masker configuration does not apply to exception text.
    """
    text = str(redact(f"{type(err).__name__}: {err}"))
    return text.replace(secret, "***") if secret else text


def revoke_tokens(hook: MotherDuckHook, username: str, token_ids: Iterable[str]) -> list[str]:
    """Revoke tokens by id; return the ids revoked now (one already gone is skipped)."""
    return [token_id for token_id in token_ids if hook.revoke_token(username, token_id, missing_ok=True)]


def issue_token(
    hook: MotherDuckHook,
    username: str,
    name: str,
    *,
    ttl: TTLInput = None,
    token_type: str = "read_write",
    destination: SecretDestination,
    listed: Iterable[Mapping[str, Any]] | None = None,
    revoke_leftovers: bool = True,
) -> IssuedToken:
    """Create a token named ``name`` for ``username`` and deliver its secret (see the module doc).

    ``listed``: the user's tokens, if the caller has just listed them (saves a request).
    ``revoke_leftovers=False`` leaves tokens of earlier tries to the caller (rotation plans them).
    Raises :class:`TokenIssueError` once the token exists and something fails; errors before it
    exists (bad arguments, the create request) are raised as they are.
    """
    record = destination.read_record()
    tokens = list(hook.list_tokens(username) if listed is None else listed)
    lost, maybe_held = destination.leftovers(tokens, username, record)
    stale = {str(t.get("id")) for t in lost + maybe_held}
    known = tuple(str(t.get("id")) for t in tokens if t.get("name") == name and str(t.get("id")) not in stale)
    previous = record.delivered if record is not None and record.user == username else None
    intent = DeliveryRecord(username, previous, Pending(name, known))
    destination.write_record(intent)

    created = hook.create_token(username, name, ttl=ttl, token_type=token_type)
    token = token_metadata(created, username)
    token_id = str(token["id"])
    log.info(
        "Created MotherDuck %s token %r (id %s) for %s, expiring %s.",
        token["token_type"],
        name,
        token_id,
        username,
        token["expire_at"] or "never",
    )
    secret = created.get("token") or ""
    done = Delivered(token_id, name, fingerprint(secret) if destination.variable_key is not None else None)
    try:
        if not secret:
            raise MotherDuckError("MotherDuck's answer carried no secret")
        destination.write_record(with_delivering(intent, done))
        destination.deliver(secret, f"MotherDuck token {name!r} of {username} (id {token_id})")
    except Exception as err:
        raise _revoke_undelivered(hook, token, secret, err, destination) from None
    log.info("Delivered the secret of token %s to %s.", token_id, destination.describe())

    replaced, still_live = _revoke_stale(hook, username, lost + maybe_held) if revoke_leftovers else ([], [])
    # Leftovers that could not be revoked keep the issuance pending, so the next try finds them.
    final = DeliveryRecord(username, done, Pending(name, known) if still_live else None)
    try:
        destination.write_record(final)
    except Exception as err:
        problem = redacted_error(err, secret)
        raise TokenIssueError(
            f"Delivered the secret of new token {token_id} ({name!r}) of {username} to "
            f"{destination.describe()}, but could not write its delivery record to Variable "
            f"{destination.record}: {problem}. The new secret is in place and valid.",
            token=token,
            revoked=False,
            delivered=True,
            problem=problem,
        ) from None
    return IssuedToken(token, secret, replaced)


def _revoke_undelivered(
    hook: MotherDuckHook,
    token: Mapping[str, Any],
    secret: str,
    err: Exception,
    destination: SecretDestination,
) -> TokenIssueError:
    """Revoke a new token whose secret was not delivered; the error to raise says how it went."""
    # The original error may quote the secret (a database error shows its parameters): it is
    # reported as text with the secret blanked, and not chained.
    problem = redacted_error(err, secret)
    token_id, username = str(token["id"]), str(token["username"])
    log.error("Could not deliver the secret of token %s of %s: revoking it.", token_id, username)
    try:
        hook.revoke_token(username, token_id, missing_ok=True)
        revoked = True
        outcome = "the new token was revoked again"
    except Exception as revoke_err:
        # No traceback: it would chain the delivery error, which may quote the secret.
        log.error(
            "Could not revoke token %s of %s either (%s): a re-run revokes it, or delete it by hand.",
            token_id,
            username,
            redacted_error(revoke_err, secret),
        )
        revoked = False
        outcome = f"revoking it failed too: token {token_id} is still live (a re-run revokes it)"
    return TokenIssueError(
        f"Could not deliver the secret of new token {token_id} ({token['name']!r}) of {username} to "
        f"{destination.describe()}: {problem}; {outcome}.",
        token=token,
        revoked=revoked,
        delivered=False,
        problem=problem,
    )


def _revoke_stale(
    hook: MotherDuckHook, username: str, tokens: list[Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """Revoke tokens of earlier tries; return ``(revoked, still_live)`` ids."""
    revoked: list[str] = []
    still_live: list[str] = []
    for token in tokens:
        token_id = str(token.get("id"))
        try:
            hook.revoke_token(username, token_id, missing_ok=True)
        except MotherDuckError as err:
            log.warning("Could not revoke token %s of %s left by an earlier try: %s", token_id, username, err)
            still_live.append(token_id)
            continue
        log.info(
            "Revoked token %s (%r) of %s: an earlier try created it and nobody holds its secret.",
            token_id,
            token.get("name"),
            username,
        )
        revoked.append(token_id)
    return revoked, still_live
