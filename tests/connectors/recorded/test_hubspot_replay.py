"""The real HubSpotSource against recorded sandbox responses (record_mode="none": no server runs)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.hubspot import HubSpotSource
from connectors.store import Account, Activity, Campaign, Contact, Deal, Lead, LineItem, Owner, SupportCase
from tests.connectors.recorded.record import (
    HS_STREAMS,
    cassette,
    hubspot_extract,
    hubspot_streams,
    hubspot_writeback,
    scenario_source,
)


def rows(store: Engine, model: Any) -> dict[str, Any]:
    with Session(store) as session:
        return {row.source_id: row for row in session.exec(select(model).where(model.source == "hubspot"))}


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def test_extract_parses_owners_lookups_search_pages_associations_and_archived(
        store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("hubspot_extract", "none") as recorded, HubSpotSource.from_env(replay_env) as source:
        results = hubspot_extract(source, store)
        assert recorded.all_played and recorded.play_count == 11
    # owners: active + archived lists; deals: search, pipelines, properties (dealtype and lead_source
    # labels), associations, archived list; calls: 2 searches (200 + the rest), ONE association read
    # for both buffered pages (up to 1000 ids a v4 read), archived list
    assert {name: (result.records, result.api_calls) for name, result in results.items()} == {
        "owners": (4, 2), "deals": (30, 5), "calls": (232, 4)}

    owner = rows(store, Owner)["70000003"]
    assert (owner.name, owner.email, owner.team, owner.is_active) == (
        "Priya Fischer", "priya.fischer.3@example.com", "SMB", True)

    deals = rows(store, Deal)
    assert len(deals) == 30
    deal = deals["20000000024"]
    # stage and type arrive as internal values ("closedlost", "newbusiness"): labels come from the lookups
    assert (deal.name, deal.amount, deal.stage, deal.deal_type) == (
        "New Business - account 7 #24", 40700.0, "Closed Lost", "New Business")
    assert (deal.is_closed, deal.is_won, deal.owner_id, deal.account_id) == (True, False, "70000002", "10000007")
    assert (deal.close_date, deal.lead_source, deal.is_deleted) == (date(2026, 7, 26), "Outbound", False)
    assert utc(deal.modified_at) == datetime(2026, 5, 28, 17, 51, tzinfo=UTC)
    archived = deals["20000000007"]  # only in the archived list: stored deleted, at its archive time
    assert (archived.is_deleted, archived.amount, archived.account_id) == (True, 71500.0, None)
    assert utc(archived.modified_at) == datetime(2026, 11, 15, 12, 0, 1, tzinfo=UTC)

    calls = rows(store, Activity)
    assert len(calls) == 232
    second_page = calls["40000000019"]  # on the second search page, linked by its page's v4 read
    assert (second_page.deal_id, second_page.duration_seconds, second_page.outcome) == (
        "20000000003", 76, "No answer")
    assert (second_page.subject, second_page.activity_date) == ("Call about Renewal - account 2 #3",
                                                                date(2026, 11, 15))
    assert calls["40000000041"].is_deleted is True


def test_every_other_stream_parses_labels_custom_fields_associations_and_archived(
        store: Engine, replay_env: dict[str, str]) -> None:
    """The recording org (record.RECORD_ORG, generated from its seed) holds the values checked here."""
    with cassette("hubspot_streams", "none") as recorded, scenario_source("hubspot_streams", replay_env) as source:
        results = hubspot_streams(source, store)
        assert recorded.all_played and recorded.play_count == 28
    # companies: properties (the `region` check and the type labels: one read), search, archived list;
    # line items, emails: search, v4 associations, archived list; meetings and contacts also read their
    # properties (outcome / lifecycle labels); tickets their pipelines and properties too
    assert {name: (result.records, result.api_calls) for name, result in results.items()} == {
        "companies": (10, 3), "line_items": (58, 3), "emails": (7, 3), "meetings": (14, 4), "contacts": (9, 4),
        "tickets": (8, 5), "leads": (9, 5), "campaigns": (4, 1)}
    assert tuple(results) == HS_STREAMS
    paths = [request.path for request in recorded.requests]
    assert paths[:2] == ["/crm/v3/properties/companies", "/crm/v3/objects/companies/search"]
    assert "region" in json.loads(recorded.requests[1].body)["properties"]
    assert {"/crm/v3/pipelines/tickets", "/crm/v3/properties/tickets", "/crm/v3/properties/contacts",
            "/crm/v3/properties/meetings"} <= set(paths)

    accounts = rows(store, Account)
    account = accounts["10000008"]  # Costa Retail 8, Singapore: region APAC
    assert (account.name, account.owner_id, account.country, account.industry, account.account_type) == (
        "Costa Retail 8", "70000003", "Singapore", "Software", "Prospect")
    assert (account.created_date, account.custom) == (date(2025, 6, 26), {"region": "APAC"})
    assert accounts["10000003"].custom == {"region": "EMEA"}  # Hughes Education 3, United Kingdom

    lines = rows(store, LineItem)
    line = lines["30000000047"]  # line 47 of deal 24 (40,700 = 8,400 + 16,000 + 16,300)
    assert (line.deal_id, line.product_id, line.product_name, line.product_family) == (
        "20000000024", "5000006", "Services Starter", None)  # HubSpot line items carry no product family
    assert (line.quantity, line.unit_price, line.total_price, line.created_date, line.is_deleted) == (
        1.0, 8400.0, 8400.0, date(2026, 5, 12), False)
    assert sum(row.total_price for row in lines.values() if row.deal_id == "20000000024") == 40700.0
    archived = lines["30000000011"]  # line 11 of deleted deal 7: only in the archived list
    assert (archived.is_deleted, archived.product_name, archived.quantity, archived.total_price) == (
        True, "Add-on Pro", 2.0, 55700.0)
    assert sorted(key for key, row in lines.items() if row.is_deleted) == ["30000000011", "30000000012"]

    activities = rows(store, Activity)
    email = activities["41000000006"]
    assert (email.kind, email.subject, email.owner_id, email.deal_id, email.activity_date, email.direction) == (
        "email", "Pricing for New Business - account 7 #24", "70000002", "20000000024", date(2026, 6, 18),
        "inbound")  # INCOMING_EMAIL
    assert (email.duration_seconds, email.outcome) == (None, None)
    meeting = activities["42000000012"]  # 2026-10-31 05:30-07:30 UTC, COMPLETED
    assert (meeting.kind, meeting.subject, meeting.owner_id, meeting.deal_id) == (
        "meeting", "Negotiation: New Business - account 10 #29", "70000002", "20000000029")
    assert (meeting.activity_date, meeting.duration_seconds, meeting.outcome, meeting.direction) == (
        date(2026, 10, 31), 7200, "Completed", None)
    assert activities["42000000008"].outcome == "No show"  # NO_SHOW, labelled from the properties

    contacts = rows(store, Contact)
    assert len(contacts) == 9  # every lead is a HubSpot contact
    contact = contacts["50003"]  # converted into company 3: lifecycle stage "customer"
    assert (contact.name, contact.email, contact.account_id, contact.owner_id, contact.lead_source) == (
        "Grace Murphy", "grace.murphy.3@example.org", "10000003", "70000004", "Trade Show")
    assert (contact.lifecycle_stage, contact.created_date) == ("Customer", date(2026, 5, 28))
    lead = contacts["50001"]  # not converted: no company
    assert (lead.name, lead.lifecycle_stage, lead.account_id) == ("Quinn Berg", "Marketing Qualified Lead", None)
    assert utc(lead.modified_at) == datetime(2026, 6, 22, 16, 45, 45, tzinfo=UTC)  # lastmodifieddate

    cases = rows(store, SupportCase)
    ticket = cases["1500000008"]  # closed: pipeline stage "4"
    assert (ticket.subject, ticket.account_id, ticket.owner_id, ticket.status, ticket.priority, ticket.origin) == (
        "License upgrade", "10000010", "70000002", "Closed", "High", "Web form")
    assert (ticket.is_closed, ticket.created_date, ticket.closed_date) == (True, date(2026, 6, 12), date(2026, 6, 16))
    assert (utc(ticket.created_at), utc(ticket.closed_at)) == (datetime(2026, 6, 12, 12, 27, 17, tzinfo=UTC),
                                                               datetime(2026, 6, 16, 18, 32, 39, tzinfo=UTC))
    working = cases["1500000001"]  # Working: pipeline stage "2", labelled from the ticket pipeline
    assert (working.status, working.is_closed, working.closed_at, working.origin) == (
        "Waiting on contact", False, None, "Email")

    leads = rows(store, Lead)  # the same leads the Salesforce cassette holds (test_salesforce_replay.py)
    lead = leads["60000003"]  # converted into account 3 on 2026-07-29: a qualified stage
    assert (lead.name, lead.email, lead.company, lead.country, lead.owner_id, lead.lead_source) == (
        "Grace Murphy", "grace.murphy.3@example.org", "Hughes Education 3", "United Kingdom", "70000004",
        "Trade Show")
    assert (lead.status, lead.is_converted, lead.converted_date, lead.created_date) == (
        "Qualified", True, date(2026, 7, 29), date(2026, 5, 28))
    assert (lead.converted_account_id, lead.converted_contact_id) == ("10000003", None)
    open_lead = leads["60000001"]
    assert (open_lead.name, open_lead.status, open_lead.is_converted, open_lead.converted_account_id) == (
        "Quinn Berg", "New", False, None)

    campaigns = {row.name: row for row in rows(store, Campaign).values()}  # ids are GUIDs
    campaign = campaigns["Platform launch Conference 2026-Q3 #4"]
    assert (campaign.campaign_type, campaign.status, campaign.is_active, campaign.owner_id) == (
        "Conference", "Paused", False, "70000002")  # Salesforce's "Aborted"
    assert (campaign.start_date, campaign.end_date, campaign.created_date) == (
        date(2026, 7, 29), date(2026, 9, 10), date(2026, 5, 18))
    assert (campaign.budgeted_cost, campaign.actual_cost, campaign.expected_revenue) == (38000.0, 37063.0, 456000.0)
    assert len(campaign.source_id) == 36 and campaign.source_id.count("-") == 4


def test_writeback_counts_a_200_batch_then_a_207_partial_failure(
        store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("hubspot_writeback", "none") as recorded, HubSpotSource.from_env(replay_env) as source:
        first, second = hubspot_writeback(source, store)
        assert recorded.all_played
    assert [response["status"]["code"] for response in recorded.responses] == [200, 200, 207]
    assert (first.created, first.updated, first.failed, first.api_calls, first.errors) == (3, 0, 0, 2, [])
    assert (second.created, second.failed, second.api_calls) == (2, 1, 1)  # schemas already known
    assert len(second.errors) == 1 and second.errors[0].startswith("rec-hs-b-2: Property values were not valid")
    assert "'half a million' was not a valid number" in second.errors[0]
