"""A SQL session of one account: the retry rule, the error mapping, and acting as a service account.

:class:`SQLSession` is the one choke point every statement goes through: it opens its transport
on first use, retries a transient failure only for statements whose :class:`Kind` allows it
(reads, drops, revokes: 4 attempts, 2 s apart, as MotherDuck's Terraform provider does), and
maps every other failure to the provider's exceptions.

:func:`acting_as` keeps this invariant: a short-lived token minted to act as a service account
(named with :data:`SESSION_TOKEN_PREFIX`, TTL 300 s, the minimum) is masked the moment it
exists, used only inside the block, and revoked when the block ends, whether it succeeded or
failed. A worker killed inside the block leaves it to expire within five minutes; the audit
tells such tokens apart with :func:`is_session_token`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Final

from airflow_provider_motherduck._compat import mask_secret
from airflow_provider_motherduck.exceptions import MotherDuckAPIError, MotherDuckAuthError, SQLDriverError
from airflow_provider_motherduck.hooks.sql.errors import is_transient, map_error
from airflow_provider_motherduck.hooks.sql.statements import Statement
from airflow_provider_motherduck.hooks.sql.transports import Transport
from airflow_provider_motherduck.validation import TTL_MIN_SECONDS, check_username

log = logging.getLogger(__name__)

#: Every short-lived session token's name starts so; nothing else the provider issues does.
SESSION_TOKEN_PREFIX: Final = "airflow-sql-session-"
SESSION_TOKEN_TTL: Final = TTL_MIN_SECONDS
SQL_ATTEMPTS: Final = 4
SQL_RETRY_DELAY: Final = 2.0


def session_token_name(now: datetime | None = None) -> str:
    """A new session token's name: the prefix, the UTC time and a random suffix (unique per session)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"{SESSION_TOKEN_PREFIX}{stamp}-{secrets.token_hex(4)}"


def is_session_token(name: str) -> bool:
    """Whether a token (by its name) is a short-lived SQL session token of this provider."""
    return name.startswith(SESSION_TOKEN_PREFIX)


class SQLSession:
    """Statements run as one account (``username``; ``None``: the connection's own) over one transport.

    ``transport`` names it (``duckdb`` or ``postgres``) for errors, before it is open.
    """

    def __init__(
        self,
        open_transport: Callable[[], Transport],
        *,
        transport: str,
        username: str | None = None,
        sleep: Callable[[float], None],
        attempts: int = SQL_ATTEMPTS,
        delay: float = SQL_RETRY_DELAY,
    ) -> None:
        self._open = open_transport
        self._transport: Transport | None = None
        self.username = username
        self.transport_name = transport
        self._sleep = sleep
        self._attempts = attempts
        self._delay = delay

    def __repr__(self) -> str:
        return f"SQLSession(username={self.username!r})"

    def run(self, statement: Statement) -> list[dict[str, Any]]:
        """Run one statement; its rows as dicts (lowercased column names)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                if self._transport is None:
                    self._transport = self._open()
                rows = self._transport.execute(statement)
            except SQLDriverError as err:
                # Opening is retried like a read: a fresh session has done nothing yet.
                retried = err.statement is not statement or statement.kind.retried
                if not (retried and is_transient(err.text) and attempt < self._attempts):
                    raise map_error(err.statement, self.transport_name, err.text) from None
                log.warning(
                    "MotherDuck SQL %s failed (%s); retry %d of %d in %.0f s",
                    err.statement.label,
                    err.text,
                    attempt,
                    self._attempts - 1,
                    self._delay,
                )
                self.close()  # the next attempt opens a new session
                self._sleep(self._delay)
                continue
            log.debug("MotherDuck SQL %s: %d row(s)", statement.shown, len(rows.rows))
            return rows.dicts()

    def close(self) -> None:
        """Close the transport (a later :meth:`run` opens a new one)."""
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.close()


@contextmanager
def acting_as(
    username: str,
    *,
    mint: Callable[[str, str, int], Mapping[str, Any]],
    revoke: Callable[[str, str], Any],
    session: Callable[[str, str], SQLSession],
) -> Iterator[SQLSession]:
    """A :class:`SQLSession` as the service account ``username``, through a short-lived token.

    ``mint(username, name, ttl)`` creates the token over REST (the answer has ``id`` and
    ``token``), ``revoke(username, token_id)`` revokes it, ``session(token, username)`` opens
    the SQL session. The token is masked at once and revoked when the block ends.
    """
    user = check_username(username, "as_user")
    try:
        created = mint(user, session_token_name(), SESSION_TOKEN_TTL)
    except MotherDuckAuthError as err:
        if err.status_code != 403:
            raise
        raise err.with_advice(
            f"as_user={user!r}: MotherDuck issues tokens only for service accounts, so a human user "
            "cannot be acted as. Put that user's own read/write token in an Airflow connection and "
            "pass it as motherduck_conn_id, without as_user."
        ) from None
    mask_secret(created["token"])
    log.info(
        "Acting as %s through the session token %s (expires in %d s).", user, created["id"], SESSION_TOKEN_TTL
    )
    sql: SQLSession | None = None
    failed = False
    try:
        sql = session(created["token"], user)
        yield sql
    except BaseException:
        failed = True
        raise
    finally:
        if sql is not None:
            sql.close()
        try:
            revoke(user, created["id"])
        except MotherDuckAPIError:
            if not failed:
                raise
            log.warning(
                "Could not revoke the session token %s of %s; it expires by itself within %d s.",
                created["id"],
                user,
                SESSION_TOKEN_TTL,
            )
