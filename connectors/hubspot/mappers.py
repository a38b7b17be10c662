"""HubSpot records into canonical rows: one mapper per search stream, labels from the portal.

HubSpot sends every property as a string and enumerations as internal values; the mappers
turn them into the values the Salesforce connector stores for the same logical record (stage
and option labels, probabilities in percent, lower-case directions, and the date of a datetime as its
calendar day in the config's time zone, connectors.local_dates), so
rules never care which CRM was read. Labels are never hard-coded: deal and ticket stages come
from the pipelines API, option labels from the properties API (`Labels`), loaded by the stream
only when it has a record to map.

A mapper returns the entity's own values; the writer adds what every row shares (source,
source_id, modified_at, is_deleted, custom) and the associated id (connectors.hubspot.writer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from connectors.hubspot import settings
from connectors.hubspot.helpers import parse_time, to_float
from connectors.local_dates import local_date


@dataclass(frozen=True)
class Stage:
    label: str
    is_closed: bool
    is_won: bool
    probability: float | None  # percent
    is_qualified: bool = False  # a lead stage that converts the lead (metadata isQualified)


@dataclass(frozen=True)
class Labels:
    """What mapping one object type's records needs beyond them: the portal's pipeline stages and
    enumeration option labels, and the time zone whose calendar days the rows' dates are."""

    stages: Mapping[str, Stage] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # property -> value -> label
    zone: ZoneInfo = ZoneInfo("UTC")

    def day(self, value: Any) -> date | None:
        """The local calendar day of a HubSpot datetime (ms epoch or ISO text)."""
        return local_date(parse_time(value), self.zone)

    def option(self, prop: str, value: str | None) -> str | None:
        """The label of an enumeration value (the value itself when the portal has no such option)."""
        if value is None or value == "":
            return None
        return self.options.get(prop, {}).get(value, value)


def stage_from_pipeline(stage: Any) -> Stage:
    """A deal stage (metadata isClosed, probability 0-1), a ticket stage (metadata ticketState) or a
    lead stage (metadata leadState, isQualified)."""
    metadata = stage.metadata or {}
    probability = to_float(metadata.get("probability"))
    closed = (str(metadata.get("isClosed", "false")).lower() == "true"
              or str(metadata.get("ticketState", "")).upper() == settings.CLOSED_TICKET_STATE
              or str(metadata.get("leadState", "")).upper() == settings.CLOSED_TICKET_STATE)
    return Stage(stage.label, closed, closed and probability == 1.0,
                 None if probability is None else round(probability * 100, 6),
                 str(metadata.get("isQualified", "false")).lower() == "true")


