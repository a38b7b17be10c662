"""The sandbox HubSpot portal's object model: properties, object types and the standard types.

A property is its API metadata plus the SQL expression that yields its value from a logical
table (catalogue constants only, never request text). The standard types below render the
org's logical tables (the same rows the Salesforce face serves) as HubSpot objects; custom
objects are built in hubspot_catalog from their schemas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox.generator import DEAL_TYPES, LEAD_SOURCES, LIFECYCLE_STAGES, REGION_OF_COUNTRY, STAGES
from connectors.sandbox.ids import HS_OFFSET

EPOCH_ISO = "1970-01-01T00:00:00.000Z"

# Portal stage ids of the default deal pipeline, by the generator's stage key.
STAGE_IDS = {"prospecting": "appointmentscheduled", "qualification": "qualifiedtobuy",
             "proposal": "presentationscheduled", "negotiation": "contractsent",
             "closed_won": "closedwon", "closed_lost": "closedlost"}
DEAL_TYPE_VALUES = {"New Business": "newbusiness", "Renewal": "renewal", "Upsell": "upsell"}
# Logical value -> portal value of the contacts', tickets', emails' and meetings' enumerations.
LEAD_STATUS_VALUES = {"Open - Not Contacted": "NEW", "Working - Contacted": "IN_PROGRESS",
                      "Closed - Converted": "CONNECTED", "Closed - Not Converted": "UNQUALIFIED"}
LEAD_STATUS_OPTIONS = (("NEW", "New"), ("OPEN", "Open"), ("IN_PROGRESS", "In Progress"),
                       ("OPEN_DEAL", "Open Deal"), ("UNQUALIFIED", "Unqualified"),
                       ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"), ("CONNECTED", "Connected"),
                       ("BAD_TIMING", "Bad Timing"))
# Ticket pipeline "0": (stage id, label, ticketState) by the cases table's status.
TICKET_STAGES = {"New": ("1", "New", "OPEN"), "Working": ("2", "Waiting on contact", "OPEN"),
                 "Escalated": ("3", "Waiting on us", "OPEN"), "Closed": ("4", "Closed", "CLOSED")}
TICKET_PRIORITIES = {"High": "HIGH", "Medium": "MEDIUM", "Low": "LOW"}
TICKET_SOURCES = {"Phone": ("PHONE", "Phone"), "Email": ("EMAIL", "Email"), "Web": ("FORM", "Web form")}
EMAIL_DIRECTIONS = {"Outbound": "EMAIL", "Inbound": "INCOMING_EMAIL"}
MEETING_OUTCOMES = {"Scheduled": "SCHEDULED", "Completed": "COMPLETED", "No show": "NO_SHOW",
                    "Canceled": "CANCELED", "Rescheduled": "RESCHEDULED"}


def iso_from_ms(ms: int | float | None) -> str | None:
    """HubSpot's datetime wire format: UTC, milliseconds, a trailing Z."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(int(ms) / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def ms_from_text(text: str) -> int:
    """A filter or write value for a date/datetime: ms epoch digits or an ISO date/datetime."""
    raw = str(text).strip()
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _case(column: str, mapping: dict[str, str]) -> str:
    """A SQL CASE rendering internal values as portal values (catalogue constants only)."""
    arms = " ".join(f"WHEN '{key}' THEN '{value}'" for key, value in mapping.items())
    return f"CASE {column} {arms} END"


