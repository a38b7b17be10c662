"""Credentials from the environment: clear errors without secrets, and the three login flows."""

from __future__ import annotations

import gc
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.salesforce import SalesforceSource
from connectors.sandbox.server import SandboxServer

SECRET = "hunter2-very-secret"


class ForwardTo(HTTPAdapter):
    """Sends requests meant for a *.salesforce.com login host to the sandbox instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.target = urlsplit(base_url)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.url = urlunsplit((self.target.scheme, self.target.netloc, parts.path, parts.query, ""))
        return super().send(request, **kwargs)


@pytest.fixture
def login_session(sandbox: SandboxServer) -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sandbox.ca_path)
    for host in ("https://login.salesforce.com", "https://okr-sandbox.my.salesforce.com"):
        session.mount(host, ForwardTo(sandbox.salesforce_url))
    yield session
    session.close()
    gc.collect()


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ConnectorConfigError) as caught:
        SalesforceSource.from_env(env)
    return str(caught.value)


def test_no_credentials_names_every_option() -> None:
    message = config_error({})
    for name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "SALESFORCE_USERNAME",
                 "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CLIENT_ID",
                 "SALESFORCE_CLIENT_SECRET"):
        assert name in message


def test_incomplete_credentials_name_what_is_missing_and_no_secret() -> None:
    message = config_error({"SALESFORCE_USERNAME": "ops@example.com", "SALESFORCE_PASSWORD": SECRET})
    assert "SALESFORCE_SECURITY_TOKEN" in message
    assert SECRET not in message and "ops@example.com" not in message
    message = config_error({"SALESFORCE_ACCESS_TOKEN": SECRET})
    assert "SALESFORCE_INSTANCE_URL" in message and SECRET not in message


def test_client_credentials_need_a_my_domain() -> None:
    message = config_error({"SALESFORCE_CLIENT_ID": "app", "SALESFORCE_CLIENT_SECRET": SECRET})
    assert "SALESFORCE_DOMAIN" in message and SECRET not in message


def test_a_ca_bundle_that_is_not_a_file_is_refused_before_any_call(sandbox: SandboxServer) -> None:
    calls = sandbox.calls("salesforce")
    env = sandbox.connection_env() | {"OKR_SYNC_CA_BUNDLE": "/no/such/ca.pem"}
    message = config_error(env)
    assert "OKR_SYNC_CA_BUNDLE" in message and "/no/such/ca.pem" in message and "not a file" in message
    assert sandbox.calls("salesforce") == calls


def test_session_id_flow_makes_no_login_call(sandbox: SandboxServer, store: Engine) -> None:
    with SalesforceSource.from_env(sandbox.connection_env()) as source:
        assert source.api_calls == 0
        assert source.extract(store, "users").records == len(sandbox.state.query("SELECT id FROM owners"))
        assert source.api_calls == 1
    gc.collect()


def test_password_flow_logs_in_then_queries(sandbox: SandboxServer, store: Engine,
                                            login_session: requests.Session) -> None:
    env = {"SALESFORCE_USERNAME": "ops@example.com", "SALESFORCE_PASSWORD": SECRET,
           "SALESFORCE_SECURITY_TOKEN": "tok"}
    source = SalesforceSource.from_env(env, session=login_session)
    assert source.api_calls == 1  # the SOAP login
    assert source.client.session_id == sandbox.token
    assert source.extract(store, "users").records > 0 and source.api_calls == 2


def test_client_credentials_flow(sandbox: SandboxServer, store: Engine,
                                 login_session: requests.Session) -> None:
    env = {"SALESFORCE_CLIENT_ID": "app", "SALESFORCE_CLIENT_SECRET": SECRET,
           "SALESFORCE_DOMAIN": "okr-sandbox.my"}
    source = SalesforceSource.from_env(env, session=login_session)
    assert source.api_calls == 1 and source.client.session_id == sandbox.token
    assert source.extract(store, "users").records > 0


def test_a_rejected_token_is_a_clear_error_without_the_token(sandbox: SandboxServer, store: Engine) -> None:
    env = {**sandbox.connection_env(), "SALESFORCE_ACCESS_TOKEN": SECRET}
    with SalesforceSource.from_env(env) as source, pytest.raises(ConnectorError) as caught:
        source.extract(store, "users")
    message = str(caught.value)
    assert message.startswith("Salesforce rejected the session (INVALID_SESSION_ID) during the query of User")
    assert "SALESFORCE_ACCESS_TOKEN" in message and "SALESFORCE_REFRESH_TOKEN" in message
    shown = "".join(traceback.format_exception(caught.value))  # what a traceback would print
    assert SECRET not in shown and "SalesforceExpiredSession" not in shown
    del caught
    gc.collect()


def test_a_failed_login_is_a_clear_error_without_secrets(sandbox: SandboxServer) -> None:
    """The login host answers, but not as a Salesforce login endpoint (here: the HubSpot face)."""
    env = {"SALESFORCE_USERNAME": "ops@example.com", "SALESFORCE_PASSWORD": SECRET,
           "SALESFORCE_SECURITY_TOKEN": "tok-" + SECRET}
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(sandbox.ca_path)
        session.mount("https://login.salesforce.com", ForwardTo(sandbox.hubspot_url))
        with pytest.raises(ConnectorError) as caught:
            SalesforceSource.from_env(env, session=session)
    message = str(caught.value)
    assert message.startswith("Salesforce login failed (") and SECRET not in message
    del caught
    gc.collect()
