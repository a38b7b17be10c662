"""What the sandbox HubSpot portal knows: object types, their properties and their SQL.

One catalogue drives the properties and schemas APIs, the search compiler and the rendering
of records, so every property the portal advertises is one a search can filter and sort on.
Standard objects (defined in hubspot_objects) read the shared logical tables, the same org the
Salesforce face serves; custom objects (the pre-created `okr_key_result` and any created through
the schemas API) keep their records in `custom_records` as JSON, every value as its wire string.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from connectors.sandbox.hubspot_leads import lead_type
from connectors.sandbox.hubspot_objects import (
    ObjectType,
    PropertyDef,
    iso_from_ms,
    standard_types,
    system_properties,
)
from connectors.sandbox.state import SandboxState

PORTAL_ID = 24_681_357
CUSTOM_ID_OFFSET = 30_000_000_000  # custom object record ids, apart from the standard types
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}


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
    props += system_properties(CUSTOM_ID_OFFSET, "created_ms", "modified_ms", created_name="hs_createdate")
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
                types = [*standard_types(), lead_type()]
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
