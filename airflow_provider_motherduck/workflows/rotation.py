"""Token rotation: replace a token without a moment in which the destination holds none.

The invariant: from the first successful rotation on, the destination always holds the secret of
a live token; no secret is logged, returned or put in an exception; and re-running converges to
exactly ``keep`` tokens of the logical name (plus those still inside the ``revoke_after`` grace).

How each step keeps it:

* **Order.** List the user's tokens; create the new token, deliver its secret and record the
  delivery (:func:`~airflow_provider_motherduck.workflows.issuing.issue_token`); only then revoke
  older tokens of the logical name (:mod:`~airflow_provider_motherduck.workflows.naming`). Until
  the new secret is delivered nothing old is touched.
* **Run marker.** The new token is named ``<token_name>@<marker>``, the marker naming the logical
  run, so retries and re-runs of that run find "their" token. If the delivery record names it (and
  the Variable still holds its secret), nothing is created and the run goes on to revoke.
* **Tokens an earlier try left.** One whose create answer was lost (the record's intent shows it
  was not there before and never delivered), or whose secret another delivery replaced while its
  run was going on, is held by nobody: it takes no ``keep`` slot and is revoked at once after the
  new delivery. One whose secret may have reached a sink is revoked once ``revoke_after`` (if
  given) has passed, like any token someone may hold.
* **Overlapping runs** (rotation beside rotation, or beside another issuer of the destination):
  a token is never revoked while its secret is in the Variable (read again just before each
  revoke), while another run's live intent names it, or while it is a rotated token younger
  than the delivery window that the record does not explain (its run may still be delivering
  it): it is ``spared`` and left for the next run. After its revokes the run checks that the
  token it delivered is still live, and fails saying so if not. So rotation beside rotation never
  stores a revoked secret, and the tokens one run spared are revoked by the next.

:func:`plan_rotation` decides (pure, over listed tokens); :func:`rotate_token` acts on the plan.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_motherduck.exceptions import MotherDuckError, MotherDuckRotationError, TokenIssueError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.validation import TTLInput
from airflow_provider_motherduck.workflows.delivery import (
    DELIVERY_WINDOW,
    Issuer,
    SecretDestination,
    outside_a_task,
)
from airflow_provider_motherduck.workflows.delivery.held import HOLDS_ITS_SECRET
from airflow_provider_motherduck.workflows.issuing import issue_token
from airflow_provider_motherduck.workflows.naming import name_pattern, rotated_name
from airflow_provider_motherduck.workflows.tokens import is_expired, parse_timestamp, token_metadata

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class RotationPlan:
    """What to do with each listed token of the logical name (the new token not included)."""

    current: Mapping[str, Any] | None
    """This run's token whose delivery is recorded (``None``: a token is to be created)."""
    kept: list[Mapping[str, Any]]
    """Other tokens that stay: the ``keep - 1`` newest unexpired ones, newest first."""
    in_grace: list[Mapping[str, Any]]
    """Tokens past ``keep`` (or this run's unrecorded ones) younger than ``revoke_after``: left for later."""
    revoke: list[Mapping[str, Any]]
    """To revoke after delivery: tokens nobody holds and this run's unrecorded ones first, then the
    rest, oldest first."""
    spared: list[Mapping[str, Any]] = field(default_factory=list)
    """Tokens no run may revoke now (another run may be delivering them, or the destination holds them)."""
    reasons: dict[str, str] = field(default_factory=dict)
    """Why each token is kept, in grace, spared or revoked (id -> reason), for the log."""


