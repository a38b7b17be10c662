"""The sandbox org served as HubSpot's CRM v3 API (the subset okr-sync and its tests use).

Shapes follow the real API closely enough for hubspot-api-client's generated models, with
client-side validation on: owners, objects (list, read, search, batch), pipelines,
properties and custom object schemas. Writes are accepted only on custom objects, as a
private app with read-only CRM scopes plus custom-object write scopes would see it.

Standard types (hubspot_objects): contacts 0-1 (the leads table), companies 0-2, deals 0-3, tickets 0-5
(cases), line_items 0-8, meetings 0-47, calls 0-48, emails 0-49, and leads 0-136 (hubspot_leads: the
leads table again). Marketing campaigns (hubspot_campaigns): `GET /marketing/v3/campaigns` and
`/marketing/v3/campaigns/{id}`. Archived records: logical rows with deleted = 1 appear only in
`GET /crm/v3/objects/{type}?archived=true` (with `archivedAt`), never in search or in normal lists.
Associations (v4 batch read) come from the logical links (hubspot_search ASSOCIATION_LINKS):
deal/contact/ticket/lead -> company (account_id), call/email/meeting/line item -> deal (deal_id),
lead -> contact (same row). Pipelines: deals' "default", tickets' "0", leads' "lead-pipeline-id".

Knobs tests may turn (through `sandbox.counters["hubspot"].app.state`):
- `search_cap`: results a search can page through (HubSpot: 10,000);
- `faults`: a deque of HTTP statuses the next requests answer with (429 carries Retry-After: 0);
- `rate_limits`: None (default: not enforced) or a `hubspot_limits.HubSpotRateLimits`, whose
  windows then answer 429 TEN_SECONDLY_ROLLING / SECONDLY (search) / DAILY with HubSpot's headers.
A FaultPlan's `index_lag_ms` (connectors.sandbox.faults, set with `SandboxServer.set_faults`) makes
search lag behind writes (connectors.sandbox.hubspot_search: index lag); nothing else lags.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from connectors.sandbox.faults import request_faults
from connectors.sandbox.generator import TEAMS
from connectors.sandbox.hubspot_activities import is_custom_object
from connectors.sandbox.hubspot_associations import create_default, read_custom
from connectors.sandbox.hubspot_campaigns import add_campaign_routes
from connectors.sandbox.hubspot_catalog import NAME_PATTERN, PROPERTY_TYPES, Catalog, schema_json
from connectors.sandbox.hubspot_leads import portal_pipelines
from connectors.sandbox.hubspot_limits import HubSpotRateLimits
from connectors.sandbox.hubspot_objects import ObjectType, iso_from_ms
from connectors.sandbox.hubspot_search import (
    ApiError,
    CountCache,
    find_record,
    list_page,
    read_associations,
    search,
)
from connectors.sandbox.hubspot_writes import batch_write
from connectors.sandbox.ids import hs_id, hs_number
from connectors.sandbox.state import SandboxState

SEARCH_CAP = 10_000
MAX_LIST_LIMIT = 100
MAX_OWNER_LIMIT = 500
MAX_BATCH_INPUTS = 100
USER_ID_OFFSET = 9_100_000
RATE_MAX, RATE_INTERVAL_MS, RATE_DAILY = 190, 10_000, 625_000
JsonBody = Annotated[dict[str, Any], Body()]
PropertyNames = Annotated[list[str] | None, Query()]
IdProperty = Annotated[str | None, Query(alias="idProperty")]
AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you"
                " can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


def error_body(message: str, category: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                            "category": category}
    if context:
        body["context"] = context
    return body


class RateWindow:
    """Counts requests for the X-HubSpot-RateLimit-* headers (informational, not enforced)."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()
        self._daily = 0
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            self._daily += 1
            while self._times and now - self._times[0] > RATE_INTERVAL_MS / 1000:
                self._times.popleft()
            used = len(self._times)
            daily = self._daily
        return {"X-HubSpot-RateLimit-Max": str(RATE_MAX),
                "X-HubSpot-RateLimit-Remaining": str(max(RATE_MAX - used, 0)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(RATE_INTERVAL_MS),
                "X-HubSpot-RateLimit-Daily": str(RATE_DAILY),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(RATE_DAILY - daily, 0))}


def _fault_response(status: int) -> JSONResponse:
    if status == 429:
        body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING"}
        return JSONResponse(body, 429, headers={"Retry-After": "0"})
    return JSONResponse(error_body("Internal error (injected by the sandbox)", "INTERNAL_ERROR"), status)


