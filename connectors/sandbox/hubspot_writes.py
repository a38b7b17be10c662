"""Batch read/create/update/upsert on the sandbox HubSpot portal.

Each input succeeds or fails on its own: a bad property value or an unknown owner
(hubspot_owner_id) fails only its record, and the API answers 207 with the others' results.
Values are validated against the property type and stored as their wire strings, so reads give
back what HubSpot would.

Rejections a test injects (connectors.sandbox.rejections, matched on the record's unique key):
HubSpot refuses a batch create/update/upsert as a whole when an input breaks a validation rule,
so kinds "validation" and "malformed" answer 400 VALIDATION_ERROR for the whole batch (nothing
written; the message is the rule's and does not say which input, so a client must split the batch
to find it). HubSpot has no row locks: kind "row_lock" stands for a record refused alone (a record
busy in another write), answered as one error of a 207 (category CONFLICT), the others written.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from connectors.sandbox.hubspot_objects import ObjectType, PropertyDef, iso_from_ms, ms_from_text
from connectors.sandbox.hubspot_search import ApiError, find_record
from connectors.sandbox.ids import HS_OFFSET
from connectors.sandbox.rejections import RejectionRule
from connectors.sandbox.state import SandboxState

OWNER_PROPERTY = "hubspot_owner_id"
SYSTEM_PROPERTIES = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate", "createdate", "lastmodifieddate"}
CRM = "hubspot"


class InputError(Exception):
    """One input of a batch failed; becomes an entry of the 207 `errors` list."""

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None,
                 category: str = "VALIDATION_ERROR") -> None:
        super().__init__(message)
        self.message, self.problems, self.category = message, problems or [], category


def _wire_value(prop: PropertyDef, value: Any) -> str:
    """The stored string of a written value; raises ValueError when the type rejects it."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = str(value).strip()
    if prop.type == "number":
        float(text)
        return text
    if prop.type == "datetime":
        return iso_from_ms(ms_from_text(text)) or ""
    if prop.type == "date":
        return (iso_from_ms(ms_from_text(text)) or "")[:10]
    if prop.type == "bool" and text.lower() not in ("true", "false"):
        raise ValueError(text)
    if prop.type == "enumeration" and prop.options and text not in {value for value, _ in prop.options}:
        raise ValueError(text)
    return text.lower() if prop.type == "bool" else text


def normalise(kind: ObjectType, properties: Any) -> dict[str, str]:
    """Validated wire strings of an input's properties, or InputError listing every problem."""
    if not isinstance(properties, dict):
        raise InputError("Invalid input: 'properties' must be an object")
    values: dict[str, str] = {}
    problems: list[dict[str, Any]] = []
    for name, value in properties.items():
        prop = kind.properties.get(name)
        if prop is None:
            problems.append({"isValid": False, "message": f'Property "{name}" does not exist',
                             "error": "PROPERTY_DOESNT_EXIST", "name": name})
        elif name in SYSTEM_PROPERTIES:
            problems.append({"isValid": False, "message": f'Property "{name}" is read-only',
                             "error": "READ_ONLY_VALUE", "name": name})
        else:
            try:
                values[name] = _wire_value(prop, value)
            except ValueError:
                problems.append({"isValid": False, "message": f"{value!r} was not a valid {prop.type}",
                                 "error": "INVALID_" + prop.type.upper(), "name": name})
    if problems:
        raise InputError(f"Property values were not valid: {json.dumps(problems, separators=(',', ':'))}",
                         problems)
    return values


def error_entry(exc: InputError, record: str | None) -> dict[str, Any]:
    return {
        "status": "error", "category": exc.category, "message": exc.message,
        "context": {"id": [record]} if record is not None else {},
        "errors": [{"message": problem["message"], "code": problem["error"],
                    "context": {"propertyName": [problem["name"]]}} for problem in exc.problems],
        "links": {},
    }


def _unique_prop(kind: ObjectType) -> str | None:
    return kind.unique_properties[0] if kind.unique_properties else None


def _missing_required(kind: ObjectType, values: dict[str, str]) -> None:
    missing = [name for name in kind.schema.get("requiredProperties") or [] if not values.get(name)]
    if missing:
        raise InputError(f"Required properties were not set: {missing}")


def _store(state: SandboxState, kind: ObjectType, unique: str | None,
           values: dict[str, str]) -> tuple[int, bool]:
    key = values.get(unique) if unique else None
    return state.upsert_custom(CRM, kind.name, key or None, values)


def _update_by_id(state: SandboxState, kind: ObjectType, number: int, values: dict[str, str]) -> None:
    unique = _unique_prop(kind)
    with state.transaction() as conn:
        row = conn.execute("SELECT fields, unique_key FROM custom_records"
                           " WHERE crm = ? AND object = ? AND id = ?", (CRM, kind.name, number)).fetchone()
        merged = {**json.loads(row["fields"]), **values}
        key = merged.get(unique) if unique else row["unique_key"]
        conn.execute("UPDATE custom_records SET fields = ?, unique_key = ?, modified_ms = ? WHERE crm = ?"
                     " AND object = ? AND id = ?",
                     (json.dumps(merged), key or None, state.next_modstamp_ms(), CRM, kind.name, number))


