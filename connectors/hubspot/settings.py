"""Constants of the HubSpot connector: endpoints, properties, page and batch sizes, the KR object.

Kept apart from the code (as dlt verified sources do) so a portal-specific tweak is a
one-line change here rather than a hunt through the extraction logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SOURCE = "hubspot"

# Environment (credentials come from here only).
TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"
HOST_ENV = "HUBSPOT_HOST"
DEFAULT_HOST = "https://api.hubapi.com"

# Paging and batching limits of the CRM v3 API.
# Search maximum. Every page is a fresh keyset search from the stored cursor, never `after`:
# offset paging stops at 10,000 results and skips a record whenever another one is modified
# mid-sync (it moves to the end of the hs_lastmodifieddate order and shifts later offsets).
SEARCH_PAGE_SIZE = 200
OWNERS_PAGE_SIZE = 100
BATCH_SIZE = 100  # batch endpoints accept at most 100 inputs
# Writeback retries within a run (writeback.py Writeback._upsert_retrying). An input refused alone in
# a 207 answer with one of these error categories was refused for a passing reason, not for its
# values: CONFLICT is what HubSpot answers for a record being written by another request at the same
# time (the sandbox sends it, "The record is being updated by another request; retry later", for a
# FaultPlan's partial_failure and a "row_lock" rule: connectors.sandbox.rejections / hubspot_writes);
# such an input was not written. okr-sync only sends batch upserts on the unique okr_key, where a
# CONFLICT cannot mean a duplicate value (batch create's CONFLICT), and repeating one never makes a
# second record. Those inputs alone are sent again in one more upsert per batch after each wait of
# WRITE_RETRY_WAITS (seconds); still refused after the last, they are reported as refused and sent
# again next run. VALIDATION_ERROR and every other category are the record's own fault: never retried.
TRANSIENT_WRITE_CATEGORIES = frozenset({"CONFLICT"})
WRITE_RETRY_WAITS: tuple[float, ...] = (1.0, 3.0)  # the other request is usually done within seconds
# (connect, read) seconds; $OKR_SYNC_HTTP_TIMEOUT_SECONDS sets the read one (connectors.timeouts)
REQUEST_TIMEOUT = (10.0, 60.0)

# Retries (tenacity): 429, 5xx and connection errors; Retry-After is honoured when sent.
RETRY_ATTEMPTS = 4
RETRY_WAIT_INITIAL = 0.5
RETRY_WAIT_MAX = 20.0

# Client-side rate limits (connectors.ratelimit), so a run stays under HubSpot's own and rarely
# sees a 429. Every request takes a slot of the per-10-second window of the portal's tier
# ($OKR_SYNC_HUBSPOT_TIER, default professional); search requests also take a slot of the
# per-second search window. Safety margin (connectors.ratelimit.with_margin): 90% of a limit and
# at least one below it, i.e. 171 of 190 (professional/enterprise), 90 of 100 (free/starter), 225
# of 250 (increased) per 10 s: room for requests still on the wire when the server's window slides
# and for other integrations sharing the account's quota. Searches keep a margin in time instead:
# 5 per 1.25 s (4 a second on average), so a search that reaches HubSpot up to 0.25 s later than
# the one five before it still lands in the next second; a margin in count (4 per 1 s) has none
# and met 429s whenever requests were delayed unevenly on the wire. When a
# response carries X-HubSpot-RateLimit-Remaining below what the client expects (another app uses
# the same quota), the client counts the difference as used. A 429 is still retried (Retry-After);
# a 429 with policyName DAILY stops the run (the daily quota resets at midnight).
TIER_ENV = "OKR_SYNC_HUBSPOT_TIER"
DEFAULT_TIER = "professional"
TIER_LIMITS: dict[str, int] = {  # requests per RATE_WINDOW_SECONDS, private apps
    "free": 100, "starter": 100, "professional": 190, "enterprise": 190, "increased": 250,
}
RATE_WINDOW_SECONDS = 10.0
SEARCH_RATE_LIMIT = 5  # search requests per SEARCH_WINDOW_SECONDS, per account
SEARCH_WINDOW_SECONDS = 1.0
SEARCH_WINDOW_MARGIN_SECONDS = 0.25  # the client's search window: SEARCH_RATE_LIMIT per 1.25 s
RATE_LIMIT_MARGIN = 0.9

# Incremental streams read through the search API, one declaration each (SearchStream): the
# object type, the canonical table (connectors.store.RECORD_MODELS), the properties to read, the
# cursor property (contacts keep theirs in lastmodifieddate, every other type in
# hs_lastmodifieddate), the v4 association that fills one canonical field, and the label lookups
# its mapper needs (loaded from the portal once per extract, only when a record is mapped):
# "stages" = the object's pipelines (GET /crm/v3/pipelines/{type}), "options" = the enumeration
# option labels of the properties in `options` (GET /crm/v3/properties/{type}).
CURSOR_PROPERTY = "hs_lastmodifieddate"
CONTACT_CURSOR_PROPERTY = "lastmodifieddate"
ID_PROPERTY = "hs_object_id"


@dataclass(frozen=True)
class SearchStream:
    """One incremental stream of the search API and where its records go."""

    object_type: str
    entity: str  # key of connectors.store.RECORD_MODELS
    properties: tuple[str, ...]
    cursor_property: str = CURSOR_PROPERTY
    association: tuple[str, str] | None = None  # (to object type, canonical field)
    stages: bool = False  # needs the object's pipeline stages
    options: tuple[str, ...] = ()  # enumeration properties whose option labels the mapper needs

    def read_properties(self, custom: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Every property a search asks for: the declared ones, custom fields, cursor and id."""
        names = (*self.properties, *custom, self.cursor_property, ID_PROPERTY)
        return tuple(dict.fromkeys(names))


