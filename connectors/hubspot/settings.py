"""Constants of the HubSpot connector: endpoints, properties, page and batch sizes, the KR object.

Kept apart from the code (as dlt verified sources do) so a portal-specific tweak is a
one-line change here rather than a hunt through the extraction logic.
"""

from __future__ import annotations

from typing import Any

SOURCE = "hubspot"

# Environment (credentials come from here only).
TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"
HOST_ENV = "HUBSPOT_HOST"
CA_BUNDLE_ENV = "OKR_SYNC_CA_BUNDLE"
DEFAULT_HOST = "https://api.hubapi.com"

# Paging and batching limits of the CRM v3 API.
# Search maximum. Every page is a fresh keyset search from the stored cursor, never `after`:
# offset paging stops at 10,000 results and skips a record whenever another one is modified
# mid-sync (it moves to the end of the hs_lastmodifieddate order and shifts later offsets).
SEARCH_PAGE_SIZE = 200
OWNERS_PAGE_SIZE = 100
BATCH_SIZE = 100  # batch endpoints accept at most 100 inputs
REQUEST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds

# Retries (tenacity): 429, 5xx and connection errors; Retry-After is honoured when sent.
RETRY_ATTEMPTS = 4
RETRY_WAIT_INITIAL = 0.5
RETRY_WAIT_MAX = 20.0

# Client-side rate limits (connectors.ratelimit), so a run stays under HubSpot's own and rarely
# sees a 429. Every request takes a slot of the per-10-second window of the portal's tier
# ($OKR_SYNC_HUBSPOT_TIER, default professional); search requests also take a slot of the
# per-second search window. Safety margin (connectors.ratelimit.with_margin): 90% of a limit and
# at least one below it, i.e. 171 of 190 (professional/enterprise), 90 of 100 (free/starter), 225
# of 250 (increased) per 10 s and 4 of 5 searches per second: room for requests still on the wire
# when the server's window slides and for other integrations sharing the account's quota. When a
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
RATE_LIMIT_MARGIN = 0.9

# Incremental streams read through the search API.
CURSOR_PROPERTY = "hs_lastmodifieddate"
ID_PROPERTY = "hs_object_id"
DEAL_PIPELINE_OBJECT = "deals"
DEAL_TYPE_PROPERTY = "dealtype"
SEARCH_STREAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    # stream -> (object type, properties to read)
    "deals": ("deals", (
        "dealname", "amount", "dealstage", "pipeline", "closedate", "createdate", "dealtype",
        "hs_deal_stage_probability", "lead_source", "hubspot_owner_id", "hs_lastmodifieddate", "hs_object_id",
    )),
    "calls": ("calls", (
        "hs_timestamp", "hs_call_title", "hs_call_duration", "hs_call_direction", "hs_call_disposition",
        "hs_call_status", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate", "hs_object_id",
    )),
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

# Associations (v4 batch read, POST /crm/v4/associations/{from}/{to}/batch/read): one call per
# stored search page (a page holds at most 200 records, under the 1000-id limit of the
# endpoint, in force since February 2025). stream -> (from type, to type, canonical field).
ASSOCIATION_BATCH_LIMIT = 1000
ASSOCIATIONS: dict[str, tuple[str, str, str]] = {
    "deals": ("deals", "companies", "account_id"),
    "calls": ("calls", "deals", "deal_id"),
}
# Among several associated records, the one with a primary association type wins (deal ->
# company "Primary" is typeId 5), then the lowest id.
PRIMARY_ASSOCIATION_TYPE_IDS = frozenset({5})

# Writeback target: a custom object an admin creates once (schema below).
KEY_RESULT_OBJECT = "okr_key_result"
KEY_RESULT_ID_PROPERTY = "okr_key"
# KR row field -> custom object property (the payload okr-sync writes, minus last_synced).
KEY_RESULT_FIELDS: dict[str, str] = {
    "key": "okr_key", "title": "name", "objective_title": "objective", "period": "period", "group": "group",
    "metric": "metric", "value": "current_value", "baseline": "baseline", "target": "target",
    "progress": "progress", "score": "score", "expected_progress": "expected_progress", "status": "status",
    "unit": "unit",
}
LAST_SYNCED_PROPERTY = "last_synced"

_NUMBER_PROPERTIES = {"current_value", "baseline", "target", "progress", "score", "expected_progress"}
_LABELS = {"okr_key": "OKR key", "name": "Key result", "current_value": "Current value",
           "expected_progress": "Expected progress", "last_synced": "Last synced"}


def _property(name: str) -> dict[str, Any]:
    if name in _NUMBER_PROPERTIES:
        kind, field_type = "number", "number"
    elif name == LAST_SYNCED_PROPERTY:
        kind, field_type = "datetime", "date"
    else:
        kind, field_type = "string", "text"
    spec: dict[str, Any] = {"name": name, "label": _LABELS.get(name, name.replace("_", " ").capitalize()),
                            "type": kind, "fieldType": field_type}
    if name == KEY_RESULT_ID_PROPERTY:
        spec["hasUniqueValue"] = True
    return spec


# What an admin posts to /crm/v3/schemas to create the writeback object (Enterprise portals).
KEY_RESULT_SCHEMA: dict[str, Any] = {
    "name": KEY_RESULT_OBJECT,
    "labels": {"singular": "OKR key result", "plural": "OKR key results"},
    "primaryDisplayProperty": "name",
    "secondaryDisplayProperties": [KEY_RESULT_ID_PROPERTY],
    "requiredProperties": [KEY_RESULT_ID_PROPERTY, "name"],
    "searchableProperties": [KEY_RESULT_ID_PROPERTY, "name"],
    "properties": [_property(name) for name in [*KEY_RESULT_FIELDS.values(), LAST_SYNCED_PROPERTY]],
    "associatedObjects": [],
}
