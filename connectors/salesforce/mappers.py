"""One mapper per stream: a Salesforce record (REST JSON, or a Bulk CSV row after csv_record) -> a canonical row.

Each mapper reads only the fields its StreamSpec selects (settings.STREAMS) and returns the
values of its table in connectors.store.RECORD_MODELS, with `custom` empty: the source fills
that from the config's custom fields (custom_fields.py). Datetimes are aware UTC; the date of a
datetime (CreatedDate, an Event's start) is its calendar day in the config's time zone `zone`
(connectors.local_dates); date fields (CloseDate, ActivityDate) are the org's calendar dates as they are.

`map_page` maps a page the way the source stores it: every record checked (connectors.row_checks),
so a value that cannot be read (a number that is not one, a flag that is not a boolean, a missing
Id or SystemModstamp) stops the stream with a BadRecord naming the record and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from connectors.local_dates import local_date
from connectors.row_checks import map_record
from connectors.salesforce.helpers import SOURCE, parse_date, parse_datetime
from connectors.store import (
    RECORD_MODELS,
    Account,
    Activity,
    Campaign,
    Contact,
    Deal,
    Lead,
    LineItem,
    Owner,
    SupportCase,
)

Row = dict[str, Any]
Mapper = Callable[[Mapping[str, Any], ZoneInfo], Row]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _flag(value: Any) -> bool:
    """A checkbox: JSON true / false (null reads false); anything else is not a Salesforce boolean."""
    if value is None or isinstance(value, bool):
        return bool(value)
    raise ValueError(f"not true or false: {value!r}")


def _lower(value: Any) -> str | None:
    return str(value).lower() if value else None


def _person_name(record: Mapping[str, Any]) -> str | None:
    """ "First Last" as every source spells it; the compound Name when both parts are missing."""
    parts = [str(part).strip() for part in (record.get("FirstName"), record.get("LastName")) if part]
    return " ".join(part for part in parts if part) or record.get("Name")


def _base(record: Mapping[str, Any]) -> Row:
    """What every canonical row carries: source, id, modified_at, is_deleted, custom (Id and
    SystemModstamp are required: the cursor is made of them)."""
    modified = parse_datetime(record["SystemModstamp"])
    if modified is None:
        raise KeyError("SystemModstamp")
    return {"source": SOURCE, "source_id": record["Id"], "modified_at": modified,
            "is_deleted": _flag(record.get("IsDeleted")), "custom": {}}


def _created(record: Mapping[str, Any], zone: ZoneInfo) -> date | None:
    return local_date(parse_datetime(record.get("CreatedDate")), zone)


def owner_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    row = _base(record)
    del row["is_deleted"]  # users are deactivated, never deleted: owners have no delete flag
    return row | {"email": record.get("Email"), "name": record.get("Name"), "team": record.get("Department"),
                  "region": record.get("Division"), "is_active": _flag(record.get("IsActive"))}


def account_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    return _base(record) | {
        "name": record.get("Name"), "owner_id": record.get("OwnerId"), "country": record.get("BillingCountry"),
        "industry": record.get("Industry"), "account_type": record.get("Type"), "created_date": _created(record, zone),
    }


def deal_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    return _base(record) | {
        "name": record.get("Name"), "owner_id": record.get("OwnerId"), "account_id": record.get("AccountId"),
        "deal_type": record.get("Type"), "stage": record.get("StageName"),
        "amount": _float(record.get("Amount")), "probability": _float(record.get("Probability")),
        "is_closed": _flag(record.get("IsClosed")), "is_won": _flag(record.get("IsWon")),
        "created_date": _created(record, zone), "close_date": parse_date(record.get("CloseDate")),
        "lead_source": record.get("LeadSource"),
    }


def line_item_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    """An OpportunityLineItem; its product's name and family come through the Product2 relationship
    (REST: a nested object or null; Bulk CSV: `Product2.Name` columns, nested by csv_record)."""
    product = record.get("Product2") or {}
    return _base(record) | {
        "deal_id": record.get("OpportunityId"), "product_id": record.get("Product2Id"),
        "product_name": product.get("Name"), "product_family": product.get("Family"),
        "quantity": _float(record.get("Quantity")), "unit_price": _float(record.get("UnitPrice")),
        "total_price": _float(record.get("TotalPrice")), "created_date": _created(record, zone),
    }


def _task_row(record: Mapping[str, Any], kind: str) -> Row:
    """A Task; ActivityDate is a date field, the day the user filed it under (no zone to apply)."""
    return _base(record) | {
        "kind": kind, "subject": record.get("Subject"), "owner_id": record.get("OwnerId"),
        "deal_id": record.get("WhatId"), "activity_date": parse_date(record.get("ActivityDate")),
        "duration_seconds": None, "outcome": None, "direction": None,
    }


def call_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    """A Task of subtype Call; CallType (Inbound / Outbound / Internal) lower-cased is its direction."""
    return _task_row(record, "call") | {
        "duration_seconds": _int(record.get("CallDurationInSeconds")),
        "outcome": record.get("CallDisposition"), "direction": _lower(record.get("CallType")),
    }


def email_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    """A Task of subtype Email: Salesforce records no direction, duration or outcome for it."""
    return _task_row(record, "email")


def meeting_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    """An Event: dated by the local day of its start; its duration is end - start (else DurationInMinutes)."""
    start, end = parse_datetime(record.get("StartDateTime")), parse_datetime(record.get("EndDateTime"))
    if start is not None and end is not None:
        duration = int((end - start).total_seconds())
    else:
        minutes = _int(record.get("DurationInMinutes"))
        duration = None if minutes is None else minutes * 60
    return _base(record) | {
        "kind": "meeting", "subject": record.get("Subject"), "owner_id": record.get("OwnerId"),
        "deal_id": record.get("WhatId"),
        "activity_date": local_date(start, zone) or parse_date(record.get("ActivityDate")),
        "duration_seconds": duration, "outcome": None, "direction": None,
    }


def lead_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    return _base(record) | {
        "name": _person_name(record), "email": record.get("Email"), "company": record.get("Company"),
        "country": record.get("Country"), "owner_id": record.get("OwnerId"),
        "lead_source": record.get("LeadSource"), "status": record.get("Status"),
        "is_converted": _flag(record.get("IsConverted")), "converted_date": parse_date(record.get("ConvertedDate")),
        "converted_account_id": record.get("ConvertedAccountId"),
        "converted_contact_id": record.get("ConvertedContactId"), "created_date": _created(record, zone),
    }


def contact_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    """A Contact; Salesforce has no lifecycle stage (a HubSpot notion), so it stays None."""
    return _base(record) | {
        "name": _person_name(record), "email": record.get("Email"), "account_id": record.get("AccountId"),
        "owner_id": record.get("OwnerId"), "lead_source": record.get("LeadSource"), "lifecycle_stage": None,
        "created_date": _created(record, zone),
    }


def case_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    """A Case, with its created and closed times to the second (24-hour resolution metrics)."""
    created, closed = parse_datetime(record.get("CreatedDate")), parse_datetime(record.get("ClosedDate"))
    return _base(record) | {
        "subject": record.get("Subject"), "account_id": record.get("AccountId"), "owner_id": record.get("OwnerId"),
        "status": record.get("Status"), "priority": record.get("Priority"), "origin": record.get("Origin"),
        "is_closed": _flag(record.get("IsClosed")), "created_at": created, "closed_at": closed,
        "created_date": local_date(created, zone), "closed_date": local_date(closed, zone),
    }


def campaign_row(record: Mapping[str, Any], zone: ZoneInfo) -> Row:
    return _base(record) | {
        "name": record.get("Name"), "campaign_type": record.get("Type"), "status": record.get("Status"),
        "is_active": _flag(record.get("IsActive")), "owner_id": record.get("OwnerId"),
        "start_date": parse_date(record.get("StartDate")), "end_date": parse_date(record.get("EndDate")),
        "budgeted_cost": _float(record.get("BudgetedCost")), "actual_cost": _float(record.get("ActualCost")),
        "expected_revenue": _float(record.get("ExpectedRevenue")), "created_date": _created(record, zone),
    }


# Stream -> (canonical table, mapper); every stream of settings.STREAMS has one.
MAPPERS: dict[str, tuple[type, Mapper]] = {
    "users": (Owner, owner_row),
    "accounts": (Account, account_row),
    "opportunities": (Deal, deal_row),
    "line_items": (LineItem, line_item_row),
    "calls": (Activity, call_row),
    "emails": (Activity, email_row),
    "meetings": (Activity, meeting_row),
    "leads": (Lead, lead_row),
    "contacts": (Contact, contact_row),
    "cases": (SupportCase, case_row),
    "campaigns": (Campaign, campaign_row),
}
_ENTITY_OF_MODEL = {model: entity for entity, model in RECORD_MODELS.items()}


def map_page(stream: str, records: list[dict[str, Any]], zone: ZoneInfo,
             extra: Callable[[Mapping[str, Any]], Row]) -> list[Row]:
    """The canonical rows of one page of `stream`, each with `extra(record)` (its custom fields), checked
    (connectors.row_checks): the first record that cannot be read raises a BadRecord."""
    model, mapper = MAPPERS[stream]
    rows = []
    for position, record in enumerate(records, 1):
        record_id = record.get("Id") if isinstance(record, Mapping) else None

        def mapped(fields: Mapping[str, Any], record: dict[str, Any] = record) -> Row:
            return mapper(fields, zone) | extra(record)

        rows.append(map_record(SOURCE, stream, model, record_id if isinstance(record_id, str) else None, record,
                               mapped, position))
    return rows
# Stream -> canonical entity name (the keys of the config's custom_fields)
STREAM_ENTITY: dict[str, str] = {stream: _ENTITY_OF_MODEL[model] for stream, (model, _mapper) in MAPPERS.items()}
