"""Client-side rate limits of the HubSpot connector: tiers, the daily 429, and a sandbox enforcing limits."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hubspot.crm.objects import ApiException
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.hubspot import HubSpotSource, helpers, settings
from connectors.sandbox.hubspot_limits import HubSpotRateLimits
from connectors.sandbox.server import SandboxServer
from connectors.store import Activity, Deal
from connectors.tls import CA_BUNDLE_ENV
from tests.conftest import private_sandbox


def daily_429() -> ApiException:
    error = ApiException(status=429, reason="Too Many Requests")
    error.body = json.dumps({"status": "error", "message": "You have reached your daily limit.",
                             "errorType": "RATE_LIMIT", "policyName": "DAILY"})
    return error


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "per_window"), [
    (None, 171), ("", 171), ("free", 90), ("Starter", 90), ("professional", 171), (" enterprise ", 171),
    ("increased", 225)])
def test_tier_from_env_sets_the_ten_second_limit(value: str | None, per_window: int) -> None:
    env = {settings.TOKEN_ENV: "pat-x"} | ({settings.TIER_ENV: value} if value is not None else {})
    source = HubSpotSource.from_env(env)
    assert source.rate_limits.overall.max_calls == per_window
    assert source.rate_limits.overall.window == 10.0
    search_window = source.rate_limits.search.limiters[1]
    assert (search_window.max_calls, search_window.window) == (5, 1.25)  # 4 a second, a margin in time


@pytest.mark.parametrize("value", ["gold", "190", "pro"])
def test_an_unknown_tier_names_the_variable(value: str) -> None:
    with pytest.raises(ConnectorConfigError, match=settings.TIER_ENV) as failure:
        HubSpotSource.from_env({settings.TOKEN_ENV: "pat-x", settings.TIER_ENV: value})
    assert "professional" in str(failure.value)


def test_only_searches_take_a_search_slot() -> None:
    limits = helpers.RateLimits("free")

    def do_search() -> None: ...

    def get_page() -> None: ...

    limits.acquire(do_search)
    limits.acquire(get_page)
    assert limits.overall.in_window() == 2 and limits.search.limiters[1].in_window() == 1


def test_remaining_header_of_the_same_window_counts_other_clients() -> None:
    limits = helpers.RateLimits("professional")
    headers = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "40",
               "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    response = SimpleNamespace(getheader=lambda name, default=None: headers.get(name, default))

    class Bound:  # a generated API method: bound to an API object holding its ApiClient
        __self__ = SimpleNamespace(api_client=SimpleNamespace(last_response=response))

    limits.observe(Bound())
    assert limits.overall.in_window() == 150
    headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "1000"  # another policy's window: ignored
    headers["X-HubSpot-RateLimit-Remaining"] = "0"
    limits.observe(Bound())
    assert limits.overall.in_window() == 150


# -- the daily limit ------------------------------------------------------------------------------
def test_daily_429_stops_at_once_with_a_clear_message() -> None:
    calls = helpers.CallCounter()
    waits: list[float] = []

    def fail(**_kwargs: Any) -> None:
        raise daily_429()

    with pytest.raises(ConnectorError, match="daily API limit is used up") as failure:
        helpers.call_api(calls, fail, sleep=waits.append)
    assert "resume tomorrow" in str(failure.value)
    assert calls.count == 1 and not waits  # no retry
    assert not helpers.is_transient(daily_429())
    ten_secondly = ApiException(status=429)
    ten_secondly.body = json.dumps({"policyName": "TEN_SECONDLY_ROLLING"})
    assert helpers.is_transient(ten_secondly)


# -- against a sandbox enforcing HubSpot's limits -------------------------------------------------
SANDBOX_MAX, SANDBOX_INTERVAL_MS, SANDBOX_SEARCHES = 20, 2000, 5


@pytest.fixture(scope="module")
def limited_org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "hs-limits", seed=23, deals=300, owners=6, accounts=40,
                         calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def enforced(limited_org: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotRateLimits]:
    """The sandbox enforces 20 requests per 2 s and 5 searches per second; the client's windows are
    scaled down to match (tier professional = 20 per 2 s) and search pages are small, so a full sync
    takes about 30 requests, a dozen of them searches, in a few seconds."""
    monkeypatch.setattr(settings, "RATE_WINDOW_SECONDS", SANDBOX_INTERVAL_MS / 1000)
    monkeypatch.setattr(settings, "TIER_LIMITS", {**settings.TIER_LIMITS, "professional": SANDBOX_MAX})
    monkeypatch.setattr(settings, "SEARCH_PAGE_SIZE", 50)
    app_state = limited_org.counters["hubspot"].app.state
    app_state.rate_limits = HubSpotRateLimits(per_interval=SANDBOX_MAX, interval_ms=SANDBOX_INTERVAL_MS,
                                              search_per_second=SANDBOX_SEARCHES)
    try:
        yield app_state.rate_limits
    finally:
        app_state.rate_limits = None


def full_sync(source: HubSpotSource, store: Engine) -> int:
    return sum(source.extract(store, stream).records for stream in HubSpotSource.STREAMS)


class Unlimited(helpers.RateLimits):
    def acquire(self, fn: Any) -> float:
        return 0.0

    def observe(self, fn: Any) -> None:
        return None


@pytest.mark.integration
def test_full_sync_stays_under_the_enforced_limits(limited_org: SandboxServer, store: Engine,
                                                   enforced: HubSpotRateLimits) -> None:
    limited_org.counters["hubspot"].reset()
    with HubSpotSource.from_env(limited_org.connection_env()) as source:
        assert source.rate_limits.overall.max_calls == 18  # 20 minus the margin
        records = full_sync(source, store)
    assert sum(enforced.rejected.values()) == 0, enforced.rejected
    assert enforced.accepted == source.api_calls == limited_org.calls("hubspot")
    assert source.api_calls > SANDBOX_MAX  # more than one window's worth: the limiter had to pace
    with Session(store) as session:
        deals = session.exec(select(func.count()).select_from(Deal).where(Deal.is_deleted == False)).one()  # noqa: E712
        calls = session.exec(select(func.count()).select_from(Activity)
                             .where(Activity.is_deleted == False, Activity.kind == "call")).one()  # noqa: E712
    assert deals == limited_org.state.query("SELECT count(*) AS n FROM deals WHERE deleted = 0")[0]["n"]
    assert calls == limited_org.state.query("SELECT count(*) AS n FROM calls WHERE deleted = 0")[0]["n"]
    assert records >= deals + calls


@pytest.mark.integration
def test_without_the_client_limiter_the_sandbox_answers_429(limited_org: SandboxServer, store: Engine,
                                                             enforced: HubSpotRateLimits) -> None:
    """The check above can fail: the same sync, unpaced, runs into the sandbox's limits."""
    env = limited_org.connection_env()
    with HubSpotSource(env[settings.TOKEN_ENV], env[settings.HOST_ENV], env[CA_BUNDLE_ENV],
                       sleep=lambda _seconds: None, rate_limits=Unlimited()) as source, \
            contextlib.suppress(ConnectorError):  # retries without waiting may run out: the 429s count
        full_sync(source, store)
    assert sum(enforced.rejected.values()) > 0


@pytest.mark.integration
def test_sandbox_daily_limit_stops_the_sync(limited_org: SandboxServer, store: Engine,
                                            enforced: HubSpotRateLimits) -> None:
    enforced.daily = enforced.accepted + 3
    with HubSpotSource.from_env(limited_org.connection_env()) as source, \
            pytest.raises(ConnectorError, match="daily API limit is used up.*resume tomorrow"):
        full_sync(source, store)
    assert enforced.rejected["DAILY"] == 1 and source.api_calls == 4
