"""FaultPlan middleware on both faces, observed through the real clients over HTTPS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import hubspot
import pytest
import requests
import urllib3
from hubspot.crm.deals.exceptions import ServiceException as DealsServiceException
from hubspot.crm.deals.exceptions import UnauthorizedException as DealsUnauthorized
from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest
from hubspot.crm.objects.exceptions import ApiException, UnauthorizedException
from hubspot.discovery.discovery_base import DiscoveryBase
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.hubspot_search import index_delay_ms
from connectors.sandbox.ids import hs_id
from connectors.sandbox.salesforce_api import CONCURRENT_LIMIT_MESSAGE, inject_faults
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox
from tests.connectors.sandbox.test_salesforce_api import _close_open_sessions, client, https_session

pytestmark = pytest.mark.integration
USERS = "SELECT Id FROM User"
_HUBSPOT_APIS: list[Any] = []


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "faults", seed=9, deals=60, owners=4, accounts=8,
                         calls_per_deal=1.0) as server:
        yield server
        _close_open_sessions()
        for api in _HUBSPOT_APIS:
            api.api_client.last_response = None
            api.api_client.rest_client.pool_manager.clear()


@pytest.fixture(autouse=True)
def clean(org: SandboxServer) -> Iterator[None]:
    yield
    org.set_faults("salesforce", None)
    org.set_faults("hubspot", None)


@pytest.fixture(scope="module")
def sf(org: SandboxServer) -> Salesforce:
    return client(org)


@pytest.fixture(scope="module")
def hs(org: SandboxServer) -> hubspot.Client:
    def factory(package: Any, api_name: str, config: dict[str, Any]) -> Any:
        _HUBSPOT_APIS.append(DiscoveryBase._default_api_factory(package, api_name, config))
        return _HUBSPOT_APIS[-1]

    return hubspot.Client.create(access_token=org.token, host=org.hubspot_url, api_factory=factory,
                                 ssl_ca_cert=str(org.ca_path))


def search(hs: hubspot.Client) -> Any:
    """A POST: urllib3 never retries it behind the test's back."""
    return hs.crm.objects.search_api.do_search("deals", PublicObjectSearchRequest(limit=1))


