"""MotherDuckRotateTokenOperator: replace a token without a moment in which the destination holds none.

How a rotation is made safe to fail at any step and to re-run:

* **Order.** List the user's tokens; create the new token; deliver its secret; record the
  delivery; only then revoke older tokens of the same logical name. Until the new secret is
  delivered nothing old is touched, so the destination always holds a working secret.
* **Run marker.** The new token is named ``<token_name>@<marker>`` in MotherDuck, the marker
  naming the logical run: the DAG run's logical date (``20250101T000000Z``, microseconds added when
  there are any) or, for runs without one, ``run-`` and 16 hex digits of the SHA-256 of the run id.
  Retries, cleared tasks and ``airflow dags test`` of the same logical date all find the token of
  "their" run. The marker is at most :data:`MARKER_MAX_LENGTH` characters, so ``token_name`` may
  have up to :data:`TOKEN_NAME_MAX` (MotherDuck allows 255 for the whole name).
* **The logical name.** "Tokens with that name" are the tokens named exactly ``token_name`` (made
  before rotation was adopted, e.g. by :class:`MotherDuckCreateTokenOperator`) and those named
  ``token_name`` + ``@`` + a marker of the form above. ``airflow@prod`` is not a rotation of
  ``airflow``: rotate each logical name with one task only.
* **Delivery record.** MotherDuck never shows a secret twice, so "this run's token was delivered"
  cannot be read back from it. The shared record of
  :mod:`airflow_provider_motherduck.operators._delivery` says it: a JSON Airflow Variable (default
  ``<variable_key>__delivery``; required as ``record_key`` with a ``secret_sink``) holding the
  delivered token's id, owner, MotherDuck name and, for a Variable destination, a fingerprint of
  the secret (a truncated SHA-256, not reversible). It is written right after the secret, so it
  never names a secret that was not delivered. On a re-run, this run's token counts as delivered
  only if the record names it, MotherDuck still lists it unexpired and (Variable destination) the
  Variable still holds the fingerprinted secret; then no token is created and the run goes on to
  revoke. Any other token carrying this run's marker was not provably delivered (its answer was
  lost, its delivery failed, or only its record could not be written): it takes no ``keep`` slot
  and is revoked, first, once a fresh token's secret has been delivered and ``revoke_after`` (if
  given) has passed since it was created, as someone may have read its secret.

The invariant: from the first successful rotation on, the destination always holds the secret of
a live token; no secret is logged, returned or put in an exception; and re-running converges to
exactly ``keep`` tokens of the logical name (plus those still inside the ``revoke_after`` grace).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.exceptions import MotherDuckError
from airflow_provider_motherduck.operators._base import Check, MotherDuckBaseOperator, check_bool, optional
from airflow_provider_motherduck.operators._delivery import (
    SecretDestination,
    SecretSink,
    check_destination,
    check_secret_variable,
    is_expired,
    parse_timestamp,
    record_key_for,
)
from airflow_provider_motherduck.operators.tokens import redacted_error, token_metadata
from airflow_provider_motherduck.validation import (
    TOKEN_NAME_MAX_LENGTH,
    check_token_name,
    check_token_type,
    check_username,
    parse_duration,
    parse_ttl,
)

#: Between the logical token name and the run marker in a token's MotherDuck name.
MARKER_SEPARATOR = "@"
#: The longest suffix a run marker adds: ``@20250101T000000.123456Z``.
MARKER_MAX_LENGTH = 24
#: The longest ``token_name`` that leaves room for the marker.
TOKEN_NAME_MAX = TOKEN_NAME_MAX_LENGTH - MARKER_MAX_LENGTH
_MARKER_RE = r"(?:\d{8}T\d{6}(?:\.\d{6})?Z|run-[0-9a-f]{16})"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class MotherDuckRotationError(MotherDuckError):
    """A rotation stopped part-way. ``summary`` says where it stands (ids only, never a secret).

    ``summary["still_live"]`` lists the ids that should be gone but are not; re-running the task
    finishes the job.
    """

    def __init__(self, message: str, summary: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary: dict[str, Any] = dict(summary or {})
        self.still_live: list[str] = list(self.summary.get("still_live", []))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.summary))


# -- run marker and the logical name ------------------------------------------------------------


def run_marker(context: Mapping[str, Any]) -> str:
    """The marker of the logical run in ``context``: its logical date, else a digest of its run id."""
    dag_run = context.get("dag_run")
    logical = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    if isinstance(logical, datetime):
        moment = logical.astimezone(timezone.utc) if logical.tzinfo else logical.replace(tzinfo=timezone.utc)
        fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
        return moment.strftime("%Y%m%dT%H%M%S") + fraction + "Z"
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None)
    if isinstance(run_id, str) and run_id:
        return "run-" + hashlib.sha256(run_id.encode()).hexdigest()[:16]
    raise MotherDuckError(
        "The task context has neither a logical date nor a run_id: the rotation cannot tell one run "
        "from another, so a retry could not find the token it made. Run it as an Airflow task."
    )


def rotated_name(token_name: str, marker: str) -> str:
    """The MotherDuck name of the token a run creates: ``<token_name>@<marker>``."""
    return f"{token_name}{MARKER_SEPARATOR}{marker}"


def name_pattern(token_name: str) -> re.Pattern[str]:
    """Matches the MotherDuck names of the logical name: the bare name or the name with a run marker."""
    return re.compile(re.escape(token_name) + f"(?:{re.escape(MARKER_SEPARATOR)}{_MARKER_RE})?")


# -- the plan -----------------------------------------------------------------------------------


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
    """To revoke after delivery: this run's unrecorded tokens first, then the rest, oldest first."""


