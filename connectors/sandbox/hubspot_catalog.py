"""What the sandbox HubSpot portal knows: object types, their properties and their SQL.

One catalogue drives the properties and schemas APIs, the search compiler and the rendering
of records, so every property the portal advertises is one a search can filter and sort on.
Standard objects read the shared logical tables (the same org the Salesforce face serves);
custom objects (the pre-created `okr_key_result` and any created through the schemas API)
keep their records in `custom_records` as JSON, with every value stored as its wire string.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox.generator import DEAL_TYPES, LEAD_SOURCES, STAGES
from connectors.sandbox.ids import HS_OFFSET
from connectors.sandbox.state import SandboxState

PORTAL_ID = 24_681_357
CUSTOM_ID_OFFSET = 30_000_000_000  # custom object record ids, apart from the standard types
EPOCH_ISO = "1970-01-01T00:00:00.000Z"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}

# Portal stage ids of the default deal pipeline, by the generator's stage key.
STAGE_IDS = {"prospecting": "appointmentscheduled", "qualification": "qualifiedtobuy",
             "proposal": "presentationscheduled", "negotiation": "contractsent",
             "closed_won": "closedwon", "closed_lost": "closedlost"}
DEAL_TYPE_VALUES = {"New Business": "newbusiness", "Renewal": "renewal", "Upsell": "upsell"}


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


def _system(offset: int, created: str, updated: str, *, created_name: str) -> list[PropertyDef]:
    return [
        PropertyDef("hs_object_id", "Record ID", "number", "number", "id", offset=offset),
        PropertyDef(created_name, "Create Date", "datetime", "date", created),
        PropertyDef("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", updated),
    ]


def _owner_prop(column: str = "owner_id") -> PropertyDef:
    return PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", column,
                       offset=HS_OFFSET["owners"])


def _standard_types() -> list[ObjectType]:
    closed = "('closed_won', 'closed_lost')"
    stage_options = tuple((STAGE_IDS[key], STAGES[key][0]) for key in STAGES)
    deal_props = [
        PropertyDef("dealname", "Deal Name", sql="name"),
        PropertyDef("amount", "Amount", "number", "number", "amount"),
        PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", _case("stage", STAGE_IDS),
                    options=stage_options),
        PropertyDef("pipeline", "Pipeline", "enumeration", "select", "'default'",
                    options=(("default", "Sales Pipeline"),)),
        PropertyDef("closedate", "Close Date", "datetime", "date",
                    "(CAST(strftime('%s', close_date) AS INTEGER) * 1000)"),
        PropertyDef("dealtype", "Deal Type", "enumeration", "radio", _case("deal_type", DEAL_TYPE_VALUES),
                    options=tuple((DEAL_TYPE_VALUES[label], label) for label in DEAL_TYPES)),
        PropertyDef("hs_deal_stage_probability", "Deal Stage Probability", "number", "number",
                    "(probability / 100.0)"),
        PropertyDef("lead_source", "Lead Source", "enumeration", "select", "lead_source",
                    options=tuple((label, label) for label in LEAD_SOURCES), hubspot_defined=False,
                    group="dealinformation"),
        _owner_prop(),
        PropertyDef("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox",
                    f"CASE WHEN stage IN {closed} THEN 'true' ELSE 'false' END"),
        PropertyDef("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox",
                    "CASE WHEN stage = 'closed_won' THEN 'true' ELSE 'false' END"),
        *_system(HS_OFFSET["deals"], "created_ms", "modified_ms", created_name="createdate"),
    ]
    call_props = [
        PropertyDef("hs_timestamp", "Activity date", "datetime", "date", "ts_ms"),
        PropertyDef("hs_call_title", "Call Title", sql="subject"),
        PropertyDef("hs_call_duration", "Call duration", "number", "number", "(duration_s * 1000)"),
        PropertyDef("hs_call_direction", "Call direction", "enumeration", "select", "upper(direction)",
                    options=(("INBOUND", "Inbound"), ("OUTBOUND", "Outbound"))),
        PropertyDef("hs_call_disposition", "Call outcome", sql="outcome"),
        PropertyDef("hs_call_status", "Call status", "enumeration", "select", "'COMPLETED'",
                    options=(("COMPLETED", "Completed"),)),
        _owner_prop(),
        *_system(HS_OFFSET["calls"], "created_ms", "modified_ms", created_name="hs_createdate"),
    ]
    company_props = [
        PropertyDef("name", "Company name", sql="name"),
        PropertyDef("country", "Country/Region", sql="country"),
        PropertyDef("industry", "Industry", sql="industry"),
        PropertyDef("type", "Type", "enumeration", "select",
                    _case("account_type", {"Customer": "CUSTOMER", "Prospect": "PROSPECT"}),
                    options=(("PROSPECT", "Prospect"), ("CUSTOMER", "Customer"))),
        _owner_prop(),
        *_system(HS_OFFSET["companies"], "created_ms", "modified_ms", created_name="createdate"),
    ]

    def standard(name: str, type_id: str, table: str, props: list[PropertyDef],
                 defaults: tuple[str, ...], searchable: tuple[str, ...]) -> ObjectType:
        return ObjectType(name, type_id, table, "deleted = 0", (), HS_OFFSET[name], "created_ms",
                          "modified_ms", {prop.name: prop for prop in props}, defaults, searchable)

    return [
        standard("companies", "0-2", "accounts", company_props,
                 ("createdate", "hs_lastmodifieddate", "hs_object_id", "name"), ("name",)),
        standard("deals", "0-3", "deals", deal_props,
                 ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
                  "hs_object_id", "pipeline"), ("dealname",)),
        standard("calls", "0-48", "calls", call_props,
                 ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"), ("hs_call_title",)),
    ]


# The custom object an admin pre-created in the sandbox portal (okr-sync's writeback target).
KEY_RESULT_SCHEMA: dict[str, Any] = {
    "name": "okr_key_result",
    "labels": {"singular": "OKR key result", "plural": "OKR key results"},
    "primaryDisplayProperty": "name",
    "secondaryDisplayProperties": ["okr_key"],
    "requiredProperties": ["okr_key", "name"],
    "searchableProperties": ["okr_key", "name"],
    "description": "Key results computed by okr-sync",
    "properties": [
        {"name": "okr_key", "label": "OKR key", "type": "string", "fieldType": "text",
         "hasUniqueValue": True},
        {"name": "name", "label": "Key result", "type": "string", "fieldType": "text"},
        {"name": "objective", "label": "Objective", "type": "string", "fieldType": "text"},
        {"name": "period", "label": "Period", "type": "string", "fieldType": "text"},
        {"name": "group", "label": "Group", "type": "string", "fieldType": "text"},
        {"name": "metric", "label": "Metric", "type": "string", "fieldType": "text"},
        {"name": "current_value", "label": "Current value", "type": "number", "fieldType": "number"},
        {"name": "baseline", "label": "Baseline", "type": "number", "fieldType": "number"},
        {"name": "target", "label": "Target", "type": "number", "fieldType": "number"},
        {"name": "progress", "label": "Progress", "type": "number", "fieldType": "number"},
        {"name": "score", "label": "Score", "type": "number", "fieldType": "number"},
        {"name": "expected_progress", "label": "Expected progress", "type": "number", "fieldType": "number"},
        {"name": "status", "label": "Status", "type": "string", "fieldType": "text"},
        {"name": "unit", "label": "Unit", "type": "string", "fieldType": "text"},
        {"name": "last_synced", "label": "Last synced", "type": "datetime", "fieldType": "date"},
    ],
}
FIRST_CUSTOM_TYPE = 1_000_001


def custom_property(spec: dict[str, Any], order: int = -1) -> PropertyDef:
    """A user-defined property on a custom object: its value is a JSON field of the record."""
    name = spec["name"]
    extract = f"json_extract(fields, '$.{name}')"  # name checked against NAME_PATTERN
    comparable = None
    if spec["type"] == "number":
        comparable = f"CAST({extract} AS REAL)"
    elif spec["type"] in ("datetime", "date"):
        comparable = f"CAST(ROUND((julianday({extract}) - 2440587.5) * 86400000) AS INTEGER)"
    options = tuple((str(option["value"]), str(option["label"])) for option in spec.get("options") or ())
    return PropertyDef(name, spec.get("label") or name, spec["type"], spec.get("fieldType") or "text",
                       extract, comparable, options=options, unique=bool(spec.get("hasUniqueValue")),
                       group=spec.get("groupName") or "custom", hubspot_defined=False,
                       description=spec.get("description") or "", display_order=order)


def _custom_type(schema: dict[str, Any], extra: Iterable[dict[str, Any]]) -> ObjectType:
    props = [custom_property(spec, index) for index, spec in enumerate([*schema["properties"], *extra])]
    unique = next((prop for prop in props if prop.unique), None)
    if unique is not None:  # the first unique property is mirrored in the indexed unique_key column
        props = [replace(prop, filter_sql="unique_key") if prop is unique else prop for prop in props]
    props += _system(CUSTOM_ID_OFFSET, "created_ms", "modified_ms", created_name="hs_createdate")
    properties = {prop.name: prop for prop in props}
    defaults = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id", schema["primaryDisplayProperty"])
    return ObjectType(schema["name"], schema["objectTypeId"], "custom_records",
                      "crm = 'hubspot' AND object = ?", (schema["name"],), CUSTOM_ID_OFFSET,
                      "created_ms", "modified_ms", properties, defaults,
                      tuple(schema.get("searchableProperties") or ()), custom=True, schema=schema)


class Catalog:
    """The portal's object types; custom schemas and properties persist in the sandbox meta table."""

    SCHEMAS_KEY = "hubspot.schemas"
    PROPERTIES_KEY = "hubspot.properties."

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._lock = threading.RLock()
        self._types: list[ObjectType] | None = None

    def _load(self, key: str) -> list[dict[str, Any]]:
        raw = self.state.get_meta(key)
        return json.loads(raw) if raw else []

    def schemas(self) -> list[dict[str, Any]]:
        """Every custom object schema: the pre-created one first, then those created by API."""
        stamp = iso_from_ms(int(self.state.spec.anchor.timestamp() * 1000) - 86_400_000 * 400)
        builtin = {**KEY_RESULT_SCHEMA, "id": str(FIRST_CUSTOM_TYPE),
                   "objectTypeId": f"2-{FIRST_CUSTOM_TYPE}",
                   "fullyQualifiedName": f"p{PORTAL_ID}_{KEY_RESULT_SCHEMA['name']}",
                   "createdAt": stamp, "updatedAt": stamp}
        return [builtin, *self._load(self.SCHEMAS_KEY)]

    def object_types(self) -> list[ObjectType]:
        with self._lock:
            if self._types is None:
                types = _standard_types()
                types = [replace(kind, properties={**kind.properties, **{
                    spec["name"]: replace(custom_property(spec), sql="NULL", filter_sql=None)
                    for spec in self._load(self.PROPERTIES_KEY + kind.type_id)}}) for kind in types]
                for schema in self.schemas():
                    extra = self._load(self.PROPERTIES_KEY + schema["objectTypeId"])
                    types.append(_custom_type(schema, extra))
                self._types = types
            return self._types

    def resolve(self, name: str) -> ObjectType | None:
        """An object type by name, singular name, type id or fully qualified name."""
        lowered = name.lower()
        matches = (kind for kind in self.object_types() if lowered in {n.lower() for n in kind.names()})
        return next(matches, None)

    def add_schema(self, egg: dict[str, Any]) -> dict[str, Any]:
        """Store a new custom object schema (already validated by the API layer)."""
        with self._lock:
            stored = self._load(self.SCHEMAS_KEY)
            number = FIRST_CUSTOM_TYPE + 1 + len(stored)
            stamp = iso_from_ms(self.state.next_modstamp_ms())
            schema = {
                "id": str(number), "objectTypeId": f"2-{number}", "name": egg["name"],
                "labels": egg["labels"],
                "fullyQualifiedName": f"p{PORTAL_ID}_{egg['name']}",
                "primaryDisplayProperty": egg.get("primaryDisplayProperty") or egg["properties"][0]["name"],
                "secondaryDisplayProperties": egg.get("secondaryDisplayProperties") or [],
                "requiredProperties": egg.get("requiredProperties") or [],
                "searchableProperties": egg.get("searchableProperties") or [],
                "description": egg.get("description") or "", "properties": egg["properties"],
                "createdAt": stamp, "updatedAt": stamp,
            }
            self.state.set_meta(self.SCHEMAS_KEY, json.dumps([*stored, schema]))
            self._types = None
            return schema

    def add_property(self, kind: ObjectType, spec: dict[str, Any]) -> PropertyDef:
        with self._lock:
            key = self.PROPERTIES_KEY + kind.type_id
            self.state.set_meta(key, json.dumps([*self._load(key), spec]))
            self._types = None
            resolved = self.resolve(kind.type_id)
            assert resolved is not None
            return resolved.properties[spec["name"]]


def schema_json(kind: ObjectType) -> dict[str, Any]:
    """The schemas API record of a custom object type, with its current properties."""
    schema = {key: value for key, value in kind.schema.items() if key != "properties"}
    return {**schema, "archived": False, "associations": [],
            "properties": [prop.to_json() for prop in kind.properties.values()]}
