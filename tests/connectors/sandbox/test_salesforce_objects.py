"""The sandbox's Salesforce face serves the whole sales org (products, line items, emails as Tasks,
meetings as Events, leads, contacts, cases, campaigns), driven by the real simple-salesforce client.

The rows checked field by field are inserted here with ids from ROW (900_001 on), so the tests hold
whether or not the generator also fills these tables; set-level checks compare with the tables.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from connectors.sandbox import soql
from connectors.sandbox.generator import COUNTRIES
from connectors.sandbox.ids import EMAIL_TASK_OFFSET, SF_PREFIX, sf_id
from connectors.sandbox.salesforce_bulk import set_polls_to_complete
from connectors.sandbox.salesforce_query import ensure_indexes
from connectors.sandbox.salesforce_schema import SCHEMAS
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.state import SandboxState
from tests.conftest import TEST_ORG, private_sandbox
from tests.connectors.sandbox.test_salesforce_api import _close_open_sessions, client

pytestmark = pytest.mark.integration

ROW = 900_001
CLOCK = TEST_ORG.anchor
CLOCK_MS = int(CLOCK.timestamp() * 1000)
HOUR_MS = 3_600_000
CREATED_MS = CLOCK_MS - 48 * HOUR_MS
MODIFIED_MS = CLOCK_MS - 3 * HOUR_MS
DELETED_MS = CLOCK_MS - 30 * 60_000  # deleted half an hour before the org's clock
START_MS = CLOCK_MS - 24 * HOUR_MS
# sObject -> (the table or view of its rows, which of them it serves); a row's id is the Id's number
OBJECTS = {
    "Product2": ("products", "1 = 1"), "OpportunityLineItem": ("line_items", "1 = 1"), "Task": ("tasks", "1 = 1"),
    "Event": ("meetings", "1 = 1"), "Lead": ("leads", "1 = 1"), "Contact": ("leads", "converted_ms IS NOT NULL"),
    "Case": ("cases", "1 = 1"), "Campaign": ("campaigns", "1 = 1"),
}
DELETED = {"Product2": ROW + 1, "OpportunityLineItem": ROW + 2, "Task": EMAIL_TASK_OFFSET + ROW + 1,
           "Event": ROW + 1, "Lead": ROW + 2, "Contact": ROW + 2, "Case": ROW + 2, "Campaign": ROW + 2}


def wire(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def insert(state: SandboxState, table: str, rows: list[dict[str, Any]]) -> None:
    audit = {"created_ms": CREATED_MS, "modified_ms": MODIFIED_MS, "deleted": 0}
    rows = [{**audit, **row} for row in rows]
    columns = list(rows[0])
    with state.transaction() as conn:
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
                         f" ({', '.join(':' + name for name in columns)})", rows)


def gone(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "deleted": 1, "modified_ms": DELETED_MS}


def add_rows(state: SandboxState) -> None:
    insert(state, "products", [
        {"id": ROW, "name": "Platform Pro", "family": "Platform", "list_price": 100.0, "is_active": 1},
        gone({"id": ROW + 1, "name": "Old Add-on", "family": "Add-on", "list_price": 5.0, "is_active": 0})])
    insert(state, "line_items", [
        {"id": ROW, "deal_id": 1, "product_id": ROW, "quantity": 3.0, "unit_price": 99.5},
        {"id": ROW + 1, "deal_id": 2, "product_id": None, "quantity": 1.0, "unit_price": 40.0},
        gone({"id": ROW + 2, "deal_id": 2, "product_id": ROW, "quantity": 1.0, "unit_price": 10.0})])
    insert(state, "emails", [
        {"id": ROW, "owner_id": 1, "deal_id": 1, "subject": "Pricing follow-up", "ts_ms": START_MS,
         "direction": "Outbound"},
        gone({"id": ROW + 1, "owner_id": 1, "deal_id": 1, "subject": "Spam", "ts_ms": START_MS,
              "direction": "Inbound"})])
    insert(state, "meetings", [
        {"id": ROW, "owner_id": 2, "deal_id": 3, "subject": "Demo", "start_ms": START_MS,
         "end_ms": START_MS + 45 * 60_000, "outcome": "Completed"},
        gone({"id": ROW + 1, "owner_id": 2, "deal_id": 3, "subject": "Old demo", "start_ms": START_MS,
              "end_ms": START_MS + 15 * 60_000, "outcome": "Canceled"})])
    lead = {"first_name": "Ines", "last_name": "Costa", "country": "Spain", "owner_id": 2,
            "lead_source": "Web"}
    insert(state, "leads", [
        {**lead, "id": ROW, "email": "ines@example.com", "company": "Costa Ltd", "status": "Working - Contacted",
         "lifecycle": "salesqualifiedlead", "account_id": None, "converted_ms": None},
        {**lead, "id": ROW + 1, "first_name": "Hiro", "last_name": "Ito", "email": "hiro@example.com",
         "company": "Ito Retail 1", "status": "Closed - Converted", "lifecycle": "customer", "account_id": 1,
         "converted_ms": START_MS},
        gone({**lead, "id": ROW + 2, "email": "gone@example.com", "company": "Gone", "status": "Closed - Converted",
              "lifecycle": "opportunity", "account_id": 2, "converted_ms": START_MS})])
    case = {"account_id": 1, "owner_id": 3, "priority": "High", "origin": "Web"}
    insert(state, "cases", [
        {**case, "id": ROW, "subject": "Login broken", "status": "Escalated", "closed_ms": None},
        {**case, "id": ROW + 1, "subject": "Invoice", "status": "Closed", "closed_ms": START_MS},
        gone({**case, "id": ROW + 2, "subject": "Dup", "status": "New", "closed_ms": None})])
    campaign = {"campaign_type": "Webinar", "start_date": "2026-11-01", "end_date": "2026-11-30",
                "budgeted_cost": 5000.0, "actual_cost": 4200.5, "expected_revenue": 90000.0, "owner_id": 1}
    insert(state, "campaigns", [
        {**campaign, "id": ROW, "name": "Q4 webinar", "status": "In Progress"},
        {**campaign, "id": ROW + 1, "name": "Spring expo", "status": "Completed", "end_date": None},
        gone({**campaign, "id": ROW + 2, "name": "Dropped", "status": "Aborted"})])


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-objects", seed=9, deals=40, owners=4, accounts=8,
                         calls_per_deal=1.0) as server:
        add_rows(server.state)
        yield server
        _close_open_sessions()


@pytest.fixture(scope="module")
def sf(org: SandboxServer) -> Salesforce:
    return client(org)


def one(sf: Salesforce, fields: str, sobject: str, number: int) -> dict[str, Any]:
    [record] = sf.query_all(f"SELECT {fields} FROM {sobject} WHERE Id = '{sf_id(sobject, number)}'",
                            include_deleted=True)["records"]
    return record


@pytest.mark.parametrize("sobject", sorted(OBJECTS))
def test_query_and_query_all_serve_every_row(org: SandboxServer, sf: Salesforce, sobject: str) -> None:
    table, where = OBJECTS[sobject]
    rows = org.state.query(f"SELECT id, deleted FROM {table} WHERE {where}")
    live = {sf_id(sobject, row["id"]) for row in rows if not row["deleted"]}
    every = sf.query_all(f"SELECT Id, IsDeleted FROM {sobject}", include_deleted=True)["records"]
    assert {record["Id"] for record in sf.query_all(f"SELECT Id FROM {sobject}")["records"]} == live
    assert {record["Id"] for record in every} == {sf_id(sobject, row["id"]) for row in rows}
    deleted = {record["Id"] for record in every if record["IsDeleted"]}
    assert sf_id(sobject, DELETED[sobject]) in deleted and not deleted & live
    assert sf.query(f"SELECT COUNT() FROM {sobject}")["totalSize"] == len(live)


@pytest.mark.parametrize("sobject", sorted({*OBJECTS, "Account"}))
def test_every_described_field_can_be_selected(sf: Salesforce, sobject: str) -> None:
    names = [spec.name for spec in SCHEMAS[sobject.lower()].fields]
    records = sf.query_all(f"SELECT {', '.join(names)} FROM {sobject} ORDER BY SystemModstamp DESC, Id LIMIT 50",
                           include_deleted=True)["records"]
    assert records and all(list(record)[1:] == names for record in records)
    assert all(record["Id"].startswith(SF_PREFIX[sobject]) for record in records)


@pytest.mark.parametrize("sobject", sorted(OBJECTS))
def test_incremental_order_limit_and_date_literals(org: SandboxServer, sf: Salesforce, sobject: str) -> None:
    """The connectors' incremental query shape: (SystemModstamp, Id) tie-break, ORDER BY, LIMIT."""
    table, where = OBJECTS[sobject]
    since = wire(MODIFIED_MS).replace(".000+0000", "Z")
    text = (f"SELECT Id, SystemModstamp FROM {sobject} WHERE (SystemModstamp = {since} AND Id > "
            f"'{sf_id(sobject, 0)}') OR SystemModstamp > {since} ORDER BY SystemModstamp, Id LIMIT 500")
    records = sf.query_all(text, include_deleted=True)["records"]
    expected = org.state.query(f"SELECT id, modified_ms / 1000 AS stamp FROM {table} WHERE {where}"
                               " AND modified_ms / 1000 >= ? ORDER BY stamp, id LIMIT 500", (MODIFIED_MS // 1000,))
    assert [record["Id"] for record in records] == [sf_id(sobject, row["id"]) for row in expected]
    assert sf_id(sobject, DELETED[sobject]) in {record["Id"] for record in records}
    recent = sf.query_all(f"SELECT Id FROM {sobject} WHERE SystemModstamp = LAST_N_DAYS:1 AND"
                          " CreatedDate < TODAY", include_deleted=True)["records"]
    assert sf_id(sobject, DELETED[sobject]) in {record["Id"] for record in recent}


def test_product2_and_line_items(sf: Salesforce) -> None:
    product = one(sf, "Id, Name, Family, IsActive, CreatedDate, LastModifiedDate, IsDeleted", "Product2", ROW)
    assert product == {**product, "Name": "Platform Pro", "Family": "Platform", "IsActive": True,
                       "CreatedDate": wire(CREATED_MS), "LastModifiedDate": wire(MODIFIED_MS), "IsDeleted": False}
    item = one(sf, "OpportunityId, Product2Id, Quantity, UnitPrice, TotalPrice", "OpportunityLineItem", ROW)
    assert item == {**item, "OpportunityId": sf_id("Opportunity", 1), "Product2Id": sf_id("Product2", ROW),
                    "Quantity": 3.0, "UnitPrice": 99.5, "TotalPrice": 298.5}


def test_relationship_fields_nest_in_rest_json(sf: Salesforce) -> None:
    ids = ", ".join(f"'{sf_id('OpportunityLineItem', number)}'" for number in (ROW, ROW + 1))
    records = sf.query(f"SELECT Id, Product2.Name, Quantity, product2.family FROM OpportunityLineItem"
                       f" WHERE Id IN ({ids}) ORDER BY Id")["records"]
    product_url = f"/services/data/v62.0/sobjects/Product2/{sf_id('Product2', ROW)}"
    assert records[0] == {
        "attributes": {"type": "OpportunityLineItem",
                       "url": f"/services/data/v62.0/sobjects/OpportunityLineItem/{records[0]['Id']}"},
        "Id": sf_id("OpportunityLineItem", ROW),
        "Product2": {"attributes": {"type": "Product2", "url": product_url}, "Name": "Platform Pro",
                     "Family": "Platform"},
        "Quantity": 3.0}
    assert list(records[0]) == ["attributes", "Id", "Product2", "Quantity"]
    assert records[1]["Product2"] is None and records[1]["Id"] == sf_id("OpportunityLineItem", ROW + 1)


@pytest.mark.parametrize(("text", "detail"), [
    ("SELECT Id, Product2.IsActive FROM OpportunityLineItem", "No such column 'IsActive' on entity 'Product2'"),
    ("SELECT Id, Opportunity.Name FROM OpportunityLineItem", "Didn't understand relationship 'Opportunity'"),
    ("SELECT Id, Product2.Name FROM Task", "Didn't understand relationship 'Product2'"),
    ("SELECT Id FROM OpportunityLineItem WHERE Product2.Name = 'x'", "Didn't understand relationship"),
])
def test_only_the_defined_relationship_fields_are_accepted(sf: Salesforce, text: str, detail: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(text)
    [error] = caught.value.content
    assert error["errorCode"] == "INVALID_FIELD" and detail in error["message"]


def test_relationship_fields_are_columns_in_bulk_csv(org: SandboxServer, sf: Salesforce) -> None:
    set_polls_to_complete(org.state, 0)
    jobs = sf.bulk2.OpportunityLineItem._client
    job_id = jobs.create_job(Operation.query_all, "SELECT Id, Product2Id, Product2.Name, Product2.Family,"
                                                  " TotalPrice FROM OpportunityLineItem WHERE Id >= "
                                                  f"'{sf_id('OpportunityLineItem', ROW)}' ORDER BY Id")["id"]
    assert jobs.get_job(job_id, True)["state"] == "JobComplete"
    text = jobs.get_query_results(job_id)["records"]
    assert text.splitlines()[0] == '"Id","Product2Id","Product2.Name","Product2.Family","TotalPrice"'
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["Product2.Name"], row["Product2.Family"], row["TotalPrice"]) for row in rows] == [
        ("Platform Pro", "Platform", "298.5"), ("", "", "40.0"), ("Platform Pro", "Platform", "10.0")]
    assert rows[1]["Product2Id"] == ""


def test_tasks_are_calls_and_emails(org: SandboxServer, sf: Salesforce) -> None:
    email_task = EMAIL_TASK_OFFSET + ROW
    record = one(sf, "Subject, OwnerId, WhatId, TaskSubtype, ActivityDate, CallType, CallDurationInSeconds,"
                     " CallDisposition, Status", "Task", email_task)
    assert record == {**record, "Subject": "Pricing follow-up", "OwnerId": sf_id("User", 1),
                      "WhatId": sf_id("Opportunity", 1), "TaskSubtype": "Email",
                      "ActivityDate": datetime.fromtimestamp(START_MS / 1000, UTC).date().isoformat(),
                      "CallType": None, "CallDurationInSeconds": None, "CallDisposition": None, "Status": "Completed"}
    emails = {sf_id("Task", EMAIL_TASK_OFFSET + row["id"])
              for row in org.state.query("SELECT id FROM emails WHERE deleted = 0")}
    calls = org.state.query("SELECT id, direction FROM calls WHERE deleted = 0")
    by_subtype = {subtype: {item["Id"]: item["CallType"] for item in sf.query_all(
        f"SELECT Id, CallType FROM Task WHERE TaskSubtype = '{subtype}'")["records"]} for subtype in ("Call", "Email")}
    assert set(by_subtype["Email"]) == emails
    assert by_subtype["Call"] == {sf_id("Task", row["id"]): row["direction"] for row in calls}


def test_events_are_meetings(sf: Salesforce) -> None:
    record = one(sf, "Subject, OwnerId, WhatId, StartDateTime, EndDateTime, DurationInMinutes, ActivityDate, Type",
                 "Event", ROW)
    assert record == {**record, "Subject": "Demo", "OwnerId": sf_id("User", 2), "WhatId": sf_id("Opportunity", 3),
                      "StartDateTime": wire(START_MS), "EndDateTime": wire(START_MS + 45 * 60_000),
                      "DurationInMinutes": 45, "Type": "Meeting",
                      "ActivityDate": datetime.fromtimestamp(START_MS / 1000, UTC).date().isoformat()}


def test_leads_and_the_contacts_converted_from_them(sf: Salesforce) -> None:
    fields = ("Name, FirstName, LastName, Email, Company, Country, OwnerId, LeadSource, Status, IsConverted,"
              " ConvertedDate, ConvertedAccountId, ConvertedContactId, CreatedDate")
    open_lead, converted = one(sf, fields, "Lead", ROW), one(sf, fields, "Lead", ROW + 1)
    assert open_lead == {**open_lead, "Name": "Ines Costa", "Company": "Costa Ltd", "Country": "Spain",
                         "Status": "Working - Contacted", "IsConverted": False, "ConvertedDate": None,
                         "ConvertedAccountId": None, "ConvertedContactId": None, "LeadSource": "Web",
                         "OwnerId": sf_id("User", 2), "CreatedDate": wire(CREATED_MS)}
    assert converted == {**converted, "Name": "Hiro Ito", "IsConverted": True, "Status": "Closed - Converted",
                         "ConvertedDate": datetime.fromtimestamp(START_MS / 1000, UTC).date().isoformat(),
                         "ConvertedAccountId": sf_id("Account", 1), "ConvertedContactId": sf_id("Contact", ROW + 1)}
    contact = one(sf, "Name, FirstName, LastName, Email, AccountId, OwnerId, LeadSource, CreatedDate,"
                      " SystemModstamp", "Contact", ROW + 1)
    assert contact == {**contact, "Name": "Hiro Ito", "FirstName": "Hiro", "LastName": "Ito",
                       "Email": "hiro@example.com", "AccountId": sf_id("Account", 1), "OwnerId": sf_id("User", 2),
                       "LeadSource": "Web", "CreatedDate": wire(START_MS), "SystemModstamp": wire(MODIFIED_MS)}
    assert not sf.query(f"SELECT Id FROM Contact WHERE Id = '{sf_id('Contact', ROW)}'")["records"]


def test_cases_and_campaigns(sf: Salesforce) -> None:
    fields = "CaseNumber, Subject, AccountId, OwnerId, Status, IsClosed, ClosedDate, Priority, Origin"
    escalated, closed = one(sf, fields, "Case", ROW), one(sf, fields, "Case", ROW + 1)
    assert escalated == {**escalated, "CaseNumber": f"{ROW:08d}", "Subject": "Login broken",
                         "AccountId": sf_id("Account", 1), "OwnerId": sf_id("User", 3), "Status": "Escalated",
                         "IsClosed": False, "ClosedDate": None, "Priority": "High", "Origin": "Web"}
    assert (closed["Status"], closed["IsClosed"], closed["ClosedDate"]) == ("Closed", True, wire(START_MS))
    fields = ("Name, Type, Status, IsActive, StartDate, EndDate, BudgetedCost, ActualCost, ExpectedRevenue,"
              " OwnerId")
    running, done = one(sf, fields, "Campaign", ROW), one(sf, fields, "Campaign", ROW + 1)
    assert running == {**running, "Name": "Q4 webinar", "Type": "Webinar", "Status": "In Progress",
                       "IsActive": True, "StartDate": "2026-11-01", "EndDate": "2026-11-30", "BudgetedCost": 5000.0,
                       "ActualCost": 4200.5, "ExpectedRevenue": 90000.0, "OwnerId": sf_id("User", 1)}
    assert (done["IsActive"], done["EndDate"]) == (False, None)
    active = sf.query_all("SELECT Id FROM Campaign WHERE IsActive = true AND Type = 'webinar'")["records"]
    assert sf_id("Campaign", ROW) in {record["Id"] for record in active}


def test_accounts_carry_their_region(org: SandboxServer, sf: Salesforce) -> None:
    region_of = {country: region for region, countries in COUNTRIES.items() for country in countries}
    rows = org.state.query("SELECT id, country FROM accounts WHERE deleted = 0")
    records = sf.query_all("SELECT Id, Region__c FROM Account")["records"]
    assert {record["Id"]: record["Region__c"] for record in records} == {
        sf_id("Account", row["id"]): region_of[row["country"]] for row in rows}
    emea = sf.query_all("SELECT Id FROM Account WHERE Region__c = 'EMEA'")["records"]
    assert len(emea) == sum(region_of[row["country"]] == "EMEA" for row in rows)


def test_describe_advertises_every_object(sf: Salesforce) -> None:
    summaries = {entry["name"]: entry for entry in sf.describe()["sobjects"]}
    for sobject in (*OBJECTS, "Account"):
        assert summaries[sobject]["keyPrefix"] == SF_PREFIX[sobject] and summaries[sobject]["queryable"]
        fields = {field["name"] for field in getattr(sf, sobject).describe()["fields"]}
        assert {spec.name for spec in SCHEMAS[sobject.lower()].fields} == fields
        assert {"Id", "CreatedDate", "SystemModstamp", "LastModifiedDate", "IsDeleted"} <= fields
    line_item = {field["name"]: field for field in sf.OpportunityLineItem.describe()["fields"]}
    assert line_item["Product2Id"]["referenceTo"] == ["Product2"]
    assert line_item["Product2Id"]["relationshipName"] == "Product2"
    assert line_item["TotalPrice"]["type"] == line_item["UnitPrice"]["type"] == "currency"
    assert line_item["Quantity"]["type"] == "double"
    region = next(field for field in sf.Account.describe()["fields"] if field["name"] == "Region__c")
    assert region["custom"] and region["type"] == "string"
    task = {field["name"]: field for field in sf.Task.describe()["fields"]}
    assert {"Call", "Email"} <= {value["value"] for value in task["TaskSubtype"]["picklistValues"]}
    families = {field["name"]: field for field in sf.Product2.describe()["fields"]}["Family"]["picklistValues"]
    assert [value["value"] for value in families] == ["Platform", "Add-on", "Services"]
    contact = {field["name"]: field for field in sf.Lead.describe()["fields"]}["ConvertedContactId"]
    assert contact["referenceTo"] == ["Contact"]


@pytest.mark.parametrize("sobject", sorted({*OBJECTS, "Account", "Opportunity"}))
def test_get_deleted_serves_every_replicated_object(org: SandboxServer, sf: Salesforce, sobject: str) -> None:
    if sobject in ("Account", "Opportunity"):
        table = "accounts" if sobject == "Account" else "deals"
        org.state.query(f"UPDATE {table} SET deleted = 1, modified_ms = ? WHERE id = 2", (DELETED_MS,))
        number = 2
    else:
        number = DELETED[sobject]
    result = getattr(sf, sobject).deleted(CLOCK - timedelta(hours=1), CLOCK)
    assert {"id": sf_id(sobject, number), "deletedDate": wire(DELETED_MS)} in result["deletedRecords"]
    assert all(record["id"].startswith(SF_PREFIX[sobject]) for record in result["deletedRecords"])


def test_get_deleted_of_contacts_lists_only_converted_leads(org: SandboxServer, sf: Salesforce) -> None:
    org.state.query("UPDATE leads SET deleted = 1, modified_ms = ? WHERE id = ?", (DELETED_MS, ROW))
    try:
        contacts = {record["id"] for record in sf.Contact.deleted(CLOCK - timedelta(hours=1), CLOCK)["deletedRecords"]}
        leads = {record["id"] for record in sf.Lead.deleted(CLOCK - timedelta(hours=1), CLOCK)["deletedRecords"]}
    finally:
        org.state.query("UPDATE leads SET deleted = 0, modified_ms = ? WHERE id = ?", (MODIFIED_MS, ROW))
    assert sf_id("Lead", ROW) in leads and sf_id("Contact", ROW) not in contacts
    with pytest.raises(SalesforceResourceNotFound):
        sf.User.deleted(CLOCK - timedelta(hours=1), CLOCK)


def test_task_pages_over_calls_and_emails_stay_indexed(tmp_path: Path) -> None:
    """~100k Tasks (a UNION ALL view): each arm is read through its SystemModstamp index."""
    state = SandboxState(tmp_path)
    stamp = CLOCK_MS - 10**9
    with state.transaction() as conn:
        conn.executemany("INSERT INTO calls (id, subject, direction, created_ms, modified_ms) VALUES"
                         " (?, 'c', 'Inbound', ?, ?)", [(i, stamp, stamp + i * 7919 % 10**9) for i in range(1, 60_001)])
        conn.executemany("INSERT INTO emails (id, subject, direction, created_ms, modified_ms) VALUES"
                         " (?, 'e', 'Outbound', ?, ?)", [(i, stamp, stamp + i * 104_729 % 10**9)
                                                         for i in range(1, 40_001)])
    ensure_indexes(state)
    since = datetime.fromtimestamp((stamp + 9 * 10**8) // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = (f"SELECT Id, Subject, SystemModstamp FROM Task WHERE (SystemModstamp = {since} AND Id > "
            f"'{sf_id('Task', 5)}') OR SystemModstamp > {since} ORDER BY SystemModstamp, Id LIMIT 2001")
    sql, params = soql.compile_soql(text, SCHEMAS).select()
    plan = " ".join(row["detail"] for row in state.query("EXPLAIN QUERY PLAN " + sql, params))
    assert "sf_ix_calls_modstamp" in plan and "sf_ix_emails_modstamp" in plan
    started = datetime.now(UTC)
    rows = state.query(sql, params)
    assert len(rows) == 2001 and datetime.now(UTC) - started < timedelta(seconds=2)
    keys = [(row[3], row[0]) for row in rows]
    assert keys == sorted(keys)
    state.close()
