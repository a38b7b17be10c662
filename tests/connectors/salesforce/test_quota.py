"""The daily API allocation guard: Sforce-Limit-Info read from every response, a clean stop near the end.

Real simple-salesforce over HTTPS against a private sandbox whose reported usage is set per test.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.incremental import load_cursor
from connectors.salesforce import SalesforceSource
from connectors.salesforce.helpers import min_quota_share_from_env, parse_limit_info
from connectors.salesforce.settings import MIN_QUOTA_SHARE, MIN_QUOTA_SHARE_ENV
from connectors.sandbox.salesforce_api import set_api_usage
from connectors.sandbox.server import SandboxServer
from connectors.store import Deal
from tests.conftest import private_sandbox

DEALS = 600
PAGE = 200  # three pages of opportunities


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-quota",
                         seed=5, deals=DEALS, owners=4, accounts=10, calls_per_deal=1.0) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_usage(org: SandboxServer) -> Iterator[None]:
    set_api_usage(org.state, None)
    yield
    set_api_usage(org.state, None)


def connect(org: SandboxServer, **env: str) -> SalesforceSource:
    source = SalesforceSource.from_env({**org.connection_env(), **env})
    source.query_batch_size = PAGE
    return source


def deals(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Deal)).one()


def test_usage_near_the_limit_stops_after_the_first_page_with_a_clear_message(
        org: SandboxServer, store: Engine) -> None:
    set_api_usage(org.state, used=4_990, maximum=5_000)
    org.reset_calls()
    with connect(org) as source, pytest.raises(ConnectorError) as caught:
        source.extract(store, "opportunities")
    message = str(caught.value)
    del caught
    gc.collect()
    assert message.startswith("Salesforce query of Opportunity stopped before its next request: only 9 of "
                              "the org's 5000 daily API requests are left (0.2%), below the 5% reserve")
    assert MIN_QUOTA_SHARE_ENV in message
    assert "Everything stored so far is kept: the next run resumes from the last committed page" in message
    assert org.token not in message
    assert org.calls("salesforce") == 1  # no call after the one that reported the usage
    assert deals(store) == PAGE and load_cursor(store, "salesforce", "opportunities").last_id
    # Once the allocation has room again, the next run carries on after the committed page
    set_api_usage(org.state, None)
    with connect(org) as source:
        result = source.extract(store, "opportunities")
    gc.collect()
    assert deals(store) == DEALS and result.records == DEALS - PAGE


def test_usage_above_the_reserve_proceeds(org: SandboxServer, store: Engine) -> None:
    set_api_usage(org.state, used=4_000, maximum=5_000)
    with connect(org) as source:
        result = source.extract(store, "opportunities")
        assert (source._quota.used, source._quota.maximum) == (4_003, 5_000)
        assert source.client.limits()["DailyApiRequests"] == {"Max": 5_000, "Remaining": 996}
    gc.collect()
    assert result.records == DEALS and result.api_calls == DEALS // PAGE


def test_the_reserve_comes_from_the_environment(org: SandboxServer, store: Engine) -> None:
    set_api_usage(org.state, used=2_000, maximum=5_000)  # 60% left after the first call
    with connect(org, **{MIN_QUOTA_SHARE_ENV: "0.65"}) as source, pytest.raises(ConnectorError) as caught:
        source.extract(store, "opportunities")
    assert "below the 65% reserve" in str(caught.value)
    del caught
    with connect(org, **{MIN_QUOTA_SHARE_ENV: "0"}) as source:  # 0: no reserve at all
        assert source.extract(store, "opportunities").records == DEALS - PAGE
    gc.collect()


def test_the_first_request_goes_out_even_when_the_usage_is_unknown(org: SandboxServer, store: Engine) -> None:
    set_api_usage(org.state, used=5_000, maximum=5_000)  # the call itself is refused by the org
    with connect(org) as source, pytest.raises(ConnectorError) as caught:
        source.extract(store, "users")
    assert "daily API request quota for this org is used up" in str(caught.value)
    del caught
    gc.collect()


@pytest.mark.parametrize("text, expected", [("", MIN_QUOTA_SHARE), ("  ", MIN_QUOTA_SHARE), ("0", 0.0),
                                            ("0.2", 0.2), (" 0.999 ", 0.999)])
def test_min_quota_share_from_env(text: str, expected: float) -> None:
    assert min_quota_share_from_env({MIN_QUOTA_SHARE_ENV: text}, MIN_QUOTA_SHARE_ENV, MIN_QUOTA_SHARE) == expected
    assert min_quota_share_from_env({}, MIN_QUOTA_SHARE_ENV, MIN_QUOTA_SHARE) == MIN_QUOTA_SHARE


@pytest.mark.parametrize("text", ["1", "1.5", "-0.01", "5%", "nan", "inf", "abc"])
def test_a_bad_min_quota_share_is_a_config_error_naming_the_variable(text: str) -> None:
    with pytest.raises(ConnectorConfigError) as caught:  # checked before any credential or login
        SalesforceSource.from_env({MIN_QUOTA_SHARE_ENV: text})
    assert MIN_QUOTA_SHARE_ENV in str(caught.value) and repr(text) in str(caught.value)


def test_limit_info_parsing() -> None:
    assert parse_limit_info("api-usage=25/5000") == (25, 5000)
    assert parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=sample)") == (25, 5000)
    assert parse_limit_info(None) is None and parse_limit_info("garbage") is None
