"""Operators for a user's Duckling (instance) config: read and change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool, optional
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.validation import check_duckling_half, check_username


class MotherDuckGetDucklingConfigOperator(MotherDuckBaseOperator):
    """Read a user's Duckling config (instance sizes, flock size, cooldowns).

    :param username: whose config (templated).

    XCom: ``{"read_write": {"instance_size", "cooldown_seconds"}, "read_scaling":
    {"instance_size", "flock_size", "cooldown_seconds"}}``, as MotherDuck returns it.
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

    def execute_checked(self, context: Context) -> dict[str, Any]:
        return dict(self.hook.get_duckling_config(self.username))


class MotherDuckSetDucklingConfigOperator(MotherDuckBaseOperator):
    """Change a user's Duckling config.

    By default ``read_write`` and ``read_scaling`` are partial: the given fields are merged into
    the current config (read, merge, write; no write when nothing changes). Changing
    ``instance_size`` without ``cooldown_seconds`` drops the old cooldown, so the new size's
    default applies. With ``replace=True`` both halves are required and complete, and the
    whole config is written as given.

    :param username: whose config (templated).
    :param read_write: e.g. ``{"instance_size": "jumbo"}`` (templated; keys ``instance_size``,
        ``cooldown_seconds``).
    :param read_scaling: e.g. ``{"flock_size": 8}`` (templated; keys ``instance_size``,
        ``flock_size``, ``cooldown_seconds``). Templated numbers render as strings unless
        the DAG sets ``render_template_as_native_obj=True``; pass numbers literally otherwise.
    :param replace: write exactly the given config instead of merging.

    XCom: the resulting config. Idempotent: a re-run with the same arguments changes nothing.
    MotherDuck may refuse a valid config that the plan does not allow (``MotherDuckAPIError``).
    """

    template_fields: Sequence[str] = ("username", "read_write", "read_scaling")
    template_fields_renderers = {"read_write": "json", "read_scaling": "json"}

    def __init__(
        self,
        *,
        username: str,
        read_write: Mapping[str, Any] | None = None,
        read_scaling: Mapping[str, Any] | None = None,
        replace: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.read_write = read_write
        self.read_scaling = read_scaling
        self.replace = replace
        where = f"{type(self).__name__} {self.task_id!r}"
        if read_write is None and read_scaling is None:
            raise ValueError(f"{where}: give read_write and/or read_scaling; there is nothing to set.")
        if replace is True and (read_write is None or read_scaling is None):
            raise ValueError(
                f"{where}: replace=True writes the whole config: it needs both read_write and read_scaling."
            )
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        complete = self.replace is True

        def half(value: Any, field: str) -> dict[str, Any]:
            return check_duckling_half(field, value, complete=complete)

        return {
            "username": check_username,
            "replace": check_bool,
            "read_write": optional(half),
            "read_scaling": optional(half),
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        username: str = self.username
        if self.replace:
            config = {"read_write": self.read_write, "read_scaling": self.read_scaling}
            result = self.hook.set_duckling_config(username, config)
        else:
            result = self.hook.update_duckling_config(
                username, read_write=self.read_write, read_scaling=self.read_scaling
            )
        self.log.info("Duckling config of %s is now %s", username, result)
        return dict(result)
