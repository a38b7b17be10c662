"""The HubSpot face's Leads object (0-136) and marketing campaigns, driven by hubspot-api-client over HTTPS.

Paging, archived lists, batch reads and associations of leads are also covered with the other types
in test_hubspot_objects; here: lead values, pipeline, properties and search, and the campaigns list
through the client's generic `Client.api_request` (requests underneath: it trusts REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import hubspot
import pytest
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest

from connectors.sandbox.hubspot_campaigns import CAMPAIGN_STATUS_VALUES, campaign_guid
from connectors.sandbox.hubspot_catalog import iso_from_ms
from connectors.sandbox.ids import HS_OFFSET, hs_id
from connectors.sandbox.server import SandboxServer
from tests.conftest import TEST_ORG, private_sandbox

pytestmark = pytest.mark.integration
BASE = 800_000
BASE_MS = int((TEST_ORG.anchor + timedelta(days=5)).timestamp() * 1000)
LEADS = [  # first, last, status, account_id, converted_ms, deleted
    ("Ava", "Adams", "Closed - Converted", 3, BASE_MS - 5000, 0),
    ("Ben", "Berg", "Open - Not Contacted", None, None, 0),
    ("Chloe", "Costa", "Working - Contacted", None, None, 0),
    ("Dev", "Dubois", "Closed - Not Converted", None, None, 0),
    ("Elena", "Eriksen", "Closed - Converted", 4, BASE_MS - 4000, 1),
]
CAMPAIGN_PROPERTIES = ["hs_name", "hs_start_date", "hs_end_date", "hs_campaign_status", "hs_budget_items_sum_amount",
                       "hs_spend_items_sum_amount", "hs_owner", "campaign_type", "expected_revenue"]


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "hs-leads", seed=29, deals=20, owners=4, accounts=8,
                         calls_per_deal=0.5, campaigns=7) as server:
        with server.state.transaction() as conn:
            conn.executemany(
                "INSERT INTO leads (id, first_name, last_name, email, company, country, owner_id, lead_source,"
                " status, lifecycle, account_id, converted_ms, created_ms, modified_ms, deleted)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'Web', ?, 'lead', ?, ?, ?, ?, ?)",
                [(BASE + 1 + index, first, last, f"{first.lower()}@example.org", f"{last} AG", "Austria",
                  1 + index % 3, status, account, converted, BASE_MS - 86_400_000, BASE_MS + index * 1000, deleted)
                 for index, (first, last, status, account, converted, deleted) in enumerate(LEADS)])
            conn.execute("UPDATE campaigns SET deleted = 1, modified_ms = ? WHERE id = 3", (BASE_MS,))
        yield server


@pytest.fixture(scope="module")
def client(org: SandboxServer) -> Iterator[hubspot.Client]:
    # `host` points the generated APIs at the sandbox; `base_url` points Client.api_request at it
    yield hubspot.Client.create(access_token=org.token, host=org.hubspot_url, base_url=org.hubspot_url,
                                ssl_ca_cert=str(org.ca_path), client_side_validation=True)


@pytest.fixture
def trusted(org: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """api_request sends with `requests`, which verifies TLS against REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(org.ca_path))


def lead_id(number: int) -> str:
    return hs_id("leads", BASE + number)


def campaigns(client: hubspot.Client, **qs: Any) -> Any:
    response = client.api_request({"method": "GET", "path": "/marketing/v3/campaigns", "qs": qs})
    return response.status_code, response.json()


