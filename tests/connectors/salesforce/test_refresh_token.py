"""OAuth refresh-token credentials: login, one renewal per expired request, no secret in any message.

Real simple-salesforce over HTTPS against a private sandbox (its fault plans reach no other test).
The sandbox accepts any non-empty refresh token.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.salesforce import SalesforceSource
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox
from tests.connectors.salesforce.test_config import ForwardTo

SECRET = "client-secret-do-not-print"
REFRESH = "refresh-token-do-not-print"
ENV = {"SALESFORCE_CLIENT_ID": "okr-sync-app", "SALESFORCE_CLIENT_SECRET": SECRET,
       "SALESFORCE_REFRESH_TOKEN": REFRESH}
DEALS = 600
PAGE = 200


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-refresh",
                         seed=9, deals=DEALS, owners=4, accounts=10, calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def login_session(org: SandboxServer) -> Iterator[requests.Session]:
    org.set_faults("salesforce", None)
    session = requests.Session()
    session.trust_env = False
    session.verify = str(org.ca_path)
    session.mount("https://login.salesforce.com", ForwardTo(org.salesforce_url))
    yield session
    org.set_faults("salesforce", None)
    session.close()
    gc.collect()


def connect(session: requests.Session) -> SalesforceSource:
    source = SalesforceSource.from_env(ENV, session=session)
    source.query_batch_size = PAGE
    return source


def shown(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_refresh_token_login_then_queries(org: SandboxServer, store: Engine,
                                          login_session: requests.Session) -> None:
    source = connect(login_session)
    assert source.api_calls == 1  # the token call
    assert source.client.session_id == org.token
    assert source.extract(store, "users").records == 4 and source.api_calls == 2
    assert SECRET not in repr(source._refresh) and REFRESH not in repr(source._refresh)


def test_a_session_expired_mid_extract_is_refreshed_once_and_the_extract_completes(
        org: SandboxServer, store: Engine, login_session: requests.Session) -> None:
    source = connect(login_session)
    org.set_faults("salesforce", FaultPlan(expire_after=2))  # pages 1 and 2 pass, page 3 meets a 401
    result = source.extract(store, "opportunities")
    assert org.faults["salesforce"].injected == {"expired": 1}
    assert result.records == DEALS
    assert result.api_calls == 5  # 3 pages + the 401 + the token call


def test_a_session_still_rejected_after_the_refresh_is_a_clear_error(
        org: SandboxServer, store: Engine, login_session: requests.Session) -> None:
    source = connect(login_session)
    org.set_faults("salesforce", FaultPlan(expire_after=0))  # every data call is refused
    with pytest.raises(ConnectorError) as caught:
        source.extract(store, "users")
    message, text = str(caught.value), shown(caught.value)
    del caught
    assert org.faults["salesforce"].injected == {"expired": 2}  # renewed once, not in a loop
    assert message.startswith("Salesforce rejected the session (INVALID_SESSION_ID) during the query of User")
    for secret in (SECRET, REFRESH, org.token):
        assert secret not in text


def test_a_rejected_refresh_is_a_login_error_without_secrets(org: SandboxServer) -> None:
    """The login host answers, but not as a Salesforce token endpoint (here: the HubSpot face)."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(org.ca_path)
        session.mount("https://login.salesforce.com", ForwardTo(org.hubspot_url))
        with pytest.raises(ConnectorError) as caught:
            SalesforceSource.from_env(ENV, session=session)
    message, text = str(caught.value), shown(caught.value)
    del caught
    gc.collect()
    assert message.startswith("Salesforce login failed (") and "SALESFORCE_REFRESH_TOKEN" in message
    assert SECRET not in text and REFRESH not in text


def test_the_sandbox_token_endpoint_validates_the_refresh_grant(org: SandboxServer) -> None:
    url = f"{org.salesforce_url}/services/oauth2/token"
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(org.ca_path)
        missing = session.post(url, data={"grant_type": "refresh_token", "client_id": "app", "refresh_token": ""})
        granted = session.post(url, data={"grant_type": "refresh_token", "client_id": "app",
                                          "client_secret": "s", "refresh_token": "anything"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    assert granted.status_code == 200 and granted.json()["access_token"] == org.token
