"""The sandbox org's Salesforce objects: each field's SQL over the sandbox tables, and describe.

One definition drives the SOQL compiler (WHERE / ORDER BY / SELECT), the wire rendering and
the describe calls, so what a query filters on is exactly what describe advertises.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox import soql
from connectors.sandbox.generator import DEAL_TYPES, INDUSTRIES, LEAD_SOURCES, STAGES
from connectors.sandbox.ids import SF_PREFIX
from connectors.sandbox.salesforce_objects import (
    FEED_ITEM,
    MODSTAMP_SQL,
    OKR_EXTERNAL_ID,
    OKR_OBJECTS,
    REGION_SQL,
    SALES_OBJECTS,
    org_date,
)
from connectors.sandbox.salesforce_objects import audit as _audit
from connectors.sandbox.salesforce_objects import id_field as _id
from connectors.sandbox.salesforce_objects import ref as _ref
from connectors.sandbox.salesforce_objects import sql_text as _sql_text

__all__ = ["MODSTAMP_SQL", "SCHEMAS", "SOBJECTS", "ApiError", "describe_global", "describe_sobject"]


class ApiError(Exception):
    """An error answered as Salesforce does: a status and a one-item JSON error list."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- the org's objects: field name -> SQL over the sandbox tables ---------------------------------
Field = soql.FieldSpec
KR_OBJECT = "OKR_Key_Result__c"
KR_EXTERNAL_ID = OKR_EXTERNAL_ID


_STAGE_LABEL = ("CASE stage " + " ".join(f"WHEN {_sql_text(key)} THEN {_sql_text(label)}"
                                         for key, (label, *_rest) in STAGES.items()) + " ELSE stage END")
_STAGE_CLOSED = "stage IN (" + ", ".join(_sql_text(key) for key, spec in STAGES.items() if spec[2]) + ")"
_STAGE_WON = "stage IN (" + ", ".join(_sql_text(key) for key, spec in STAGES.items() if spec[3]) + ")"