def _result(state: SandboxState, kind: ObjectType, number: int, names: list[str]) -> dict[str, Any]:
    record = find_record(state, kind, kind.record_id(number), names)
    assert record is not None
    return record


def _check_owner(state: SandboxState, values: dict[str, str]) -> None:
    """An owner must be an active owner of the portal, as HubSpot checks hubspot_owner_id."""
    owner = values.get(OWNER_PROPERTY)
    if not owner:
        return
    number = int(owner) - HS_OFFSET["owners"] if owner.isdigit() else -1
    if not state.query("SELECT 1 FROM owners WHERE id = ? AND deleted = 0 AND is_active = 1", (number,)):
        problem = {"isValid": False, "message": f"{owner} is not a valid owner id", "error": "INVALID_OWNER_ID",
                   "name": OWNER_PROPERTY}
        raise InputError(f"Property values were not valid: {json.dumps([problem], separators=(',', ':'))}",
                         [problem])


def _input_key(state: SandboxState, kind: ObjectType, action: str, item: dict[str, Any],
               id_property: str | None) -> str | None:
    """The unique key of the record an input writes (what rejection rules match), when known."""
    unique = _unique_prop(kind)
    if unique is None:
        return None
    if action == "create" or (action == "update" and id_property != unique):
        properties = item.get("properties") if isinstance(item.get("properties"), dict) else {}
        if action == "update" and item.get("id") is not None and not properties.get(unique):
            found = find_record(state, kind, str(item["id"]), [unique])
            return None if found is None else found["properties"].get(unique)
        value = properties.get(unique)
        return None if value is None else str(value)
    return None if item.get("id") is None else str(item["id"])


def _rejections(state: SandboxState, kind: ObjectType, action: str, inputs: list[dict[str, Any]],
                body: dict[str, Any]) -> dict[int, RejectionRule]:
    """Input index -> the injected rule refusing it; a whole-batch refusal raises ApiError 400."""
    refused: dict[int, RejectionRule] = {}
    if action == "read" or not kind.custom:
        return refused
    for index, item in enumerate(inputs):
        key = _input_key(state, kind, action, item, item.get("idProperty") or body.get("idProperty"))
        rule = state.rejections.match(CRM, kind.name, key)
        if rule is not None:
            refused[index] = rule
    whole = next((rule for rule in refused.values() if rule.kind in ("validation", "malformed")), None)
    if whole is not None:
        raise ApiError(400, whole.message, "VALIDATION_ERROR")
    return refused


def _write_one(state: SandboxState, kind: ObjectType, action: str, item: dict[str, Any],
               id_property: str | None) -> dict[str, Any]:
    values = normalise(kind, item.get("properties"))
    _check_owner(state, values)
    unique = _unique_prop(kind)
    names = [*values, *([unique] if unique else []), *sorted(SYSTEM_PROPERTIES & set(kind.properties))]
    if action == "create":
        if unique and values.get(unique) and find_record(state, kind, values[unique], [], unique):
            raise InputError(f"A record with {unique}={values[unique]} already exists", category="CONFLICT")
        _missing_required(kind, values)
        number, _created = _store(state, kind, unique, values)
        return _result(state, kind, number, names)
    record_key = str(item.get("id") or "")
    if action == "update":
        existing = find_record(state, kind, record_key, [], id_property) if record_key else None
        if existing is None:
            raise InputError(f"Object {record_key} not found", category="OBJECT_NOT_FOUND")
        number = int(existing["id"]) - kind.id_offset
        _update_by_id(state, kind, number, values)
        return _result(state, kind, number, names)
    if not record_key or not id_property or id_property != unique:
        raise InputError(f"Upsert needs an id and idProperty={unique!r} (the object's unique property)")
    values[unique] = record_key
    if find_record(state, kind, record_key, [], unique) is None:
        _missing_required(kind, values)
    number, created = _store(state, kind, unique, values)
    return {**_result(state, kind, number, names), "new": created}


def batch_write(state: SandboxState, kind: ObjectType, action: str, inputs: list[Any],
                body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(results, errors) of one batch call; request-level problems raise ApiError."""
    if not all(isinstance(item, dict) for item in inputs):
        raise ApiError(400, "Invalid input JSON: every input must be an object")
    ids = [str(item.get("id")) for item in inputs if item.get("id") is not None]
    duplicates = sorted(key for key, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise ApiError(400, f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
    refused = _rejections(state, kind, action, inputs, body)
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        id_property = item.get("idProperty") or body.get("idProperty")
        record = item.get("id")
        try:
            if index in refused:
                raise InputError(refused[index].message, category="CONFLICT")
            if action == "read":
                found = find_record(state, kind, str(record), body.get("properties"), id_property)
                if found is None:
                    raise InputError(f"Object {record} not found", category="OBJECT_NOT_FOUND")
                results.append(found)
            else:
                results.append(_write_one(state, kind, action, item, id_property))
        except InputError as exc:
            if record is None and isinstance(item.get("properties"), dict):
                record = item["properties"].get(_unique_prop(kind) or "")
            errors.append(error_entry(exc, None if record is None else str(record)))
    return results, errors
