"""Every error the MotherDuck provider raises, in one place. None of them ever carries a token.

The hierarchy::

    ValueError                            bad input, from invalid(), before anything is sent
    AirflowException                      (so Airflow's task retries apply)
    └── MotherDuckError                   every error raised on purpose
        ├── MotherDuckConfigError         the connection cannot be used as set up
        ├── MotherDuckSQLError            the SQL path failed, or reached no MotherDuck session
        │   ├── MotherDuckSQLNotFoundError    what the statement names does not exist
        │   ├── MotherDuckSQLExistsError      what the statement creates exists already
        │   ├── MotherDuckSQLPermissionError  the session's account may not do this
        │   ├── MotherDuckPlanLimitError      the organisation's plan does not include this
        │   └── MotherDuckSQLUnsupportedError not supported over this transport
        ├── MotherDuckAPIError            MotherDuck answered with an error, or could not be reached
        │   ├── MotherDuckAuthError       401 (token wrong, expired, revoked) or 403 (not allowed)
        │   ├── MotherDuckNotFoundError   404 NOT_FOUND: no such user or token
        │   ├── MotherDuckConflictError   the user to create exists already
        │   └── MotherDuckRouteNotFoundError  a plain-text 404: a wrong API URL, not a missing object
        ├── TokenIssueError               issuing stopped after the token was created
        ├── SkippedError                  not started: an earlier item's error stops the pool
        └── MotherDuckStoppedError        a multi-step job stopped; ``summary`` says where it stands
            ├── MotherDuckRotationError   a rotation stopped part-way
            └── MotherDuckReconcileError  drift (``check``), an unsafe plan, or failed actions
    Exception
    └── SQLDriverError                    inside ``hooks.sql`` only: mapped to a MotherDuckSQLError

Errors that keep fields (``status_code``, ``summary``, ...) survive pickling with them: Airflow
pickles a task's error.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from itertools import islice
from typing import Any, Final, TypeVar

from airflow_provider_motherduck._compat import AirflowException

#: The longest a value shown in an error message gets (``...`` marks the cut).
EXCERPT_CHARS: Final = 80


class _Shortened(reprlib.Repr):
    """``reprlib``'s bounded ``repr``, keeping a dict's own order (``reprlib`` sorts the keys)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 6
        self.maxstring = self.maxother = limit

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x or level <= 0:
            return "{...}" if x else "{}"
        pairs = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in islice(x.items(), self.maxdict)
        ]
        return "{" + ", ".join(pairs + ["..."] * (len(x) > self.maxdict)) + "}"


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, built without rendering all of a large value."""
    return cut(_Shortened(limit).repr(value), limit)


def cut(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, ``...`` marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def invalid(field: str, value: Any, problem: str, allowed: str, *, show: bool = True) -> ValueError:
    """The one "is invalid" error: ``field=value is invalid: problem. Allowed: allowed.``

    Every check of the provider builds its ``ValueError`` here, so all of them read alike.
    The value is shown as a short :func:`excerpt`; ``show=False`` names only its type and length,
    for a value that may be a secret.
    """
    if show:
        shown = f"{field}={excerpt(value)}"
    else:
        size = f" of {len(value)} characters" if isinstance(value, str) else ""
        shown = f"{field} (a {type(value).__name__}{size}, not shown in case it is a secret)"
    return ValueError(f"{shown} is invalid: {problem}. Allowed: {allowed}.")


class MotherDuckError(AirflowException):
    """Base class of every error this provider raises on purpose."""


class MotherDuckConfigError(MotherDuckError):
    """The connection cannot be used as set up (no token, plain http to a remote host, ...)."""


class MotherDuckSQLError(MotherDuckError):
    """The SQL path failed, or answered without being a MotherDuck session.

    ``message`` is MotherDuck's (or the SQL client's) own text, ``statement`` the SQL that was
    sent (never one that carries a token), ``transport`` ``duckdb`` or ``postgres``, ``advice``
    what to do about it. The subclasses below say what kind of failure it was.
    """

    def __init__(self, message: str, statement: str = "", transport: str = "", advice: str = "") -> None:
        self.message = message
        self.statement = statement
        self.transport = transport
        self.advice = advice
        over = f" over {transport}" if transport else ""
        text = f"MotherDuck SQL failed{over}: {message} (statement: {statement})" if statement else message
        super().__init__(f"{text} | {advice}" if advice else text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.statement, self.transport, self.advice))


class MotherDuckSQLNotFoundError(MotherDuckSQLError):
    """What the statement names does not exist (a role, share, user, database or attachment)."""


class MotherDuckSQLExistsError(MotherDuckSQLError):
    """What the statement creates exists already."""


class MotherDuckSQLPermissionError(MotherDuckSQLError):
    """The session's account may not do this; ``advice`` says who may (an admin, the share's owner, ...)."""


class MotherDuckPlanLimitError(MotherDuckSQLError):
    """The organisation's plan does not include this (custom roles, filtered shares: Business plan)."""


