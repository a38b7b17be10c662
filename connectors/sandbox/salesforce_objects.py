"""The sandbox org's sales objects beyond the core four: products and line items, meetings (Event),
leads and the contacts converted from them, cases and campaigns, the OKR custom objects (read
from the metadata okr-sync ships, so the sandbox's describe is what an admin deploys), plus the
field helpers every sObject definition uses (connectors.sandbox.salesforce_schema assembles the
org's objects).

Each field is SQL over one sandbox table (see connectors/sandbox/state.py); picklist values come
from the generator's value domains, so describe advertises exactly what the rows hold.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

from connectors.sandbox import soql
from connectors.sandbox.generator import (
    CAMPAIGN_STATUSES,
    CAMPAIGN_TYPES,
    CASE_ORIGINS,
    CASE_PRIORITIES,
    CASE_STATUSES,
    LEAD_SOURCES,
    LEAD_STATUSES,
    PRODUCT_FAMILIES,
    REGION_OF_COUNTRY,
)

Field = soql.FieldSpec
MODSTAMP_SQL = "modified_ms / 1000"  # whole seconds, as a real org serves them; indexed by the API


def sql_text(text: str) -> str:
    """An SQL string literal of one of our own constants (request data is always bound)."""
    return "'" + text.replace("'", "''") + "'"


def audit(created: str = "created_ms", deleted: str | None = "deleted") -> tuple[soql.FieldSpec, ...]:
    fields = (Field("CreatedDate", f"{created} / 1000", "datetime", "Created Date", nillable=False),
              Field("SystemModstamp", MODSTAMP_SQL, "datetime", "System Modstamp", nillable=False),
              Field("LastModifiedDate", MODSTAMP_SQL, "datetime", "Last Modified Date", nillable=False))
    if deleted is None:
        return fields
    return (*fields, Field("IsDeleted", deleted, "boolean", "Deleted", nillable=False))


def id_field(sobject: str) -> soql.FieldSpec:
    return Field("Id", "id", "id", "Record ID", reference_to=sobject, nillable=False, length=18)


def ref(name: str, sql: str, target: str, label: str) -> soql.FieldSpec:
    return Field(name, sql, "reference", label, reference_to=target, length=18)


def text(name: str, sql: str, label: str, length: int = 255, **facts: object) -> soql.FieldSpec:
    return Field(name, sql, "string", label, length=length, **facts)  # type: ignore[arg-type]


def picklist(name: str, sql: str, label: str, values: tuple[str, ...], **facts: object) -> soql.FieldSpec:
    return Field(name, sql, "picklist", label, length=255, picklist=values, **facts)  # type: ignore[arg-type]


def money(name: str, sql: str, label: str) -> soql.FieldSpec:
    return Field(name, sql, "currency", label, precision=18, scale=2)


def org_date(ms_column: str) -> str:
    """The org's calendar date (YYYY-MM-DD, in its time zone) of a millisecond timestamp column."""
    return f"local_date({ms_column})"


