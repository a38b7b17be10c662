"""Each stream's mapper over the record shapes Salesforce documents (REST JSON and Bulk 2.0 CSV rows)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.salesforce.helpers import csv_record
from connectors.salesforce.mappers import MAPPERS, STREAM_ENTITY
from connectors.salesforce.settings import CSV_FIELD_TYPES, STREAMS
from connectors.store import RECORD_MODELS

STAMP = "2026-10-22T21:03:23.000+0000"
MODIFIED = datetime(2026, 10, 22, 21, 3, 23, tzinfo=UTC)
UTC_ZONE, NEW_YORK = ZoneInfo("UTC"), ZoneInfo("America/New_York")
CREATED = "2026-03-01T23:30:00.000+0000"


def rest(sobject: str, record_id: str, **fields: Any) -> dict[str, Any]:
    """A queryAll record as the REST API sends it, with its attributes and the audit fields."""
    return {"attributes": {"type": sobject, "url": f"/services/data/v62.0/sobjects/{sobject}/{record_id}"},
            "Id": record_id, "CreatedDate": CREATED, "SystemModstamp": STAMP, "IsDeleted": False, **fields}


def mapped(stream: str, record: dict[str, Any], zone: ZoneInfo = UTC_ZONE) -> dict[str, Any]:
    row = MAPPERS[stream][1](record, zone)
    assert row.pop("source") == "salesforce" and row.pop("source_id") == record["Id"]
    assert row.pop("modified_at") == MODIFIED and row.pop("custom") == {}
    return row


def test_every_stream_has_a_mapper_into_a_canonical_table() -> None:
    assert list(MAPPERS) == list(STREAMS) == [
        "users", "accounts", "opportunities", "line_items", "calls", "emails", "meetings", "leads", "contacts",
        "cases", "campaigns"]
    for stream, (model, _mapper) in MAPPERS.items():
        assert RECORD_MODELS[STREAM_ENTITY[stream]] is model


def test_every_mapped_row_fills_exactly_its_table() -> None:
    """A record with every selected field (null) maps to a row with every column of the table."""
    for stream, spec in STREAMS.items():
        model, mapper = MAPPERS[stream]
        record = dict.fromkeys(spec.fields) | {"Id": "x", "SystemModstamp": STAMP}
        assert set(mapper(record, UTC_ZONE)) == set(model.model_fields), stream


def test_users() -> None:
    record = {"attributes": {"type": "User"}, "Id": "005SB000000001AAA", "Name": "Ada Lovelace",
              "Email": "ada@example.com", "IsActive": True, "Department": "EMEA Sales", "Division": "EMEA",
              "SystemModstamp": STAMP}
    assert mapped("users", record) == {"email": "ada@example.com", "name": "Ada Lovelace", "team": "EMEA Sales",
                                       "region": "EMEA", "is_active": True}


def test_accounts() -> None:
    record = rest("Account", "001SB000000001AAA", Name="Acme", OwnerId="005SB000000001AAA",
                  BillingCountry="Germany", Industry="Manufacturing", Type="Customer", Region__c="EMEA")
    assert mapped("accounts", record) == {
        "name": "Acme", "owner_id": "005SB000000001AAA", "country": "Germany", "industry": "Manufacturing",
        "account_type": "Customer", "created_date": date(2026, 3, 1), "is_deleted": False}


def test_opportunities() -> None:
    record = rest("Opportunity", "006SB000000001AAA", Name="Acme - Platform", OwnerId="005SB000000001AAA",
                  AccountId="001SB000000001AAA", Type="New Business", StageName="Closed Won", Amount=12000,
                  Probability=100, IsClosed=True, IsWon=True, CloseDate="2026-09-30", LeadSource="Web")
    assert mapped("opportunities", record) == {
        "name": "Acme - Platform", "owner_id": "005SB000000001AAA", "account_id": "001SB000000001AAA",
        "deal_type": "New Business", "stage": "Closed Won", "amount": 12000.0, "probability": 100.0,
        "is_closed": True, "is_won": True, "created_date": date(2026, 3, 1), "close_date": date(2026, 9, 30),
        "lead_source": "Web", "is_deleted": False}


def test_line_items_read_the_nested_product() -> None:
    product = {"attributes": {"type": "Product2", "url": "/services/data/v62.0/sobjects/Product2/01tSB0000000001AAA"},
               "Name": "Platform Pro", "Family": "Platform"}
    record = rest("OpportunityLineItem", "00kSB000000001AAA", OpportunityId="006SB000000001AAA",
                  Product2Id="01tSB000000001AAA", Product2=product, Quantity=3.0, UnitPrice=1500.0,
                  TotalPrice=4500.0)
    assert mapped("line_items", record) == {
        "deal_id": "006SB000000001AAA", "product_id": "01tSB000000001AAA", "product_name": "Platform Pro",
        "product_family": "Platform", "quantity": 3.0, "unit_price": 1500.0, "total_price": 4500.0,
        "created_date": date(2026, 3, 1), "is_deleted": False}


def test_a_line_item_without_a_product() -> None:
    record = rest("OpportunityLineItem", "00kSB000000001AAA", OpportunityId="006SB000000001AAA",
                  Product2Id=None, Product2=None, Quantity=1, UnitPrice=10, TotalPrice=10)
    row = mapped("line_items", record)
    assert (row["product_id"], row["product_name"], row["product_family"]) == (None, None, None)


def test_a_bulk_csv_line_item_maps_as_its_rest_record() -> None:
    """Bulk 2.0 CSV has dotted relationship columns; csv_record nests them as REST does."""
    header = STREAMS["line_items"].fields
    text = (",".join(header) + "\n"
            + "00kSB000000001AAA,006SB000000001AAA,01tSB000000001AAA,Platform Pro,Platform,3,1500,4500,"
            + f"{CREATED},{STAMP},false\n"
            + f"00kSB000000002AAA,006SB000000001AAA,,,,1,10.5,10.5,{CREATED},{STAMP},true\n")
    first, second = (csv_record(row) for row in csv.DictReader(io.StringIO(text)))
    assert first["Product2"] == {"Name": "Platform Pro", "Family": "Platform"}
    assert second["Product2"] is None and second["Product2Id"] is None and second["IsDeleted"] is True
    assert first["Quantity"] == 3.0 and first["TotalPrice"] == 4500.0
    product = {"attributes": {"type": "Product2"}, "Name": "Platform Pro", "Family": "Platform"}
    from_rest = rest("OpportunityLineItem", "00kSB000000001AAA", OpportunityId="006SB000000001AAA",
                     Product2Id="01tSB000000001AAA", Product2=product, Quantity=3.0, UnitPrice=1500.0,
                     TotalPrice=4500.0)
    mapper = MAPPERS["line_items"][1]
    assert mapper(first, UTC_ZONE) == mapper(from_rest, UTC_ZONE)
    assert mapper(second, UTC_ZONE)["product_name"] is None and mapper(second, UTC_ZONE)["unit_price"] == 10.5


def test_csv_types_cover_every_non_text_field_read() -> None:
    for name in ("IsConverted", "IsClosed", "IsActive", "Quantity", "UnitPrice", "TotalPrice", "BudgetedCost",
                 "ActualCost", "ExpectedRevenue", "DurationInMinutes", "CallDurationInSeconds"):
        assert name in CSV_FIELD_TYPES
    row = {"IsConverted": "true", "DurationInMinutes": "45", "BudgetedCost": "2500.0", "Custom__c": "7"}
    assert csv_record(row, {"Custom__c": "currency"}) == {"IsConverted": True, "DurationInMinutes": 45,
                                                          "BudgetedCost": 2500.0, "Custom__c": 7.0}


@pytest.mark.parametrize(("call_type", "direction"), [("Inbound", "inbound"), ("Outbound", "outbound"),
                                                     (None, None)])
def test_calls(call_type: str | None, direction: str | None) -> None:
    record = rest("Task", "00TSB000000001AAA", Subject="Call", OwnerId="005SB000000001AAA",
                  WhatId="006SB000000001AAA", ActivityDate="2026-10-20", CallDurationInSeconds=312,
                  CallType=call_type, CallDisposition="Connected")
    assert mapped("calls", record) == {
        "kind": "call", "subject": "Call", "owner_id": "005SB000000001AAA", "deal_id": "006SB000000001AAA",
        "activity_date": date(2026, 10, 20), "duration_seconds": 312, "outcome": "Connected",
        "direction": direction, "is_deleted": False}


def test_emails() -> None:
    record = rest("Task", "00TSB00000G8t4cAAB", Subject="Email: Proposal", OwnerId="005SB000000001AAA",
                  WhatId="006SB000000001AAA", ActivityDate="2026-10-21", IsDeleted=True)
    assert STREAMS["emails"].where == "TaskSubtype = 'Email'"
    assert mapped("emails", record) == {
        "kind": "email", "subject": "Email: Proposal", "owner_id": "005SB000000001AAA",
        "deal_id": "006SB000000001AAA", "activity_date": date(2026, 10, 21), "duration_seconds": None,
        "outcome": None, "direction": None, "is_deleted": True}


def test_meetings_are_dated_by_the_local_day_of_their_start() -> None:
    record = rest("Event", "00USB000000001AAA", Subject="Demo", OwnerId="005SB000000001AAA",
                  WhatId="006SB000000001AAA", StartDateTime="2026-10-22T01:30:00.000+0000",
                  EndDateTime="2026-10-22T02:15:00.000+0000", DurationInMinutes=45, ActivityDate="2026-10-21")
    expected = {
        "kind": "meeting", "subject": "Demo", "owner_id": "005SB000000001AAA", "deal_id": "006SB000000001AAA",
        "activity_date": date(2026, 10, 21), "duration_seconds": 45 * 60, "outcome": None, "direction": None,
        "is_deleted": False}
    assert mapped("meetings", record, NEW_YORK) == expected  # 21:30 in New York
    assert mapped("meetings", record) == expected | {"activity_date": date(2026, 10, 22)}  # the UTC day


def test_created_and_closed_dates_are_local_days_but_date_fields_stay_as_filed() -> None:
    record = rest("Opportunity", "006SB000000001AAA", CreatedDate="2026-10-01T03:00:00.000+0000",
                  CloseDate="2026-10-31")
    row = mapped("opportunities", record, NEW_YORK)
    assert row["created_date"] == date(2026, 9, 30) and row["close_date"] == date(2026, 10, 31)
    case = rest("Case", "500SB000000001AAA", CreatedDate="2026-03-02T04:30:00.000+0000",
                ClosedDate="2026-03-03T05:30:00.000+0000", IsClosed=True)
    row = mapped("cases", case, NEW_YORK)
    assert (row["created_date"], row["closed_date"]) == (date(2026, 3, 1), date(2026, 3, 3))


def test_a_meeting_without_times_falls_back_to_its_date_and_minutes() -> None:
    record = rest("Event", "00USB000000001AAA", StartDateTime=None, EndDateTime=None, DurationInMinutes=30,
                  ActivityDate="2026-10-21")
    row = mapped("meetings", record)
    assert (row["activity_date"], row["duration_seconds"]) == (date(2026, 10, 21), 1800)


def test_converted_and_open_leads() -> None:
    converted = rest("Lead", "00QSB000000001AAA", FirstName="Grace", LastName="Hopper", Name="Grace Hopper",
                     Email="grace@example.com", Company="Acme", Country="Germany", OwnerId="005SB000000001AAA",
                     LeadSource="Web", Status="Closed - Converted", IsConverted=True, ConvertedDate="2026-05-02",
                     ConvertedAccountId="001SB000000001AAA", ConvertedContactId="003SB000000001AAA")
    assert mapped("leads", converted) == {
        "name": "Grace Hopper", "email": "grace@example.com", "company": "Acme", "country": "Germany",
        "owner_id": "005SB000000001AAA", "lead_source": "Web", "status": "Closed - Converted",
        "is_converted": True, "converted_date": date(2026, 5, 2), "converted_account_id": "001SB000000001AAA",
        "converted_contact_id": "003SB000000001AAA", "created_date": date(2026, 3, 1), "is_deleted": False}
    open_lead = rest("Lead", "00QSB000000002AAA", FirstName=None, LastName="Lamarr", Name="Lamarr",
                     Status="Open - Not Contacted", IsConverted=False, ConvertedDate=None,
                     ConvertedAccountId=None, ConvertedContactId=None)
    row = mapped("leads", open_lead)
    assert (row["name"], row["is_converted"], row["converted_date"], row["converted_account_id"]) == (
        "Lamarr", False, None, None)


def test_contacts() -> None:
    record = rest("Contact", "003SB000000001AAA", FirstName="Grace", LastName="Hopper", Name="Grace Hopper",
                  Email="grace@example.com", AccountId="001SB000000001AAA", OwnerId="005SB000000001AAA",
                  LeadSource="Web")
    assert mapped("contacts", record) == {
        "name": "Grace Hopper", "email": "grace@example.com", "account_id": "001SB000000001AAA",
        "owner_id": "005SB000000001AAA", "lead_source": "Web", "lifecycle_stage": None,
        "created_date": date(2026, 3, 1), "is_deleted": False}


def test_closed_and_open_cases() -> None:
    closed = rest("Case", "500SB000000001AAA", Subject="Login fails", AccountId="001SB000000001AAA",
                  OwnerId="005SB000000001AAA", Status="Closed", Priority="High", Origin="Phone", IsClosed=True,
                  ClosedDate="2026-03-02T08:00:00.000+0000")
    assert mapped("cases", closed) == {
        "subject": "Login fails", "account_id": "001SB000000001AAA", "owner_id": "005SB000000001AAA",
        "status": "Closed", "priority": "High", "origin": "Phone", "is_closed": True,
        "created_at": datetime(2026, 3, 1, 23, 30, tzinfo=UTC), "closed_at": datetime(2026, 3, 2, 8, tzinfo=UTC),
        "created_date": date(2026, 3, 1), "closed_date": date(2026, 3, 2), "is_deleted": False}
    open_case = rest("Case", "500SB000000002AAA", Status="New", IsClosed=False, ClosedDate=None)
    row = mapped("cases", open_case)
    assert (row["is_closed"], row["closed_at"], row["closed_date"]) == (False, None, None)


def test_campaigns() -> None:
    record = rest("Campaign", "701SB000000001AAA", Name="Q4 Webinar", Type="Webinar", Status="In Progress",
                  IsActive=True, OwnerId="005SB000000001AAA", StartDate="2026-10-01", EndDate="2026-12-15",
                  BudgetedCost=5000, ActualCost=4200.5, ExpectedRevenue=60000)
    assert mapped("campaigns", record) == {
        "name": "Q4 Webinar", "campaign_type": "Webinar", "status": "In Progress", "is_active": True,
        "owner_id": "005SB000000001AAA", "start_date": date(2026, 10, 1), "end_date": date(2026, 12, 15),
        "budgeted_cost": 5000.0, "actual_cost": 4200.5, "expected_revenue": 60000.0,
        "created_date": date(2026, 3, 1), "is_deleted": False}
