"""Echoed secrets are blanked (hooks/known_secrets.py): over real HTTP, the emulator's ``echo`` fault
answers an error that quotes the request's bearer token and every secret it ever issued.

What this process knows (the admin token, a token it created, an embed session it was handed, a
secret whose fingerprint it took) must be missing from the exception's ``str``, ``repr`` and
pickle, from the logs and from ``test_connection()``'s message.
"""

from __future__ import annotations

import logging
import pickle

import pytest

from airflow_provider_motherduck.exceptions import MotherDuckAPIError
from airflow_provider_motherduck.hooks.known_secrets import blank, remember
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from airflow_provider_motherduck.workflows.delivery import fingerprint

USER = "etl_bot"


def _known_secrets(hook: MotherDuckHook, emulator: MotherDuckEmulator) -> list[str]:
    """Make the process know a secret of each kind; returns them with the admin token."""
    emulator.add_user(USER)
    created = hook.create_token(USER, "nightly")["token"]
    session = hook.create_dive_embed_session("dive-1", USER)["session"]
    delivered = emulator.add_token(USER, "delivered")["token"]  # as if read back from a Variable
    fingerprint(delivered)
    return [emulator.admin_token, created, session, delivered]


def _leaks(secrets: list[str], *texts: str) -> list[str]:
    return [s for s in secrets if any(s in text for text in texts)]


@pytest.mark.parametrize("status", [400, 403, 404, 500])
def test_an_error_echoing_every_secret_is_blanked(
    status: int, hook: MotherDuckHook, emulator: MotherDuckEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = _known_secrets(hook, emulator)
    emulator.inject("GET", f"/v1/users/{USER}/tokens", status=status, echo=True, times=4)
    with (
        caplog.at_level(logging.DEBUG, logger="airflow_provider_motherduck"),
        pytest.raises(MotherDuckAPIError) as info,
    ):
        hook.list_tokens(USER)
    err = info.value
    shown = [str(err), repr(err), repr(err.issues), err.message, *(r.getMessage() for r in caplog.records)]
    assert _leaks(secrets, *shown) == []
    assert not [s for s in secrets if s.encode() in pickle.dumps(err)]
    assert "***" in err.message  # the echo arrived, blanked
    assert len(err.issues) >= len(secrets)


def test_a_plain_text_echo_and_a_redirect_target_are_blanked(
    hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    secrets = _known_secrets(hook, emulator)
    emulator.inject("GET", "/v1/active_accounts", status=502, body=f"bad gateway for {secrets[0]}", times=4)
    with pytest.raises(MotherDuckAPIError) as info:
        hook.list_active_accounts()
    assert _leaks(secrets, str(info.value)) == []
    emulator.inject(
        "GET", "/v1/active_accounts", status=307, headers={"Location": f"https://{secrets[1]}.example/"}
    )
    with pytest.raises(MotherDuckAPIError, match=r"redirected to the host '\*\*\*\.example'"):
        hook.list_active_accounts()


def test_test_connection_never_shows_an_echoed_secret(
    hook: MotherDuckHook, emulator: MotherDuckEmulator
) -> None:
    secrets = _known_secrets(hook, emulator)
    emulator.inject("GET", "/v1/active_accounts", status=401, echo=True)
    ok, message = hook.test_connection()
    assert ok is False
    assert "HTTP 401" in message
    assert _leaks(secrets, message) == []


def test_blank_replaces_the_longest_first_and_leaves_short_values() -> None:
    remember(["mdt_known_secret_0123456789", "mdt_known_secret_0123456789_longer", "short"])
    assert blank("a mdt_known_secret_0123456789_longer b") == "a *** b"
    assert blank("short stays") == "short stays"
