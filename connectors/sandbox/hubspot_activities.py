"""Tasks (0-27) and notes (0-46) on the sandbox HubSpot portal, written through the API (okr-sync's alerts).

They are served by the generic object routes (create / batch create / read / batch read / search,
connectors.sandbox.hubspot_api) as any object type, their records kept in `custom_records`
(objects `tasks`, `notes`) with ids of their own. Properties are HubSpot's for these objects
(hs_task_subject, hs_task_body, hs_task_status, hs_task_priority, hs_task_type, hs_timestamp,
hubspot_owner_id; hs_note_body, hs_timestamp, hubspot_owner_id) plus what `okr-sync setup hubspot`
creates on them (`okr_alert_key`, okr-sync's alert key: a plain text property, as HubSpot allows
unique values on few standard objects), present from the start when the OKR objects are
(`hubspot_objects`), else made through the properties API, values kept like any other. Every
property value is a string on the wire; hs_timestamp is required, as HubSpot requires it.

Activities associate with custom object records along HubSpot's default association (v4
`associate/default`; ACTIVITY_ASSOCIATION_TYPES), read back with the v4 batch read.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.hubspot_objects import ObjectType, PropertyDef, system_properties
from connectors.sandbox.state import SandboxState

ALERT_KEY_PROPERTY = "okr_alert_key"
ACTIVITY_OFFSETS = {"tasks": 43_000_000_000, "notes": 44_000_000_000}
# HUBSPOT_DEFINED association type ids of an activity with a custom object record (either way round)
ACTIVITY_ASSOCIATION_TYPES = {"tasks": 1_201, "notes": 1_202}
TASK_STATUSES = (("NOT_STARTED", "Not started"), ("IN_PROGRESS", "In progress"), ("WAITING", "Waiting"),
                 ("COMPLETED", "Completed"), ("DEFERRED", "Deferred"))
TASK_PRIORITIES = (("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High"))
TASK_TYPES = (("TODO", "To-do"), ("CALL", "Call"), ("EMAIL", "Email"))


def _prop(name: str, label: str, kind: str = "string", field_type: str = "text",
          options: tuple[tuple[str, str], ...] = (), defined: bool = True) -> PropertyDef:
    extract = f"json_extract(fields, '$.{name}')"
    comparable = f"CAST(ROUND((julianday({extract}) - 2440587.5) * 86400000) AS INTEGER)" \
        if kind == "datetime" else None
    return PropertyDef(name, label, kind, field_type, extract, comparable, options=options,
                       group="task" if defined else "okr_sync", hubspot_defined=defined)


def _activity(name: str, type_id: str, props: list[PropertyDef], defaults: tuple[str, ...],
              searchable: tuple[str, ...], alert_key: bool) -> ObjectType:
    offset = ACTIVITY_OFFSETS[name]
    owner = PropertyDef("hubspot_owner_id", "Activity assigned to", "enumeration", "select",
                        "json_extract(fields, '$.hubspot_owner_id')", group="task")
    mine = [_prop(ALERT_KEY_PROPERTY, "okr-sync alert key", defined=False)] if alert_key else []
    all_props = [*props, owner, *mine,
                 *system_properties(offset, "created_ms", "modified_ms", created_name="hs_createdate")]
    # `custom` marks types kept in custom_records (written and associated through the API)
    return ObjectType(name, type_id, "custom_records", "crm = 'hubspot' AND object = ?", (name,), offset,
                      "created_ms", "modified_ms", {prop.name: prop for prop in all_props}, defaults, searchable,
                      custom=True, schema={"requiredProperties": ["hs_timestamp"], "name": name,
                                           "objectTypeId": type_id, "fullyQualifiedName": name})


def activity_types(alert_key: bool = True) -> list[ObjectType]:
    """The tasks and notes object types; `alert_key`: with okr-sync's `okr_alert_key` property from the
    start (a portal set up already), else `okr-sync setup hubspot` creates it (a bare portal)."""
    timestamp = _prop("hs_timestamp", "Due date", "datetime", "date")
    return [
        _activity("tasks", "0-27", [
            _prop("hs_task_subject", "Task Title"), _prop("hs_task_body", "Notes", field_type="textarea"),
            _prop("hs_task_status", "Task Status", "enumeration", "select", TASK_STATUSES),
            _prop("hs_task_priority", "Priority", "enumeration", "select", TASK_PRIORITIES),
            _prop("hs_task_type", "Task Type", "enumeration", "select", TASK_TYPES), timestamp],
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id", "hs_task_subject"), ("hs_task_subject",),
            alert_key),
        _activity("notes", "0-46", [_prop("hs_note_body", "Note body", field_type="html"), timestamp],
                  ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"), ("hs_note_body",), alert_key),
    ]


def is_custom_object(kind: ObjectType) -> bool:
    """A custom object of the schemas API (tasks and notes are kept like one, but are standard objects)."""
    return kind.custom and kind.type_id.startswith("2-")


def activity_association_type(source: ObjectType, target: ObjectType) -> int | None:
    """The default association type of an activity and a custom object record, else None."""
    for one, other in ((source, target), (target, source)):
        if one.name in ACTIVITY_ASSOCIATION_TYPES and other.custom and other.name not in ACTIVITY_ASSOCIATION_TYPES:
            return ACTIVITY_ASSOCIATION_TYPES[one.name]
    return None


def records(state: SandboxState, name: str) -> list[dict[str, Any]]:
    """Every task or note written (for tests): id as the API shows it, and its properties."""
    offset = ACTIVITY_OFFSETS[name]
    return [{"id": str(row["id"] + offset), **row["fields"]} for row in state.custom_records("hubspot", name)]
