"""Tasks and Chatter posts written through the sandbox's Salesforce REST API (okr-sync's alerts).

The org's generated Tasks (calls, emails) are a read-only view; tasks created through the API live
in `custom_records` (object `Task`, unique key = the External ID `OKR_Alert_Key__c`), with Task ids
of their own (ids.ALERT_TASK_OFFSET on), and are served by that key with the single-record
resources Salesforce documents:

- `PATCH /sobjects/Task/OKR_Alert_Key__c/{key}`: upsert by external id: 201
  `{"id", "success": true, "errors": [], "created": true}` on create, 200 with `"created": false`
  on update (API v46+ answers a body for both).
- `GET /sobjects/Task/OKR_Alert_Key__c/{key}`: the record (`attributes`, `Id`, its fields) or 404
  `NOT_FOUND`.
- `POST /sobjects/FeedItem`: a Chatter post on a record (`ParentId`, `Body`, `Type`): 201
  `{"id", "success": true, "errors": []}`; FeedItem is queryable with SOQL (salesforce_objects.FEED_ITEM).

Fields are checked as the real API does for these writes: an unknown field is 400 INVALID_FIELD,
a WhatId / ParentId that is no OKR_Key_Result__c record or an OwnerId that is no active user is 400
INVALID_CROSS_REFERENCE_KEY / INACTIVE_OWNER_OR_USER (errors of a single-record call are the
whole answer). SOQL over Task does not see API-made tasks: read them by key (or `tasks()` in tests).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from connectors.sandbox.ids import ALERT_TASK_OFFSET, sf_id, sf_number
from connectors.sandbox.salesforce_schema import ApiError
from connectors.sandbox.salesforce_writes import Payload
from connectors.sandbox.state import SandboxState

CRM = "salesforce"
ALERT_KEY_FIELD = "OKR_Alert_Key__c"
TASK_FIELDS = {"Subject": 255, "Description": 32_000, "OwnerId": 18, "WhatId": 18, "ActivityDate": 10,
               "Status": 40, "Priority": 40, "TaskSubtype": 40}
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_PRIORITIES = ("High", "Normal", "Low")
FEED_FIELDS = {"ParentId": 18, "Body": 10_000, "Type": 40}
DEFAULT_OWNER = 1


def tasks(state: SandboxState) -> list[dict[str, Any]]:
    """Every API-made task, as the API serves it (for tests and the demo)."""
    return [_task_json(row) for row in state.custom_records(CRM, "Task")]


def feed_items(state: SandboxState) -> list[dict[str, Any]]:
    return [{"Id": sf_id("FeedItem", row["id"]), **row["fields"],
             "ParentId": sf_id("OKR_Key_Result__c", row["fields"]["ParentId"])}
            for row in state.custom_records(CRM, "FeedItem")]


def _task_json(row: dict[str, Any], version: str = "v62.0") -> dict[str, Any]:
    record_id = sf_id("Task", ALERT_TASK_OFFSET + row["id"])
    return {"attributes": {"type": "Task", "url": f"/services/data/{version}/sobjects/Task/{record_id}"},
            "Id": record_id, ALERT_KEY_FIELD: row["unique_key"], "TaskSubtype": "Task",
            **{name: None for name in TASK_FIELDS}, "OwnerId": sf_id("User", DEFAULT_OWNER), **row["fields"]}


def _check_fields(payload: dict[str, Any], allowed: dict[str, int], sobject: str) -> None:
    for name, value in payload.items():
        if name == "attributes":
            continue
        if name not in allowed:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")
        if value is not None and not isinstance(value, str):
            raise ApiError(400, "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value!r}")
        if isinstance(value, str) and len(value) > allowed[name]:
            raise ApiError(400, "STRING_TOO_LONG", f"{name}: data value too large (max length={allowed[name]})")


def _check_kr(state: SandboxState, raw: Any, field: str) -> None:
    try:
        sobject, number = sf_number(str(raw))
    except ValueError:
        raise ApiError(400, "MALFORMED_ID", f"{field}: id value of incorrect type: {raw}") from None
    rows = state.query("SELECT id FROM custom_records WHERE crm = 'salesforce' AND object = ? AND id = ?",
                       (sobject, number))
    if sobject != "OKR_Key_Result__c" or not rows:
        raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {raw}")


def _check_owner(state: SandboxState, raw: Any) -> None:
    try:
        sobject, number = sf_number(str(raw))
    except ValueError:
        raise ApiError(400, "MALFORMED_ID", f"Assigned To ID: id value of incorrect type: {raw}") from None
    rows = state.query("SELECT is_active FROM owners WHERE id = ? AND deleted = 0", (number,))
    if sobject != "User" or not rows:
        raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {raw}")
    if not rows[0]["is_active"]:
        raise ApiError(400, "INACTIVE_OWNER_OR_USER",
                       f"operation performed with inactive user [{raw}] as owner of task")


def _task_row(state: SandboxState, key: str) -> dict[str, Any] | None:
    rows = state.query("SELECT id, unique_key, fields FROM custom_records WHERE crm = 'salesforce' AND"
                       " object = 'Task' AND unique_key = ?", (key,))
    return {**dict(rows[0]), "fields": json.loads(rows[0]["fields"])} if rows else None


def register(app: FastAPI, state: SandboxState) -> None:
    """Add the Task and FeedItem write resources to the Salesforce face `app`."""
    from connectors.sandbox.salesforce_api import _check_version

    @app.patch(f"/services/data/{{version}}/sobjects/Task/{ALERT_KEY_FIELD}/{{key}}")
    def upsert_task(version: str, key: str, payload: Payload) -> JSONResponse:
        _check_version(version)
        _check_fields(payload, TASK_FIELDS, "Task")
        if payload.get("WhatId") is not None:
            _check_kr(state, payload["WhatId"], "WhatId")
        if payload.get("OwnerId") is not None:
            _check_owner(state, payload["OwnerId"])
        if payload.get("Status") not in (None, *TASK_STATUSES):
            raise ApiError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"Status: bad value for restricted"
                                                                           f" picklist field: {payload['Status']}")
        if payload.get("Priority") not in (None, *TASK_PRIORITIES):
            raise ApiError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Priority: bad value for restricted"
                                                                           f" picklist field: {payload['Priority']}")
        if payload.get("ActivityDate") is not None:
            try:
                date.fromisoformat(payload["ActivityDate"])
            except ValueError:
                raise ApiError(400, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                               f"Due Date Only: value not of required type: {payload['ActivityDate']}") from None
        fields = {name: value for name, value in payload.items() if name != "attributes"}
        number, created = state.upsert_custom(CRM, "Task", key, fields)
        body = {"id": sf_id("Task", ALERT_TASK_OFFSET + number), "success": True, "errors": [], "created": created}
        return JSONResponse(body, 201 if created else 200)

    @app.get(f"/services/data/{{version}}/sobjects/Task/{ALERT_KEY_FIELD}/{{key}}")
    def read_task(version: str, key: str) -> JSONResponse:
        _check_version(version)
        row = _task_row(state, key)
        if row is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return JSONResponse(_task_json(row, version))

    @app.post("/services/data/{version}/sobjects/FeedItem")
    def post_feed_item(version: str, payload: Payload) -> JSONResponse:
        _check_version(version)
        _check_fields(payload, FEED_FIELDS, "FeedItem")
        if not payload.get("ParentId"):
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [ParentId]")
        if not payload.get("Body"):
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Body]")
        _check_kr(state, payload["ParentId"], "ParentId")
        _sobject, parent = sf_number(str(payload["ParentId"]))
        fields = {"ParentId": parent, "Body": payload["Body"], "Type": payload.get("Type") or "TextPost"}
        number, _created = state.upsert_custom(CRM, "FeedItem", None, fields)  # type: ignore[arg-type]
        return JSONResponse({"id": sf_id("FeedItem", number), "success": True, "errors": []}, 201)