_OWNER = "hubspot_owner_id"
SEARCH_STREAMS: dict[str, SearchStream] = {
    "companies": SearchStream("companies", "account", (
        "name", "country", "industry", "type", _OWNER, "createdate"), options=("type",)),
    "deals": SearchStream("deals", "deal", (
        "dealname", "amount", "dealstage", "pipeline", "closedate", "createdate", "dealtype",
        "hs_deal_stage_probability", "lead_source", _OWNER), association=("companies", "account_id"),
        stages=True, options=("dealtype", "lead_source")),
    "line_items": SearchStream("line_items", "line_item", (
        "name", "hs_product_id", "quantity", "price", "amount", "createdate"), association=("deals", "deal_id")),
    "calls": SearchStream("calls", "activity", (
        "hs_timestamp", "hs_call_title", "hs_call_duration", "hs_call_direction", "hs_call_disposition",
        "hs_call_status", _OWNER, "hs_createdate"), association=("deals", "deal_id")),
    "emails": SearchStream("emails", "activity", (
        "hs_timestamp", "hs_email_subject", "hs_email_direction", _OWNER, "hs_createdate"),
        association=("deals", "deal_id")),
    "meetings": SearchStream("meetings", "activity", (
        "hs_timestamp", "hs_meeting_title", "hs_meeting_start_time", "hs_meeting_end_time", "hs_meeting_outcome",
        _OWNER, "hs_createdate"), association=("deals", "deal_id"), options=("hs_meeting_outcome",)),
    "contacts": SearchStream("contacts", "contact", (
        "firstname", "lastname", "email", "company", "country", "lifecyclestage", "hs_lead_status", "lead_source",
        _OWNER, "createdate"), cursor_property=CONTACT_CURSOR_PROPERTY, association=("companies", "account_id"),
        options=("lifecyclestage", "lead_source")),
    # The Leads object (0-136): status = the lead pipeline stage label, converted = a stage whose
    # metadata says isQualified, converted_account_id = the associated company.
    "leads": SearchStream("leads", "lead", (
        "hs_lead_name", "email", "company", "country", "hs_pipeline", "hs_pipeline_stage", "lead_source",
        "hs_date_entered_qualified_stage", _OWNER, "hs_createdate"), association=("companies", "converted_account_id"),
        stages=True, options=("lead_source",)),
    "tickets": SearchStream("tickets", "case", (
        "subject", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority", "source_type", "closed_date", _OWNER,
        "createdate"), association=("companies", "account_id"), stages=True,
        options=("hs_ticket_priority", "source_type")),
}
# Marketing campaigns (GET /marketing/v3/campaigns, read through the client's generic request
# method: the SDK has no campaigns API). No search, no modified-date filter and no archived list:
# every run lists all campaigns (they are few), 100 a page (the maximum); a stored campaign the
# list no longer holds was deleted and is marked is_deleted; a listed one whose updatedAt equals
# the stored modified_at is neither rewritten nor counted. Calls: max(1, ceil(campaigns / 100)).
CAMPAIGN_STREAM = "campaigns"
CAMPAIGN_ENTITY = "campaign"
CAMPAIGNS_PATH = "/marketing/v3/campaigns"
CAMPAIGN_PAGE_SIZE = 100
CAMPAIGN_OBJECT_TYPE = "campaigns"  # GET /crm/v3/properties/campaigns: the custom-field check
CAMPAIGN_PROPERTIES = ("hs_name", "hs_start_date", "hs_end_date", "hs_campaign_status", "hs_budget_items_sum_amount",
                       "hs_spend_items_sum_amount", "hs_owner", "campaign_type", "expected_revenue")
