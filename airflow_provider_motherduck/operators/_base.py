"""What every MotherDuck operator shares: the connection, the cached hook and argument checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from airflow_provider_motherduck._compat import BaseOperator, Context
from airflow_provider_motherduck.arguments import check_conn_id, check_hook_params, is_literal
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook

#: A check takes a value and the field's name; it returns the value to use or raises ValueError.
Check = Callable[[Any, str], Any]


def check_bool(value: Any, field: str) -> bool:
    """``value`` if it is a real boolean (a string such as ``"false"`` would be truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"{field}={value!r} is invalid: expected True or False. Allowed: True, False.")
    return value


def optional(check: Check) -> Check:
    """``check`` for a field that may also be ``None``."""

    def run(value: Any, field: str) -> Any:
        return None if value is None else check(value, field)

    return run


class MotherDuckBaseOperator(BaseOperator):
    """Base of the MotherDuck operators (not meant to be used on its own).

    Subclasses list their argument checks in :meth:`arg_checks` and do their work in :meth:`run`.
    Literal arguments are checked when the operator is built (a bad DAG fails at parse time, the
    field named); every argument is checked again after template rendering, before any request.
    Arguments of ``partial()``/``expand()`` are checked when the mapped task runs, before any request.

    :param motherduck_conn_id: the Airflow connection holding the Admin token.
    :param hook_params: keyword arguments for :class:`MotherDuckHook`: ``timeout``,
        ``retry_limit``, ``retry_delay``, ``max_retry_wait``.
    """

    ui_color = "#ffde00"

    def __init__(
        self,
        *,
        motherduck_conn_id: str = MotherDuckHook.default_conn_name,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.motherduck_conn_id = motherduck_conn_id
        self.hook_params = hook_params if hook_params is not None else {}

    def arg_checks(self) -> dict[str, Check]:
        """Attribute name -> check, for every argument a subclass takes (override)."""
        return {}

    def validate_args(self, *, rendered: bool) -> dict[str, Any]:
        """Run every check; before rendering (``rendered=False``) skip values that are not literal.

        Returns the checked values by attribute name (those skipped are left out).
        """
        checks: dict[str, Check] = {
            "motherduck_conn_id": check_conn_id,
            "hook_params": check_hook_params,
            **self.arg_checks(),
        }
        values: dict[str, Any] = {}
        for field, check in checks.items():
            value = getattr(self, field)
            if not rendered and not is_literal(value):
                continue
            try:
                values[field] = check(value, field)
            except ValueError as err:
                raise ValueError(f"{type(self).__name__} {self.task_id!r}: {err}") from None
        return values

    @cached_property
    def hook(self) -> MotherDuckHook:
        """The hook for ``motherduck_conn_id``, built on first use."""
        return MotherDuckHook(self.motherduck_conn_id, **check_hook_params(self.hook_params))

    def execute(self, context: Context) -> Any:
        """Check the rendered arguments, then :meth:`run`; the HTTP session is closed afterwards."""
        args = self.validate_args(rendered=True)
        try:
            return self.run(args, context)
        finally:
            if "hook" in self.__dict__:
                self.hook.close()

    def run(self, args: dict[str, Any], context: Context) -> Any:
        """Do the work with the checked arguments and return the XCom value (override)."""
        raise NotImplementedError
