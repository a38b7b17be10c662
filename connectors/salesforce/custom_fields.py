"""Custom fields from config: validated names, the describe check, and their values in `custom`.

The config maps a canonical entity (`account`, `deal`, ...) to {canonical name: field API name},
e.g. {"account": {"region": "Region__c"}}. The API names go into SOQL SELECT lists, so anything
but a plain API name is refused when the source is built, before any call. Before the first
query of a stream with custom fields, the sObject's describe (one call per sObject per source)
checks that every field exists; the org's spelling and type of each field are kept, so the
query selects the name as the org spells it and a Bulk CSV value gets its REST type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from connectors.errors import ConnectorConfigError
from connectors.salesforce.settings import CUSTOM_FIELD_NAME, StreamSpec
from connectors.store import RECORD_MODELS

CustomFieldConfig = Mapping[str, Mapping[str, str]]
_API_NAME = re.compile(CUSTOM_FIELD_NAME)
SETUP_HINT = "Setup > Object Manager"


@dataclass(frozen=True)
class CustomField:
    """One configured custom field, as the org's describe spells and types it."""

    name: str  # canonical name: the key in the row's `custom` JSON
    field: str  # the field's API name
    type: str = ""  # describe type (string, double, boolean, ...)


def validate_custom_fields(custom_fields: CustomFieldConfig | None) -> dict[str, dict[str, str]]:
    """The config's custom fields as plain dicts, or a ConnectorConfigError naming the bad entry."""
    if custom_fields is None:
        return {}
    if not isinstance(custom_fields, Mapping):
        raise ConnectorConfigError("custom_fields must map an entity name to {canonical name: field API name}, "
                                   f"got {type(custom_fields).__name__}")
    validated: dict[str, dict[str, str]] = {}
    for entity, mapping in custom_fields.items():
        if entity not in RECORD_MODELS:
            raise ConnectorConfigError(f"custom_fields: unknown entity {entity!r}; expected one of "
                                       + ", ".join(RECORD_MODELS))
        if not isinstance(mapping, Mapping):
            raise ConnectorConfigError(f"custom_fields.{entity} must map a canonical name to a Salesforce "
                                       f"field API name, got {type(mapping).__name__}")
        for name, field in mapping.items():
            if not isinstance(name, str) or not name.strip():
                raise ConnectorConfigError(f"custom_fields.{entity}: a canonical name must be non-empty text, "
                                           f"got {name!r}")
            if not isinstance(field, str) or not _API_NAME.fullmatch(field):
                raise ConnectorConfigError(
                    f"Salesforce custom field {entity}.{name} in the config is {field!r}, which is not a field "
                    "API name: use the name from Setup > Object Manager (letters, digits and underscores, "
                    "starting with a letter, e.g. Region__c)")
        if mapping:
            validated[entity] = dict(mapping)
    return validated


def check_fields(sobject: str, describe: Mapping[str, Any], entity: str,
                 mapping: Mapping[str, str]) -> tuple[CustomField, ...]:
    """The configured fields as the sObject's describe knows them, or a ConnectorConfigError naming
    every field it lacks (SOQL names are case-insensitive, so is the match)."""
    known = {str(field.get("name", "")).lower(): field for field in describe.get("fields") or []}
    found, missing = [], []
    for name, field in mapping.items():
        described = known.get(field.lower())
        if described is None:
            missing.append(f"no field {field} (custom field {entity}.{name} in the config)")
        else:
            found.append(CustomField(name, str(described["name"]), str(described.get("type") or "")))
    if missing:
        its = "its API name" if len(missing) == 1 else "their API names"
        raise ConnectorConfigError(f"Salesforce {sobject} has " + "; ".join(missing)
                                   + f": check {its} in {SETUP_HINT}")
    return tuple(found)


def missing_object(sobject: str, entity: str, mapping: Mapping[str, str]) -> ConnectorConfigError:
    """The describe of `sobject` answered 404: the org lacks the object, or this user cannot see it."""
    fields = ", ".join(f"{entity}.{name}" for name in mapping)
    return ConnectorConfigError(
        f"Salesforce has no object {sobject} visible to this user, so the custom fields {fields} in the config "
        f"cannot be read: check the object and the user's permissions in {SETUP_HINT}")


def with_custom_fields(spec: StreamSpec, fields: tuple[CustomField, ...]) -> StreamSpec:
    """The stream's spec selecting its custom fields too (each field once: SOQL rejects duplicates)."""
    selected = {name.lower(): name for name in spec.fields}
    for custom in fields:
        selected.setdefault(custom.field.lower(), custom.field)
    return replace(spec, fields=tuple(selected.values()))


def custom_values(record: Mapping[str, Any], fields: tuple[CustomField, ...]) -> dict[str, Any]:
    """{canonical name: the record's value} for the row's `custom` JSON (REST JSON values as they are)."""
    return {custom.name: record.get(custom.field) for custom in fields}