# hs_campaign_status value -> label (HubSpot's labels: "Paused" where Salesforce says "Aborted"), and
# the statuses of an active campaign (Salesforce IsActive: Planned / In Progress).
CAMPAIGN_STATUSES = {"planned": "Planned", "in_progress": "In Progress", "completed": "Completed",
                     "paused": "Paused"}
ACTIVE_CAMPAIGN_STATUSES = frozenset({"planned", "in_progress"})

# Every stream, in extraction order (owners come from the owners API, campaigns from the marketing
# campaigns API, the rest through search).
STREAMS = ("owners", *SEARCH_STREAMS, CAMPAIGN_STREAM)
# Stream -> the canonical entity it writes (custom fields are configured per entity).
STREAM_ENTITIES = {**{stream: spec.entity for stream, spec in SEARCH_STREAMS.items()},
                   CAMPAIGN_STREAM: CAMPAIGN_ENTITY}
# Email direction (hs_email_direction) -> canonical direction; a forwarded email went out.
EMAIL_DIRECTIONS = {"EMAIL": "outbound", "INCOMING_EMAIL": "inbound", "FORWARDED_EMAIL": "outbound"}
# A ticket pipeline stage is closed when its metadata says ticketState CLOSED (a lead stage: leadState);
# a lead stage converts the lead when its metadata says isQualified "true".
CLOSED_TICKET_STATE = "CLOSED"

# Custom fields from config (HubSpotSource(custom_fields=...)): canonical entity -> {canonical name:
# property internal name}. Names go into search requests, so only plain internal names pass.
CUSTOM_FIELD_PATTERN = r"^[a-z][a-z0-9_]*$"
# Entities with no HubSpot stream to carry custom fields, and why.
NO_CUSTOM_FIELDS = {
    "owner": "HubSpot owners (the owners API) have no custom properties",
}

# Lookback (connectors.incremental): the keyset pager's first search asks for
# hs_lastmodifieddate GTE (saved watermark - lookback), because the search index lags behind
# writes and a record can surface with a timestamp earlier than a cursor already saved.
# Re-read records that the store already holds unchanged (same hs_lastmodifieddate, not
# deleted) are neither rewritten nor counted, and get no association read. Cost: a quiet night
# re-reads only the records modified in the last LOOKBACK_MINUTES before the watermark, so a
# stream still costs 1 search (+ the archived list) unless more than SEARCH_PAGE_SIZE records
# fall in that window. $OKR_SYNC_LOOKBACK_MINUTES (a non-negative integer; 0 = exact cursor
# continuation, no re-read) or HubSpotSource(lookback=timedelta(...)) overrides the default.
LOOKBACK_ENV = "OKR_SYNC_LOOKBACK_MINUTES"
LOOKBACK_MINUTES = 10