# -- Salesforce ------------------------------------------------------------------------------------
def test_salesforce_rate_fault_is_the_concurrency_403(org: SandboxServer, sf: Salesforce) -> None:
    org.set_faults("salesforce", FaultPlan(rate_limit=1.0))
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query(USERS)
    assert caught.value.status == 403
    assert caught.value.content == [{"message": CONCURRENT_LIMIT_MESSAGE, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


@pytest.mark.parametrize(("field", "status", "code"), [("server_error", 500, "UNKNOWN_EXCEPTION"),
                                                       ("unavailable", 503, "SERVER_UNAVAILABLE")])
def test_salesforce_server_errors(org: SandboxServer, sf: Salesforce, field: str, status: int, code: str) -> None:
    org.set_faults("salesforce", FaultPlan(**{field: 1.0}))
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query(USERS)
    assert caught.value.status == status and caught.value.content[0]["errorCode"] == code
    assert org.faults["salesforce"].injected == {field: 1}


def test_salesforce_dropped_connection_is_a_connection_error(org: SandboxServer, sf: Salesforce) -> None:
    org.set_faults("salesforce", FaultPlan(drop=1.0))
    calls = org.calls("salesforce")
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.query(USERS)
    assert org.calls("salesforce") == calls + 1  # one request, no response, no retry
    org.set_faults("salesforce", None)
    assert sf.query(USERS)["totalSize"] == 4  # the client reconnects


def test_salesforce_session_expires_after_n_calls_until_a_login(org: SandboxServer, sf: Salesforce) -> None:
    org.set_faults("salesforce", FaultPlan(expire_after=2))
    assert sf.query(USERS)["totalSize"] == 4
    assert sf.query(USERS)["totalSize"] == 4
    for _ in range(2):
        with pytest.raises(SalesforceExpiredSession) as caught:
            sf.query(USERS)
        assert caught.value.status == 401
        assert caught.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    with https_session(org.ca_path) as session:  # what a client's re-login does
        login = session.post(f"{org.salesforce_url}/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "app", "client_secret": "secret"})
    assert login.status_code == 200
    assert sf.query(USERS)["totalSize"] == 4


def test_latency_is_added(org: SandboxServer, sf: Salesforce) -> None:
    org.set_faults("salesforce", FaultPlan(latency_ms=300))
    started = time.monotonic()
    assert sf.query(USERS)["totalSize"] == 4
    assert time.monotonic() - started >= 0.3


def test_seeded_plans_are_deterministic_and_none_restores_service(org: SandboxServer, sf: Salesforce) -> None:
    plan = FaultPlan(rate_limit=0.2, server_error=0.2, unavailable=0.2, seed=42)

    def outcomes() -> list[int]:
        org.set_faults("salesforce", plan)
        seen = []
        for _ in range(25):
            try:
                sf.query(USERS)
                seen.append(200)
            except (SalesforceRefusedRequest, SalesforceGeneralError) as error:
                seen.append(error.status)
        return seen

    first = outcomes()
    assert outcomes() == first
    assert {200, 403, 500, 503} <= set(first)
    org.set_faults("salesforce", FaultPlan(rate_limit=0.2, server_error=0.2, unavailable=0.2, seed=43))
    other = []
    for _ in range(25):
        try:
            sf.query(USERS)
            other.append(200)
        except (SalesforceRefusedRequest, SalesforceGeneralError) as error:
            other.append(error.status)
    assert other != first
    org.set_faults("salesforce", None)
    assert all(sf.query(USERS)["totalSize"] == 4 for _ in range(10))


def test_plans_do_not_cross_faces_and_the_old_hook_still_works(org: SandboxServer, sf: Salesforce,
                                                               hs: hubspot.Client) -> None:
    org.set_faults("hubspot", FaultPlan(server_error=1.0))
    assert sf.query(USERS)["totalSize"] == 4
    inject_faults(org.state, status=503, count=1)
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query(USERS)
    assert caught.value.status == 503
    assert sf.query(USERS)["totalSize"] == 4
    with pytest.raises(ValueError):
        org.set_faults("pipedrive", None)


# -- HubSpot ---------------------------------------------------------------------------------------
def test_hubspot_429_carries_body_and_rate_limit_headers(org: SandboxServer, hs: hubspot.Client) -> None:
    org.set_faults("hubspot", FaultPlan(rate_limit=1.0, retry_after_s=3))
    with pytest.raises(ApiException) as caught:
        search(hs)
    error = caught.value
    assert error.status == 429
    body = json.loads(error.body)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    headers = {key.lower(): value for key, value in error.headers.items()}
    assert headers["retry-after"] == "3" and headers["x-hubspot-ratelimit-remaining"] == "0"
    for name in ("max", "interval-milliseconds", "daily", "daily-remaining"):
        assert f"x-hubspot-ratelimit-{name}" in headers


@pytest.mark.parametrize(("field", "status"), [("server_error", 500), ("unavailable", 503)])
def test_hubspot_server_errors(org: SandboxServer, hs: hubspot.Client, field: str, status: int) -> None:
    org.set_faults("hubspot", FaultPlan(**{field: 1.0}))
    with pytest.raises(DealsServiceException) as caught:
        hs.crm.deals.basic_api.get_page(limit=1)
    assert caught.value.status == status
    assert json.loads(caught.value.body)["status"] == "error"
    org.set_faults("hubspot", None)
    assert len(hs.crm.deals.basic_api.get_page(limit=1).results) == 1


def test_hubspot_session_expiry_and_drop(org: SandboxServer, hs: hubspot.Client) -> None:
    org.set_faults("hubspot", FaultPlan(expire_after=1))
    assert search(hs).total > 0
    with pytest.raises(DealsUnauthorized) as caught:
        hs.crm.deals.basic_api.get_page(limit=1)
    assert json.loads(caught.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    with pytest.raises(UnauthorizedException):
        search(hs)
    org.set_faults("hubspot", FaultPlan(drop=1.0))
    with pytest.raises(urllib3.exceptions.HTTPError):  # ProtocolError, or MaxRetryError after retries
        search(hs)
    assert org.faults["hubspot"].injected["drop"] >= 1
    org.set_faults("hubspot", None)
    assert search(hs).total > 0


def test_an_answer_cut_off_half_way_is_a_broken_body_on_both_faces(
        org: SandboxServer, sf: Salesforce, hs: hubspot.Client) -> None:
    org.set_faults("salesforce", FaultPlan(cut=1.0))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # status and headers came, then half a body
        sf.query(USERS)
    assert org.faults["salesforce"].injected == {"cut": 1}
    org.set_faults("hubspot", FaultPlan(cut=1.0))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        search(hs)
    assert org.faults["hubspot"].injected["cut"] >= 1
    org.set_faults("salesforce", None)
    org.set_faults("hubspot", None)
    assert sf.query(USERS)["totalSize"] == 4 and search(hs).total > 0


def test_hubspot_seeded_determinism(org: SandboxServer, hs: hubspot.Client) -> None:
    def outcomes() -> list[int]:
        org.set_faults("hubspot", FaultPlan(rate_limit=0.3, server_error=0.3, seed=7))
        seen = []
        for _ in range(20):
            try:
                search(hs)
                seen.append(200)
            except ApiException as error:
                seen.append(error.status)
        return seen

    first = outcomes()
    assert outcomes() == first and {200, 429, 500} <= set(first)


def test_fault_plans_are_validated() -> None:
    with pytest.raises(ValueError):
        FaultPlan(rate_limit=0.7, drop=0.5)
    with pytest.raises(ValueError):
        FaultPlan(latency_ms=-1)
    with pytest.raises(ValueError):
        FaultPlan(locator_expiry=1.5)
    with pytest.raises(ValueError):
        FaultPlan(index_lag_ms=-1)
    FaultPlan(rate_limit=1.0, locator_expiry=1.0)  # a separate draw: not part of the rates' sum


# -- Salesforce: query locator expiry --------------------------------------------------------------
TASKS = "SELECT Id FROM Task"  # 1,800+ in the shared org: several pages of 200
SMALL_PAGES = {"Sforce-Query-Options": "batchSize=200"}
EXPIRED = [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


@pytest.fixture
def shared_sf(sandbox: SandboxServer) -> Iterator[Salesforce]:
    """The session's shared org (this module's own is too small for a queryMore); its plan is undone."""
    try:
        yield client(sandbox)
    finally:
        sandbox.set_faults("salesforce", None)


def test_an_expired_query_locator_is_invalid_query_locator_and_stays_expired(
        sandbox: SandboxServer, shared_sf: Salesforce) -> None:
    sandbox.set_faults("salesforce", FaultPlan(locator_expiry=1.0))
    first = shared_sf.query(TASKS, headers=SMALL_PAGES)  # a query carries no locator: never expires
    assert not first["done"] and len(first["records"]) == 200
    with pytest.raises(SalesforceMalformedRequest) as caught:
        shared_sf.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=SMALL_PAGES)
    assert caught.value.status == 400 and caught.value.content == EXPIRED
    assert sandbox.faults["salesforce"].injected == {"locator_expiry": 1}
    sandbox.set_faults("salesforce", None)
    with pytest.raises(SalesforceMalformedRequest) as again:  # the cursor is gone, not just one answer
        shared_sf.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=SMALL_PAGES)
    assert again.value.content == EXPIRED
    fresh = shared_sf.query(TASKS, headers=SMALL_PAGES)
    assert shared_sf.query_more(fresh["nextRecordsUrl"], identifier_is_url=True, headers=SMALL_PAGES)["records"]


def test_locator_expiry_is_deterministic_given_the_seed(sandbox: SandboxServer, shared_sf: Salesforce) -> None:
    def outcomes(seed: int) -> list[str]:
        sandbox.set_faults("salesforce", FaultPlan(locator_expiry=0.4, seed=seed))
        seen = []
        for _ in range(12):
            page = shared_sf.query(TASKS, headers=SMALL_PAGES)
            try:
                shared_sf.query_more(page["nextRecordsUrl"], identifier_is_url=True, headers=SMALL_PAGES)
                seen.append("ok")
            except SalesforceMalformedRequest as error:
                assert error.content == EXPIRED
                seen.append("expired")
        assert sandbox.faults["salesforce"].injected == {"locator_expiry": seen.count("expired")}
        return seen

    first = outcomes(3)
    assert outcomes(3) == first and {"ok", "expired"} <= set(first)
    assert outcomes(4) != first


def test_an_expired_bulk_locator_finds_its_job_gone(org: SandboxServer) -> None:
    """Bulk 2.0 locators last as long as their job: expiry drops the job, and results answer its 404."""
    base = f"{org.salesforce_url}/services/data/v62.0/jobs/query"
    with https_session(org.ca_path) as session:
        session.headers["Authorization"] = f"Bearer {org.token}"
        job = session.post(base, json={"operation": "query", "query": "SELECT Id FROM Opportunity"}).json()["id"]
        states = [session.get(f"{base}/{job}").json()["state"] for _ in range(3)]
        assert states[-1] == "JobComplete", states
        org.set_faults("salesforce", FaultPlan(locator_expiry=1.0))
        first = session.get(f"{base}/{job}/results", params={"maxRecords": 20})  # no locator: served
        assert first.status_code == 200 and first.headers["Sforce-NumberOfRecords"] == "20"
        locator = first.headers["Sforce-Locator"]
        assert locator != "null" and org.faults["salesforce"].injected == {}
        expired = session.get(f"{base}/{job}/results", params={"maxRecords": 20, "locator": locator})
        assert expired.status_code == 404
        assert expired.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        assert org.faults["salesforce"].injected == {"locator_expiry": 1}
        org.set_faults("salesforce", None)
        assert session.get(f"{base}/{job}").status_code == 404  # the job itself is gone


# -- HubSpot: search index lag ---------------------------------------------------------------------
LAG_MS = 1000


def _search_since(hs: hubspot.Client, stamp: int) -> Any:
    request = PublicObjectSearchRequest(limit=100, filter_groups=[FilterGroup(filters=[
        Filter(property_name="hs_lastmodifieddate", operator="GTE", value=str(stamp))])])
    return hs.crm.objects.search_api.do_search("deals", request)


def test_index_lag_hides_fresh_records_from_search_only_and_for_their_own_delay(
        org: SandboxServer, hs: hubspot.Client) -> None:
    numbers = range(1, 31)
    stamp = org.state.next_modstamp_ms()
    with org.state.transaction() as conn:
        conn.executemany("UPDATE deals SET modified_ms = ? WHERE id = ?", [(stamp, number) for number in numbers])
    due = {hs_id("deals", number): stamp + index_delay_ms(number, stamp, LAG_MS) for number in numbers}
    assert all(stamp <= moment <= stamp + LAG_MS for moment in due.values())
    assert len(set(due.values())) > 20  # the delays are spread, not one block
    org.set_faults("hubspot", FaultPlan(index_lag_ms=LAG_MS))
    before = int(time.time() * 1000)
    page = _search_since(hs, stamp)
    after = int(time.time() * 1000)
    seen = {record.id for record in page.results}
    assert page.total == len(seen) < len(due)
    # Exactly the records whose delay has passed, at some moment during the request
    assert {record for record, moment in due.items() if moment <= before} <= seen
    assert not {record for record, moment in due.items() if moment > after} & seen
    assert org.faults["hubspot"].injected == {"index_lag": 1}
    hidden = sorted(set(due) - seen)[0]
    assert hs.crm.deals.basic_api.get_by_id(hidden).id == hidden  # reads and lists do not lag
    listed = hs.crm.deals.basic_api.get_page(limit=100)
    assert {record.id for record in listed.results} >= set(due)
    org.set_faults("hubspot", None)
    assert _search_since(hs, stamp).total == len(due)  # no plan, no lag
    time.sleep(max(0.0, (stamp + LAG_MS + 20) / 1000 - time.time()))
    org.set_faults("hubspot", FaultPlan(index_lag_ms=LAG_MS))
    assert _search_since(hs, stamp).total == len(due)  # every delay has passed
    assert org.faults["hubspot"].injected == {}
