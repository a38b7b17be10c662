"""The sandbox's HubSpot rate limits (off by default) on a fake clock."""

from __future__ import annotations

from connectors.sandbox.hubspot_limits import HubSpotRateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_ten_secondly_window_slides_and_answers_hubspots_429() -> None:
    clock = Clock()
    limits = HubSpotRateLimits(per_interval=3, interval_ms=2000, search_per_second=None, clock=clock)
    for remaining in (2, 1, 0):
        refused, headers = limits.check("GET", "/crm/v3/owners")
        assert refused is None and headers["X-HubSpot-RateLimit-Remaining"] == str(remaining)
    clock.now += 0.5
    refused, headers = limits.check("GET", "/crm/v3/owners")
    assert refused is not None
    status, body = refused
    assert status == 429 and body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert headers["Retry-After"] == "2" and headers["X-HubSpot-RateLimit-Max"] == "3"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "2000"
    clock.now += 1.5  # the first three leave the window
    assert limits.check("GET", "/crm/v3/owners")[0] is None
    assert limits.accepted == 4 and limits.rejected == {"TEN_SECONDLY_ROLLING": 1}


def test_search_has_its_own_per_second_limit() -> None:
    clock = Clock()
    limits = HubSpotRateLimits(per_interval=100, interval_ms=10_000, search_per_second=2, clock=clock)
    search = ("POST", "/crm/v3/objects/deals/search")
    assert limits.check(*search)[0] is None and limits.check(*search)[0] is None
    refused, _headers = limits.check(*search)
    assert refused is not None and refused[1]["policyName"] == "SECONDLY"
    assert limits.check("POST", "/crm/v4/associations/deals/companies/batch/read")[0] is None
    clock.now += 1.0
    assert limits.check(*search)[0] is None


def test_daily_quota() -> None:
    limits = HubSpotRateLimits(per_interval=100, daily=2, clock=Clock())
    assert limits.check("GET", "/a")[0] is None
    refused, headers = limits.check("GET", "/b")
    assert refused is None and headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    refused, headers = limits.check("GET", "/c")
    assert refused is not None and refused[1]["policyName"] == "DAILY" and "Retry-After" not in headers


def test_off_by_default(sandbox) -> None:  # type: ignore[no-untyped-def]
    assert sandbox.counters["hubspot"].app.state.rate_limits is None
