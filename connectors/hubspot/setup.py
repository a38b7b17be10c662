"""Create and check okr-sync's three custom objects in a HubSpot portal.

`check_setup` reads the schemas list once and says, in words an admin can act on, what is
missing or wrong: an object, a property, a property of the wrong type, an `okr_key` that is not
unique (upserts could then duplicate records), an association definition. `setup` fixes what it
can (creates missing objects with their associations, missing properties in one batch per
object, missing association definitions) and returns what it did; what it cannot change (a
property's type, a unique flag: HubSpot forbids it) comes back as a "cannot fix" line. A second
run makes no write call. Custom objects need an Enterprise portal and the schemas scopes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from hubspot.crm.properties import BatchInputPropertyCreate, PropertyCreate
from hubspot.crm.schemas import (
    AssociationDefinitionEgg,
    ObjectSchemaEgg,
    ObjectTypeDefinitionLabels,
    ObjectTypePropertyCreate,
)

from connectors.hubspot import settings
from connectors.okr_records import OKR_OBJECTS

Call = Callable[..., Any]
SETUP_HINT = "run `okr-sync setup hubspot`"


def find_schema(schemas: Iterable[Any], name: str) -> Any | None:
    """The schema of custom object `name`: its short name exactly, else the portal-qualified
    p<portal id>_<name> (never another object whose name merely ends the same way)."""
    schemas = list(schemas)
    exact = next((schema for schema in schemas if schema.name == name), None)
    if exact is not None:
        return exact
    qualified = re.compile(rf"p\d+_{re.escape(name)}")
    return next((schema for schema in schemas if qualified.fullmatch(schema.fully_qualified_name or "")), None)


def type_ids(schemas: Iterable[Any]) -> dict[str, str]:
    """OKR object (objective | key_result | checkin) -> its objectTypeId, for those that exist."""
    schemas = list(schemas)
    found = {kind: find_schema(schemas, name) for kind, name in settings.OKR_OBJECT_NAMES.items()}
    return {kind: schema.object_type_id for kind, schema in found.items() if schema is not None}


def _pairs(schemas: Iterable[Any]) -> set[frozenset[str]]:
    """The association definitions present, as unordered pairs of object type ids."""
    return {frozenset((definition.from_object_type_id, definition.to_object_type_id))
            for schema in schemas for definition in schema.associations or []}


def _describe(name: str) -> str:
    kind, field_type = settings.property_type(name)
    return kind if kind == field_type else f"{kind} ({field_type})"


def property_problems(kind: str, schema: Any, for_write: bool = False) -> tuple[list[str], list[str]]:
    """(missing property names, problems setup cannot fix) of one existing OKR object; `for_write`: a
    missing okr_final does not count (only a closed period's records carry it: until `okr-sync setup
    hubspot` adds it, those are refused one by one, and every other record is still written)."""
    name = settings.OKR_OBJECT_NAMES[kind]
    present = {prop.name: prop for prop in schema.properties or []}
    missing, unfixable = [], []
    for prop_name in settings.object_properties(kind):
        prop = present.get(prop_name)
        wanted, _ = settings.property_type(prop_name)
        if prop is None:
            if not (for_write and prop_name == settings.FINAL_PROPERTY):
                missing.append(prop_name)
        elif prop.type != wanted:
            unfixable.append(f"{name}.{prop_name} must be a {_describe(prop_name)} property, is {prop.type}")
        elif prop_name == settings.OKR_KEY_PROPERTY and not prop.has_unique_value:
            unfixable.append(f"{name}.{prop_name} must have unique values (hasUniqueValue), or upserts could"
                             " duplicate records; HubSpot cannot change this on an existing property")
    return missing, unfixable


def problems(schemas: Iterable[Any], kinds: Iterable[str] = OKR_OBJECTS, for_write: bool = False) -> list[str]:
    """Every problem of the OKR objects `kinds` in a schemas list; [] when ready (`for_write`: see
    property_problems)."""
    schemas = list(schemas)
    kinds = list(kinds)
    found: list[str] = []
    for kind in kinds:
        name = settings.OKR_OBJECT_NAMES[kind]
        schema = find_schema(schemas, name)
        if schema is None:
            found.append(f"HubSpot custom object {name} is missing: {SETUP_HINT} (custom objects need an"
                         " Enterprise portal)")
            continue
        missing, unfixable = property_problems(kind, schema, for_write)
        found += [f"{name}.{prop} is missing: {_describe(prop)}" for prop in missing]
        found += unfixable
    ids, pairs = type_ids(schemas), _pairs(schemas)
    for source, target, _prop in settings.OKR_ASSOCIATIONS:
        if source in kinds and source in ids and target in ids and frozenset((ids[source], ids[target])) not in pairs:
            found.append(f"{settings.OKR_OBJECT_NAMES[source]} has no association with"
                         f" {settings.OKR_OBJECT_NAMES[target]}: {SETUP_HINT}")
    return found


def _schema_egg(kind: str, associated: list[str]) -> ObjectSchemaEgg:
    spec = settings.OKR_SCHEMAS[kind]
    return ObjectSchemaEgg(
        name=spec["name"], description=spec["description"],
        labels=ObjectTypeDefinitionLabels(**spec["labels"]),
        primary_display_property=spec["primaryDisplayProperty"],
        secondary_display_properties=spec["secondaryDisplayProperties"],
        required_properties=spec["requiredProperties"], searchable_properties=spec["searchableProperties"],
        associated_objects=associated,
        properties=[ObjectTypePropertyCreate(name=prop["name"], label=prop["label"], type=prop["type"],
                                             field_type=prop["fieldType"],
                                             has_unique_value=prop.get("hasUniqueValue", False))
                    for prop in spec["properties"]])


def check_setup(call: Call, api: Any) -> list[str]:
    """One schemas call: the problems of all three objects ([] when ready)."""
    return problems(call(api.schemas.get_all).results or [])


def run_setup(call: Call, api: Any) -> list[str]:
    """Create what is missing; returns one line per change (and per problem it cannot fix)."""
    schemas = list(call(api.schemas.get_all).results or [])
    ids, pairs = type_ids(schemas), _pairs(schemas)
    done: list[str] = []
    for kind in OKR_OBJECTS:
        name = settings.OKR_OBJECT_NAMES[kind]
        schema = find_schema(schemas, name)
        if schema is None:
            parents = [ids[target] for source, target, _ in settings.OKR_ASSOCIATIONS
                       if source == kind and target in ids]
            created = call(api.schemas.create, _schema_egg(kind, parents))
            ids[kind] = created.object_type_id
            pairs |= {frozenset((created.object_type_id, parent)) for parent in parents}
            done.append(f"created custom object {name} ({created.object_type_id}) with"
                        f" {len(settings.OKR_SCHEMAS[kind]['properties'])} properties"
                        + (f", associated with {', '.join(parents)}" if parents else ""))
            continue
        missing, unfixable = property_problems(kind, schema)
        if missing:
            key = next((prop for prop in schema.properties or [] if prop.name == settings.OKR_KEY_PROPERTY), None)
            group = getattr(key, "group_name", None) or f"{name}_information"
            specs = [settings.property_spec(kind, prop) for prop in missing]
            call(api.property_batch.create, schema.object_type_id, BatchInputPropertyCreate(inputs=[
                PropertyCreate(name=spec["name"], label=spec["label"], type=spec["type"],
                               field_type=spec["fieldType"], group_name=group,
                               has_unique_value=spec.get("hasUniqueValue", False)) for spec in specs]))
            done.append(f"added properties {', '.join(missing)} to {name}")
        done += [f"cannot fix: {problem}" for problem in unfixable]
    for source, target, _prop in settings.OKR_ASSOCIATIONS:
        if frozenset((ids[source], ids[target])) in pairs:
            continue
        names = settings.OKR_OBJECT_NAMES[source], settings.OKR_OBJECT_NAMES[target]
        call(api.schemas.create_association, ids[source], AssociationDefinitionEgg(
            from_object_type_id=ids[source], to_object_type_id=ids[target], name=f"{names[0]}_to_{names[1]}"))
        done.append(f"created association {names[0]} -> {names[1]}")
    return done
