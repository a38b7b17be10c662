"""The HubSpot face's standard objects beyond deals and calls, driven by hubspot-api-client over HTTPS.

The rows are inserted by hand into a private org, with ids above anything the generator makes and
modification times after the org's anchor, so the tests hold whether or not the generator fills
these tables too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import hubspot
import pytest
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    BatchResponsePublicAssociationMultiWithLabelWithErrors,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import (
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)
from hubspot.crm.objects.exceptions import ApiException
from hubspot.discovery.discovery_base import DiscoveryBase

from connectors.sandbox.generator import COUNTRIES
from connectors.sandbox.hubspot_api import SEARCH_CAP
from connectors.sandbox.hubspot_catalog import iso_from_ms
from connectors.sandbox.ids import HS_OFFSET, hs_id
from connectors.sandbox.server import SandboxServer
from tests.conftest import TEST_ORG, private_sandbox

pytestmark = pytest.mark.integration
BASE = 900_000  # hand-made rows get ids BASE + 1, BASE + 2, ...
BASE_MS = int((TEST_ORG.anchor + timedelta(days=10)).timestamp() * 1000)
REGION_OF_COUNTRY = {country: region for region, countries in COUNTRIES.items() for country in countries}
MODIFIED = {"line_items": "hs_lastmodifieddate", "emails": "hs_lastmodifieddate",
            "meetings": "hs_lastmodifieddate", "contacts": "lastmodifieddate", "tickets": "hs_lastmodifieddate",
            "leads": "hs_lastmodifieddate"}
TABLES = {"line_items": "line_items", "emails": "emails", "meetings": "meetings", "contacts": "leads",
          "tickets": "cases", "leads": "leads"}
LEADS = [  # first, last, status, lifecycle, account_id, converted_ms
    ("Ava", "Adams", "Closed - Converted", "customer", 3, BASE_MS - 5000),
    ("Ben", "Berg", "Open - Not Contacted", "lead", None, None),
    ("Chloe", "Costa", "Working - Contacted", "salesqualifiedlead", None, None),
    ("Dev", "Dubois", "Closed - Converted", "opportunity", 4, BASE_MS - 4000),
    ("Elena", "Eriksen", "Closed - Not Converted", "marketingqualifiedlead", None, None),
    ("Farid", "Fischer", "Closed - Converted", "customer", 5, BASE_MS - 3000),
]
CASES = [("New", "High", "Phone"), ("Working", "Medium", "Email"), ("Escalated", "Low", "Web"),
         ("Closed", "High", "Web"), ("Closed", "Low", "Phone")]
OUTCOMES = ("Scheduled", "Completed", "No show", "Canceled", "Rescheduled", "Completed")


def stamps(index: int) -> dict[str, int]:
    """Rows come in pairs sharing one modification time, so keyset paging meets ties."""
    return {"created_ms": BASE_MS - 86_400_000 + index, "modified_ms": BASE_MS + (index // 2) * 1000}


def insert(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                     [[row[column] for column in columns] for row in rows])


def seed_rows(state: Any) -> None:
    """Six rows per table (five cases); the last one of each table is deleted (archived)."""
    def last(index: int, count: int) -> int:
        return 1 if index == count - 1 else 0

    with state.transaction() as conn:
        insert(conn, "products", [
            {"id": BASE + number, "name": name, "family": family, "list_price": price, "is_active": 1,
             "created_ms": BASE_MS, "modified_ms": BASE_MS}
            for number, (name, family, price) in enumerate(
                [("Platform Pro", "Platform", 12000.0), ("Analytics Add-on", "Add-on", 2500.0),
                 ("Onboarding Services", "Services", 4000.0)], start=1)])
        insert(conn, "line_items", [
            {"id": BASE + 1 + index, "deal_id": 1 + index // 2, "product_id": BASE + 1 + index % 3,
             "quantity": float(1 + index), "unit_price": 19.99, **stamps(index), "deleted": last(index, 6)}
            for index in range(6)])
        insert(conn, "emails", [
            {"id": BASE + 1 + index, "owner_id": 1 + index % 3, "deal_id": 1 + index,
             "subject": f"Email {index}", "ts_ms": BASE_MS - 60_000 * index,
             "direction": ("Outbound", "Inbound")[index % 2], **stamps(index), "deleted": last(index, 6)}
            for index in range(6)])
        insert(conn, "meetings", [
            {"id": BASE + 1 + index, "owner_id": 1 + index % 3, "deal_id": 2 + index, "subject": f"Meeting {index}",
             "start_ms": BASE_MS - 3_600_000 * index, "end_ms": BASE_MS - 3_600_000 * index + 1_800_000,
             "outcome": OUTCOMES[index], **stamps(index), "deleted": last(index, 6)}
            for index in range(6)])
        insert(conn, "leads", [
            {"id": BASE + 1 + index, "first_name": first, "last_name": lastname,
             "email": f"{first.lower()}@example.org", "company": f"{lastname} GmbH", "country": "Germany",
             "owner_id": 1 + index % 3, "lead_source": "Web", "status": status, "lifecycle": lifecycle,
             "account_id": account, "converted_ms": converted, **stamps(index), "deleted": last(index, 6)}
            for index, (first, lastname, status, lifecycle, account, converted) in enumerate(LEADS)])
        insert(conn, "cases", [
            {"id": BASE + 1 + index, "account_id": 1 + index, "owner_id": 2, "subject": f"Case {index}",
             "status": status, "priority": priority, "origin": origin, "created_ms": BASE_MS - 86_400_000,
             "closed_ms": BASE_MS - 1000 if status == "Closed" else None,
             "modified_ms": BASE_MS + (index // 2) * 1000, "deleted": last(index, 5)}
            for index, (status, priority, origin) in enumerate(CASES)])


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "hs-objects", seed=23, deals=40, owners=4, accounts=10,
                         calls_per_deal=1.0) as server:
        seed_rows(server.state)
        yield server


@pytest.fixture(scope="module")
def client(org: SandboxServer) -> Iterator[hubspot.Client]:
    made: list[Any] = []

    def factory(package: Any, api_name: str, config: dict[str, Any]) -> Any:
        made.append(DiscoveryBase._default_api_factory(package, api_name, config))
        return made[-1]

    yield hubspot.Client.create(access_token=org.token, host=org.hubspot_url, api_factory=factory,
                                ssl_ca_cert=str(org.ca_path), client_side_validation=True)
    for api in made:
        api.api_client.last_response = None
        api.api_client.rest_client.pool_manager.clear()


def rows_of(org: SandboxServer, object_type: str, deleted: int = 0) -> list[Any]:
    return org.state.query(f"SELECT * FROM {TABLES[object_type]} WHERE id > ? AND deleted = ?"
                           " ORDER BY modified_ms, id", (BASE, deleted))


def search(client: hubspot.Client, object_type: str, **request: Any) -> Any:
    return client.crm.objects.search_api.do_search(object_type, PublicObjectSearchRequest(**request))


def flt(name: str, operator: str, value: Any = None, **extra: Any) -> Filter:
    return Filter(property_name=name, operator=operator, value=None if value is None else str(value), **extra)


def keyset_pages(client: hubspot.Client, object_type: str, page_size: int) -> list[Any]:
    """Every record modified from BASE_MS on, paged with (modified, id) filters as a connector does."""
    modified = MODIFIED[object_type]
    stamp, last_id, records = BASE_MS - 1, "0", []
    while True:
        page = search(client, object_type, limit=page_size, filter_groups=[
            FilterGroup(filters=[flt(modified, "GT", stamp)]),
            FilterGroup(filters=[flt(modified, "EQ", stamp), flt("hs_object_id", "GT", last_id)])],
            sorts=[{"propertyName": modified, "direction": "ASCENDING"},
                   {"propertyName": "hs_object_id", "direction": "ASCENDING"}])
        if not page.results:
            return records
        records += page.results
        last = page.results[-1]
        assert modified in last.properties and "hs_object_id" in last.properties
        stamp, last_id = last.properties[modified], last.id


@pytest.mark.parametrize("object_type", list(MODIFIED))
def test_each_type_pages_by_its_modified_property_and_id(client: hubspot.Client, org: SandboxServer,
                                                        object_type: str) -> None:
    records = keyset_pages(client, object_type, 2)
    expected = rows_of(org, object_type)
    assert [record.id for record in records] == [hs_id(object_type, row["id"]) for row in expected]
    for record, row in zip(records, expected, strict=True):
        assert record.properties[MODIFIED[object_type]] == iso_from_ms(row["modified_ms"])
        assert record.updated_at.timestamp() * 1000 == row["modified_ms"] and not record.archived
    if object_type == "contacts":  # contacts have no hs_lastmodifieddate: it is not even a property
        with pytest.raises(ApiException) as unknown:
            search(client, "contacts", filter_groups=[FilterGroup(filters=[flt("hs_lastmodifieddate", "GT", 0)])])
        assert unknown.value.status == 400


def test_values_render_as_hubspot_properties(client: hubspot.Client, org: SandboxServer) -> None:
    objects = client.crm.objects
    line = client.crm.line_items.basic_api.get_by_id(hs_id("line_items", BASE + 3))
    assert line.properties["name"] == "Onboarding Services" and line.properties["quantity"] == "3.0"
    assert "hs_product_id" not in line.properties  # not a default property
    line = objects.basic_api.get_by_id("0-8", hs_id("line_items", BASE + 3),
                                       properties=["hs_product_id", "price", "amount"])
    assert line.properties["hs_product_id"] == str(HS_OFFSET["products"] + BASE + 3)
    assert line.properties["price"] == "19.99" and line.properties["amount"] == "59.97"
    emails = objects.basic_api.get_page("emails", after=hs_id("emails", BASE), properties=[
        "hs_email_direction", "hs_email_subject", "hs_timestamp", "hubspot_owner_id"]).results
    assert [email.properties["hs_email_direction"] for email in emails[:2]] == ["EMAIL", "INCOMING_EMAIL"]
    assert emails[1].properties["hs_timestamp"] == iso_from_ms(BASE_MS - 60_000)
    assert emails[1].properties["hubspot_owner_id"] == hs_id("owners", 2)
    meeting = objects.basic_api.get_by_id("meetings", hs_id("meetings", BASE + 3), properties=[
        "hs_meeting_outcome", "hs_meeting_start_time", "hs_meeting_end_time", "hs_timestamp", "hs_meeting_title"])
    assert meeting.properties["hs_meeting_outcome"] == "NO_SHOW" and meeting.properties["hs_meeting_title"]
    assert meeting.properties["hs_timestamp"] == meeting.properties["hs_meeting_start_time"]
    assert meeting.properties["hs_meeting_end_time"] == iso_from_ms(BASE_MS - 3_600_000 * 2 + 1_800_000)
    contact = client.crm.contacts.basic_api.get_by_id(hs_id("contacts", BASE + 1), properties=[
        "firstname", "lifecyclestage", "hs_lead_status", "lead_source", "company", "country", "lastmodifieddate"])
    assert contact.properties.items() >= {
        "firstname": "Ava", "lifecyclestage": "customer", "hs_lead_status": "CONNECTED", "lead_source": "Web",
        "company": "Adams GmbH", "country": "Germany", "lastmodifieddate": iso_from_ms(BASE_MS)}.items()
    ticket = client.crm.tickets.basic_api.get_by_id(hs_id("tickets", BASE + 4), properties=[
        "subject", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority", "source_type", "closed_date"])
    assert ticket.properties.items() >= {
        "subject": "Case 3", "hs_pipeline": "0", "hs_pipeline_stage": "4", "hs_ticket_priority": "HIGH",
        "source_type": "FORM", "closed_date": iso_from_ms(BASE_MS - 1000)}.items()
    assert ticket.created_at.timestamp() * 1000 == BASE_MS - 86_400_000


def test_search_filters_on_enumerations_and_keeps_hubspots_limits(client: hubspot.Client,
                                                                  org: SandboxServer) -> None:
    customers = client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(filter_groups=[
        FilterGroup(filters=[flt("lifecyclestage", "EQ", "customer"), flt("hs_object_id", "GT", hs_id(
            "contacts", BASE))])], properties=["firstname"]))
    assert [record.properties["firstname"] for record in customers.results] == ["Ava"]  # Farid is archived
    closed = search(client, "tickets", filter_groups=[FilterGroup(filters=[
        flt("hs_pipeline_stage", "IN", values=["1", "4"]), flt("hs_object_id", "GT", hs_id("tickets", BASE))])])
    assert sorted(record.id for record in closed.results) == [hs_id("tickets", BASE + 1), hs_id("tickets", BASE + 4)]
    texts = search(client, "meetings", query="meeting 2", properties=["hs_meeting_title"], filter_groups=[
        FilterGroup(filters=[flt("hs_object_id", "GT", hs_id("meetings", BASE))])])
    assert [record.id for record in texts.results] == [hs_id("meetings", BASE + 3)]
    with pytest.raises(ApiException) as too_big:
        search(client, "emails", limit=201)
    assert too_big.value.status == 400
    state = org.counters["hubspot"].app.state
    state.search_cap = 4
    try:
        first = search(client, "line_items", limit=4, sorts=[{"propertyName": "hs_lastmodifieddate",
                                                             "direction": "ASCENDING"}])
        assert first.paging.next.after == "4"
        with pytest.raises(ApiException) as capped:
            search(client, "line_items", limit=4, after="4")
    finally:
        state.search_cap = SEARCH_CAP
    assert capped.value.status == 400 and json.loads(capped.value.body)["category"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("object_type", list(MODIFIED))
def test_deleted_rows_are_listed_only_with_archived_true(client: hubspot.Client, org: SandboxServer,
                                                         object_type: str) -> None:
    deleted = rows_of(org, object_type, deleted=1)
    after = hs_id(object_type, BASE)
    archived = client.crm.objects.basic_api.get_page(object_type, after=after, archived=True, limit=100)
    assert [record.id for record in archived.results] == [hs_id(object_type, row["id"]) for row in deleted]
    record, row = archived.results[0], deleted[0]
    assert record.archived and record.archived_at == record.updated_at
    assert record.archived_at.timestamp() * 1000 == row["modified_ms"]
    live = client.crm.objects.basic_api.get_page(object_type, after=after, limit=100)
    assert [item.id for item in live.results] == [
        hs_id(object_type, item["id"]) for item in sorted(rows_of(org, object_type), key=lambda r: r["id"])]
    assert not any(item.archived for item in live.results) and live.paging is None
    found = search(client, object_type, filter_groups=[FilterGroup(filters=[flt("hs_object_id", "EQ", record.id)])])
    assert found.total == 0


@pytest.mark.parametrize("object_type", list(MODIFIED))
def test_batch_read_by_id(client: hubspot.Client, object_type: str) -> None:
    ids = [hs_id(object_type, BASE + 1), hs_id(object_type, BASE + 2)]
    response = client.crm.objects.batch_api.read(object_type, BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=record_id) for record_id in [*ids, "1"]],
        properties=[MODIFIED[object_type]], properties_with_history=[]))
    assert sorted(record.id for record in response.results) == ids
    assert response.num_errors == 1 and response.errors[0].category == "OBJECT_NOT_FOUND"
    assert all(record.properties[MODIFIED[object_type]] for record in response.results)


def read_links(client: hubspot.Client, from_type: str, to_type: str, ids: list[str]) -> Any:
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=record_id) for record_id in ids])
    return client.crm.associations.v4.batch_api.get_page(from_type, to_type, request)


@pytest.mark.parametrize(("object_type", "target", "column", "types"), [
    ("line_items", "deals", "deal_id", {(20, None)}),
    ("emails", "deals", "deal_id", {(210, None)}),
    ("meetings", "deals", "deal_id", {(212, None)}),
    ("contacts", "companies", "account_id", {(1, "Primary"), (279, None)}),
    ("tickets", "companies", "account_id", {(339, None)}),
    ("leads", "companies", "account_id", {(580, "Primary"), (610, None)}),
    ("leads", "contacts", "id", {(578, "Primary"), (608, None)}),  # a lead's contact is its own row
])
def test_associations_follow_the_logical_links(client: hubspot.Client, org: SandboxServer, object_type: str,
                                               target: str, column: str, types: set[Any]) -> None:
    live, gone = rows_of(org, object_type), rows_of(org, object_type, deleted=1)
    response = read_links(client, object_type, target, [hs_id(object_type, row["id"]) for row in live + gone])
    linked = {hs_id(object_type, row["id"]): [hs_id(target, row[column])] for row in live if row[column]}
    assert {result._from.id: [to.to_object_id for to in result.to] for result in response.results} == linked
    assert all({(spec.type_id, spec.label) for spec in to.association_types} == types
               for result in response.results for to in result.to)
    assert all(spec.category == "HUBSPOT_DEFINED" for spec in response.results[0].to[0].association_types)
    # archived records and (for contacts and leads) unconverted leads have no company: a 207 naming each of them
    missing = [hs_id(object_type, row["id"]) for row in live + gone if row["deleted"] or not row[column]]
    assert isinstance(response, BatchResponsePublicAssociationMultiWithLabelWithErrors)
    assert sorted(error.context["fromObjectId"][0] for error in response.errors) == sorted(missing)
    assert all(error.sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND" for error in response.errors)


def test_ticket_pipeline_and_deal_pipeline(client: hubspot.Client) -> None:
    pipelines = client.crm.pipelines.pipelines_api.get_all("tickets").results
    assert [(pipeline.id, pipeline.label) for pipeline in pipelines] == [("0", "Support Pipeline")]
    assert [(stage.id, stage.label, stage.metadata) for stage in pipelines[0].stages] == [
        ("1", "New", {"ticketState": "OPEN"}), ("2", "Waiting on contact", {"ticketState": "OPEN"}),
        ("3", "Waiting on us", {"ticketState": "OPEN"}), ("4", "Closed", {"ticketState": "CLOSED"})]
    assert client.crm.pipelines.pipelines_api.get_by_id("0-5", "0").stages[3].metadata["ticketState"] == "CLOSED"
    deals = client.crm.pipelines.pipelines_api.get_all("deals").results
    assert [pipeline.id for pipeline in deals] == ["default"]
    assert client.crm.pipelines.pipelines_api.get_all("emails").results == []


def test_properties_api_lists_each_types_properties_with_option_labels(client: hubspot.Client) -> None:
    def properties(object_type: str) -> dict[str, Any]:
        return {prop.name: prop for prop in client.crm.properties.core_api.get_all(object_type).results}

    def labels(prop: Any) -> dict[str, str]:
        return {option.value: option.label for option in prop.options}

    system = {"hs_object_id", "hs_lastmodifieddate"}
    assert set(properties("line_items")) == system | {"name", "hs_product_id", "quantity", "price", "amount",
                                                      "createdate"}
    assert set(properties("emails")) == system | {"hs_timestamp", "hs_email_subject", "hs_email_direction",
                                                  "hubspot_owner_id", "hs_createdate"}
    meetings = properties("0-47")
    assert set(meetings) == system | {"hs_timestamp", "hs_meeting_title", "hs_meeting_start_time",
                                      "hs_meeting_end_time", "hs_meeting_outcome", "hubspot_owner_id",
                                      "hs_createdate"}
    assert labels(meetings["hs_meeting_outcome"]) == {
        "SCHEDULED": "Scheduled", "COMPLETED": "Completed", "NO_SHOW": "No show", "CANCELED": "Canceled",
        "RESCHEDULED": "Rescheduled"}
    contacts = properties("contacts")
    assert set(contacts) == {"hs_object_id", "lastmodifieddate", "createdate", "firstname", "lastname", "email",
                             "company", "country", "lifecyclestage", "hs_lead_status", "lead_source",
                             "hubspot_owner_id"}
    assert labels(contacts["lifecyclestage"])["customer"] == "Customer"
    assert labels(contacts["lifecyclestage"])["marketingqualifiedlead"] == "Marketing Qualified Lead"
    assert {"NEW", "IN_PROGRESS", "CONNECTED", "UNQUALIFIED"} <= set(labels(contacts["hs_lead_status"]))
    assert contacts["lead_source"].hubspot_defined is None and contacts["lastmodifieddate"].type == "datetime"
    tickets = properties("tickets")
    assert set(tickets) == system | {"subject", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority",
                                     "source_type", "closed_date", "hubspot_owner_id", "createdate"}
    assert labels(tickets["hs_ticket_priority"]) == {"HIGH": "High", "MEDIUM": "Medium", "LOW": "Low"}
    assert labels(tickets["source_type"]) == {"PHONE": "Phone", "EMAIL": "Email", "FORM": "Web form"}
    assert labels(tickets["hs_pipeline_stage"]) == {"1": "New", "2": "Waiting on contact", "3": "Waiting on us",
                                                    "4": "Closed"}


def test_companies_carry_the_custom_region_property(client: hubspot.Client, org: SandboxServer) -> None:
    region = client.crm.properties.core_api.get_by_name("companies", "region")
    assert region.type == "string" and region.hubspot_defined is None  # custom, not hubspot-defined
    companies = client.crm.companies.basic_api.get_page(limit=100, properties=["region", "country"]).results
    rows = {hs_id("companies", row["id"]): row["country"] for row in org.state.query(
        "SELECT id, country FROM accounts WHERE deleted = 0")}
    assert {company.id: company.properties["region"] for company in companies} == {
        record_id: REGION_OF_COUNTRY[country] for record_id, country in rows.items()}
    emea = search(client, "companies", filter_groups=[FilterGroup(filters=[flt("region", "EQ", "EMEA")])])
    assert emea.total == sum(REGION_OF_COUNTRY[country] == "EMEA" for country in rows.values())
