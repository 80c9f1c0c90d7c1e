"""Errors raised by the MotherDuck provider. None of them ever carries a token."""

from __future__ import annotations

import reprlib
from typing import Any, Final

from airflow_provider_motherduck._compat import AirflowException

#: The longest a value shown in an error message gets (``...`` marks the cut).
EXCERPT_CHARS: Final = 80


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, built without rendering all of a large value."""
    shorter = reprlib.Repr()
    shorter.maxlevel = 3
    shorter.maxdict = shorter.maxlist = shorter.maxtuple = shorter.maxset = 6
    shorter.maxstring = shorter.maxother = limit
    text = shorter.repr(value)
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
    """The SQL path (DuckDB on ``md:``) failed, or answered without being a MotherDuck session."""


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
        return _rebuild(type(self), self.message, {**self.__dict__, "message": f"{self.message} | {advice}"})

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments need help to survive pickling (Airflow pickles task errors).
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[MotherDuckAPIError], message: str, state: dict[str, Any]) -> MotherDuckAPIError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err._describe())
    return err


class MotherDuckAuthError(MotherDuckAPIError):
    """401 (token missing, wrong, expired or revoked) or 403 (token not allowed to do this)."""


class MotherDuckNotFoundError(MotherDuckAPIError):
    """404 with MotherDuck's JSON ``NOT_FOUND``: the user or token does not exist."""


class MotherDuckConflictError(MotherDuckAPIError):
    """The user to create already exists (409, or 400 naming a unique constraint)."""


class MotherDuckRouteNotFoundError(MotherDuckAPIError):
    """A plain-text 404: no such route. The API URL is wrong or the API changed; not a missing object."""