# Deletes. Search never returns archived (deleted) records, so after the search each run pages
# GET /crm/v3/objects/{type}?archived=true (at most 100 a page) and marks those ids is_deleted.
# The list API has no filter on archivedAt, so no cursor is possible: every run reads the whole
# archive, ceil(archived / 100) calls per stream (at least 1, when nothing is archived).
ARCHIVED_PAGE_SIZE = 100

# Associations (v4 batch read, POST /crm/v4/associations/{from}/{to}/batch/read, at most 1000
# ids a call since February 2025). The fresh records of up to ASSOCIATION_BUFFER_PAGES search
# pages (at most ASSOCIATION_BATCH_LIMIT: a page holds at most SEARCH_PAGE_SIZE) share one read
# and are committed together with the cursor of the last of those pages, so a stream costs
# ceil(n / 1000) association reads rather than one per page; a killed run resumes from the last
# committed buffer (up to five pages are read again).
ASSOCIATION_BATCH_LIMIT = 1000
ASSOCIATION_BUFFER_PAGES = 5
# Among several associated records, the one with a primary association type wins (deal ->
# company 5, contact -> company 1, ticket -> company 339; a lead has one company, 580), then the lowest id.
PRIMARY_ASSOCIATION_TYPE_IDS = frozenset({1, 5, 339, 580})

# Writeback targets: three custom objects (`okr-sync setup hubspot` creates them, see
# connectors.hubspot.setup), each upserted on its unique `okr_key` so a retry never duplicates.
# The properties mirror the Salesforce fields in snake_case; lookups become v4 associations
# (key result -> objective, check-in -> key result, made when a record is first written) plus the
# parent's key as a plain property, so the link is readable even where no association was made.
OKR_KEY_PROPERTY = "okr_key"
KEY_RESULT_ID_PROPERTY = OKR_KEY_PROPERTY  # the name older code and tests use
LAST_SYNCED_PROPERTY = "last_synced"
OWNER_PROPERTY = "hubspot_owner_id"  # HubSpot gives every custom object this owner property
OBJECTIVE_OBJECT = "okr_objective"
KEY_RESULT_OBJECT = "okr_key_result"
CHECKIN_OBJECT = "okr_checkin"
OKR_OBJECT_NAMES: dict[str, str] = {"objective": OBJECTIVE_OBJECT, "key_result": KEY_RESULT_OBJECT,
                                    "checkin": CHECKIN_OBJECT}
# Row field -> property, per object (connectors.okr_records describes the rows).
OBJECTIVE_FIELDS: dict[str, str] = {
    "key": "okr_key", "title": "name", "objective_id": "objective_id", "period": "period",
    "period_start": "period_start", "period_end": "period_end", "progress": "progress", "score": "score",
    "status": "status", "weight": "weight", "parent_key": "parent_objective_key",
}
KEY_RESULT_FIELDS: dict[str, str] = {
    "key": "okr_key", "title": "name", "objective_title": "objective", "period": "period", "group": "group",
    "metric": "metric", "value": "current_value", "baseline": "baseline", "target": "target",
    "progress": "progress", "score": "score", "expected_progress": "expected_progress", "status": "status",
    "unit": "unit", "objective_key": "objective_key", "forecast": "forecast",
    "forecast_confidence": "forecast_confidence", "pace": "pace", "final": "okr_final",
}
CHECKIN_FIELDS: dict[str, str] = {
    "key": "okr_key", "kr_key": "key_result_key", "as_of": "as_of", "value": "value", "target": "target",
    "progress": "progress", "score": "score", "status": "status", "expected_progress": "expected_progress",
    "forecast": "forecast", "forecast_confidence": "forecast_confidence", "note": "note", "final": "okr_final",
}
OKR_FIELDS: dict[str, dict[str, str]] = {"objective": OBJECTIVE_FIELDS, "key_result": KEY_RESULT_FIELDS,
                                         "checkin": CHECKIN_FIELDS}