SOBJECTS: tuple[soql.SObjectSchema, ...] = (
    soql.SObjectSchema("User", "User", "owners", (
        _id("User"),
        Field("FirstName", "first_name", "string", "First Name", length=40),
        Field("LastName", "last_name", "string", "Last Name", length=80, nillable=False),
        Field("Name", "TRIM(COALESCE(first_name, '') || ' ' || last_name)", "string", "Full Name", length=121,
              nillable=False),
        Field("Email", "email", "email", "Email", length=128, nillable=False),
        Field("IsActive", "is_active", "boolean", "Active", nillable=False),
        Field("Department", "team", "string", "Department", length=80),
        Field("Division", "region", "string", "Division", length=80),
        *_audit(deleted=None)), live_where="deleted = 0"),
    soql.SObjectSchema("Account", "Account", "accounts", (
        _id("Account"),
        Field("Name", "name", "string", "Account Name", length=255, nillable=False),
        Field("BillingCountry", "country", "string", "Billing Country", length=80),
        Field("Industry", "industry", "picklist", "Industry", length=255, picklist=INDUSTRIES),
        Field("Type", "account_type", "picklist", "Account Type", length=255,
              picklist=("Customer", "Prospect")),
        _ref("OwnerId", "owner_id", "User", "Owner ID"),
        Field("Region__c", REGION_SQL, "string", "Region", length=40, custom=True),
        *_audit()), live_where="deleted = 0"),
    soql.SObjectSchema("Opportunity", "Opportunity", "deals", (
        _id("Opportunity"),
        Field("Name", "name", "string", "Name", length=120, nillable=False),
        _ref("AccountId", "account_id", "Account", "Account ID"),
        _ref("OwnerId", "owner_id", "User", "Owner ID"),
        Field("Type", "deal_type", "picklist", "Opportunity Type", length=255, picklist=DEAL_TYPES),
        Field("StageName", _STAGE_LABEL, "picklist", "Stage", length=255, nillable=False,
              picklist=tuple(spec[0] for spec in STAGES.values())),
        Field("Amount", "amount", "currency", "Amount", precision=18, scale=2),
        Field("Probability", "probability", "percent", "Probability (%)", precision=3),
        Field("IsClosed", _STAGE_CLOSED, "boolean", "Closed", nillable=False),
        Field("IsWon", _STAGE_WON, "boolean", "Won", nillable=False),
        Field("CloseDate", "close_date", "date", "Close Date", nillable=False),
        Field("LeadSource", "lead_source", "picklist", "Lead Source", length=255, picklist=LEAD_SOURCES),
        Field("FiscalQuarter", "(CAST(substr(close_date, 6, 2) AS INTEGER) + 2) / 3", "int",
              "Fiscal Quarter"),
        Field("FiscalYear", "CAST(substr(close_date, 1, 4) AS INTEGER)", "int", "Fiscal Year"),
        *_audit()), live_where="deleted = 0"),
    # Calls and emails: the tasks view (an email's Task number is its id + ids.EMAIL_TASK_OFFSET)
    soql.SObjectSchema("Task", "Task", "tasks", (
        _id("Task"),
        Field("Subject", "subject", "combobox", "Subject", length=255),
        _ref("OwnerId", "owner_id", "User", "Assigned To ID"),
        _ref("WhatId", "deal_id", "Opportunity", "Related To ID"),
        Field("TaskSubtype", "subtype", "picklist", "Task Subtype", length=40,
              picklist=("Task", "Email", "Call")),
        Field("ActivityDate", org_date("ts_ms"), "date", "Due Date Only"),
        Field("CallDurationInSeconds", "duration_s", "int", "Call Duration"),
        Field("CallType", "CASE WHEN subtype = 'Call' THEN direction END", "picklist", "Call Type", length=40,
              picklist=("Internal", "Inbound", "Outbound")),
        Field("CallDisposition", "outcome", "string", "Call Result", length=255),
        Field("Status", "'Completed'", "picklist", "Status", length=40, nillable=False,
              picklist=("Not Started", "In Progress", "Completed")),
        # okr-sync's alert key (metadata/objects/Activity): tasks written with it live apart, served by
        # connectors.sandbox.salesforce_activities by that key (SOQL sees only calls and emails)
        Field("OKR_Alert_Key__c", "NULL", "string", "OKR Alert Key", length=255, external_id=True, unique=True,
              custom=True, createable=True, updateable=True),
        *_audit()), live_where="+deleted = 0"),  # "+": each arm of the view pages by its SystemModstamp index
    *OKR_OBJECTS,
    FEED_ITEM,
    *SALES_OBJECTS,
)
SCHEMAS: dict[str, soql.SObjectSchema] = {schema.name.lower(): schema for schema in SOBJECTS}


def _relationship_name(name: str) -> str:
    """OwnerId -> Owner; a custom lookup Objective_Record__c -> Objective_Record__r."""
    return name.removesuffix("__c") + "__r" if name.endswith("__c") else name.removesuffix("Id")


def describe_field(spec: soql.FieldSpec) -> dict[str, Any]:
    reference = spec.type == "reference"
    return {
        "name": spec.name, "label": spec.label or spec.name, "type": spec.type, "custom": spec.custom,
        "externalId": spec.external_id, "unique": spec.unique, "caseSensitive": spec.unique,
        "idLookup": spec.type == "id" or spec.external_id, "nameField": spec.name == "Name",
        "nillable": spec.nillable, "createable": spec.createable, "updateable": spec.updateable,
        "filterable": True, "sortable": True, "calculated": False, "length": spec.length,
        "precision": spec.precision, "scale": spec.scale,
        "referenceTo": [spec.reference_to] if reference else [],
        "relationshipName": _relationship_name(spec.name) if reference else None,
        "picklistValues": [{"active": True, "defaultValue": False, "label": value, "value": value}
                           for value in spec.picklist],
    }


def _sobject_summary(schema: soql.SObjectSchema, version: str) -> dict[str, Any]:
    base = f"/services/data/{version}/sobjects/{schema.name}"
    return {"name": schema.name, "label": schema.label, "labelPlural": schema.label + "s",
            "keyPrefix": SF_PREFIX[schema.name], "custom": schema.custom, "queryable": True,
            "createable": schema.writable, "updateable": schema.writable, "deletable": False,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}}


def describe_sobject(schema: soql.SObjectSchema, version: str) -> dict[str, Any]:
    return {**_sobject_summary(schema, version), "fields": [describe_field(spec) for spec in schema.fields]}


def describe_global(version: str) -> dict[str, Any]:
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [_sobject_summary(schema, version) for schema in SOBJECTS]}


