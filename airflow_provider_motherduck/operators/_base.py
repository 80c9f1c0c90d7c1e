"""What every MotherDuck operator shares: the connection, the cached hook and argument checks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, ClassVar

from airflow_provider_motherduck._compat import BaseOperator, Context
from airflow_provider_motherduck.arguments import Check, check_conn_id, check_hook_params, is_literal
from airflow_provider_motherduck.exceptions import MotherDuckConfigError
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook


class MotherDuckBaseOperator(BaseOperator):
    """Base of the MotherDuck operators (not meant to be used on its own).

    Subclasses list their argument checks in :meth:`arg_checks` and do their work in
    :meth:`execute_checked`. Literal arguments are checked when the operator is built (a bad DAG
    fails at parse time, the field named); after template rendering every argument is checked
    again and replaced by its checked value (``ttl="1 day"`` becomes ``86400``), before any
    request. Arguments of ``partial()``/``expand()`` are checked when the mapped task runs.

    :param motherduck_conn_id: the Airflow connection holding the Admin token (templated).
    :param hook_params: keyword arguments for :class:`MotherDuckHook`: ``timeout``,
        ``retry_limit``, ``retry_delay``, ``max_retry_wait``.

    An operator that writes (to MotherDuck or to Airflow Variables: :attr:`writes`) defaults to
    ``max_active_tis_per_dag=1``, one running instance of the task at a time, so two runs of one
    DAG do not write the same things side by side; pass another value (or put it in
    ``default_args``) to override. The delivery and rotation workflows stay correct when runs
    overlap anyway (docs: reliability, overlapping runs); the limit only makes it rare. A mapped
    task keeps Airflow's default (the limit would serialise its instances): give its DAG
    ``max_active_runs=1``.
    """

    #: Whether the operator writes; read-only operators set it to ``False``.
    writes: ClassVar[bool] = True

    ui_color = "#ffde00"
    template_fields: Sequence[str] = ("motherduck_conn_id",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Each subclass lists its own template_fields; the connection id joins them all here.
        super().__init_subclass__(**kwargs)
        if "motherduck_conn_id" not in cls.template_fields:
            cls.template_fields = (*cls.template_fields, "motherduck_conn_id")

    def __init__(
        self,
        *,
        motherduck_conn_id: str = MotherDuckHook.default_conn_name,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.writes and "max_active_tis_per_dag" not in {**(kwargs.get("default_args") or {}), **kwargs}:
            kwargs["max_active_tis_per_dag"] = 1
        super().__init__(**kwargs)
        self.motherduck_conn_id = motherduck_conn_id
        self.hook_params = hook_params if hook_params is not None else {}

    def arg_checks(self) -> dict[str, Check]:
        """Attribute name -> check, for every argument a subclass takes (override)."""
        return {}

    def check_args(self, *, rendered: bool) -> None:
        """Run every check; before rendering (``rendered=False``) skip values that are not literal.

        After rendering, each attribute is set to its checked value.
        """
        checks: dict[str, Check] = {
            "motherduck_conn_id": check_conn_id,
            "hook_params": check_hook_params,
            **self.arg_checks(),
        }
        for field, check in checks.items():
            value = getattr(self, field)
            if not rendered and not is_literal(value):
                continue
            try:
                checked = check(value, field)
            except ValueError as err:
                raise ValueError(f"{type(self).__name__} {self.task_id!r}: {err}") from None
            if rendered:
                setattr(self, field, checked)

    @contextmanager
    def naming_the_task(self) -> Iterator[None]:
        """Prefix this task to a bad-input or bad-connection error raised inside, as the argument
        checks do (a connection's error names the connection already)."""
        try:
            yield
        except (ValueError, MotherDuckConfigError) as err:
            if type(err) not in (ValueError, MotherDuckConfigError):  # subclasses carry more than a message
                raise
            raise type(err)(f"{type(self).__name__} {self.task_id!r}: {err}") from None

    @cached_property
    def hook(self) -> MotherDuckHook:
        """The hook for ``motherduck_conn_id``, built on first use."""
        return MotherDuckHook(self.motherduck_conn_id, **check_hook_params(self.hook_params))

    def execute(self, context: Context) -> Any:
        """Check the rendered arguments, then :meth:`execute_checked`; the HTTP session is closed afterwards."""
        self.check_args(rendered=True)
        try:
            with self.naming_the_task():
                return self.execute_checked(context)
        finally:
            if "hook" in self.__dict__:
                self.hook.close()

    def execute_checked(self, context: Context) -> Any:
        """Do the work with the checked arguments (the attributes) and return the XCom value (override)."""
        raise NotImplementedError