def plan_rotation(
    family: Sequence[Mapping[str, Any]],
    current: Mapping[str, Any] | None,
    own_name: str,
    *,
    keep: int,
    revoke_after: float | None,
    now: datetime,
) -> RotationPlan:
    """Sort the tokens of the logical name (as listed, oldest first) into kept, in grace and to revoke.

    Expired tokens hold no keep slot and are revoked whatever ``revoke_after`` says (they are
    useless already). A token whose creation time cannot be read sorts as the oldest and is never
    taken as older than ``revoke_after``.
    """
    current_id = current.get("id") if current is not None else None
    orphans = [t for t in family if t.get("name") == own_name and t.get("id") != current_id]
    others = [t for t in family if t.get("name") != own_name]
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
    return RotationPlan(current, kept, in_grace, [t for t in orphans if past_grace(t)] + oldest_first)


# -- argument checks ----------------------------------------------------------------------------


def check_logical_name(value: Any, field: str) -> str:
    """A valid token name short enough to take a run marker."""
    name = check_token_name(value, field)
    if len(name) > TOKEN_NAME_MAX:
        raise ValueError(
            f"{field}={name[:20] + '...'!r} is invalid: it has {len(name)} characters, leaving no room for "
            f"the run marker (up to {MARKER_MAX_LENGTH} more). Allowed: 1 to {TOKEN_NAME_MAX} characters."
        )
    return name