class MotherDuckSQLUnsupportedError(MotherDuckSQLError):
    """The statement is not supported over this transport; ``advice`` suggests the other one."""


class MotherDuckAPIError(MotherDuckError):
    """MotherDuck answered with an error, or could not be reached.

    Keeps MotherDuck's ``code``, ``message`` and field-level ``issues`` as sent. ``status_code``
    is ``None`` when no answer arrived (timeout, refused or dropped connection).
    ``maybe_carried_out`` is ``True`` when the call was a write (``POST``, ``PUT``, ``DELETE``)
    that MotherDuck may have carried out although it failed: a 5xx answer, an unreadable success
    answer, or a network error after the request was sent. A create that failed so may have
    created what it asked for; the message says how to find it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        issues: list[dict[str, Any]] | None = None,
        method: str = "",
        path: str = "",
        maybe_carried_out: bool = False,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # MotherDuck's, not Airflow's
        self.code = code
        self.message = message
        self.issues = issues or []
        self.method = method
        self.path = path
        self.maybe_carried_out = maybe_carried_out
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f"HTTP {self.status_code}" if self.status_code is not None else "no answer"
        head = f"MotherDuck {where} failed ({status}"
        head += f", {self.code})" if self.code else ")"
        text = f"{head}: {self.message}"
        for issue in self.issues:
            field = ".".join(str(p) for p in issue.get("path") or []) or "-"
            text += f"\n  - {field}: {issue.get('message', issue)}"
        return text

    def with_advice(self, advice: str) -> MotherDuckAPIError:
        """A copy of this error (same class and fields) whose message ends with ``advice``."""
        err = _restore(type(self), "", {**self.__dict__, "message": f"{self.message} | {advice}"})
        err.args = (err._describe(),)
        return err

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), str(self), self.__dict__.copy()))


E = TypeVar("E", bound=BaseException)


def _restore(cls: type[E], message: str, state: dict[str, Any]) -> E:
    """An error of ``cls`` with ``state`` as its fields, built without ``__init__``: keyword-only
    arguments cannot pass through pickling."""
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, message)
    return err


class MotherDuckAuthError(MotherDuckAPIError):
    """401 (token missing, wrong, expired or revoked) or 403 (token not allowed to do this)."""


class MotherDuckNotFoundError(MotherDuckAPIError):
    """404 with MotherDuck's JSON ``NOT_FOUND``: the user or token does not exist."""


class MotherDuckConflictError(MotherDuckAPIError):
    """The user to create already exists (409, or 400 naming a unique constraint)."""


class MotherDuckRouteNotFoundError(MotherDuckAPIError):
    """A plain-text 404: no such route. The API URL is wrong or the API changed; not a missing object."""


class TokenIssueError(MotherDuckError):
    """Issuing a token stopped after the token was created. Never carries the secret.

    ``token``: the new token's metadata (its XCom form); ``revoked``: whether it was revoked again
    (its secret was not delivered); ``delivered``: whether its secret reached the destination (only
    its record could not be written); ``problem``: what went wrong, with the secret blanked.
    """

    def __init__(
        self, message: str, *, token: Mapping[str, Any], revoked: bool, delivered: bool, problem: str
    ) -> None:
        super().__init__(message)
        self.token: dict[str, Any] = dict(token)
        self.token_id = str(token.get("id"))
        self.revoked = revoked
        self.delivered = delivered
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), str(self), self.__dict__.copy()))


class SkippedError(MotherDuckError):
    """An item not started because an earlier one hit an error that stops the pool."""


class MotherDuckStoppedError(MotherDuckError):
    """A multi-step job stopped, or refused to go on. ``summary`` is the task's XCom form of where
    it stands (ids only, never a secret); re-running the task finishes the job."""

    def __init__(self, message: str, summary: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary: dict[str, Any] = dict(summary or {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.summary))


class MotherDuckRotationError(MotherDuckStoppedError):
    """A rotation stopped part-way. ``still_live``: the ids that should be revoked but are not."""

    @property
    def still_live(self) -> list[str]:
        return list(self.summary.get("still_live_ids", []))


class MotherDuckReconcileError(MotherDuckStoppedError):
    """Reconciling stopped: drift found (``check``), an unsafe plan, or actions that failed."""


class SQLDriverError(Exception):
    """A SQL client's failure, its text already scrubbed of the token; ``statement`` is the
    ``hooks.sql`` statement that failed. Never leaves the SQL session, which maps it to a
    :class:`MotherDuckSQLError`."""

    def __init__(self, text: str, statement: Any) -> None:
        super().__init__(text)
        self.text = text
        self.statement = statement

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.text, self.statement))
