"""Task groups built from the provider's operators and sensor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_motherduck._compat import TaskGroup
from airflow_provider_motherduck.arguments import check_variable_key, optional
from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.sensors.accounts import MotherDuckActiveAccountsSensor
from airflow_provider_motherduck.validation import check_username


def offboard_account_group(
    accounts: str | Sequence[str | Mapping[str, Any]],
    *,
    group_id: str = "offboard",
    poke_interval: float = 60.0,
    timeout: float = 6 * 3600.0,
    mode: str = "reschedule",
    deferrable: bool | None = None,
    motherduck_conn_id: str = MotherDuckHook.default_conn_name,
    hook_params: Mapping[str, Any] | None = None,
) -> TaskGroup:
    """A task group: wait until no account has a running Duckling, then offboard each one.

    ``accounts``: a username, or a list of usernames or of mappings with ``username`` and
    optionally ``variable_key``/``record_key`` (onboarding declarations are accepted; their other
    keys are ignored). One sensor (``wait_until_idle``, ``expect_active=False``, statuses active
    and cooldown) waits for all of them; then ``offboard_account`` runs per account, mapped for
    a list. ``poke_interval``, ``timeout``, ``mode`` and ``deferrable`` go to the sensor.
    Importable from :mod:`airflow_provider_motherduck.operators.onboarding` too, as promised.
    """
    # Imported here: operators.onboarding re-exports this function, so it imports this module.
    from airflow_provider_motherduck.operators.onboarding import MotherDuckOffboardAccountOperator

    single = isinstance(accounts, str)
    items = [accounts] if isinstance(accounts, str) else list(accounts)
    if not items:
        raise invalid("accounts", accounts, "it is empty", "a username or a non-empty list of them")
    kwargs_list = [_offboard_kwargs(item, f"accounts[{i}]") for i, item in enumerate(items)]
    common: dict[str, Any] = {"motherduck_conn_id": motherduck_conn_id, "hook_params": hook_params}
    sensor_extra: dict[str, Any] = {} if deferrable is None else {"deferrable": deferrable}
    with TaskGroup(group_id=group_id, tooltip="wait until idle, revoke tokens, delete users") as group:
        wait = MotherDuckActiveAccountsSensor(
            task_id="wait_until_idle",
            usernames=[kw["username"] for kw in kwargs_list],
            statuses=("active", "cooldown"),
            expect_active=False,
            poke_interval=poke_interval,
            timeout=timeout,
            mode=mode,
            **common,
            **sensor_extra,
        )
        if single:
            offboard: Any = MotherDuckOffboardAccountOperator(
                task_id="offboard_account", **kwargs_list[0], **common
            )
        else:
            offboard = MotherDuckOffboardAccountOperator.partial(
                task_id="offboard_account", **common
            ).expand_kwargs(kwargs_list)
        wait >> offboard
    return group


def _offboard_kwargs(item: str | Mapping[str, Any], field: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"username": check_username(item, field), "variable_key": None, "record_key": None}
    if not isinstance(item, Mapping) or "username" not in item:
        raise invalid(field, item, "expected a username or a mapping with username", "a str or a mapping")
    return {
        "username": check_username(item["username"], f"{field}.username"),
        "variable_key": optional(check_variable_key)(item.get("variable_key"), f"{field}.variable_key"),
        "record_key": optional(check_variable_key)(item.get("record_key"), f"{field}.record_key"),
    }
