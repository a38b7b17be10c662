"""Configuration from the environment, token hygiene, and retries against the sandbox."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.hubspot import HubSpotSource, settings
from connectors.sandbox.server import SandboxServer
from connectors.tls import CA_BUNDLE_ENV


def test_from_env_names_the_missing_variable() -> None:
    with pytest.raises(ConnectorConfigError, match=settings.TOKEN_ENV):
        HubSpotSource.from_env({})
    with pytest.raises(ConnectorConfigError, match=settings.TOKEN_ENV):
        HubSpotSource.from_env({settings.TOKEN_ENV: "  "})


def test_from_env_checks_host_and_ca_bundle() -> None:
    with pytest.raises(ConnectorConfigError, match=settings.HOST_ENV):
        HubSpotSource.from_env({settings.TOKEN_ENV: "pat-x", settings.HOST_ENV: "api.hubapi.com"})
    with pytest.raises(ConnectorConfigError, match=CA_BUNDLE_ENV):
        HubSpotSource.from_env({settings.TOKEN_ENV: "pat-x", CA_BUNDLE_ENV: "/no/such/ca.pem"})
    source = HubSpotSource.from_env({settings.TOKEN_ENV: "pat-secret-123"})
    assert source.host == settings.DEFAULT_HOST and "pat-secret-123" not in repr(source)


@pytest.mark.integration
def test_a_rejected_token_is_a_clear_error_without_the_token(sandbox: SandboxServer, store: Engine) -> None:
    env = {**sandbox.connection_env(), settings.TOKEN_ENV: "pat-wrong-token-456"}
    with HubSpotSource.from_env(env) as source, pytest.raises(ConnectorError) as failure:
        source.extract(store, "owners")
    message = str(failure.value)
    assert "401" in message and settings.TOKEN_ENV in message and "pat-wrong-token-456" not in message
    assert source.api_calls == 1  # 401 is not retried


@pytest.mark.integration
def test_rate_limits_and_server_errors_are_retried(sandbox: SandboxServer, store: Engine) -> None:
    env = sandbox.connection_env()
    faults = sandbox.counters["hubspot"].app.state.faults
    waits: list[float] = []
    with HubSpotSource(env[settings.TOKEN_ENV], env[settings.HOST_ENV], env[CA_BUNDLE_ENV],
                       sleep=waits.append) as source:
        faults.extend([429, 503])
        result = source.extract(store, "owners")
        assert result.api_calls == 2 + 2 and waits[0] == 0.0  # 429 said Retry-After: 0
        faults.extend([500] * settings.RETRY_ATTEMPTS)
        with pytest.raises(ConnectorError, match="HTTP 500"):
            source.extract(store, "owners")
    assert not faults


def test_unknown_stream_is_refused() -> None:
    source = HubSpotSource("pat-x")
    streams = "owners, companies, deals, line_items, calls, emails, meetings, contacts, leads, tickets, campaigns"
    with pytest.raises(ConnectorError, match=f"streams: {streams}"):
        source.extract(None, "cases")  # type: ignore[arg-type]