def in_values(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(sql_text(value) for value in values) + ")"


REGION_SQL = ("CASE country " + " ".join(f"WHEN {sql_text(country)} THEN {sql_text(region)}"
                                         for country, region in REGION_OF_COUNTRY.items()) + " END")
_NAME = "TRIM(COALESCE(first_name, '') || ' ' || COALESCE(last_name, ''))"
_CONVERTED = "converted_ms IS NOT NULL"
_LIVE = "deleted = 0"

PRODUCT2 = soql.SObjectSchema("Product2", "Product", "products", (
    id_field("Product2"),
    text("Name", "name", "Product Name", nillable=False),
    picklist("Family", "family", "Product Family", PRODUCT_FAMILIES),
    Field("IsActive", "is_active", "boolean", "Active", nillable=False),
    *audit()), live_where=_LIVE)

OPPORTUNITY_LINE_ITEM = soql.SObjectSchema("OpportunityLineItem", "Opportunity Product", "line_items", (
    id_field("OpportunityLineItem"),
    ref("OpportunityId", "deal_id", "Opportunity", "Opportunity ID"),
    ref("Product2Id", "product_id", "Product2", "Product ID"),
    Field("Quantity", "quantity", "double", "Quantity", precision=12, scale=2, nillable=False),
    money("UnitPrice", "unit_price", "Sales Price"),
    money("TotalPrice", "quantity * unit_price", "Total Price"),
    *audit()), live_where=_LIVE,
    relationships=(soql.Relationship("Product2", "Product2", "product_id", ("Name", "Family")),))

EVENT = soql.SObjectSchema("Event", "Event", "meetings", (
    id_field("Event"),
    Field("Subject", "subject", "combobox", "Subject", length=255),
    ref("OwnerId", "owner_id", "User", "Assigned To ID"),
    ref("WhatId", "deal_id", "Opportunity", "Related To ID"),
    Field("StartDateTime", "start_ms / 1000", "datetime", "Start Date Time"),
    Field("EndDateTime", "end_ms / 1000", "datetime", "End Date Time"),
    Field("DurationInMinutes", "(end_ms - start_ms) / 60000", "int", "Duration"),
    Field("ActivityDate", org_date("start_ms"), "date", "Due Date Only"),
    picklist("Type", "'Meeting'", "Type", ("Call", "Email", "Meeting", "Other")),
    *audit()), live_where=_LIVE)

LEAD = soql.SObjectSchema("Lead", "Lead", "leads", (
    id_field("Lead"),
    text("FirstName", "first_name", "First Name", 40),
    text("LastName", "last_name", "Last Name", 80, nillable=False),
    text("Name", _NAME, "Full Name", 121, nillable=False),
    Field("Email", "email", "email", "Email", length=80),
    text("Company", "company", "Company", nillable=False),
    text("Country", "country", "Country", 80),
    ref("OwnerId", "owner_id", "User", "Owner ID"),
    picklist("LeadSource", "lead_source", "Lead Source", LEAD_SOURCES),
    picklist("Status", "status", "Status", LEAD_STATUSES, nillable=False),
    Field("IsConverted", _CONVERTED, "boolean", "Converted", nillable=False),
    Field("ConvertedDate", org_date("converted_ms"), "date", "Converted Date"),
    ref("ConvertedAccountId", f"CASE WHEN {_CONVERTED} THEN account_id END", "Account", "Converted Account ID"),
    ref("ConvertedContactId", f"CASE WHEN {_CONVERTED} THEN id END", "Contact", "Converted Contact ID"),
    *audit()), live_where=_LIVE)

CONTACT = soql.SObjectSchema("Contact", "Contact", "leads", (
    id_field("Contact"),
    text("FirstName", "first_name", "First Name", 40),
    text("LastName", "last_name", "Last Name", 80, nillable=False),
    text("Name", _NAME, "Full Name", 121, nillable=False),
    Field("Email", "email", "email", "Email", length=80),
    ref("AccountId", "account_id", "Account", "Account ID"),
    ref("OwnerId", "owner_id", "User", "Owner ID"),
    picklist("LeadSource", "lead_source", "Lead Source", LEAD_SOURCES),
    *audit(created="converted_ms")), base_where=_CONVERTED, live_where=_LIVE)

CASE = soql.SObjectSchema("Case", "Case", "cases", (
    id_field("Case"),
    text("CaseNumber", "printf('%08d', id)", "Case Number", 30, nillable=False),
    text("Subject", "subject", "Subject"),
    ref("AccountId", "account_id", "Account", "Account ID"),
    ref("OwnerId", "owner_id", "User", "Owner ID"),
    picklist("Status", "status", "Status", CASE_STATUSES),
    Field("IsClosed", "closed_ms IS NOT NULL", "boolean", "Closed", nillable=False),
    Field("ClosedDate", "closed_ms / 1000", "datetime", "Closed Date"),
    picklist("Priority", "priority", "Priority", CASE_PRIORITIES),
    picklist("Origin", "origin", "Case Origin", CASE_ORIGINS),
    *audit()), live_where=_LIVE)

CAMPAIGN = soql.SObjectSchema("Campaign", "Campaign", "campaigns", (
    id_field("Campaign"),
    text("Name", "name", "Name", 80, nillable=False),
    picklist("Type", "campaign_type", "Type", CAMPAIGN_TYPES),
    picklist("Status", "status", "Status", CAMPAIGN_STATUSES),
    Field("IsActive", in_values("status", ("Planned", "In Progress")), "boolean", "Active", nillable=False),
    Field("StartDate", "start_date", "date", "Start Date"),
    Field("EndDate", "end_date", "date", "End Date"),
    money("BudgetedCost", "budgeted_cost", "Budgeted Cost in Campaign"),
    money("ActualCost", "actual_cost", "Actual Cost in Campaign"),
    money("ExpectedRevenue", "expected_revenue", "Expected Revenue in Campaign"),
    ref("OwnerId", "owner_id", "User", "Owner ID"),
    *audit()), live_where=_LIVE)

SALES_OBJECTS = (PRODUCT2, OPPORTUNITY_LINE_ITEM, EVENT, LEAD, CONTACT, CASE, CAMPAIGN)


# -- the OKR custom objects, from connectors/salesforce/metadata (Salesforce DX source format) ---------
OKR_METADATA = Path(__file__).parents[1] / "salesforce" / "metadata" / "objects"
OKR_OBJECT_NAMES = ("OKR_Objective__c", "OKR_Key_Result__c", "OKR_Check_In__c")  # parents first
OKR_EXTERNAL_ID = "Key__c"
_MD = {"md": "http://soap.sforce.com/2006/04/metadata"}
DEFAULT_OWNER = 1  # the integration user: owner of records written without an OwnerId


def _tag(element: ElementTree.Element, tag: str, default: str = "") -> str:
    found = element.find(f"md:{tag}", _MD)
    return default if found is None or found.text is None else found.text


def _okr_field(path: Path) -> soql.FieldSpec:
    """One field-meta.xml as the org's describe shows it; values live in custom_records.fields (JSON)."""
    root = ElementTree.parse(path).getroot()
    name, kind = _tag(root, "fullName"), _tag(root, "type")
    json_value = f"json_extract(fields, '$.{name}')"
    facts: dict[str, object] = {"label": _tag(root, "label"), "custom": True, "createable": True,
                                "updateable": True}
    if name == OKR_EXTERNAL_ID:
        return Field(name, "unique_key", "string", length=int(_tag(root, "length")),
                     external_id=_tag(root, "externalId") == "true", unique=_tag(root, "unique") == "true",
                     **facts)  # type: ignore[arg-type]
    if kind == "Text":
        return Field(name, json_value, "string", length=int(_tag(root, "length")), **facts)  # type: ignore[arg-type]
    if kind == "Number":
        return Field(name, json_value, "double", precision=int(_tag(root, "precision")),
                     scale=int(_tag(root, "scale")), **facts)  # type: ignore[arg-type]
    if kind == "Lookup":
        return Field(name, json_value, "reference", reference_to=_tag(root, "referenceTo"), length=18,
                     **facts)  # type: ignore[arg-type]
    if kind == "Checkbox":
        return Field(name, f"COALESCE({json_value}, 0)", "boolean", **facts)  # type: ignore[arg-type]
    if kind in ("Date", "DateTime"):
        sql = json_value + (" / 1000" if kind == "DateTime" else "")  # datetimes are stored in ms
        return Field(name, sql, kind.lower(), **facts)  # type: ignore[arg-type]
    raise ValueError(f"{path}: field type {kind} is not served by the sandbox")


def okr_object(name: str) -> soql.SObjectSchema:
    """One OKR custom object: Id, Name, OwnerId, its shipped fields and the audit fields."""
    folder = OKR_METADATA / name
    root = ElementTree.parse(folder / f"{name}.object-meta.xml").getroot()
    name_field = root.find("md:nameField", _MD)
    name_label = _tag(name_field, "label", "Name") if name_field is not None else "Name"
    shipped = tuple(_okr_field(path) for path in sorted((folder / "fields").glob("*.field-meta.xml")))
    owner = Field("OwnerId", f"COALESCE(json_extract(fields, '$.OwnerId'), {DEFAULT_OWNER})", "reference",
                  "Owner ID", reference_to="User", length=18, nillable=False, createable=True, updateable=True)
    return soql.SObjectSchema(name, _tag(root, "label"), "custom_records", (
        id_field(name),
        Field("Name", "json_extract(fields, '$.Name')", "string", name_label, length=80, nillable=False,
              createable=True, updateable=True),
        owner, *shipped, *audit(deleted="0")),
        base_where=f"crm = 'salesforce' AND object = {sql_text(name)}", custom=True, writable=True)


OKR_OBJECTS = tuple(okr_object(name) for name in OKR_OBJECT_NAMES)


# -- Chatter posts created through the API (connectors.sandbox.salesforce_activities) ----------------
FEED_ITEM = soql.SObjectSchema("FeedItem", "Feed Item", "custom_records", (
    id_field("FeedItem"),
    Field("ParentId", "json_extract(fields, '$.ParentId')", "reference", "Parent ID", reference_to="OKR_Key_Result__c",
          length=18, nillable=False, createable=True),
    Field("Body", "json_extract(fields, '$.Body')", "textarea", "Body", length=10000, createable=True),
    picklist("Type", "COALESCE(json_extract(fields, '$.Type'), 'TextPost')", "Feed Item Type",
             ("TextPost", "LinkPost", "ContentPost"), createable=True),
    Field("CreatedById", f"COALESCE(json_extract(fields, '$.CreatedById'), {DEFAULT_OWNER})", "reference",
          "Created By ID", reference_to="User", length=18, nillable=False),
    *audit(deleted="0")), base_where="crm = 'salesforce' AND object = 'FeedItem'")