def owner_json(row: Any) -> dict[str, Any]:
    team = row["team"]
    team_id = str(1000 + TEAMS.index(team)) if team in TEAMS else str(team)
    return {
        "id": hs_id("owners", row["id"]), "email": row["email"], "type": "PERSON",
        "firstName": row["first_name"], "lastName": row["last_name"],
        "userId": USER_ID_OFFSET + row["id"], "userIdIncludingInactive": USER_ID_OFFSET + row["id"],
        "createdAt": iso_from_ms(row["created_ms"]), "updatedAt": iso_from_ms(row["modified_ms"]),
        "archived": not row["is_active"],
        "teams": [{"id": team_id, "name": team, "primary": True}] if team else [],
    }


def create_app(state: SandboxState, precreated: bool = True) -> FastAPI:
    """The HubSpot face of one sandbox org; `precreated`: the OKR custom objects exist from the start
    (False: a bare portal, where `okr-sync setup hubspot` creates them)."""
    app = FastAPI(title="okr-sync sandbox: HubSpot CRM v3", docs_url=None, redoc_url=None, openapi_url=None)
    catalog = Catalog(state, precreated)
    token = state.token
    app.state.search_cap = SEARCH_CAP
    app.state.faults = collections.deque()
    app.state.rate_limits = None  # HubSpotRateLimits | None
    app.state.catalog = catalog
    rate = RateWindow()
    counts = CountCache()

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        limits: HubSpotRateLimits | None = app.state.rate_limits
        headers: dict[str, str] | None = None
        if request.headers.get("authorization") != f"Bearer {token}":
            response: Response = JSONResponse(error_body(AUTH_MESSAGE, "INVALID_AUTHENTICATION"), 401)
        elif app.state.faults:
            response = _fault_response(app.state.faults.popleft())
        else:
            refused = None
            if limits is not None:
                refused, headers = limits.check(request.method, request.url.path)
            response = JSONResponse(refused[1], refused[0]) if refused else await call_next(request)
        response.headers.update(headers if headers is not None else rate.headers())
        return response

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.category, exc.context), exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors())
        return JSONResponse(error_body(f"Invalid input JSON on line 1: {details}", "VALIDATION_ERROR"), 400)

    def resolve(object_type: str) -> ObjectType:
        kind = catalog.resolve(object_type)
        if kind is None:
            raise ApiError(400, f"Unable to infer object type from: {object_type}")
        return kind

    # -- owners ------------------------------------------------------------------------------
    @app.get("/crm/v3/owners")
    @app.get("/crm/v3/owners/")
    def list_owners(limit: int = 100, after: str | None = None, email: str | None = None,
                    archived: bool = False) -> dict[str, Any]:
        if not 0 < limit <= MAX_OWNER_LIMIT:
            raise ApiError(400, f"limit must be between 1 and {MAX_OWNER_LIMIT}")
        start = hs_number("owners", after) if after and after.isdigit() else 0
        sql = "SELECT * FROM owners WHERE deleted = 0 AND is_active = ? AND id >= ?"
        params: list[Any] = [0 if archived else 1, start]
        if email:
            sql, params = sql + " AND lower(email) = lower(?)", [*params, email]
        rows = state.query(sql + " ORDER BY id LIMIT ?", [*params, limit + 1])
        response: dict[str, Any] = {"results": [owner_json(row) for row in rows[:limit]]}
        if len(rows) > limit:
            next_after = hs_id("owners", rows[limit]["id"])
            response["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
        return response

    @app.get("/crm/v3/owners/{owner_id}")
    def get_owner(owner_id: str, id_property: IdProperty = None, archived: bool = False) -> dict[str, Any]:
        try:
            by_user = id_property == "userId"
            number = int(owner_id) - USER_ID_OFFSET if by_user else hs_number("owners", owner_id)
        except ValueError:
            number = -1
        rows = state.query("SELECT * FROM owners WHERE deleted = 0 AND id = ? AND is_active = ?",
                           (number, 0 if archived else 1))
        if not rows:
            raise ApiError(404, f"Owner {owner_id} not found", "OBJECT_NOT_FOUND")
        return owner_json(rows[0])

    # -- objects -----------------------------------------------------------------------------
    @app.get("/crm/v3/objects/{object_type}")
    def list_objects(object_type: str, limit: int = 10, after: str | None = None,
                     properties: PropertyNames = None, archived: bool = False) -> dict[str, Any]:
        if not 0 < limit <= MAX_LIST_LIMIT:
            raise ApiError(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        return list_page(state, resolve(object_type), limit, after, properties, archived)

    @app.get("/crm/v3/objects/{object_type}/{record_id}")
    def get_object(object_type: str, record_id: str, properties: PropertyNames = None,
                   id_property: IdProperty = None, archived: bool = False) -> dict[str, Any]:
        record = find_record(state, resolve(object_type), record_id, properties, id_property, archived)
        if record is None:
            raise ApiError(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                           {"id": [record_id]})
        return record

    @app.post("/crm/v3/objects/{object_type}/search")
    def search_objects(object_type: str, body: JsonBody, request: Request) -> dict[str, Any]:
        return search(state, resolve(object_type), body, app.state.search_cap, counts,
                      request_faults(request.scope))  # a FaultPlan's index lag hides fresh records

    @app.post("/crm/v3/objects/{object_type}/batch/{action}")
    def batch(object_type: str, action: str, body: JsonBody) -> JSONResponse:
        kind = resolve(object_type)
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise ApiError(400, "Invalid input JSON: 'inputs' must be a list")
        if len(inputs) > MAX_BATCH_INPUTS:
            raise ApiError(400, f"The maximum number of inputs supported in a batch is {MAX_BATCH_INPUTS}",
                           context={"inputs": [str(len(inputs))]})
        if action not in ("read", "create", "update", "upsert"):
            raise ApiError(404, f"Unknown batch action {action!r}", "OBJECT_NOT_FOUND")
        if action != "read" and not kind.custom:
            raise ApiError(403, "This app hasn't been granted all required scopes to make this call.",
                           "MISSING_SCOPES", {"requiredScopes": [f"crm.objects.{kind.name}.write"]})
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        results, errors = batch_write(state, kind, action, inputs, body)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                   "completedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
            return JSONResponse(payload, 207)
        return JSONResponse(payload, 201 if action == "create" else 200)

    # -- associations (v4) -------------------------------------------------------------------
    @app.post("/crm/v4/associations/{from_object_type}/{to_object_type}/batch/read")
    def batch_read_associations(from_object_type: str, to_object_type: str, body: JsonBody) -> JSONResponse:
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        source, target = resolve(from_object_type), resolve(to_object_type)
        read = read_custom if source.custom or target.custom else read_associations
        results, errors = read(state, source, target, body)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                   "completedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
            return JSONResponse(payload, 207)
        return JSONResponse(payload, 200)

    @app.post("/crm/v4/associations/{from_object_type}/{to_object_type}/batch/associate/default")
    def batch_associate_default(from_object_type: str, to_object_type: str, body: JsonBody) -> JSONResponse:
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        source, target = resolve(from_object_type), resolve(to_object_type)
        results, errors = create_default(state, source, target, catalog.association_type(source, target), body)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                   "completedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
        return JSONResponse(payload, 207 if errors else 200)

    # -- pipelines ---------------------------------------------------------------------------
    @app.get("/crm/v3/pipelines/{object_type}")
    def list_pipelines(object_type: str) -> dict[str, Any]:
        return {"results": portal_pipelines(resolve(object_type).name)}

    @app.get("/crm/v3/pipelines/{object_type}/{pipeline_id}")
    def get_pipeline(object_type: str, pipeline_id: str) -> dict[str, Any]:
        for pipeline in portal_pipelines(resolve(object_type).name):
            if pipeline["id"] == pipeline_id:
                return pipeline
        raise ApiError(404, f"Unable to find pipeline {pipeline_id}", "OBJECT_NOT_FOUND")

    # -- properties --------------------------------------------------------------------------
    @app.get("/crm/v3/properties/{object_type}")
    def list_properties(object_type: str, archived: bool = False) -> dict[str, Any]:
        kind = resolve(object_type)
        return {"results": [] if archived else [prop.to_json() for prop in kind.properties.values()]}

    @app.get("/crm/v3/properties/{object_type}/{name}")
    def get_property(object_type: str, name: str) -> dict[str, Any]:
        prop = resolve(object_type).properties.get(name)
        if prop is None:
            raise ApiError(404, f"Unable to find property {name} for object type {object_type}",
                           "OBJECT_NOT_FOUND")
        return prop.to_json()

    @app.post("/crm/v3/properties/{object_type}", status_code=201)
    def create_property(object_type: str, body: JsonBody) -> dict[str, Any]:
        kind = resolve(object_type)
        spec = validate_property(body)
        if spec["name"] in kind.properties:
            raise ApiError(409, f"Property named '{spec['name']}' already exists.", "OBJECT_ALREADY_EXISTS")
        return catalog.add_property(kind, spec).to_json()

    @app.post("/crm/v3/properties/{object_type}/batch/create", status_code=201)
    def create_properties(object_type: str, body: JsonBody) -> dict[str, Any]:
        kind = resolve(object_type)
        specs = [validate_property(item) for item in body.get("inputs") or []]
        taken = sorted({spec["name"] for spec in specs} & set(kind.properties))
        if taken:
            raise ApiError(409, f"Properties {taken} already exist.", "OBJECT_ALREADY_EXISTS")
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        created = [catalog.add_property(kind, spec).to_json() for spec in specs]
        return {"status": "COMPLETE", "results": created, "startedAt": started,
                "completedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}

    # -- schemas (custom objects) ------------------------------------------------------------
    @app.get("/crm/v3/schemas")
    @app.get("/crm-object-schemas/v3/schemas")  # the path hubspot-api-client uses
    def list_schemas() -> dict[str, Any]:
        definitions = catalog.association_definitions()
        return {"results": [schema_json(kind, definitions) for kind in catalog.object_types()
                            if is_custom_object(kind)]}

    @app.get("/crm/v3/schemas/{object_type}")
    @app.get("/crm-object-schemas/v3/schemas/{object_type}")
    def get_schema(object_type: str) -> dict[str, Any]:
        kind = catalog.resolve(object_type)
        if kind is None or not is_custom_object(kind):
            raise ApiError(404, f"Unable to find object type {object_type}", "OBJECT_NOT_FOUND")
        return schema_json(kind, catalog.association_definitions())

    @app.post("/crm/v3/schemas", status_code=201)
    @app.post("/crm-object-schemas/v3/schemas", status_code=201)
    def create_schema(body: JsonBody) -> dict[str, Any]:
        egg = validate_schema(body)
        if catalog.resolve(egg["name"]) is not None:
            raise ApiError(409, f"An object type named {egg['name']} already exists", "OBJECT_ALREADY_EXISTS")
        targets = [resolve(str(name)) for name in body.get("associatedObjects") or []]
        schema = catalog.add_schema(egg)
        kind = catalog.resolve(schema["objectTypeId"])
        assert kind is not None
        for target in targets:
            catalog.add_association_definition(kind, target, f"{kind.name}_to_{target.name}")
        return schema_json(kind, catalog.association_definitions())

    @app.post("/crm/v3/schemas/{object_type}/associations", status_code=201)
    @app.post("/crm-object-schemas/v3/schemas/{object_type}/associations", status_code=201)
    def create_association_definition(object_type: str, body: JsonBody) -> dict[str, Any]:
        source = resolve(str(body.get("fromObjectTypeId") or object_type))
        target = resolve(str(body.get("toObjectTypeId") or ""))
        if not is_custom_object(source):
            raise ApiError(400, f"{source.name} is not a custom object")
        if catalog.association_type(source, target) is not None:
            raise ApiError(409, f"{source.name} and {target.name} are already associated", "OBJECT_ALREADY_EXISTS")
        name = str(body.get("name") or f"{source.name}_to_{target.name}")
        return catalog.add_association_definition(source, target, name)

    add_campaign_routes(app, state)  # GET /marketing/v3/campaigns (hubspot_campaigns)
    return app


def validate_property(body: dict[str, Any]) -> dict[str, Any]:
    """A property definition as PropertyCreate / ObjectTypePropertyCreate describe it."""
    name, kind = str(body.get("name") or ""), body.get("type")
    if not NAME_PATTERN.match(name):
        raise ApiError(400, f"Property name {name!r} must be lowercase letters, digits and underscores")
    if kind not in PROPERTY_TYPES:
        raise ApiError(400, f"Property type {kind!r} must be one of {sorted(PROPERTY_TYPES)}")
    if not body.get("label") or not body.get("fieldType"):
        raise ApiError(400, f"Property {name} needs a label and a fieldType")
    if kind == "enumeration" and not body.get("options"):
        raise ApiError(400, f"Enumeration property {name} needs options")
    return {key: body[key] for key in ("name", "label", "type", "fieldType", "groupName", "description",
                                       "options", "hasUniqueValue") if key in body}


def validate_schema(body: dict[str, Any]) -> dict[str, Any]:
    """An ObjectSchemaEgg: a valid name, labels, and properties that cover the declared roles."""
    name = str(body.get("name") or "")
    if not NAME_PATTERN.match(name):
        raise ApiError(400, f"Object name {name!r} must be lowercase letters, digits and underscores")
    labels = body.get("labels") or {}
    if not labels.get("singular") or not labels.get("plural"):
        raise ApiError(400, "labels.singular and labels.plural are required")
    properties = [validate_property(spec) for spec in body.get("properties") or []]
    if not properties:
        raise ApiError(400, "A custom object needs at least one property")
    names = {spec["name"] for spec in properties}
    declared = [body.get("primaryDisplayProperty"), *(body.get("requiredProperties") or []),
                *(body.get("searchableProperties") or []), *(body.get("secondaryDisplayProperties") or [])]
    missing = sorted({str(entry) for entry in declared if entry and entry not in names})
    if missing:
        raise ApiError(400, f"Properties {missing} are referenced but not defined")
    return {**body, "name": name, "properties": properties}
