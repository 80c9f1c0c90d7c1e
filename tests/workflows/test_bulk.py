"""Bulk onboarding on a thread pool: every secret it creates is masked in every log line it writes."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3, mask_secret, redact
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import InMemoryVariableStore
from airflow_provider_motherduck.workflows.onboarding import check_accounts, onboard_accounts
from tests.support import masks_logs_outside_a_task


@masks_logs_outside_a_task
def test_secrets_of_a_bulk_run_never_reach_its_log(
    emulator: MotherDuckEmulator,
    motherduck_conn: str,
    motherduck_variables: InMemoryVariableStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """24 accounts on 8 threads, the package logging at DEBUG through Airflow's masking filter."""
    masker = sys.modules[mask_secret.__module__]._secrets_masker()
    if AIRFLOW_V_3:
        monkeypatch.setattr(type(masker), "mask_secrets_in_logs", True)
    else:
        from airflow import settings

        monkeypatch.setattr(settings, "MASK_SECRETS_IN_LOGS", True)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(masker)
    package_log = logging.getLogger("airflow_provider_motherduck")
    monkeypatch.setattr(package_log, "level", logging.DEBUG)
    package_log.addHandler(handler)
    accounts = check_accounts(
        [
            {"username": f"svc_bulk_{i:02d}", "token_name": "airflow", "variable_key": f"md_bulk_{i:02d}"}
            for i in range(24)
        ]
    )
    try:
        results, failed = onboard_accounts(accounts, lambda: MotherDuckHook(motherduck_conn), max_workers=8)
        secrets = [motherduck_variables[f"md_bulk_{i:02d}"] for i in range(24)]
        package_log.info("secrets delivered: %s", secrets)
    finally:
        package_log.removeHandler(handler)
    assert failed == {}
    assert len(results) == 24
    assert all(emulator.is_valid_token(s) for s in secrets)
    assert all(redact(s) == "***" for s in secrets)
    text = buffer.getvalue()
    assert "secrets delivered: ['***'," in text
    assert not [s for s in secrets if s in text]
