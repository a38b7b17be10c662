"""sObject Collections writes into the sandbox org: create, update by Id, upsert by external id.

Validation runs for every record before anything is written, so allOrNone can roll back as
the real API does, and lookups resolve against the records saved before the call (a parent
created in the same call is not found, as a client must not rely on it); only the OKR custom
objects are writable in this org. Lookups are set by Id or through the parent's external id
(`Objective_Record__r: {"Key__c": ...}`); an unknown parent or owner, or an inactive owner, fails
that record alone with Salesforce's code. Rejection rules a test installs
(connectors.sandbox.rejections) refuse matching records: validation and row_lock as a failed
entry (FIELD_CUSTOM_VALIDATION_EXCEPTION / UNABLE_TO_LOCK_ROW with the rule's message), malformed
as a 400 JSON_PARSER_ERROR for the whole call.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Body

from connectors.sandbox import soql
from connectors.sandbox.ids import sf_id, sf_number
from connectors.sandbox.rejections import RejectionRule
from connectors.sandbox.salesforce_schema import KR_EXTERNAL_ID, SCHEMAS, ApiError
from connectors.sandbox.state import SandboxState

MAX_RECORDS = 200
_RULE_CODES = {"validation": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "row_lock": "UNABLE_TO_LOCK_ROW"}
Payload = Annotated[dict[str, Any], Body()]
_ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "fields": [],
                "message": "Record rolled back because not all records were valid and the request was using"
                           " AllOrNone header"}


def _error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


def _missing(name: str) -> dict[str, Any]:
    return _error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name])


def _duplicate(schema: soql.SObjectSchema, holder: int) -> dict[str, Any]:
    return _error("DUPLICATE_VALUE", f"duplicate value found: {KR_EXTERNAL_ID} duplicates value on record "
                  f"with id: {sf_id(schema.name, holder)}", [KR_EXTERNAL_ID])


def _failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": None, "success": False, "errors": errors}


def _coerce(spec: soql.FieldSpec, value: Any) -> tuple[Any, dict[str, Any] | None]:
    """The stored form of one written value, or the per-record error Salesforce would give."""
    if value is None:
        if spec.nillable:
            return None, None
        return None, _missing(spec.name)
    try:
        if spec.type in soql.STRING_TYPES and isinstance(value, str):
            if spec.length and len(value) > spec.length:
                return None, _error("STRING_TOO_LONG", f"{spec.label}: data value too large: {value[:40]}"
                                    f" (max length={spec.length})", [spec.name])
            return value, None
        numeric = isinstance(value, int | float | str) and not isinstance(value, bool)
        if spec.type in soql.NUMBER_TYPES and numeric:
            number = float(value)
            if math.isfinite(number):
                return (int(number) if spec.type == "int" else number), None
        if spec.type == "boolean" and isinstance(value, bool):
            return value, None
        if spec.type == "datetime" and isinstance(value, str):
            moment = datetime.fromisoformat(value)
            return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000), None
        if spec.type == "date" and isinstance(value, str):
            return date.fromisoformat(value).isoformat(), None
    except ValueError:
        pass
    return None, _error("INVALID_TYPE_ON_FIELD_IN_RECORD",
                        f"{spec.label}: value not of required type: {value!r}", [spec.name])


@dataclass
class _Plan:
    """A validated write: create (record_id None) or update of one record, with stored values."""

    schema: soql.SObjectSchema
    record_id: int | None
    key: str | None
    values: dict[str, Any]
    report_created: bool


class CollectionWriter:
    """create / update / upsert of up to 200 records per call, with allOrNone, as the real API."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._lock = threading.Lock()  # validation and writes of one call see one state

    def write(self, mode: str, payload: dict[str, Any], name: str | None = None,
              external_id_field: str | None = None) -> list[dict[str, Any]]:
        records = payload.get("records")
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a 'records' array of sObjects")
        if len(records) > MAX_RECORDS:
            raise ApiError(400, "EXCEEDED_ID_LIMIT",
                           "record limit reached. cannot submit more than 200 records into this call")
        target = self._upsert_target(name or "", external_id_field or "") if mode == "upsert" else None
        with self._lock:
            rules = [self._rule(record, target) for record in records]
            malformed = next((rule for rule in rules if rule is not None and rule.kind == "malformed"), None)
            if malformed is not None:  # the whole call is refused: nothing is written
                raise ApiError(400, "JSON_PARSER_ERROR", malformed.message)
            seen: set[str] = set()
            plans = [self._plan(mode, record, target, seen, rule) for record, rule in zip(records, rules, strict=True)]
            failed = any(isinstance(plan, list) for plan in plans)
            if failed and bool(payload.get("allOrNone", False)):
                return [_failure(plan if isinstance(plan, list) else [_ROLLED_BACK]) for plan in plans]
            return [self._apply(plan) if isinstance(plan, _Plan) else _failure(plan) for plan in plans]

    @staticmethod
    def _upsert_target(name: str, field_name: str) -> soql.SObjectSchema:
        schema = SCHEMAS.get(name.lower())
        if schema is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if not schema.writable:
            raise ApiError(400, "INSUFFICIENT_ACCESS_OR_READONLY", f"insufficient access rights on {name}")
        spec = schema.field(field_name)
        if spec is None:
            raise ApiError(404, "NOT_FOUND",
                           f"Provided external ID field does not exist or is not accessible: {field_name}")
        if not spec.external_id:
            raise ApiError(400, "INVALID_FIELD", f"Field name provided, {spec.name} is not an External ID or"
                                                 f" indexed field for {name}")
        return schema

    def _rule(self, record: dict[str, Any], target: soql.SObjectSchema | None) -> RejectionRule | None:
        """The injected rejection rule refusing this record, if any (by object and external key)."""
        schema = target or _record_schema(record)
        if schema is None:
            return None
        key = next((value for name, value in record.items() if name.lower() == KR_EXTERNAL_ID.lower()), None)
        return self.state.rejections.match("salesforce", schema.name, None if key is None else str(key))

    def _plan(self, mode: str, record: dict[str, Any], target: soql.SObjectSchema | None,
              seen: set[str], rule: RejectionRule | None = None) -> _Plan | list[dict[str, Any]]:
        type_name = _type_name(record)
        schema = target or _record_schema(record)
        mismatched = target is not None and type_name and str(type_name).lower() != target.name.lower()
        if schema is None or mismatched:
            return [_error("INVALID_TYPE", "Each record needs attributes.type naming a valid sObject type")]
        if not schema.writable:
            return [_error("INSUFFICIENT_ACCESS_OR_READONLY", f"insufficient access rights on {schema.name}")]
        errors: list[dict[str, Any]] = []
        values: dict[str, Any] = {}
        for field_name, value in record.items():
            if field_name == "attributes" or (mode == "update" and field_name.lower() == "id"):
                continue
            if field_name.lower().endswith("__r"):  # a lookup set through the parent's external id
                lookup = schema.field(field_name[:-3] + "__c")
                if lookup is not None and lookup.type == "reference" and isinstance(value, dict):
                    parent, problem = self._foreign_key(lookup, value)
                    errors.extend([problem] if problem else [])
                    values[lookup.name] = parent
                    continue
            spec = schema.field(field_name)
            if spec is None:
                errors.append(_error("INVALID_FIELD", f"No such column '{field_name}' on sobject of type "
                                     f"{schema.name}", [field_name]))
            elif not (spec.createable or spec.updateable):
                errors.append(_error("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: "
                                     f"{spec.name}. Please check the security settings of this field and "
                                     "verify that it is read/write for your profile or permission set.",
                                     [spec.name]))
            else:
                stored, problem = self._reference(schema, spec, value) if spec.type == "reference" \
                    else _coerce(spec, value)
                errors.extend([problem] if problem else [])
                values[spec.name] = stored
        if errors:
            return errors
        if rule is not None:
            return [_error(_RULE_CODES[rule.kind], rule.message)]
        key = values.get(KR_EXTERNAL_ID)
        if key is not None and key in seen:
            return [_error("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}",
                           [KR_EXTERNAL_ID])]
        if key is not None:
            seen.add(key)
        holder = self._id_for_key(schema, key) if key is not None else None
        if mode == "update":
            record_id = self._existing_id(schema, record.get("Id", record.get("id")))
            if isinstance(record_id, list):
                return record_id
            if holder is not None and holder != record_id:
                return [_duplicate(schema, holder)]
            return _Plan(schema, record_id, key, values, False)
        if mode == "upsert" and key is None:
            return [_missing(KR_EXTERNAL_ID)]
        if mode == "create" and holder is not None:
            return [_duplicate(schema, holder)]
        if holder is None and values.get("Name") is None:
            return [_missing("Name")]
        return _Plan(schema, holder, key, values, mode == "upsert")

    def _foreign_key(self, lookup: soql.FieldSpec, value: dict[str, Any]) -> tuple[int | None, dict[str, Any] | None]:
        """The parent's id of `{"Key__c": ...}` (attributes aside), or Salesforce's per-record error."""
        parent = SCHEMAS.get(str(lookup.reference_to).lower())
        items = [(name, key) for name, key in value.items() if name != "attributes"]
        if parent is None or len(items) != 1:
            return None, _error("INVALID_FIELD", f"{lookup.label}: a foreign key needs exactly one external id"
                                " field", [lookup.name])
        name, key = items[0]
        field = parent.field(name)
        if field is None or not field.external_id:
            return None, _error("INVALID_FIELD", f"Field name provided, {name} is not an External ID or indexed"
                                f" field for {parent.name}", [lookup.name])
        found = self._id_for_key(parent, str(key))
        if found is None:
            return None, _error("INVALID_FIELD", f"Foreign key external ID: {key} not found for field "
                                f"{field.name} in entity {parent.name}", [])
        return found, None

    def _reference(self, schema: soql.SObjectSchema, spec: soql.FieldSpec,
                   raw: Any) -> tuple[int | None, dict[str, Any] | None]:
        """A lookup set by Id: the record must exist (an owner must be an active user)."""
        if raw is None:
            return (None, None) if spec.nillable else (None, _missing(spec.name))
        try:
            sobject, number = sf_number(str(raw))
        except ValueError:
            return None, _error("MALFORMED_ID", f"{spec.label}: id value of incorrect type: {raw}", [spec.name])
        if sobject != spec.reference_to:
            return None, _error("FIELD_INTEGRITY_EXCEPTION", f"{spec.label}: id value of incorrect type: {raw}",
                                [spec.name])
        if sobject == "User":
            rows = self.state.query("SELECT is_active FROM owners WHERE id = ? AND deleted = 0", (number,))
            if rows and not rows[0]["is_active"]:
                return None, _error("INACTIVE_OWNER_OR_USER", f"operation performed with inactive user [{raw}]"
                                    f" as owner of {schema.name}", [spec.name])
        else:
            rows = self.state.query("SELECT id FROM custom_records WHERE crm = 'salesforce' AND object = ? AND"
                                    " id = ?", (sobject, number))
        if not rows:
            return None, _error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {raw}", [spec.name])
        return number, None

    def _id_for_key(self, schema: soql.SObjectSchema, key: str) -> int | None:
        rows = self.state.query("SELECT id FROM custom_records WHERE crm = 'salesforce' AND object = ? AND"
                                " unique_key = ?", (schema.name, key))
        return rows[0]["id"] if rows else None

    def _existing_id(self, schema: soql.SObjectSchema, raw: Any) -> int | list[dict[str, Any]]:
        try:
            sobject, number = sf_number(str(raw))
        except ValueError:
            return [_error("MALFORMED_ID", f"Id: id value of incorrect type: {raw}", ["Id"])]
        rows = self.state.query("SELECT id FROM custom_records WHERE crm = 'salesforce' AND object = ?"
                                " AND id = ?", (schema.name, number))
        if sobject != schema.name or not rows:
            return [_error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {raw}", ["Id"])]
        return number

    def _apply(self, plan: _Plan) -> dict[str, Any]:
        name = plan.schema.name
        if plan.record_id is not None and not plan.report_created:  # update by Id
            now = self.state.next_modstamp_ms()
            with self.state.transaction() as conn:
                row = conn.execute("SELECT fields, unique_key FROM custom_records WHERE crm = 'salesforce'"
                                   " AND object = ? AND id = ?", (name, plan.record_id)).fetchone()
                merged = {**json.loads(row["fields"]), **plan.values}
                key = plan.values.get(KR_EXTERNAL_ID, row["unique_key"])
                conn.execute("UPDATE custom_records SET fields = ?, unique_key = ?, modified_ms = ? WHERE"
                             " crm = 'salesforce' AND object = ? AND id = ?",
                             (json.dumps(merged), key, now, name, plan.record_id))
            return {"id": sf_id(name, plan.record_id), "success": True, "errors": []}
        # a record created without a key gets a NULL unique key, which SQLite's UNIQUE allows repeatedly
        record_id, created = self.state.upsert_custom("salesforce", name, plan.key, plan.values)  # type: ignore
        result: dict[str, Any] = {"id": sf_id(name, record_id), "success": True, "errors": []}
        if plan.report_created:
            result["created"] = created
        return result




def _type_name(record: dict[str, Any]) -> str | None:
    attributes = record.get("attributes")
    return attributes.get("type") if isinstance(attributes, dict) else None


def _record_schema(record: dict[str, Any]) -> soql.SObjectSchema | None:
    return SCHEMAS.get(str(_type_name(record)).lower())