def plan_rotation(
    family: Sequence[Mapping[str, Any]],
    current: Mapping[str, Any] | None,
    own_name: str,
    *,
    keep: int,
    revoke_after: float | None,
    now: datetime,
    lost: Collection[str] = (),
    spared: Mapping[str, str] | None = None,
) -> RotationPlan:
    """Sort the tokens of the logical name (as listed, oldest first) into kept, in grace and to revoke.

    ``lost``: ids of tokens whose secret nobody holds (an earlier try's lost create answer):
    revoked whatever ``revoke_after`` says, like expired tokens, and holding no keep slot.
    ``spared``: ids not to revoke now, with the reason (they are planned like the others, then
    moved from ``revoke`` to ``spared``). A token
    whose creation time cannot be read sorts as the oldest and is never taken as older than
    ``revoke_after``.
    """
    spared = dict(spared or {})
    current_id = current.get("id") if current is not None else None
    unheld = [t for t in family if t.get("id") in lost and t.get("id") != current_id]
    rest = [t for t in family if t.get("id") not in lost]
    orphans = [t for t in rest if t.get("name") == own_name and t.get("id") != current_id]
    others = [t for t in rest if t.get("name") != own_name]
    # Newest first; MotherDuck lists in creation order, which breaks ties.
    order = sorted(
        range(len(others)),
        key=lambda i: (parse_timestamp(others[i].get("created_ts")) or _EPOCH, i),
        reverse=True,
    )
    newest_first = [others[i] for i in order]
    live = [t for t in newest_first if not is_expired(t, now)]
    expired = [t for t in newest_first if is_expired(t, now)]

    def past_grace(token: Mapping[str, Any]) -> bool:
        created = parse_timestamp(token.get("created_ts"))
        return revoke_after is None or (
            created is not None and (now - created).total_seconds() >= revoke_after
        )

    kept = live[: keep - 1]
    past_keep = live[keep - 1 :]
    revoke = expired + [t for t in past_keep if past_grace(t)]
    oldest_first = sorted(revoke, key=lambda t: newest_first.index(t), reverse=True)
    # An orphan's delivery was not recorded, but its secret may have arrived (only the record
    # failed): it holds no keep slot, yet gets the same grace as any token someone may hold.
    in_grace = [t for t in orphans + past_keep if not past_grace(t)]
    revoke = unheld + [t for t in orphans if past_grace(t)] + oldest_first
    reasons = {str(t.get("id")): f"kept: among the {keep} newest (keep={keep})" for t in kept}
    reasons.update({str(t.get("id")): "revoked: past keep" for t in past_keep})
    reasons.update({str(t.get("id")): "revoked: expired" for t in expired})
    reasons.update({str(t.get("id")): "revoked: this run's token, not delivered" for t in orphans})
    reasons.update({str(t.get("id")): "revoked: nobody holds its secret" for t in unheld})
    reasons.update({str(t.get("id")): "in grace: younger than revoke_after" for t in in_grace})
    reasons.update({i: f"spared: {why}" for i, why in spared.items()})
    return RotationPlan(
        current,
        kept,
        in_grace,
        [t for t in revoke if str(t.get("id")) not in spared],
        [t for t in revoke if str(t.get("id")) in spared],
        reasons,
    )


def _ids(tokens: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(t.get("id")) for t in tokens]


def rotate_token(
    hook: MotherDuckHook,
    username: str,
    token_name: str,
    destination: SecretDestination,
    *,
    marker: str,
    ttl: TTLInput,
    token_type: str = "read_write",
    keep: int = 1,
    revoke_after: float | None = None,
    dry_run: bool = False,
    issuer: Issuer | None = None,
    window: timedelta = DELIVERY_WINDOW,
) -> dict[str, Any]:
    """Rotate the logical token ``token_name`` of ``username`` into ``destination``; see the module doc.

    ``marker`` names the run (:func:`~airflow_provider_motherduck.workflows.naming.run_marker`).
    ``issuer``: the task, run and try (:func:`~.delivery.issuer_of`); ``window``: the delivery
    window. Returns the summary (the rotation operator's XCom); raises
    :class:`MotherDuckRotationError` with that summary when it stops part-way.
    """
    issuer = outside_a_task() if issuer is None else issuer
    own_name = rotated_name(token_name, marker)
    pattern = name_pattern(token_name)
    family = [t for t in hook.list_tokens(username) if pattern.fullmatch(str(t.get("name", "")))]
    record = destination.read_record()
    started = datetime.now(timezone.utc)
    current = destination.delivered(family, username, own_name, token_type, record)
    judged = destination.judge(family, username, me=issuer, since=started, record=record, window=window)
    plan = plan_rotation(
        family,
        current,
        own_name,
        keep=keep,
        revoke_after=revoke_after,
        now=started,
        lost={str(t.get("id")) for t in judged.lost},
        # Holding the secret now protects nothing from the plan: this run replaces it. Each revoke
        # is judged again just before, when the destination holds the new secret.
        spared={
            **_in_flight(family, judged.known, (token_name, own_name), started, window),
            **{i: why for i, why in judged.spared.items() if why != HOLDS_ITS_SECRET},
        },
    )
    where = destination.describe()
    summary: dict[str, Any] = {
        "username": username,
        "token_name": token_name,
        "destination": where,
        "dry_run": dry_run,
        "token": token_metadata(current, username) if current is not None else None,
        "created": current is None,
        "revoked_ids": [],
        "kept_ids": ([str(current["id"])] if current is not None else []) + _ids(plan.kept),
        "in_grace_ids": _ids(plan.in_grace),
        "spared_ids": _ids(plan.spared),
        "still_live_ids": [],
    }
    if dry_run:
        summary["revoked_ids"] = _ids(plan.revoke)
        log.info(
            "Dry run for %s's token %r: would %s, revoke %s, keep %s%s.",
            username,
            token_name,
            f"create {own_name!r} and deliver it to {where}"
            if current is None
            else f"create nothing ({where} holds this run's token {current['id']})",
            summary["revoked_ids"] or "nothing",
            _ids(plan.kept) or "no older token",
            f", leave {summary['in_grace_ids']} until revoke_after has passed" if plan.in_grace else "",
        )
        return summary

    if current is None:
        try:
            issued = issue_token(
                hook,
                username,
                own_name,
                ttl=ttl,
                token_type=token_type,
                destination=destination,
                listed=family,
                revoke_leftovers=False,
                issuer=issuer,
                window=window,
            )
        except TokenIssueError as err:
            summary["token"] = err.token
            # Until delivery is done, nothing planned for revocation is touched.
            untouched = _ids(plan.revoke)
            summary["still_live_ids"] = (
                untouched if err.revoked or err.delivered else [err.token_id, *untouched]
            )
            state = (
                f"{where} holds the new secret"
                if err.delivered
                else f"{where} still holds the previous secret"
            )
            raise MotherDuckRotationError(f"{err} No old token was touched; {state}.", summary) from None
        summary["token"] = issued.token
        summary["kept_ids"].insert(0, str(issued.token["id"]))
    else:
        log.info(
            "Token %s (%r) of this run was delivered to %s already: not creating another.",
            current["id"],
            own_name,
            where,
        )
    _revoke_planned(hook, username, plan, summary, destination, issuer, started, window)
    _explain(username, plan, summary)
    new_id = str(summary["token"]["id"])
    if not any(str(t.get("id")) == new_id for t in hook.list_tokens(username)):
        summary["still_live_ids"] = []
        raise MotherDuckRotationError(
            f"The token delivered to {where} ({new_id}) of {username} was revoked by another writer "
            "after its delivery: the destination holds a revoked secret until the next run. Is "
            "another DAG or tool revoking this user's tokens?",
            summary,
        )
    log.info(
        "Rotated %s's token %r: %s holds token %s; revoked %s; kept %s%s.",
        username,
        token_name,
        where,
        summary["token"]["id"],
        summary["revoked_ids"] or "nothing",
        summary["kept_ids"],
        f"; in grace until revoke_after: {summary['in_grace_ids']}" if summary["in_grace_ids"] else "",
    )
    return summary


