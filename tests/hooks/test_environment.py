"""The environment's proxy and CA settings: read once per session, for the hook's one base URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.testing import MotherDuckEmulator
from tests.hooks.forward_proxy import ForwardProxy
from tests.support import FakeSleep

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NETRC",
)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def proxy(clean_environment: None) -> Iterator[ForwardProxy]:
    with ForwardProxy() as running:
        yield running


def test_a_proxy_from_the_environment_is_used(
    emulator: MotherDuckEmulator, motherduck_conn: str, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    hook = MotherDuckHook()
    emulator.add_user("etl_bot")
    assert hook.list_tokens("etl_bot") == []
    assert hook.create_token("etl_bot", "nightly")["name"] == "nightly"
    assert proxy.seen == [
        f"GET {emulator.url}/v1/users/etl_bot/tokens",
        f"POST {emulator.url}/v1/users/etl_bot/tokens",
    ]
    hook.close()


@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
def test_no_proxy_is_honoured(
    emulator: MotherDuckEmulator,
    motherduck_conn: str,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv(variable, "localhost,127.0.0.1")
    hook = MotherDuckHook()
    assert hook.list_active_accounts() == []
    assert proxy.seen == []
    assert [e.path for e in emulator.journal] == ["/v1/active_accounts"]
    hook.close()


def test_the_environment_is_read_once_per_session(
    emulator: MotherDuckEmulator,
    motherduck_conn: str,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = MotherDuckHook(sleep=FakeSleep())
    hook.list_active_accounts()  # the session opens without a proxy...
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    hook.list_active_accounts()  # ...and keeps its settings: no environment scan per call
    assert proxy.seen == []
    hook.close()  # a new session reads the environment again
    hook.list_active_accounts()
    assert proxy.seen == [f"GET {emulator.url}/v1/active_accounts"]
    hook.close()


@pytest.mark.parametrize(
    ("variables", "verify"),
    [
        ({}, True),
        ({"CURL_CA_BUNDLE": "/etc/curl.pem"}, "/etc/curl.pem"),
        ({"REQUESTS_CA_BUNDLE": "/etc/requests.pem", "CURL_CA_BUNDLE": "/etc/curl.pem"}, "/etc/requests.pem"),
    ],
)
def test_the_ca_bundle_comes_from_the_environment(
    motherduck_conn: str,
    clean_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    verify: object,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert MotherDuckHook().session.verify == verify


def test_a_netrc_entry_never_replaces_the_bearer_token(
    emulator: MotherDuckEmulator,
    motherduck_conn: str,
    clean_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """requests would send Basic auth from .netrc instead of the header the session set."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-token\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert MotherDuckHook().list_active_accounts() == []