@dataclass(frozen=True)
class PropertyDef:
    """One property: its API metadata and the SQL expression that yields its value."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    sql: str = "NULL"  # value to render; for datetimes an integer of ms
    filter_sql: str | None = None  # comparable form, when it differs from `sql`
    offset: int = 0  # ids: wire value = sql value + offset (filters stay index-friendly)
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    unique: bool = False
    group: str = "sandbox"
    hubspot_defined: bool = True
    description: str = ""
    display_order: int = -1

    @property
    def comparable(self) -> str:
        return self.filter_sql or self.sql

    def to_wire(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.offset:
            return str(int(value) + self.offset)
        if self.type == "datetime" and isinstance(value, int | float):
            return iso_from_ms(value)
        if isinstance(value, float):
            return repr(value)
        return str(value)

    def to_json(self, created_ms: int = 0) -> dict[str, Any]:
        """The properties API shape (also what the schemas API embeds)."""
        stamp = iso_from_ms(created_ms)
        data: dict[str, Any] = {
            "name": self.name, "label": self.label, "type": self.type, "fieldType": self.field_type,
            "description": self.description, "groupName": self.group,
            "options": [{"label": label, "value": value, "displayOrder": index, "hidden": False}
                        for index, (value, label) in enumerate(self.options)],
            "displayOrder": self.display_order, "calculated": False, "externalOptions": False,
            "hasUniqueValue": self.unique, "hidden": False, "formField": not self.hubspot_defined,
            "archived": False, "createdAt": stamp, "updatedAt": stamp, "dataSensitivity": "non_sensitive",
            "modificationMetadata": {"archivable": not self.hubspot_defined,
                                     "readOnlyDefinition": self.hubspot_defined, "readOnlyValue": False},
        }
        if self.hubspot_defined:
            data["hubspotDefined"] = True
        return data


@dataclass(frozen=True)
class ObjectType:
    """An object type and where its records live."""

    name: str  # "deals", "okr_key_result"
    type_id: str  # "0-3", "2-1000001"
    table: str
    where: str  # base condition of live records (catalogue SQL, no user text)
    params: tuple[Any, ...]
    id_offset: int
    created_sql: str
    updated_sql: str
    properties: dict[str, PropertyDef]
    defaults: tuple[str, ...]
    searchable: tuple[str, ...] = ()
    custom: bool = False
    schema: dict[str, Any] = field(default_factory=dict)  # custom objects: the schemas API record

    @property
    def archived_where(self) -> str:
        return "0" if self.custom else self.where.replace("deleted = 0", "deleted = 1")

    @property
    def unique_properties(self) -> tuple[str, ...]:
        return tuple(name for name, prop in self.properties.items() if prop.unique)

    def record_id(self, number: int) -> str:
        return str(number + self.id_offset)

    def names(self) -> set[str]:
        names = {self.name, self.type_id}
        if self.schema:
            names.add(self.schema["fullyQualifiedName"])
        if self.name.endswith("s"):
            names.add(self.name[:-1])
        return names


def system_properties(offset: int, created: str, updated: str, *, created_name: str,
                      modified_name: str = "hs_lastmodifieddate") -> list[PropertyDef]:
    """hs_object_id and the create/modify dates (contacts name the latter `lastmodifieddate`)."""
    return [
        PropertyDef("hs_object_id", "Record ID", "number", "number", "id", offset=offset),
        PropertyDef(created_name, "Create Date", "datetime", "date", created),
        PropertyDef(modified_name, "Last Modified Date", "datetime", "date", updated),
    ]


def owner_prop(column: str = "owner_id") -> PropertyDef:
    return PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", column,
                       offset=HS_OFFSET["owners"])


def _enum(name: str, label: str, column: str, values: dict[str, str], options: tuple[tuple[str, str], ...],
          field_type: str = "select") -> PropertyDef:
    """An enumeration whose portal value is a CASE over a logical column."""
    return PropertyDef(name, label, "enumeration", field_type, _case(column, values), options=options)


def lead_source_prop(group: str) -> PropertyDef:
    """The portal's custom lead source enumeration (deals and contacts)."""
    return PropertyDef("lead_source", "Lead Source", "enumeration", "select", "lead_source",
                       options=tuple((label, label) for label in LEAD_SOURCES), hubspot_defined=False,
                       group=group)


def _deal_props() -> list[PropertyDef]:
    closed = "('closed_won', 'closed_lost')"
    return [
        PropertyDef("dealname", "Deal Name", sql="name"),
        PropertyDef("amount", "Amount", "number", "number", "amount"),
        _enum("dealstage", "Deal Stage", "stage", STAGE_IDS,
              tuple((STAGE_IDS[key], STAGES[key][0]) for key in STAGES), "radio"),
        PropertyDef("pipeline", "Pipeline", "enumeration", "select", "'default'",
                    options=(("default", "Sales Pipeline"),)),
        PropertyDef("closedate", "Close Date", "datetime", "date",
                    "local_midnight_ms(close_date)"),
        _enum("dealtype", "Deal Type", "deal_type", DEAL_TYPE_VALUES,
              tuple((DEAL_TYPE_VALUES[label], label) for label in DEAL_TYPES), "radio"),
        PropertyDef("hs_deal_stage_probability", "Deal Stage Probability", "number", "number",
                    "(probability / 100.0)"),
        lead_source_prop("dealinformation"),
        owner_prop(),
        PropertyDef("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox",
                    f"CASE WHEN stage IN {closed} THEN 'true' ELSE 'false' END"),
        PropertyDef("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox",
                    "CASE WHEN stage = 'closed_won' THEN 'true' ELSE 'false' END"),
        *system_properties(HS_OFFSET["deals"], "created_ms", "modified_ms", created_name="createdate"),
    ]