# A check-in has no title of its own: its display name is its key ("{kr_key}@{as_of}").
NAME_FROM_KEY = frozenset({"checkin"})
# Associations made for newly written records: (from object, to object, the property holding the
# key of the record to associate with).
OKR_ASSOCIATIONS: tuple[tuple[str, str, str], ...] = (
    ("key_result", "objective", "objective_key"), ("checkin", "key_result", "key_result_key"))

# A closed period's frozen records (okr-sync close-period); sent only on those rows, so others keep it unset
FINAL_PROPERTY = "okr_final"
_NUMBER_PROPERTIES = {"current_value", "baseline", "target", "progress", "score", "expected_progress", "weight",
                      "forecast", "forecast_confidence", "value"}
_DATE_PROPERTIES = {"period_start", "period_end", "as_of"}
_LABELS = {"okr_key": "OKR key", "current_value": "Current value", "expected_progress": "Expected progress",
           "last_synced": "Last synced", "objective_id": "Objective id", "period_start": "Period start",
           "period_end": "Period end", "parent_objective_key": "Parent objective key",
           "objective_key": "Objective key", "forecast_confidence": "Forecast confidence",
           "key_result_key": "Key result key", "as_of": "As of", "okr_final": "Final"}
_NAME_LABELS = {"objective": "Objective", "key_result": "Key result", "checkin": "Check-in"}


def property_type(name: str) -> tuple[str, str]:
    """(type, fieldType) of one okr-sync property."""
    if name in _NUMBER_PROPERTIES:
        return "number", "number"
    if name in _DATE_PROPERTIES:
        return "date", "date"
    if name == LAST_SYNCED_PROPERTY:
        return "datetime", "date"
    if name == FINAL_PROPERTY:
        return "bool", "booleancheckbox"
    return "string", "text"


def object_properties(kind: str) -> list[str]:
    """Every property okr-sync writes on one object (the owner aside: HubSpot provides it)."""
    names = list(OKR_FIELDS[kind].values())
    if kind in NAME_FROM_KEY:
        names.insert(1, "name")
    return [*dict.fromkeys(names), LAST_SYNCED_PROPERTY]


def property_spec(kind: str, name: str) -> dict[str, Any]:
    """A property definition as the schemas and properties APIs take it."""
    kind_type, field_type = property_type(name)
    label = _NAME_LABELS[kind] if name == "name" else _LABELS.get(name, name.replace("_", " ").capitalize())
    spec: dict[str, Any] = {"name": name, "label": label, "type": kind_type, "fieldType": field_type}
    if name == OKR_KEY_PROPERTY:
        spec["hasUniqueValue"] = True
    return spec


def object_schema(kind: str) -> dict[str, Any]:
    """What POST /crm/v3/schemas takes to create one OKR object (custom objects need Enterprise);
    associatedObjects is filled in by setup, once the other object's type id is known."""
    name = OKR_OBJECT_NAMES[kind]
    singular = {"objective": "OKR objective", "key_result": "OKR key result", "checkin": "OKR check-in"}[kind]
    return {
        "name": name,
        "labels": {"singular": singular, "plural": f"{singular}s"},
        "description": f"{singular}s written by okr-sync",
        "primaryDisplayProperty": "name",
        "secondaryDisplayProperties": [OKR_KEY_PROPERTY],
        "requiredProperties": [OKR_KEY_PROPERTY, "name"],
        "searchableProperties": [OKR_KEY_PROPERTY, "name"],
        "properties": [property_spec(kind, prop) for prop in object_properties(kind)],
        "associatedObjects": [],
    }


OKR_SCHEMAS: dict[str, dict[str, Any]] = {kind: object_schema(kind) for kind in OKR_OBJECT_NAMES}
KEY_RESULT_SCHEMA: dict[str, Any] = OKR_SCHEMAS["key_result"]