def options_of(properties: Any, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """value -> label of each named enumeration property of a GET /crm/v3/properties/{type} answer."""
    return {prop.name: {option.value: option.label for option in prop.options or []}
            for prop in properties or [] if prop.name in names}


def owner_row(owner: Any) -> dict[str, Any]:
    """An owner of GET /crm/v3/owners (not a search stream: a complete row)."""
    teams = owner.teams or []
    primary = next((team for team in teams if team.primary), teams[0] if teams else None)
    name = " ".join(part for part in (owner.first_name, owner.last_name) if part) or None
    return {"source": settings.SOURCE, "source_id": owner.id, "email": owner.email, "name": name,
            "team": primary.name if primary else None, "region": None, "is_active": not owner.archived,
            "modified_at": parse_time(owner.updated_at), "custom": {}}


def _owner(props: Mapping[str, Any]) -> str | None:
    return props.get("hubspot_owner_id") or None


def account_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    return {"name": props.get("name"), "owner_id": _owner(props), "country": props.get("country") or None,
            "industry": props.get("industry") or None, "account_type": labels.option("type", props.get("type")),
            "created_date": labels.day(props.get("createdate"))}


def deal_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    stage_id = props.get("dealstage")
    stage = labels.stages.get(stage_id or "")
    probability = to_float(props.get("hs_deal_stage_probability"))
    if probability is not None:
        probability = round(probability * 100, 6)
    elif stage:
        probability = stage.probability
    return {
        "name": props.get("dealname"), "owner_id": _owner(props),
        "deal_type": labels.option("dealtype", props.get("dealtype")),
        "stage": stage.label if stage else stage_id, "amount": to_float(props.get("amount")),
        "probability": probability,
        "is_closed": stage.is_closed if stage else props.get("hs_is_closed") == "true",
        "is_won": stage.is_won if stage else props.get("hs_is_closed_won") == "true",
        "created_date": labels.day(props.get("createdate")), "close_date": labels.day(props.get("closedate")),
        "lead_source": labels.option("lead_source", props.get("lead_source")),
    }


def line_item_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    return {"product_id": props.get("hs_product_id") or None, "product_name": props.get("name"),
            "product_family": None, "quantity": to_float(props.get("quantity")),
            "unit_price": to_float(props.get("price")), "total_price": to_float(props.get("amount")),
            "created_date": labels.day(props.get("createdate"))}


def _direction(value: str | None) -> str | None:
    return value.lower() if value else None


def call_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    duration = to_float(props.get("hs_call_duration"))  # milliseconds
    return {"kind": "call", "subject": props.get("hs_call_title"), "owner_id": _owner(props),
            "activity_date": labels.day(props.get("hs_timestamp")),
            "duration_seconds": int(duration) // 1000 if duration is not None else None,
            "outcome": props.get("hs_call_disposition") or None,
            "direction": _direction(props.get("hs_call_direction"))}


def email_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    direction = props.get("hs_email_direction")
    return {"kind": "email", "subject": props.get("hs_email_subject"), "owner_id": _owner(props),
            "activity_date": labels.day(props.get("hs_timestamp")), "duration_seconds": None, "outcome": None,
            "direction": settings.EMAIL_DIRECTIONS.get(direction or "", _direction(direction))}


def meeting_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    start = parse_time(props.get("hs_meeting_start_time")) or parse_time(props.get("hs_timestamp"))
    end = parse_time(props.get("hs_meeting_end_time"))
    return {"kind": "meeting", "subject": props.get("hs_meeting_title"), "owner_id": _owner(props),
            "activity_date": local_date(start, labels.zone),
            "duration_seconds": int((end - start).total_seconds()) if start and end else None,
            "outcome": labels.option("hs_meeting_outcome", props.get("hs_meeting_outcome")), "direction": None}


def contact_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    name = " ".join(part for part in (props.get("firstname"), props.get("lastname")) if part) or None
    return {"name": name, "email": props.get("email") or None, "owner_id": _owner(props),
            "lead_source": labels.option("lead_source", props.get("lead_source")),
            "lifecycle_stage": labels.option("lifecyclestage", props.get("lifecyclestage")),
            "created_date": labels.day(props.get("createdate"))}


def lead_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    """A record of the Leads object (0-136): status is its pipeline stage's label, converted when the
    stage is qualified; converted_account_id is the associated company (the writer fills it)."""
    stage_id = props.get("hs_pipeline_stage")
    stage = labels.stages.get(stage_id or "")
    qualified = parse_time(props.get("hs_date_entered_qualified_stage"))
    return {"name": props.get("hs_lead_name") or None, "email": props.get("email") or None,
            "company": props.get("company") or None, "country": props.get("country") or None,
            "owner_id": _owner(props), "lead_source": labels.option("lead_source", props.get("lead_source")),
            "status": stage.label if stage else stage_id or None,
            "is_converted": stage.is_qualified if stage else False,
            "converted_date": local_date(qualified, labels.zone) if stage is None or stage.is_qualified else None,
            "converted_contact_id": None,  # one association a stream: leads -> companies
            "created_date": labels.day(props.get("hs_createdate") or props.get("createdate"))}


def case_row(props: Mapping[str, Any], labels: Labels) -> dict[str, Any]:
    stage_id = props.get("hs_pipeline_stage")
    stage = labels.stages.get(stage_id or "")
    created, closed = parse_time(props.get("createdate")), parse_time(props.get("closed_date"))
    return {"subject": props.get("subject"), "owner_id": _owner(props),
            "status": stage.label if stage else stage_id,
            "priority": labels.option("hs_ticket_priority", props.get("hs_ticket_priority")),
            "origin": labels.option("source_type", props.get("source_type")),
            "is_closed": stage.is_closed if stage else closed is not None,
            "created_at": created, "closed_at": closed,
            "created_date": local_date(created, labels.zone), "closed_date": local_date(closed, labels.zone)}


Mapper = Callable[[Mapping[str, Any], Labels], dict[str, Any]]
# Search stream -> its mapper (the table is settings.SEARCH_STREAMS[stream].entity).
MAPPERS: dict[str, Mapper] = {
    "companies": account_row, "deals": deal_row, "line_items": line_item_row, "calls": call_row,
    "emails": email_row, "meetings": meeting_row, "contacts": contact_row, "leads": lead_row, "tickets": case_row,
}


def _calendar_date(value: Any) -> date | None:
    """A campaign date: "YYYY-MM-DD" as it is (a calendar date, no zone), else the UTC date of a
    datetime (a date property is stored as midnight UTC)."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return local_date(parse_time(text), ZoneInfo("UTC"))


def campaign_row(record: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """A campaign of GET /marketing/v3/campaigns (JSON: id, properties, createdAt, updatedAt) as a
    complete row but for `custom`: status label, active when planned or in progress, created date in `zone`."""
    props = record.get("properties") or {}
    status = props.get("hs_campaign_status") or None
    return {"source": settings.SOURCE, "source_id": str(record["id"]), "name": props.get("hs_name") or None,
            "campaign_type": props.get("campaign_type") or None,
            "status": settings.CAMPAIGN_STATUSES.get(status, status) if status else None,
            "is_active": status in settings.ACTIVE_CAMPAIGN_STATUSES, "owner_id": props.get("hs_owner") or None,
            "start_date": _calendar_date(props.get("hs_start_date")),
            "end_date": _calendar_date(props.get("hs_end_date")),
            "budgeted_cost": to_float(props.get("hs_budget_items_sum_amount")),
            "actual_cost": to_float(props.get("hs_spend_items_sum_amount")),
            "expected_revenue": to_float(props.get("expected_revenue")),
            "created_date": local_date(parse_time(record.get("createdAt")), zone),
            "modified_at": parse_time(record.get("updatedAt")),
            "is_deleted": False}


def custom_values(props: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """The row's `custom` JSON: {canonical name: the property's string value (None when empty)}."""
    return {name: props.get(prop) if props.get(prop) != "" else None for name, prop in fields.items()}
