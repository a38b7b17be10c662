"""The CLI checks credentials before the flow starts without spending a login on it (flows.sources)."""

from __future__ import annotations

import pytest

from connectors.errors import ConnectorConfigError
from flows.sources import check_credentials

# A login host nothing listens on: a check that tried to log in would fail with a connection error.
NOWHERE = {"SALESFORCE_DOMAIN": "127.0.0.1:9", "OKR_SYNC_HTTP_TIMEOUT_SECONDS": "1"}


@pytest.mark.parametrize("credentials", [
    {"SALESFORCE_USERNAME": "ops@example.com", "SALESFORCE_PASSWORD": "pw", "SALESFORCE_SECURITY_TOKEN": "tok"},
    {"SALESFORCE_CLIENT_ID": "app", "SALESFORCE_CLIENT_SECRET": "s", "SALESFORCE_REFRESH_TOKEN": "r"},
    {"SALESFORCE_CLIENT_ID": "app", "SALESFORCE_CLIENT_SECRET": "s"},
])
def test_complete_salesforce_credentials_pass_without_a_login(credentials: dict[str, str]) -> None:
    check_credentials("salesforce", NOWHERE | credentials)


@pytest.mark.parametrize(("env", "named"), [
    ({"SALESFORCE_USERNAME": "ops@example.com"}, "SALESFORCE_SECURITY_TOKEN"),
    ({"SALESFORCE_CLIENT_ID": "app", "SALESFORCE_CLIENT_SECRET": "s", "SALESFORCE_DOMAIN": "login"},
     "SALESFORCE_DOMAIN"),
    ({"SALESFORCE_CLIENT_ID": "app", "SALESFORCE_CLIENT_SECRET": "s", "SALESFORCE_REFRESH_TOKEN": "r",
      "OKR_SYNC_SF_BULK_THRESHOLD": "many"}, "OKR_SYNC_SF_BULK_THRESHOLD"),
    ({"HUBSPOT_HOST": "https://127.0.0.1:9"}, "HUBSPOT_ACCESS_TOKEN"),
])
def test_what_a_run_would_refuse_is_refused_by_the_check(env: dict[str, str], named: str) -> None:
    crm = "hubspot" if any(name.startswith("HUBSPOT") for name in env) else "salesforce"
    with pytest.raises(ConnectorConfigError, match=named):
        check_credentials(crm, env)


def test_complete_hubspot_credentials_pass_without_a_request() -> None:
    check_credentials("hubspot", {"HUBSPOT_ACCESS_TOKEN": "pat-na1-x", "HUBSPOT_HOST": "https://127.0.0.1:9"})