def _company_props() -> list[PropertyDef]:
    regions = tuple(dict.fromkeys(REGION_OF_COUNTRY.values()))
    return [
        PropertyDef("name", "Company name", sql="name"),
        PropertyDef("country", "Country/Region", sql="country"),
        PropertyDef("industry", "Industry", sql="industry"),
        _enum("type", "Type", "account_type", {"Customer": "CUSTOMER", "Prospect": "PROSPECT"},
              (("PROSPECT", "Prospect"), ("CUSTOMER", "Customer"))),
        owner_prop(),
        PropertyDef("region", "Region", sql=_case("country", REGION_OF_COUNTRY), hubspot_defined=False,
                    group="companyinformation", description=f"Sales region of the country: {', '.join(regions)}"),
        *system_properties(HS_OFFSET["companies"], "created_ms", "modified_ms", created_name="createdate"),
    ]


def _engagement_props() -> dict[str, list[PropertyDef]]:
    """Calls, emails and meetings: engagements dated by hs_timestamp, linked to one deal."""
    def engagement(kind: str) -> list[PropertyDef]:
        return [owner_prop(), *system_properties(HS_OFFSET[kind], "created_ms", "modified_ms",
                                                  created_name="hs_createdate")]

    return {
        "calls": [
            PropertyDef("hs_timestamp", "Activity date", "datetime", "date", "ts_ms"),
            PropertyDef("hs_call_title", "Call Title", sql="subject"),
            PropertyDef("hs_call_duration", "Call duration", "number", "number", "(duration_s * 1000)"),
            PropertyDef("hs_call_direction", "Call direction", "enumeration", "select", "upper(direction)",
                        options=(("INBOUND", "Inbound"), ("OUTBOUND", "Outbound"))),
            PropertyDef("hs_call_disposition", "Call outcome", sql="outcome"),
            PropertyDef("hs_call_status", "Call status", "enumeration", "select", "'COMPLETED'",
                        options=(("COMPLETED", "Completed"),)),
            *engagement("calls"),
        ],
        "emails": [
            PropertyDef("hs_timestamp", "Activity date", "datetime", "date", "ts_ms"),
            PropertyDef("hs_email_subject", "Email subject", sql="subject"),
            _enum("hs_email_direction", "Email direction", "direction", EMAIL_DIRECTIONS,
                  (("EMAIL", "Email"), ("INCOMING_EMAIL", "Incoming email"),
                   ("FORWARDED_EMAIL", "Forwarded email"))),
            *engagement("emails"),
        ],
        "meetings": [
            PropertyDef("hs_timestamp", "Activity date", "datetime", "date", "start_ms"),
            PropertyDef("hs_meeting_title", "Meeting name", sql="subject"),
            PropertyDef("hs_meeting_start_time", "Start time", "datetime", "date", "start_ms"),
            PropertyDef("hs_meeting_end_time", "End time", "datetime", "date", "end_ms"),
            _enum("hs_meeting_outcome", "Meeting outcome", "outcome", MEETING_OUTCOMES,
                  tuple((value, label) for label, value in MEETING_OUTCOMES.items())),
            *engagement("meetings"),
        ],
    }


def _line_item_props() -> list[PropertyDef]:
    return [
        PropertyDef("name", "Name", sql="(SELECT p.name FROM products p WHERE p.id = line_items.product_id)"),
        PropertyDef("hs_product_id", "Product ID", "number", "number", "product_id",
                    offset=HS_OFFSET["products"]),
        PropertyDef("quantity", "Quantity", "number", "number", "quantity"),
        PropertyDef("price", "Unit price", "number", "number", "unit_price"),
        PropertyDef("amount", "Net price", "number", "number", "ROUND(quantity * unit_price, 2)"),
        *system_properties(HS_OFFSET["line_items"], "created_ms", "modified_ms", created_name="createdate"),
    ]


def _contact_props() -> list[PropertyDef]:
    return [
        PropertyDef("firstname", "First Name", sql="first_name"),
        PropertyDef("lastname", "Last Name", sql="last_name"),
        PropertyDef("email", "Email", sql="email"),
        PropertyDef("company", "Company Name", sql="company"),
        PropertyDef("country", "Country/Region", sql="country"),
        PropertyDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "lifecycle",
                    options=tuple(LIFECYCLE_STAGES.items())),
        _enum("hs_lead_status", "Lead Status", "status", LEAD_STATUS_VALUES, LEAD_STATUS_OPTIONS, "radio"),
        lead_source_prop("contactinformation"),
        owner_prop(),
        *system_properties(HS_OFFSET["contacts"], "created_ms", "modified_ms", created_name="createdate",
                           modified_name="lastmodifieddate"),
    ]


