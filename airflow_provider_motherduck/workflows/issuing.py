"""``issue_token``: the one transaction that creates a token and hands its secret to a destination.

The steps, each safe to fail:

1. Read the destination's record and list the user's tokens (unless the caller has). If an
   earlier try of this issuer delivered a token whose secret the Variable holds (it crashed before
   writing the record), finish that one: write the record, create nothing.
2. Write this try's **intent** into the record: who issues (task, run, try), the ids of the tokens
   of that name that exist now, when it began. Other issuers' intents stay beside it.
3. Create the token (the hook masks its secret at once).
4. Note the new token as ``delivering`` (with the secret's fingerprint), then deliver the secret.
   If either fails, the new token is revoked again: nobody holds its secret.
5. Revoke the leftovers (:func:`~airflow_provider_motherduck.workflows.delivery.held.judge_leftovers`):
   tokens an earlier try of this destination created and nobody holds. Each is judged again just
   before its revoke, with the Variable's fingerprint read then.
6. Check that the delivered token is still live; if another writer revoked it, issue again (once),
   or fail saying so. Then end the intent (also when the try fails), noting whether the
   destination still holds the token, and write the delivered token into the record.

The outcome, under retries and under issuers of one destination overlapping in any order: a call
that returns leaves its destination holding a live token's secret (this one, or one another
issuer delivered after it); a token is never revoked while its secret is in the Variable, while
another issuer's live intent names it or may have created it, or while it is younger than
:data:`~airflow_provider_motherduck.workflows.delivery.DELIVERY_WINDOW` and of unknown issuer; and
a token whose secret ends up stored nowhere (a lost create answer, a failed delivery, a delivery
another issuer overwrote) is revoked by the next issuance of that destination once its issuer's
try has ended (at the latest one delivery window later). Windows that remain (docs: reliability,
overlapping runs): Airflow Variables have no compare-and-set, so two record writes in the same
instant may lose one intent; a ``secret_sink`` cannot be asked what it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_motherduck._compat import redact
from airflow_provider_motherduck.exceptions import MotherDuckError, TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import TTLInput
from airflow_provider_motherduck.workflows.delivery import (
    DELIVERY_WINDOW,
    Delivered,
    Intent,
    Issuer,
    SecretDestination,
    fingerprint,
    outside_a_task,
    variable_store,
)
from airflow_provider_motherduck.workflows.tokens import token_metadata

log = logging.getLogger(__name__)

#: How many times an issuance creates another token when its delivered one was revoked meanwhile.
REISSUES = 1


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
    issuer: Issuer | None = None,
    window: timedelta = DELIVERY_WINDOW,
) -> IssuedToken:
    """Create a token named ``name`` for ``username`` and deliver its secret (see the module doc).

    ``listed``: the user's tokens, if the caller has just listed them (saves a request).
    ``revoke_leftovers=False`` leaves tokens of earlier tries to the caller (rotation plans them),
    and the check that the delivered token is still live after those revokes.
    ``issuer``: the task, run and try issuing (:func:`~.delivery.issuer_of`; default
    :func:`~.delivery.outside_a_task`); ``window``: the
    delivery window. Raises :class:`TokenIssueError` once the token exists and something fails;
    errors before it exists (bad arguments, the create request) are raised as they are.
    """
    issuer = outside_a_task() if issuer is None else issuer
    tokens = list(hook.list_tokens(username) if listed is None else listed)
    finished = _finish_earlier_try(hook, username, name, token_type, destination, tokens, issuer)
    if finished is not None:
        return finished
    for round_ in range(REISSUES + 1):
        issued, live = _issue_once(
            hook, username, name, ttl, token_type, destination, tokens, issuer, window, revoke_leftovers
        )
        if live:
            return issued
        token_id = issued.token["id"]
        if round_ < REISSUES:
            log.warning(
                "Token %s of %s was revoked by another writer right after its delivery to %s: issuing another.",
                token_id,
                username,
                destination.describe(),
            )
            tokens = list(hook.list_tokens(username))
    raise TokenIssueError(
        f"The token delivered to {destination.describe()} ({token_id}, {name!r} of {username}) was "
        f"revoked by another writer right after its delivery, {REISSUES + 1} time(s): the destination "
        "may hold a revoked secret. Is another DAG or tool revoking this user's tokens?",
        token=issued.token,
        revoked=True,
        delivered=True,
        problem="revoked after delivery",
    )


def _finish_earlier_try(
    hook: MotherDuckHook,
    username: str,
    name: str,
    token_type: str,
    destination: SecretDestination,
    tokens: list[Mapping[str, Any]],
    me: Issuer,
) -> IssuedToken | None:
    """An earlier try of ``me`` delivered a token to the Variable and crashed before its record:
    finish it (record written) instead of issuing another. ``None`` if there is none."""
    record = destination.read_record()
    if destination.variable_key is None or record is None or record.user != username:
        return None
    earlier = [
        i
        for i in record.intents
        if i.issuer.key == me.key
        and i.issuer.attempt < me.attempt
        and i.delivering is not None
        and i.ended is None
    ]
    held = destination.delivered(tokens, username, name, token_type, record)
    done = next(
        (
            i.delivering
            for i in earlier
            if i.delivering is not None and held and held.get("id") == i.delivering.id
        ),
        None,
    )
    if held is None or done is None:
        return None
    secret = variable_store().get(destination.variable_key) or ""
    now = datetime.now(timezone.utc)
    destination.update_record(
        username,
        lambda r: replace(
            r,
            delivered=done,
            intents=tuple(
                replace(i, ended=now, kept=True) if i.issuer.key == me.key and i.ended is None else i
                for i in r.intents
            ),
        ),
    )
    log.info(
        "Token %s (%r) of %s: an earlier try delivered it to %s before it stopped; finished its "
        "record instead of issuing another.",
        done.id,
        name,
        username,
        destination.describe(),
    )
    return IssuedToken(token_metadata(held, username), secret)


def _issue_once(
    hook: MotherDuckHook,
    username: str,
    name: str,
    ttl: TTLInput,
    token_type: str,
    destination: SecretDestination,
    tokens: list[Mapping[str, Any]],
    me: Issuer,
    window: timedelta,
    revoke_leftovers: bool,
) -> tuple[IssuedToken, bool]:
    """Steps 2 to 6 once; returns the issued token and whether it was still live at the end."""
    started = datetime.now(timezone.utc)
    judged = destination.judge(tokens, username, me=me, since=started, window=window)
    stale = {str(t.get("id")) for t in judged.lost + judged.maybe_held}  # revoked once delivered
    known = tuple(str(t.get("id")) for t in tokens if t.get("name") == name and str(t.get("id")) not in stale)
    intent = Intent(me, name, started, known)
    destination.update_record(username, lambda r: r.with_intent(intent))
    done: Delivered | None = None
    kept = ended = False
    try:
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
        done = Delivered(
            token_id, name, fingerprint(secret) if destination.variable_key is not None else None
        )
        try:
            if not secret:
                raise MotherDuckError("MotherDuck's answer carried no secret")
            intent = replace(intent, delivering=done)
            destination.update_record(username, lambda r: r.with_intent(intent))
            destination.deliver(secret, f"MotherDuck token {name!r} of {username} (id {token_id})")
        except Exception as err:
            raise _revoke_undelivered(hook, token, secret, err, destination) from None
        log.info("Delivered the secret of token %s to %s.", token_id, destination.describe())

        replaced: list[str] = []
        live = True  # without leftovers to revoke, the caller revokes and checks (rotation)
        if revoke_leftovers:
            # Listed again: tokens other issuers made meanwhile are judged too.
            now_listed = list(hook.list_tokens(username))
            live = any(str(t.get("id")) == token_id for t in now_listed)
            again = destination.judge(now_listed, username, me=me, since=started, window=window)
            stale_now = [t for t in now_listed if t in again.lost or t in again.maybe_held]
            replaced = revoke_unheld(hook, destination, username, stale_now, me, started, window)
        held = destination.held_fingerprint()
        kept = live and (destination.variable_key is None or held == done.fingerprint)
        if live and not kept:
            log.warning(
                "%s no longer holds token %s: another writer delivered its own meanwhile. The next "
                "issuance for it revokes token %s.",
                destination.describe(),
                token_id,
                token_id,
            )
        if not live:
            return IssuedToken(token, secret, replaced), False
        final = replace(intent, ended=datetime.now(timezone.utc), kept=kept)
        ended = True  # by the final record, or (if it fails) never: the window ends the intent
        try:
            destination.update_record(
                username,
                lambda r: replace(r.with_intent(final), delivered=done if kept else r.delivered).settled(
                    datetime.now(timezone.utc), window, {str(t.get("id")) for t in tokens} | {token_id}
                ),
            )
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
        return IssuedToken(token, secret, replaced), True
    finally:
        if not ended:  # the try ends here without its final record: say so, if possible
            _end_intent(destination, username, replace(intent, delivering=done), kept)


def _end_intent(destination: SecretDestination, username: str, intent: Intent, kept: bool) -> None:
    ended = replace(intent, ended=datetime.now(timezone.utc), kept=kept)
    try:
        destination.update_record(username, lambda r: r.with_intent(ended))
    except Exception as err:  # the intent then ends when the delivery window passes
        log.warning("Could not end the intent in %s: %s", destination.record, type(err).__name__)


def revoke_unheld(
    hook: MotherDuckHook,
    destination: SecretDestination,
    username: str,
    tokens: Iterable[Mapping[str, Any]],
    me: Issuer,
    since: datetime,
    window: timedelta = DELIVERY_WINDOW,
) -> list[str]:
    """Revoke ``tokens`` (judged leftovers), each judged again just before: with the record and the
    Variable's fingerprint read then, a token held, named by a live intent or of unknown issuer is
    spared. Returns the ids revoked now; one that could not be revoked is logged and left."""
    revoked: list[str] = []
    for token in tokens:
        token_id = str(token.get("id"))
        judged = destination.judge([token], username, me=me, since=since, window=window)
        if token_id in judged.spared:
            log.info(
                "Kept token %s (%r) of %s: %s.",
                token_id,
                token.get("name"),
                username,
                judged.spared[token_id],
            )
            continue
        if not (judged.lost or judged.maybe_held):
            continue
        try:
            hook.revoke_token(username, token_id, missing_ok=True)
        except MotherDuckError as err:
            log.warning("Could not revoke token %s of %s left by an earlier try: %s", token_id, username, err)
            continue
        log.info(
            "Revoked token %s (%r) of %s: an issuance of %s created it and nobody holds its secret.",
            token_id,
            token.get("name"),
            username,
            destination.describe(),
        )
        revoked.append(token_id)
    return revoked


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
            "Could not revoke token %s of %s either (%s): a re-run revokes it, or revoke it by hand.",
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
