"""Associations between custom object records on the sandbox HubSpot portal (v4 API).

Standard objects associate through the logical tables (hubspot_search.ASSOCIATION_LINKS); records
of custom objects (okr-sync's OKR objects) associate only when a client asks, through
`POST /crm/v4/associations/{from}/{to}/batch/associate/default`, and only along an association
definition of the two types (created with the schema, `associatedObjects`, or with
`POST /crm-object-schemas/v3/schemas/{type}/associations`). They are kept in a table of their own
and read back either way round with the v4 batch read, as HubSpot serves them. A record that no
longer exists (the org was regenerated) has no associations.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.hubspot_objects import ObjectType
from connectors.sandbox.hubspot_search import MAX_ASSOCIATION_INPUTS, ApiError, batch_inputs, no_associations
from connectors.sandbox.state import SandboxState

CRM = "hubspot"
TABLE_SQL = """CREATE TABLE IF NOT EXISTS hubspot_custom_associations (
    from_object TEXT NOT NULL, from_id INTEGER NOT NULL, to_object TEXT NOT NULL, to_id INTEGER NOT NULL,
    type_id INTEGER NOT NULL, PRIMARY KEY (from_object, from_id, to_object, to_id))"""
MAX_CREATE_INPUTS = 2_000  # HubSpot: batch associate accepts at most 2000 inputs


def _ensure_table(state: SandboxState) -> None:
    with state.transaction() as conn:
        conn.execute(TABLE_SQL)


def _number(kind: ObjectType, raw: Any) -> int | None:
    text = str(raw.get("id") if isinstance(raw, dict) else raw)
    return int(text) - kind.id_offset if text.isdigit() else None


def _exists(state: SandboxState, kind: ObjectType, number: int | None) -> bool:
    return number is not None and bool(state.query(
        "SELECT 1 FROM custom_records WHERE crm = ? AND object = ? AND id = ?", (CRM, kind.name, number)))


def create_default(state: SandboxState, source: ObjectType, target: ObjectType, type_id: int | None,
                   body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Associate pairs of records with the types' default association: (results, errors).

    Associating a pair that is already associated changes nothing and succeeds (HubSpot does the
    same), so a retried call is harmless. A record that does not exist is an error of a 207.
    """
    if not (source.custom and target.custom):
        raise ApiError(400, "The sandbox associates only custom object records through the API")
    if type_id is None:
        raise ApiError(400, f"There is no association definition between {source.name} and {target.name}",
                       "VALIDATION_ERROR")
    inputs = batch_inputs(body, MAX_CREATE_INPUTS)
    _ensure_table(state)
    results, errors = [], []
    spec = {"associationCategory": "USER_DEFINED", "associationTypeId": type_id}
    for item in inputs:
        ends = (item.get("from"), item.get("to")) if isinstance(item, dict) else (None, None)
        from_number, to_number = _number(source, ends[0] or {}), _number(target, ends[1] or {})
        if not (_exists(state, source, from_number) and _exists(state, target, to_number)):
            raw = [str((end or {}).get("id")) for end in ends]
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "message": f"No {source.name} {raw[0]} or no {target.name} {raw[1]} to associate",
                           "context": {"fromObjectId": [raw[0]], "toObjectId": [raw[1]]}, "errors": [],
                           "links": {}})
            continue
        with state.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO hubspot_custom_associations VALUES (?, ?, ?, ?, ?)",
                         (source.name, from_number, target.name, to_number, type_id))
        results.append({"from": {"id": source.record_id(from_number or 0)},
                        "to": {"id": target.record_id(to_number or 0)}, "associationSpec": spec})
    return results, errors


def read_custom(state: SandboxState, source: ObjectType, target: ObjectType,
                body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """POST /crm/v4/associations/{from}/{to}/batch/read for custom objects: (results, errors), either
    direction of each stored association; an id with none is a NO_ASSOCIATIONS_FOUND error (207)."""
    inputs = batch_inputs(body, MAX_ASSOCIATION_INPUTS)
    _ensure_table(state)
    results, errors = [], []
    for item in inputs:
        raw = str(item.get("id") if isinstance(item, dict) else item)
        number = _number(source, raw)
        rows = [] if number is None else state.query(
            "SELECT a.to_id AS other, a.type_id FROM hubspot_custom_associations a"
            " JOIN custom_records r ON r.crm = ? AND r.object = a.to_object AND r.id = a.to_id"
            " WHERE a.from_object = ? AND a.from_id = ? AND a.to_object = ?"
            " UNION SELECT a.from_id AS other, a.type_id FROM hubspot_custom_associations a"
            " JOIN custom_records r ON r.crm = ? AND r.object = a.from_object AND r.id = a.from_id"
            " WHERE a.to_object = ? AND a.to_id = ? AND a.from_object = ? ORDER BY other",
            (CRM, source.name, number, target.name, CRM, source.name, number, target.name))
        if rows and _exists(state, source, number):
            results.append({"from": {"id": raw}, "to": [
                {"toObjectId": int(target.record_id(row["other"])),
                 "associationTypes": [{"category": "USER_DEFINED", "typeId": row["type_id"], "label": None}]}
                for row in rows]})
        else:
            errors.append(no_associations(source.name, target.name, raw))
    return results, errors