def _in_flight(
    family: Sequence[Mapping[str, Any]],
    known: Collection[str],
    names: tuple[str, str],
    now: datetime,
    window: timedelta,
) -> dict[str, str]:
    """Other runs' rotated tokens that the record does not explain, younger than ``window``: their
    run may still be delivering them (its intent may have been overwritten). ``names``: the
    logical name and this run's own name."""
    found: dict[str, str] = {}
    for token in family:
        created = parse_timestamp(token.get("created_ts"))
        if (
            str(token.get("name")) not in names
            and str(token.get("id")) not in known
            and (created is None or now - created < window)
        ):
            found[str(token.get("id"))] = "another run's token, younger than the delivery window"
    return found


def _explain(username: str, plan: RotationPlan, summary: Mapping[str, Any]) -> None:
    """Log each token's fate and why (kept, in grace, spared, revoked)."""
    for token_id in [
        *summary["kept_ids"],
        *summary["in_grace_ids"],
        *summary["spared_ids"],
        *summary["revoked_ids"],
    ]:
        why = plan.reasons.get(
            token_id, "kept: the new token" if token_id == summary["token"]["id"] else "kept"
        )
        log.info("Token %s of %s: %s.", token_id, username, why)


def _revoke_planned(
    hook: MotherDuckHook,
    username: str,
    plan: RotationPlan,
    summary: dict[str, Any],
    destination: SecretDestination,
    issuer: Issuer,
    started: datetime,
    window: timedelta,
) -> None:
    """Revoke the planned tokens, each judged again just before (the record and the Variable's
    fingerprint read then) and tried once; raise naming those still live."""
    failures: dict[str, str] = {}
    for token in plan.revoke:
        token_id = str(token.get("id"))
        now_spared = destination.judge([token], username, me=issuer, since=started, window=window).spared
        if token_id in now_spared:
            plan.reasons[token_id] = f"spared: {now_spared[token_id]}"
            summary["spared_ids"].append(token_id)
            continue
        try:
            hook.revoke_token(username, token_id, missing_ok=True)  # gone already: fine
        except MotherDuckError as err:
            failures[token_id] = f"{type(err).__name__}: {err}"
            log.error("Could not revoke token %s (%r) of %s: %s", token_id, token.get("name"), username, err)
            continue
        summary["revoked_ids"].append(token_id)
        log.info("Revoked token %s (%r) of %s.", token_id, token.get("name"), username)
    if failures:
        summary["still_live_ids"] = list(failures)
        raise MotherDuckRotationError(
            f"Rotated the secret of {username}'s token {summary['token_name']!r} into "
            f"{summary['destination']} (token {summary['token']['id']}), but could not revoke "
            f"{len(failures)} older token(s); still live: {', '.join(failures)}. Revoked: "
            f"{', '.join(summary['revoked_ids']) or 'none'}. Re-run the task to finish: it will not create "
            "another token for this run.\n"
            + "\n".join(f"  - {token_id}: {problem}" for token_id, problem in failures.items()),
            summary,
        )