# -- leads ----------------------------------------------------------------------------------------
def test_lead_ids_and_values(client: hubspot.Client, org: SandboxServer) -> None:
    assert HS_OFFSET["leads"] == 60_000_000 and lead_id(1) == str(60_000_000 + BASE + 1)
    names = ["hs_lead_name", "hs_pipeline", "hs_pipeline_stage", "hs_date_entered_qualified_stage", "lead_source",
             "company", "country", "email", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate"]
    ava = client.crm.objects.basic_api.get_by_id("leads", lead_id(1), properties=names)
    assert ava.properties == {
        "hs_lead_name": "Ava Adams", "hs_pipeline": "lead-pipeline-id", "hs_pipeline_stage": "qualified-stage-id",
        "hs_date_entered_qualified_stage": iso_from_ms(BASE_MS - 5000), "lead_source": "Web",
        "company": "Adams AG", "country": "Austria", "email": "ava@example.org",
        "hubspot_owner_id": hs_id("owners", 1), "hs_createdate": iso_from_ms(BASE_MS - 86_400_000),
        "hs_lastmodifieddate": iso_from_ms(BASE_MS)}
    assert ava.created_at.timestamp() * 1000 == BASE_MS - 86_400_000 and not ava.archived
    stages = {}
    for number in (2, 3, 4):
        lead = client.crm.objects.basic_api.get_by_id("0-136", lead_id(number), properties=names)
        stages[number] = lead.properties["hs_pipeline_stage"]
        assert lead.properties["hs_date_entered_qualified_stage"] is None
    assert stages == {2: "new-stage-id", 3: "attempting-stage-id", 4: "unqualified-stage-id"}
    default = client.crm.objects.basic_api.get_by_id("leads", lead_id(2))
    assert set(default.properties) == {"hs_createdate", "hs_lastmodifieddate", "hs_object_id"}


def test_lead_search_filters_on_stage_and_modified_date(client: hubspot.Client) -> None:
    def flt(name: str, operator: str, value: Any) -> Filter:
        return Filter(property_name=name, operator=operator, value=str(value))

    qualified = client.crm.objects.search_api.do_search("leads", PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[flt("hs_pipeline_stage", "EQ", "qualified-stage-id"),
                                            flt("hs_object_id", "GT", hs_id("leads", BASE))])],
        properties=["hs_lead_name"]))
    assert [lead.properties["hs_lead_name"] for lead in qualified.results] == ["Ava Adams"]  # Elena is archived
    recent = client.crm.objects.search_api.do_search("0-136", PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[flt("hs_lastmodifieddate", "GTE", BASE_MS + 1000)])],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}], limit=200))
    assert [lead.id for lead in recent.results] == [lead_id(4), lead_id(3), lead_id(2)]
    assert recent.results[0].properties["hs_lastmodifieddate"] == iso_from_ms(BASE_MS + 3000)


def test_lead_pipeline_marks_the_qualified_stage(client: hubspot.Client) -> None:
    pipelines = client.crm.pipelines.pipelines_api.get_all("leads").results
    assert [(pipeline.id, pipeline.label) for pipeline in pipelines] == [("lead-pipeline-id", "Lead pipeline")]
    assert [(stage.id, stage.label, stage.display_order, stage.metadata) for stage in pipelines[0].stages] == [
        ("new-stage-id", "New", 0, {"leadState": "OPEN"}),
        ("attempting-stage-id", "Attempting", 1, {"leadState": "OPEN"}),
        ("qualified-stage-id", "Qualified", 2, {"leadState": "CLOSED", "isQualified": "true"}),
        ("unqualified-stage-id", "Disqualified", 3, {"leadState": "CLOSED"})]
    one = client.crm.pipelines.pipelines_api.get_by_id("0-136", "lead-pipeline-id")
    assert one.stages[2].metadata["isQualified"] == "true"


def test_lead_properties_api(client: hubspot.Client) -> None:
    props = {prop.name: prop for prop in client.crm.properties.core_api.get_all("leads").results}
    assert set(props) == {"hs_object_id", "hs_createdate", "hs_lastmodifieddate", "hs_lead_name", "hs_pipeline",
                          "hs_pipeline_stage", "hs_date_entered_qualified_stage", "lead_source", "company",
                          "country", "email", "hubspot_owner_id"}
    assert {name for name, prop in props.items() if not prop.hubspot_defined} == {
        "lead_source", "company", "country", "email"}
    assert {option.value: option.label for option in props["hs_pipeline_stage"].options} == {
        "new-stage-id": "New", "attempting-stage-id": "Attempting", "qualified-stage-id": "Qualified",
        "unqualified-stage-id": "Disqualified"}
    assert props["hs_date_entered_qualified_stage"].type == "datetime"
    assert props["lead_source"].type == "enumeration" and {o.label for o in props["lead_source"].options} >= {"Web"}


def test_every_generated_lead_is_a_lead_and_a_contact(client: hubspot.Client, org: SandboxServer) -> None:
    live = org.state.query("SELECT id FROM leads WHERE deleted = 0 ORDER BY id")
    listed, after = [], None
    while True:
        page = client.crm.objects.basic_api.get_page("leads", limit=100, after=after)
        listed += [record.id for record in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert listed == [hs_id("leads", row["id"]) for row in live]
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=record_id) for record_id in listed[:50]])
    links = client.crm.associations.v4.batch_api.get_page("leads", "contacts", request)
    assert {result._from.id: result.to[0].to_object_id for result in links.results} == {
        hs_id("leads", row["id"]): hs_id("contacts", row["id"]) for row in live[:50]}


