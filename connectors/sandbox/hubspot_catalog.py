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

from connectors.hubspot.settings import OKR_SCHEMAS, OWNER_PROPERTY
from connectors.sandbox.hubspot_activities import activity_association_type, activity_types
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


# The custom objects an admin pre-created in the sandbox portal (okr-sync's writeback targets):
# exactly what `okr-sync setup hubspot` creates (connectors.hubspot.settings), so the two cannot
# drift; the key result object keeps type id 2-1000001. A bare portal (Catalog(precreated=False),
# SandboxServer(hubspot_objects=False)) starts without them, to test setup.
PRECREATED = ("key_result", "objective", "checkin")
PRECREATED_ASSOCIATIONS = (("key_result", "objective"), ("checkin", "key_result"))
FIRST_ASSOCIATION_TYPE = 1_001  # USER_DEFINED association type ids of custom object associations
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
    if OWNER_PROPERTY not in {prop.name for prop in props}:  # HubSpot gives every custom object an owner
        props.append(PropertyDef(OWNER_PROPERTY, "Owner", "enumeration", "select",
                                 f"json_extract(fields, '$.{OWNER_PROPERTY}')", group="custom"))
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
    ASSOCIATIONS_KEY = "hubspot.association_definitions"

    def __init__(self, state: SandboxState, precreated: bool = True) -> None:
        """`precreated`: the portal has the three OKR objects (and their associations) from the start."""
        self.state = state
        self.precreated = precreated
        self._lock = threading.RLock()
        self._types: list[ObjectType] | None = None

    def _load(self, key: str) -> list[dict[str, Any]]:
        raw = self.state.get_meta(key)
        return json.loads(raw) if raw else []

    def _builtin(self) -> list[dict[str, Any]]:
        if not self.precreated:
            return []
        stamp = iso_from_ms(int(self.state.spec.anchor.timestamp() * 1000) - 86_400_000 * 400)
        stored = {schema["name"] for schema in self._load(self.SCHEMAS_KEY)}
        builtin = []
        for index, kind in enumerate(PRECREATED):
            egg = {key: value for key, value in OKR_SCHEMAS[kind].items() if key != "associatedObjects"}
            if egg["name"] in stored:
                continue
            number = FIRST_CUSTOM_TYPE + index
            builtin.append({**egg, "id": str(number), "objectTypeId": f"2-{number}",
                            "fullyQualifiedName": f"p{PORTAL_ID}_{egg['name']}",
                            "createdAt": stamp, "updatedAt": stamp})
        return builtin

    def schemas(self) -> list[dict[str, Any]]:
        """Every custom object schema: the pre-created ones first, then those created by API."""
        return [*self._builtin(), *self._load(self.SCHEMAS_KEY)]

    def association_definitions(self) -> list[dict[str, Any]]:
        """Custom object association definitions: (id, fromObjectTypeId, toObjectTypeId, name)."""
        builtin = []
        if self.precreated:
            ids = {schema["name"]: schema["objectTypeId"] for schema in self._builtin()}
            for index, (source, target) in enumerate(PRECREATED_ASSOCIATIONS):
                names = (OKR_SCHEMAS[source]["name"], OKR_SCHEMAS[target]["name"])
                if all(name in ids for name in names):
                    builtin.append({"id": str(FIRST_ASSOCIATION_TYPE + index), "fromObjectTypeId": ids[names[0]],
                                    "toObjectTypeId": ids[names[1]], "name": f"{names[0]}_to_{names[1]}"})
        return [*builtin, *self._load(self.ASSOCIATIONS_KEY)]

    def association_type(self, source: ObjectType, target: ObjectType) -> int | None:
        """The association type id linking two object types (either way round), or None."""
        pair = {source.type_id, target.type_id}
        activity = activity_association_type(source, target)
        if activity is not None:
            return activity
        for definition in self.association_definitions():
            if {definition["fromObjectTypeId"], definition["toObjectTypeId"]} == pair:
                return int(definition["id"])
        return None

    def add_association_definition(self, source: ObjectType, target: ObjectType, name: str) -> dict[str, Any]:
        with self._lock:
            stored = self._load(self.ASSOCIATIONS_KEY)
            number = FIRST_ASSOCIATION_TYPE + len(PRECREATED_ASSOCIATIONS) + len(stored)
            stamp = iso_from_ms(self.state.next_modstamp_ms())
            definition = {"id": str(number), "fromObjectTypeId": source.type_id, "toObjectTypeId": target.type_id,
                          "name": name, "createdAt": stamp, "updatedAt": stamp}
            self.state.set_meta(self.ASSOCIATIONS_KEY, json.dumps([*stored, definition]))
            return definition

    def object_types(self) -> list[ObjectType]:
        with self._lock:
            if self._types is None:
                types = [*standard_types(), lead_type()]
                types = [replace(kind, properties={**kind.properties, **{
                    spec["name"]: replace(custom_property(spec), sql="NULL", filter_sql=None)
                    for spec in self._load(self.PROPERTIES_KEY + kind.type_id)}}) for kind in types]
                # tasks and notes written through the API (hubspot_activities): their added properties hold values
                types += [replace(kind, properties={**kind.properties, **{
                    spec["name"]: custom_property(spec) for spec in self._load(self.PROPERTIES_KEY + kind.type_id)}})
                    for kind in activity_types(alert_key=self.precreated)]
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
            number = FIRST_CUSTOM_TYPE + (len(PRECREATED) if self.precreated else 0) + len(stored)
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


def schema_json(kind: ObjectType, associations: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The schemas API record of a custom object type, with its current properties and the
    association definitions it takes part in."""
    schema = {key: value for key, value in kind.schema.items() if key != "properties"}
    linked = [definition for definition in associations
              if kind.type_id in (definition["fromObjectTypeId"], definition["toObjectTypeId"])]
    return {**schema, "archived": False, "associations": linked,
            "properties": [prop.to_json() for prop in kind.properties.values()]}
