"""Operators for service accounts: create and delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool
from airflow_provider_motherduck.exceptions import MotherDuckConflictError
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.validation import check_new_username, check_username


class MotherDuckCreateUserOperator(MotherDuckBaseOperator):
    """Create a MotherDuck service account (a Member; the API sets no role).

    :param username: the new user's name (templated): a letter, then letters, digits or
        underscores, at most 255 characters.
    :param exists_ok: if the user exists already, succeed without change instead of failing;
        makes onboarding DAGs safe to re-run.

    XCom: ``{"username": ..., "created": bool}`` (``False`` only when it existed and ``exists_ok``).
    Raises ``MotherDuckConflictError`` when the user exists and ``exists_ok`` is false.
    """

    template_fields: Sequence[str] = ("username",)

    def __init__(self, *, username: str, exists_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.exists_ok = exists_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"username": check_new_username, "exists_ok": check_bool}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        username: str = self.username
        try:
            self.hook.create_user(username)
        except MotherDuckConflictError:
            if not self.exists_ok:
                raise
            self.log.info("MotherDuck user %s exists already (exists_ok=True): nothing to do.", username)
            return {"username": username, "created": False}
        self.log.info("Created MotherDuck service account %s.", username)
        return {"username": username, "created": True}


class MotherDuckDeleteUserOperator(MotherDuckBaseOperator):
    """Delete a MotherDuck user with all their data, tokens and Ducklings. Irreversible.

    :param username: the user to delete (templated).
    :param missing_ok: if the user does not exist, succeed instead of failing; makes
        offboarding DAGs safe to re-run.

    XCom: ``{"username": ..., "deleted": bool}`` (``False`` only when missing and ``missing_ok``).
    Raises ``MotherDuckNotFoundError`` when the user is missing and ``missing_ok`` is false.
    """

    template_fields: Sequence[str] = ("username",)

    def __init__(self, *, username: str, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.missing_ok = missing_ok
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {"username": check_username, "missing_ok": check_bool}

    def execute_checked(self, context: Context) -> dict[str, Any]:
        username: str = self.username
        deleted = self.hook.delete_user(username, missing_ok=self.missing_ok)
        if deleted:
            self.log.info("Deleted MotherDuck user %s.", username)
        else:
            self.log.info("MotherDuck user %s does not exist (missing_ok=True): nothing to do.", username)
        return {"username": username, "deleted": deleted}