# -- marketing campaigns -------------------------------------------------------------------------
def test_campaigns_page_with_after_and_skip_deleted(client: hubspot.Client, org: SandboxServer,
                                                    trusted: None) -> None:
    live = org.state.query("SELECT * FROM campaigns WHERE deleted = 0 ORDER BY id")
    seen, after, pages = [], None, 0
    while True:
        qs = {"limit": 2, "properties": ",".join(CAMPAIGN_PROPERTIES), **({"after": after} if after else {})}
        status, page = campaigns(client, **qs)
        assert status == 200 and page["total"] == len(live) == 6 and len(page["results"]) <= 2
        seen += page["results"]
        pages += 1
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert pages == 3 and [item["id"] for item in seen] == [campaign_guid(row["id"]) for row in live]
    assert campaign_guid(3) not in {item["id"] for item in seen}  # deleted: simply not listed
    for item, row in zip(seen, live, strict=True):
        assert item["properties"] == {
            "hs_name": row["name"], "hs_start_date": row["start_date"], "hs_end_date": row["end_date"],
            "hs_campaign_status": CAMPAIGN_STATUS_VALUES[row["status"]],
            "hs_budget_items_sum_amount": repr(row["budgeted_cost"]),
            "hs_spend_items_sum_amount": repr(row["actual_cost"]), "hs_owner": hs_id("owners", row["owner_id"]),
            "campaign_type": row["campaign_type"], "expected_revenue": repr(row["expected_revenue"])}
        assert item["createdAt"] == iso_from_ms(row["created_ms"])
        assert item["updatedAt"] == iso_from_ms(row["modified_ms"])
        assert item["businessUnits"] == [{"id": 0}]


def test_campaign_ids_are_stable_guids(client: hubspot.Client, trusted: None) -> None:
    first = [item["id"] for item in campaigns(client, limit=100)[1]["results"]]
    assert first == [item["id"] for item in campaigns(client, limit=100)[1]["results"]]
    assert all(str(uuid.UUID(guid)) == guid for guid in first)
    assert first[0] == str(uuid.uuid5(uuid.NAMESPACE_URL, "campaign-1"))
    response = client.api_request({"method": "GET", "path": f"/marketing/v3/campaigns/{first[0]}",
                                   "qs": {"properties": "hs_name"}})
    assert response.status_code == 200 and response.json()["id"] == first[0]
    assert set(response.json()["properties"]) == {"hs_name"}
    gone = client.api_request({"method": "GET", "path": f"/marketing/v3/campaigns/{campaign_guid(3)}"})
    assert gone.status_code == 404 and gone.json()["category"] == "OBJECT_NOT_FOUND"


def test_campaign_properties_sort_and_limits(client: hubspot.Client, org: SandboxServer, trusted: None) -> None:
    _, bare = campaigns(client)
    assert all(item["properties"] == {} for item in bare["results"])  # no properties asked: an empty map
    _, some = campaigns(client, properties=["hs_name", "hs_owner", "no_such_property"])  # repeated form
    assert all(set(item["properties"]) == {"hs_name", "hs_owner"} for item in some["results"])
    _, by_name = campaigns(client, sort="-hs_name", properties="hs_name", limit=100)
    names = [item["properties"]["hs_name"] for item in by_name["results"]]
    assert names == sorted(names, reverse=True)
    for bad in ({"limit": 101}, {"limit": 0}, {"after": "not-a-cursor"}, {"sort": "nope"}):
        status, body = campaigns(client, **bad)
        assert status == 400 and body["category"] == "VALIDATION_ERROR"
    unauthorized = hubspot.Client.create(access_token="wrong", base_url=org.hubspot_url)
    assert unauthorized.api_request({"method": "GET", "path": "/marketing/v3/campaigns"}).status_code == 401


def test_a_deleted_campaign_disappears(client: hubspot.Client, org: SandboxServer, trusted: None) -> None:
    with org.state.transaction() as conn:
        conn.execute("INSERT INTO campaigns (id, name, campaign_type, status, start_date, end_date, budgeted_cost,"
                     " actual_cost, expected_revenue, owner_id, created_ms, modified_ms)"
                     " VALUES (?, 'Spring Webinar', 'Webinar', 'Aborted', '2026-12-01', '2026-12-02', 1000.0, 0.0,"
                     " 5000.0, NULL, ?, ?)", (BASE, BASE_MS, BASE_MS))
    listed = {item["id"]: item for item in campaigns(client, limit=100, properties="hs_campaign_status,hs_owner")[1][
        "results"]}
    assert listed[campaign_guid(BASE)]["properties"] == {"hs_campaign_status": "paused"}  # no owner: left out
    with org.state.transaction() as conn:
        conn.execute("UPDATE campaigns SET deleted = 1, modified_ms = ? WHERE id = ?", (BASE_MS + 1, BASE))
    assert campaign_guid(BASE) not in {item["id"] for item in campaigns(client, limit=100)[1]["results"]}
