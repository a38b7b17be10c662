"""The sandbox HubSpot portal's marketing campaigns: `GET /marketing/v3/campaigns` over the campaigns table.

Shapes follow HubSpot's Campaigns API v3: a page is `{"total", "results": [{"id", "properties",
"createdAt", "updatedAt", "businessUnits"}], "paging": {"next": {"after", "link"}}}`. A campaign's id
is a GUID, stable per row (`campaign_guid`). `properties` lists the property names to return
(comma-separated or repeated; unknown names are ignored, and so are properties without a value);
without it a campaign's properties map is empty, as in HubSpot. Every value is a string. `sort`
is a property name (or createdAt / updatedAt), `-name` descending; without it campaigns come in
creation (row id) order. `after` is an opaque cursor (an offset into that order). There is no
search, no modified-date filter and no archived list: a deleted row is simply not listed.
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

from fastapi import FastAPI, Query

from connectors.sandbox.hubspot_objects import PropertyDef, iso_from_ms
from connectors.sandbox.hubspot_search import ApiError
from connectors.sandbox.ids import HS_OFFSET
from connectors.sandbox.state import SandboxState

MAX_CAMPAIGN_LIMIT = 100
DEFAULT_CAMPAIGN_LIMIT = 50
# The campaigns table's status -> HubSpot's hs_campaign_status value (label: CAMPAIGN_STATUS_LABELS).
CAMPAIGN_STATUS_VALUES = {"Planned": "planned", "In Progress": "in_progress", "Completed": "completed",
                          "Aborted": "paused"}
CAMPAIGN_STATUS_LABELS = {"planned": "Planned", "in_progress": "In Progress", "completed": "Completed",
                          "paused": "Paused"}
_STATUS_ARMS = " ".join(f"WHEN '{key}' THEN '{value}'" for key, value in CAMPAIGN_STATUS_VALUES.items())
CAMPAIGN_PROPERTIES = {prop.name: prop for prop in (
    PropertyDef("hs_name", "Campaign name", sql="name"),
    PropertyDef("hs_start_date", "Start date", "date", "date", "start_date"),
    PropertyDef("hs_end_date", "End date", "date", "date", "end_date"),
    PropertyDef("hs_campaign_status", "Campaign status", "enumeration", "select", f"CASE status {_STATUS_ARMS} END",
                options=tuple(CAMPAIGN_STATUS_LABELS.items())),
    PropertyDef("hs_budget_items_sum_amount", "Budget total", "number", "number", "budgeted_cost"),
    PropertyDef("hs_spend_items_sum_amount", "Spend total", "number", "number", "actual_cost"),
    PropertyDef("hs_owner", "Campaign owner", "enumeration", "select", "owner_id", offset=HS_OFFSET["owners"]),
    PropertyDef("campaign_type", "Campaign type", sql="campaign_type", hubspot_defined=False),
    PropertyDef("expected_revenue", "Expected revenue", "number", "number", "expected_revenue",
                hubspot_defined=False),
)}
SORT_COLUMNS = {"createdAt": "created_ms", "updatedAt": "modified_ms",
                **{name: prop.sql for name, prop in CAMPAIGN_PROPERTIES.items()}}
PropertyNames = Annotated[list[str] | None, Query()]


def campaign_guid(number: int) -> str:
    """The campaign id HubSpot would show for row `number` of the campaigns table (a stable GUID)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"campaign-{number}"))


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(after: str) -> int:
    try:
        text = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "offset" or int(value) < 0:
            raise ValueError(after)
        return int(value)
    except ValueError:
        raise ApiError(400, f"Invalid paging cursor after={after!r}", context={"after": [after]}) from None


def _wanted(requested: list[str] | None) -> list[PropertyDef]:
    names = [part.strip() for entry in requested or [] for part in str(entry).split(",") if part.strip()]
    return [CAMPAIGN_PROPERTIES[name] for name in dict.fromkeys(names) if name in CAMPAIGN_PROPERTIES]


def _order_by(sort: str | None) -> str:
    if not sort:
        return "id ASC"
    name, descending = sort.lstrip("-"), sort.startswith("-")
    if name not in SORT_COLUMNS:
        raise ApiError(400, f"Cannot sort campaigns by {name!r}", context={"sort": [sort]})
    return f"{SORT_COLUMNS[name]} {'DESC' if descending else 'ASC'}, id ASC"


def _select(props: list[PropertyDef]) -> str:
    return ", ".join(["id", "created_ms", "modified_ms", *(f"{prop.sql} AS p{i}" for i, prop in enumerate(props))])


def campaign_json(row: Any, props: list[PropertyDef]) -> dict[str, Any]:
    values = {prop.name: prop.to_wire(row[f"p{index}"]) for index, prop in enumerate(props)}
    return {"id": campaign_guid(row["id"]),
            "properties": {name: value for name, value in values.items() if value not in (None, "")},
            "createdAt": iso_from_ms(row["created_ms"]), "updatedAt": iso_from_ms(row["modified_ms"]),
            "businessUnits": [{"id": 0}]}


def list_campaigns(state: SandboxState, limit: int, after: str | None, requested: list[str] | None,
                   sort: str | None = None, name: str | None = None) -> dict[str, Any]:
    """GET /marketing/v3/campaigns: live campaigns, `limit` (1-100) a page."""
    if not 0 < limit <= MAX_CAMPAIGN_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {MAX_CAMPAIGN_LIMIT}", context={"limit": [str(limit)]})
    offset = _offset(after) if after else 0
    where, params = "deleted = 0", []
    if name:
        where, params = where + " AND instr(lower(name), ?) > 0", [name.lower()]
    props = _wanted(requested)
    total = state.query(f"SELECT COUNT(*) FROM campaigns WHERE {where}", params)[0][0]
    rows = state.query(f"SELECT {_select(props)} FROM campaigns WHERE {where} ORDER BY {_order_by(sort)}"
                       " LIMIT ? OFFSET ?", [*params, limit, offset])
    response: dict[str, Any] = {"total": total, "results": [campaign_json(row, props) for row in rows]}
    if offset + len(rows) < total:
        token = _cursor(offset + len(rows))
        response["paging"] = {"next": {"after": token, "link": f"?after={token}"}}
    return response


def find_campaign(state: SandboxState, guid: str, requested: list[str] | None) -> dict[str, Any] | None:
    """GET /marketing/v3/campaigns/{campaignGuid}: a live campaign, or None."""
    props = _wanted(requested)
    for row in state.query(f"SELECT {_select(props)} FROM campaigns WHERE deleted = 0 ORDER BY id"):
        if campaign_guid(row["id"]) == guid:
            return campaign_json(row, props)
    return None


def add_campaign_routes(app: FastAPI, state: SandboxState) -> None:
    """Mount the campaigns endpoints on the portal's app (auth, faults and rate limits included)."""

    @app.get("/marketing/v3/campaigns")
    @app.get("/marketing/v3/campaigns/")
    def get_campaigns(limit: int = DEFAULT_CAMPAIGN_LIMIT, after: str | None = None,
                      properties: PropertyNames = None, sort: str | None = None,
                      name: str | None = None) -> dict[str, Any]:
        return list_campaigns(state, limit, after, properties, sort, name)

    @app.get("/marketing/v3/campaigns/{campaign_id}")
    def get_campaign(campaign_id: str, properties: PropertyNames = None) -> dict[str, Any]:
        campaign = find_campaign(state, campaign_id, properties)
        if campaign is None:
            raise ApiError(404, f"Campaign {campaign_id} not found", "OBJECT_NOT_FOUND")
        return campaign