def _ticket_props() -> list[PropertyDef]:
    stages = {status: stage for status, (stage, _label, _state) in TICKET_STAGES.items()}
    sources = {origin: value for origin, (value, _label) in TICKET_SOURCES.items()}
    return [
        PropertyDef("subject", "Ticket name", sql="subject"),
        PropertyDef("hs_pipeline", "Pipeline", "enumeration", "select", "'0'",
                    options=(("0", "Support Pipeline"),)),
        _enum("hs_pipeline_stage", "Ticket status", "status", stages,
              tuple((stage, label) for stage, label, _state in TICKET_STAGES.values())),
        _enum("hs_ticket_priority", "Priority", "priority", TICKET_PRIORITIES,
              tuple((value, label) for label, value in TICKET_PRIORITIES.items())),
        _enum("source_type", "Source", "origin", sources, tuple(TICKET_SOURCES.values())),
        PropertyDef("closed_date", "Close date", "datetime", "date", "closed_ms"),
        owner_prop(),
        *system_properties(HS_OFFSET["tickets"], "created_ms", "modified_ms", created_name="createdate"),
    ]


def standard_types() -> list[ObjectType]:
    """The portal's standard object types over the logical tables."""
    engagements = _engagement_props()

    def standard(name: str, type_id: str, table: str, props: list[PropertyDef],
                 defaults: tuple[str, ...], searchable: tuple[str, ...]) -> ObjectType:
        return ObjectType(name, type_id, table, "deleted = 0", (), HS_OFFSET[name], "created_ms",
                          "modified_ms", {prop.name: prop for prop in props}, defaults, searchable)

    dates = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
    return [
        standard("contacts", "0-1", "leads", _contact_props(),
                 ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
                 ("firstname", "lastname", "email")),
        standard("companies", "0-2", "accounts", _company_props(),
                 ("createdate", "hs_lastmodifieddate", "hs_object_id", "name"), ("name",)),
        standard("deals", "0-3", "deals", _deal_props(),
                 ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
                  "hs_object_id", "pipeline"), ("dealname",)),
        standard("tickets", "0-5", "cases", _ticket_props(),
                 ("createdate", "hs_lastmodifieddate", "hs_object_id", "hs_pipeline", "hs_pipeline_stage",
                  "hs_ticket_priority", "subject"), ("subject",)),
        standard("line_items", "0-8", "line_items", _line_item_props(),
                 ("amount", "createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"),
                 ("name",)),
        standard("meetings", "0-47", "meetings", engagements["meetings"], dates, ("hs_meeting_title",)),
        standard("calls", "0-48", "calls", engagements["calls"], dates, ("hs_call_title",)),
        standard("emails", "0-49", "emails", engagements["emails"], dates, ("hs_email_subject",)),
    ]


def stage_json(stage_id: str, label: str, order: int, metadata: dict[str, str]) -> dict[str, Any]:
    """A pipeline stage; default-pipeline stages carry createdAt = epoch, as in HubSpot."""
    return {"id": stage_id, "label": label, "displayOrder": order, "archived": False, "metadata": metadata,
            "createdAt": EPOCH_ISO, "updatedAt": EPOCH_ISO, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}


def pipeline_json(pipeline_id: str, label: str, stages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": pipeline_id, "label": label, "displayOrder": 0, "archived": False,
            "createdAt": EPOCH_ISO, "updatedAt": EPOCH_ISO, "stages": stages}


def pipelines_of(object_name: str) -> list[dict[str, Any]]:
    """GET /crm/v3/pipelines/{type}: deals' "default" and tickets' "0" (no other type has pipelines)."""
    if object_name == "deals":
        return [pipeline_json("default", "Sales Pipeline", [
            stage_json(STAGE_IDS[key], label, order,
                        {"isClosed": str(closed).lower(), "probability": repr(probability / 100)})
            for order, (key, (label, probability, closed, _won)) in enumerate(STAGES.items())])]
    if object_name == "tickets":
        return [pipeline_json("0", "Support Pipeline", [
            stage_json(stage, label, order, {"ticketState": state})
            for order, (stage, label, state) in enumerate(TICKET_STAGES.values())])]
    return []
