"""Campaigns: the full list diffed with the store, and the generic request method it is read through."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import ConnectorError
from connectors.hubspot import helpers, settings
from connectors.hubspot.campaigns import GenericRequests, campaign_options, list_campaigns, store_campaigns
from connectors.incremental import load_cursor
from connectors.store import Campaign, SyncState, make_engine
from tests.stores import store_url

OWNER = "70000002"
UTC_ZONE = ZoneInfo("UTC")


def campaign(number: int, updated: str = "2026-03-05T10:00:00.000Z", status: str = "planned",
             **extra: str) -> dict[str, Any]:
    return {"id": f"00000000-0000-5000-8000-{number:012d}", "createdAt": "2026-01-02T03:04:05.000Z",
            "updatedAt": updated, "properties": {"hs_name": f"Campaign {number}", "hs_campaign_status": status,
                                                 "hs_owner": OWNER, "hs_start_date": "2026-04-01", **extra}}


def pages(records: list[dict[str, Any]], size: int = 100) -> dict[str | None, dict[str, Any]]:
    """after -> page, as the API pages a list (`after` = the next offset, as a string)."""
    answer: dict[str | None, dict[str, Any]] = {}
    for start in range(0, max(len(records), 1), size):
        page: dict[str, Any] = {"results": records[start:start + size]}
        if start + size < len(records):
            page["paging"] = {"next": {"after": str(start + size), "link": "..."}}
        answer[str(start) if start else None] = page
    return answer


@pytest.fixture
def engine(tmp_path: Any) -> Engine:
    return make_engine(store_url(tmp_path))


def stored(engine: Engine) -> dict[str, Campaign]:
    with Session(engine) as session:
        return {row.source_id: row for row in session.exec(select(Campaign))}


def test_list_follows_after_until_the_last_page() -> None:
    records = [campaign(n) for n in range(250)]
    served = pages(records)
    asked: list[str | None] = []

    def fetch(after: str | None) -> dict[str, Any]:
        asked.append(after)
        return served[after]

    assert list_campaigns(fetch) == records
    assert asked == [None, "100", "200"]  # ceil(250 / 100) calls
    assert list_campaigns(lambda after: {"results": []}) == []


def test_a_looping_after_stops_the_list() -> None:
    with pytest.raises(ConnectorError, match="loops at after=7"):
        list_campaigns(lambda after: {"results": [campaign(1)], "paging": {"next": {"after": "7"}}})


def test_new_changed_unchanged_and_disappeared_campaigns(engine: Engine) -> None:
    first = [campaign(1), campaign(2, status="in_progress"), campaign(3, expected_revenue="100")]
    assert store_campaigns(engine, first, {}, UTC_ZONE) == 3
    rows = stored(engine)
    assert {row.name for row in rows.values()} == {"Campaign 1", "Campaign 2", "Campaign 3"}
    assert rows[first[1]["id"]].status == "In Progress" and rows[first[2]["id"]].expected_revenue == 100.0
    assert store_campaigns(engine, first, {}, UTC_ZONE) == 0  # same updatedAt: neither rewritten nor counted

    changed = campaign(2, updated="2026-03-06T00:00:00.000Z", status="completed")
    second = [first[0], changed, campaign(4)]  # 3 disappeared (deleted), 4 is new, 2 changed
    assert store_campaigns(engine, second, {}, UTC_ZONE) == 3
    rows = stored(engine)
    assert rows[first[2]["id"]].is_deleted and rows[first[2]["id"]].name == "Campaign 3"  # kept, flagged
    assert (rows[changed["id"]].status, rows[changed["id"]].is_active) == ("Completed", False)
    assert not any(rows[record["id"]].is_deleted for record in second)
    assert store_campaigns(engine, second, {}, UTC_ZONE) == 0  # a deleted one is marked once
    with Session(engine) as session:
        state = session.get(SyncState, ("hubspot", "campaigns"))
        assert state is not None and state.records_last_run == 0
        assert (helpers.naive_utc(state.watermark), state.last_id) == (datetime(2026, 3, 6), changed["id"])

    assert store_campaigns(engine, [*second, first[2]], {}, UTC_ZONE) == 1  # listed again: live again
    assert not stored(engine)[first[2]["id"]].is_deleted
    assert store_campaigns(engine, [], {}, UTC_ZONE) == 4  # an empty list: every campaign was deleted
    assert all(row.is_deleted for row in stored(engine).values())


def test_custom_values_and_a_reread_rewrites_unchanged_campaigns(engine: Engine) -> None:
    records = [campaign(1, channel="Paid"), campaign(2)]
    assert store_campaigns(engine, records, {}, UTC_ZONE) == 2
    assert all(row.custom == {} for row in stored(engine).values())
    assert store_campaigns(engine, records, {"channel": "channel"}, UTC_ZONE) == 0  # not a re-read: skipped
    assert store_campaigns(engine, records, {"channel": "channel"}, UTC_ZONE, reread=True) == 2
    assert {row.source_id[-1]: row.custom for row in stored(engine).values()} == {
        "1": {"channel": "Paid"}, "2": {"channel": None}}
    assert load_cursor(engine, "hubspot", "campaigns", "other-field-set").reread


def test_a_campaign_listed_twice_is_stored_once(engine: Engine) -> None:
    older, newer = campaign(1), campaign(1, updated="2026-03-07T00:00:00.000Z", status="paused")
    assert store_campaigns(engine, [older, newer], {}, UTC_ZONE) == 1
    row = stored(engine)[older["id"]]
    assert (row.status, helpers.naive_utc(row.modified_at)) == ("Paused", datetime(2026, 3, 7))


def test_options_ask_for_pages_of_100_with_every_property() -> None:
    options = campaign_options(("hs_name", "region"), None)
    assert options == {"method": "GET", "path": "/marketing/v3/campaigns",
                       "qs": {"limit": 100, "properties": "hs_name,region"}}
    assert campaign_options(("hs_name",), "abc")["qs"]["after"] == "abc"


# -- the generic request method over HTTP ---------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, str], Any]] = []
    seen: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append((self.path, dict(self.headers)))
        status, headers, body = self.answers.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.answers, _Handler.seen = [], []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_generic_requests_send_the_token_to_the_sources_host(server: str) -> None:
    rate = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "100",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    _Handler.answers = [(200, rate, {"results": [campaign(1)]})]
    generic = GenericRequests({"access_token": "pat-secret", "host": "ignored"}, server + "/")
    limits, counter = helpers.RateLimits("professional"), helpers.CallCounter()
    page = helpers.call_api(counter, generic.api_request, campaign_options(("hs_name", "hs_owner"), "5"),
                            limits=limits)
    assert page["results"][0]["properties"]["hs_name"] == "Campaign 1"
    path, headers = _Handler.seen[0]
    url = urlsplit(path)
    assert url.path == "/marketing/v3/campaigns"
    assert parse_qs(url.query) == {"limit": ["100"], "properties": ["hs_name,hs_owner"], "after": ["5"]}
    assert headers["Authorization"] == "Bearer pat-secret"
    assert counter.count == 1 and limits.overall.in_window() == 90  # the server's count of other clients
    generic.close()


def test_generic_request_errors_are_retried_or_raised_like_any_call(server: str) -> None:
    error = {"status": "error", "category": "RATE_LIMITS", "message": "slow down"}
    _Handler.answers = [(429, {"Retry-After": "0"}, error), (502, {}, {"message": "bad gateway"}),
                        (200, {}, {"results": []})]
    generic = GenericRequests({"access_token": "pat-x"}, server)
    counter, waits = helpers.CallCounter(), []
    options = campaign_options(("hs_name",), None)
    assert helpers.call_api(counter, generic.api_request, options, sleep=waits.append) == {"results": []}
    assert counter.count == 3 and waits[0] == 0.0

    _Handler.answers = [(403, {}, {"category": "MISSING_SCOPES", "message": "marketing.campaigns.read"})]
    with pytest.raises(Exception) as failure:
        helpers.call_api(counter, generic.api_request, options, sleep=waits.append)
    assert helpers.api_status(failure.value) == 403 and counter.count == 4  # no retry
    assert helpers.api_message(failure.value) == "HTTP 403 MISSING_SCOPES: marketing.campaigns.read"
    _Handler.answers = [(429, {}, {"policyName": "DAILY", "message": "daily"})]
    with pytest.raises(ConnectorError, match="daily API limit"):
        helpers.call_api(counter, generic.api_request, options, sleep=waits.append)
    generic.close()


def test_a_refused_connection_is_transient() -> None:
    generic = GenericRequests({"access_token": "pat-x"}, "http://127.0.0.1:9")  # discard port: nothing listens
    counter, waits = helpers.CallCounter(), []
    with pytest.raises(Exception) as failure:
        helpers.call_api(counter, generic.api_request, campaign_options(("hs_name",), None), sleep=waits.append)
    assert helpers.is_transient(failure.value) and counter.count == settings.RETRY_ATTEMPTS
    generic.close()