def check_keep(value: Any, field: str) -> int:
    """``value`` if it is a whole number of tokens, 1 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{field}={value!r} is invalid: expected an integer of 1 or more (the new token counts). "
            "Allowed: 1, 2, 3, ..."
        )
    return value


def _ids(tokens: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(t.get("id")) for t in tokens]


class MotherDuckRotateTokenOperator(MotherDuckBaseOperator):
    """Rotate a user's access token: create a new one, deliver its secret, then revoke older ones.

    Safe at every step (see :mod:`airflow_provider_motherduck.operators.rotation` for the design):

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
        Not templated; needs ``record_key``.
    :param record_key: the Airflow Variable holding the delivery record (templated); default
        ``<variable_key>__delivery``, required with ``secret_sink``.
    :param keep: how many of the newest tokens of the logical name survive, the new one
        included (1 or more; default 1).
    :param revoke_after: optional grace (templated): only tokens older than this are revoked,
        so consumers have time to pick up the new secret. ``"2 days"``, ``"PT12H"``, seconds or a
        ``timedelta``.
    :param dry_run: only list the tokens and say what would be done; writes nothing.

    ``max_active_tis_per_dag`` defaults to 1: two overlapping runs could revoke each other's
    freshly delivered token. A mapped rotation keeps Airflow's default (the limit would
    serialise the users); give its DAG ``max_active_runs=1``.

    XCom (never a secret)::

        {"username", "token_name", "destination", "dry_run",
         "new_token": {"id", "name", "token_type", "expire_at", "created_ts", "read_only", "username"},
         "created": bool, "revoked": [ids], "kept": [ids], "in_grace": [ids], "still_live": []}

    ``new_token`` is the token whose secret the destination now holds and ``created`` whether
    this run made it (``False`` on a re-run that found it delivered). ``kept`` includes the new
    token. With ``dry_run``, ``created`` and ``revoked`` say what a real run would do and
    ``new_token`` is ``None`` when a token would be created.
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
        if "max_active_tis_per_dag" not in {**(kwargs.get("default_args") or {}), **kwargs}:
            kwargs["max_active_tis_per_dag"] = 1  # see the class docstring
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
        self.validate_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "username": check_username,
            "token_name": check_logical_name,
            "token_type": check_token_type,
            "ttl": parse_ttl,
            "variable_key": optional(self._check_variable_key),
            "record_key": optional(self._check_record_key),
            "keep": check_keep,
            "revoke_after": optional(parse_duration),
            "plan_only": lambda value, field: check_bool(value, "dry_run"),
        }

    def _check_variable_key(self, value: Any, field: str) -> str:
        return check_secret_variable(value, field, self.record_key)

    def _check_record_key(self, value: Any, field: str) -> str:
        return record_key_for(self.variable_key, value)

    def run(self, args: dict[str, Any], context: Context) -> dict[str, Any]:
        username: str = args["username"]
        token_name: str = args["token_name"]
        token_type: str = args["token_type"]
        destination = SecretDestination(args["variable_key"], self.secret_sink, args["record_key"])
        own_name = rotated_name(token_name, run_marker(context))
        pattern = name_pattern(token_name)

        family = [t for t in self.hook.list_tokens(username) if pattern.fullmatch(str(t.get("name", "")))]
        current = destination.delivered(family, username, own_name, token_type)
        plan = plan_rotation(
            family,
            current,
            own_name,
            keep=args["keep"],
            revoke_after=args["revoke_after"],
            now=datetime.now(timezone.utc),
        )
        summary: dict[str, Any] = {
            "username": username,
            "token_name": token_name,
            "destination": destination.describe(),
            "dry_run": args["plan_only"],
            "new_token": token_metadata(current, username) if current is not None else None,
            "created": current is None,
            "revoked": [],
            "kept": ([str(current["id"])] if current is not None else []) + _ids(plan.kept),
            "in_grace": _ids(plan.in_grace),
            "still_live": [],
        }
        if args["plan_only"]:
            summary["revoked"] = _ids(plan.revoke)
            self.log.info(
                "Dry run for %s's token %r: would %s, revoke %s, keep %s%s.",
                username,
                token_name,
                f"create {own_name!r} and deliver it to {destination.describe()}"
                if current is None
                else f"create nothing ({destination.describe()} holds this run's token {current['id']})",
                summary["revoked"] or "nothing",
                _ids(plan.kept) or "no older token",
                f", leave {summary['in_grace']} until revoke_after has passed" if plan.in_grace else "",
            )
            return summary

        if current is None:
            new = self._create_and_deliver(args, own_name, destination, summary, plan)
            summary["new_token"] = new
            summary["kept"].insert(0, str(new["id"]))
        else:
            self.log.info(
                "Token %s (%r) of this run was delivered to %s already: not creating another.",
                current["id"],
                own_name,
                destination.describe(),
            )
        self._revoke(username, plan, summary)
        self.log.info(
            "Rotated %s's token %r: %s holds token %s; revoked %s; kept %s%s.",
            username,
            token_name,
            destination.describe(),
            summary["new_token"]["id"],
            summary["revoked"] or "nothing",
            summary["kept"],
            f"; in grace until revoke_after: {summary['in_grace']}" if summary["in_grace"] else "",
        )
        return summary

    def _create_and_deliver(
        self,
        args: dict[str, Any],
        own_name: str,
        destination: SecretDestination,
        summary: dict[str, Any],
        plan: RotationPlan,
    ) -> dict[str, Any]:
        """Create this run's token and deliver its secret; on failure leave the old state intact."""
        username: str = args["username"]
        created = self.hook.create_token(username, own_name, ttl=args["ttl"], token_type=args["token_type"])
        token = token_metadata(created, username)
        token_id = str(token["id"])
        self.log.info(
            "Created MotherDuck %s token %r (id %s) for %s, expiring %s.",
            token["token_type"],
            token["name"],
            token_id,
            username,
            token["expire_at"] or "never",
        )
        # Until delivery is done, nothing planned for revocation (old tokens, orphans of this run) is.
        untouched = _ids(plan.revoke)
        secret = created.get("token")
        try:
            if not secret:
                raise MotherDuckError("MotherDuck's answer carried no secret")
            destination.deliver(secret, token)
        except Exception as err:
            problem = redacted_error(err, secret)
            revoked = self._revoke_undelivered(username, token_id)
            summary["new_token"] = token
            summary["still_live"] = untouched if revoked else [token_id, *untouched]
            raise MotherDuckRotationError(
                f"Could not deliver the secret of new token {token_id} ({own_name!r}) to "
                f"{destination.describe()}: {problem}. "
                + (
                    "The new token was revoked again"
                    if revoked
                    else f"Revoking the new token failed too: token {token_id} is still live, delete it"
                )
                + f"; no old token was touched and {destination.describe()} still holds the previous secret.",
                summary,
            ) from None
        try:
            destination.write_record(secret, token)
        except Exception as err:
            summary["new_token"] = token
            summary["still_live"] = untouched
            raise MotherDuckRotationError(
                f"Delivered the secret of new token {token_id} ({own_name!r}) to {destination.describe()}, "
                f"but could not write its delivery record to Variable {destination.record}: "
                f"{redacted_error(err, secret)}. The new secret is in place and valid; no old token was touched. "
                "A re-run will deliver a fresh token and then revoke this one.",
                summary,
            ) from None
        self.log.info("Delivered the secret of token %s to %s.", token_id, destination.describe())
        return token

    def _revoke_undelivered(self, username: str, token_id: str) -> bool:
        """Revoke a token whose secret nobody holds; ``True`` if it is gone."""
        self.log.error("Delivery failed: revoking the new token %s of %s again.", token_id, username)
        try:
            self.hook.delete_token(username, token_id, missing_ok=True)
        except Exception as err:
            self.log.error("Could not revoke token %s of %s: %s", token_id, username, err)
            return False
        return True

    def _revoke(self, username: str, plan: RotationPlan, summary: dict[str, Any]) -> None:
        """Revoke the planned tokens, each tried once; raise naming those still live."""
        failures: dict[str, str] = {}
        for token in plan.revoke:
            token_id = str(token.get("id"))
            try:
                self.hook.delete_token(username, token_id, missing_ok=True)  # gone already: fine
            except Exception as err:
                failures[token_id] = f"{type(err).__name__}: {err}"
                self.log.error(
                    "Could not revoke token %s (%r) of %s: %s", token_id, token.get("name"), username, err
                )
                continue
            summary["revoked"].append(token_id)
            self.log.info("Revoked token %s (%r) of %s.", token_id, token.get("name"), username)
        if failures:
            summary["still_live"] = list(failures)
            raise MotherDuckRotationError(
                f"Rotated the secret of {username}'s token {summary['token_name']!r} into "
                f"{summary['destination']} (token {summary['new_token']['id']}), but could not revoke "
                f"{len(failures)} older token(s); still live: {', '.join(failures)}. Revoked: "
                f"{', '.join(summary['revoked']) or 'none'}. Re-run the task to finish: it will not create "
                "another token for this run.\n"
                + "\n".join(f"  - {token_id}: {problem}" for token_id, problem in failures.items()),
                summary,
            )
