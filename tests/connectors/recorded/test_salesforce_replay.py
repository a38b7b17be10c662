"""The real SalesforceSource against recorded sandbox responses (record_mode="none": no server runs)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.incremental import Cursor, load_cursor
from connectors.salesforce import SalesforceSource
from connectors.store import Account, Activity, Campaign, Contact, Deal, Lead, LineItem, Owner, SupportCase
from tests.connectors.recorded.record import (
    SF_LONG_KEY,
    SF_STREAMS,
    cassette,
    kr_rows,
    salesforce_extract,
    salesforce_streams,
    salesforce_writeback,
    scenario_source,
)


def rows(store: Engine, model: Any) -> dict[str, Any]:
    with Session(store) as session:
        return {row.source_id: row for row in session.exec(select(model).where(model.source == "salesforce"))}


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def test_extract_parses_queryall_and_querymore_pages(store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("salesforce_extract", "none") as recorded, SalesforceSource.from_env(replay_env) as source:
        results = salesforce_extract(source, store)
        assert recorded.all_played and recorded.play_count == 4
    # one queryAll each; the 232 calls come as 200 + 32 (queryMore on nextRecordsUrl)
    assert {name: (result.records, result.api_calls) for name, result in results.items()} == {
        "users": (4, 1), "opportunities": (30, 1), "calls": (232, 2)}

    deals = rows(store, Deal)
    assert len(deals) == 30
    deal = deals["00600000000000OAAQ"]
    assert (deal.name, deal.stage, deal.amount, deal.deal_type) == (
        "New Business - account 7 #24", "Closed Lost", 40700.0, "New Business")
    assert (deal.is_closed, deal.is_won, deal.probability, deal.lead_source) == (True, False, 0.0, "Outbound")
    assert (deal.owner_id, deal.account_id) == ("005000000000002AAA", "001000000000007AAA")
    assert (deal.created_date, deal.close_date) == (date(2026, 5, 12), date(2026, 7, 26))
    assert deal.modified_at.replace(tzinfo=UTC) == datetime(2026, 5, 28, 17, 51, tzinfo=UTC)
    assert deal.is_deleted is False
    assert [key for key, row in deals.items() if row.is_deleted] == ["006000000000007AAA"]  # via queryAll

    owner = rows(store, Owner)["005000000000003AAA"]
    assert (owner.name, owner.email, owner.team, owner.region, owner.is_active) == (
        "Priya Fischer", "priya.fischer.3@example.com", "SMB", "APAC", True)

    calls = rows(store, Activity)
    assert len(calls) == 232
    deleted_call = calls["00T00000000000fEAA"]  # the last record of the queryMore page
    assert (deleted_call.kind, deleted_call.deal_id, deleted_call.duration_seconds, deleted_call.outcome) == (
        "call", "006000000000007AAA", 667, "Connected")
    assert (deleted_call.activity_date, deleted_call.is_deleted) == (date(2026, 8, 29), True)
    assert load_cursor(store, "salesforce", "calls") == Cursor(
        datetime(2026, 11, 15, 12, 0, 1, tzinfo=UTC), "00T00000000000fEAA")


def test_every_other_stream_parses_custom_fields_relationships_and_deletions(
        store: Engine, replay_env: dict[str, str]) -> None:
    """The recording org (record.RECORD_ORG, generated from its seed) holds the values checked here."""
    with cassette("salesforce_streams", "none") as recorded, scenario_source("salesforce_streams",
                                                                              replay_env) as source:
        results = salesforce_streams(source, store)
        assert recorded.all_played and recorded.play_count == 9
    # one queryAll each; accounts also cost the describe of Account that checks Region__c
    assert {name: (result.records, result.api_calls) for name, result in results.items()} == {
        "accounts": (10, 2), "line_items": (58, 1), "emails": (7, 1), "meetings": (14, 1), "leads": (9, 1),
        "contacts": (2, 1), "cases": (8, 1), "campaigns": (4, 1)}
    assert tuple(results) == SF_STREAMS
    requests = [request.uri for request in recorded.requests]
    assert requests[0].endswith("/sobjects/Account/describe") and "Region__c" in requests[1]

    accounts = rows(store, Account)
    account = accounts["001000000000008AAA"]  # Costa Retail 8, Singapore: Region__c APAC
    assert (account.name, account.owner_id, account.country, account.industry, account.account_type) == (
        "Costa Retail 8", "005000000000003AAA", "Singapore", "Software", "Prospect")
    assert (account.created_date, account.custom) == (date(2025, 6, 26), {"region": "APAC"})
    assert accounts["001000000000003AAA"].custom == {"region": "EMEA"}  # Hughes Education 3, United Kingdom

    lines = rows(store, LineItem)
    line = lines["00k00000000000lAAA"]  # line 47 of deal 24 (40,700 = 8,400 + 16,000 + 16,300)
    assert (line.deal_id, line.product_id, line.product_name, line.product_family) == (
        "00600000000000OAAQ", "01t000000000006AAA", "Services Starter", "Services")  # from the nested Product2
    assert (line.quantity, line.unit_price, line.total_price, line.created_date, line.is_deleted) == (
        1.0, 8400.0, 8400.0, date(2026, 5, 12), False)
    assert sum(row.total_price for row in lines.values() if row.deal_id == "00600000000000OAAQ") == 40700.0
    deleted = lines["00k00000000000BAAQ"]  # line 11 of deleted deal 7, deleted with it (queryAll)
    assert (deleted.is_deleted, deleted.deal_id, deleted.product_name, deleted.quantity, deleted.total_price) == (
        True, "006000000000007AAA", "Add-on Pro", 2.0, 55700.0)
    assert sorted(key for key, row in lines.items() if row.is_deleted) == ["00k00000000000BAAQ", "00k00000000000CAAQ"]

    activities = rows(store, Activity)
    email = activities["00T00000015ftgMEAQ"]  # email 6: Task 1,000,000,006 (EMAIL_TASK_OFFSET)
    assert (email.kind, email.subject, email.owner_id, email.deal_id, email.activity_date) == (
        "email", "Pricing for New Business - account 7 #24", "005000000000002AAA", "00600000000000OAAQ",
        date(2026, 6, 18))
    assert (email.direction, email.duration_seconds, email.outcome) == (None, None, None)
    meeting = activities["00U00000000000CEAQ"]  # meeting 12: 2026-10-31 05:30-07:30 UTC
    assert (meeting.kind, meeting.subject, meeting.owner_id, meeting.deal_id) == (
        "meeting", "Negotiation: New Business - account 10 #29", "005000000000002AAA", "00600000000000TAAQ")
    assert (meeting.activity_date, meeting.duration_seconds, meeting.outcome, meeting.direction) == (
        date(2026, 10, 31), 7200, None, None)
    assert {row.kind for row in activities.values()} == {"email", "meeting"}

    leads = rows(store, Lead)
    lead = leads["00Q000000000003EAA"]  # converted into account 3 on 2026-07-29
    assert (lead.name, lead.email, lead.company, lead.country, lead.owner_id, lead.lead_source) == (
        "Grace Murphy", "grace.murphy.3@example.org", "Hughes Education 3", "United Kingdom",
        "005000000000004AAA", "Trade Show")
    assert (lead.status, lead.is_converted, lead.converted_date, lead.created_date) == (
        "Closed - Converted", True, date(2026, 7, 29), date(2026, 5, 28))
    assert (lead.converted_account_id, lead.converted_contact_id) == ("001000000000003AAA", "003000000000003AAA")
    open_lead = leads["00Q000000000001EAA"]
    assert (open_lead.name, open_lead.company, open_lead.status, open_lead.is_converted) == (
        "Quinn Berg", "Eriksen Holdings", "Open - Not Contacted", False)
    assert (open_lead.converted_date, open_lead.converted_account_id, open_lead.converted_contact_id) == (
        None, None, None)

    contacts = rows(store, Contact)
    assert sorted(contacts) == ["003000000000002AAA", "003000000000003AAA"]  # the two converted leads
    contact = contacts["003000000000003AAA"]
    assert (contact.name, contact.email, contact.account_id, contact.owner_id, contact.lead_source) == (
        "Grace Murphy", "grace.murphy.3@example.org", "001000000000003AAA", "005000000000004AAA", "Trade Show")
    assert (contact.lifecycle_stage, contact.created_date) == (None, date(2026, 7, 29))  # created at conversion

    cases = rows(store, SupportCase)
    case = cases["500000000000008AAA"]
    assert (case.subject, case.account_id, case.owner_id, case.status, case.priority, case.origin) == (
        "License upgrade", "00100000000000AAAQ", "005000000000002AAA", "Closed", "High", "Web")
    assert (case.is_closed, case.created_date, case.closed_date) == (True, date(2026, 6, 12), date(2026, 6, 16))
    assert (utc(case.created_at), utc(case.closed_at)) == (datetime(2026, 6, 12, 12, 27, 17, tzinfo=UTC),
                                                           datetime(2026, 6, 16, 18, 32, 39, tzinfo=UTC))
    open_case = cases["500000000000001AAA"]
    assert (open_case.status, open_case.is_closed, open_case.closed_at, open_case.closed_date) == (
        "Working", False, None, None)

    campaigns = rows(store, Campaign)
    campaign = campaigns["701000000000004AAA"]
    assert (campaign.name, campaign.campaign_type, campaign.status, campaign.is_active, campaign.owner_id) == (
        "Platform launch Conference 2026-Q3 #4", "Conference", "Aborted", False, "005000000000002AAA")
    assert (campaign.start_date, campaign.end_date, campaign.created_date) == (
        date(2026, 7, 29), date(2026, 9, 10), date(2026, 5, 18))
    assert (campaign.budgeted_cost, campaign.actual_cost, campaign.expected_revenue) == (38000.0, 37063.0, 456000.0)
    assert (campaigns["701000000000003AAA"].status, campaigns["701000000000003AAA"].is_active) == ("Planned", True)


def test_writeback_reports_the_per_record_error_and_keeps_the_rest(
        store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("salesforce_writeback", "none") as recorded, SalesforceSource.from_env(replay_env) as source:
        result = salesforce_writeback(source, store)
        assert recorded.all_played  # describe of OKR_Key_Result__c, then one composite upsert
        # the two confirmed rows are in the ledger: sending them again costs no request at all
        again = source.write_key_results(store, kr_rows("rec-sf", 3)[1:])
    assert (result.created, result.updated, result.failed, result.api_calls) == (2, 0, 1, 2)
    assert result.errors == [f"key {SF_LONG_KEY}: STRING_TOO_LONG: Key: data value too large: "
                             f"{SF_LONG_KEY[:40]} (max length=255)"]
    assert (again.unchanged, again.created, again.failed, again.api_calls) == (2, 0, 0, 0)
