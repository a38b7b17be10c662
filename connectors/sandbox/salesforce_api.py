"""The sandbox org served as the Salesforce REST API (what simple-salesforce talks to).

Shapes, status codes and error bodies follow Salesforce's documented behaviour (see
/work/shared/reference/crm-api-facts.md): JSON error lists ``[{"message", "errorCode"}]``,
``query`` / ``queryAll`` / ``queryMore`` with real server-side cursors and the ``deleted/``
replication resource (both served by connectors.sandbox.salesforce_query), describe, limits with the
``Sforce-Limit-Info`` header, sObject Collections writes (create / update / upsert by external id)
into the OKR custom object, Bulk API 2.0 query jobs (connectors.sandbox.salesforce_bulk), and
the OAuth token + SOAP login endpoints the client's login flows call. The sandbox accepts any
non-empty client id / secret / username / password, and for the ``refresh_token`` grant any
non-empty ``refresh_token`` (with a client id): it hands out the org's one access token
(``state.token``), which every data call accepts. The daily usage it reports can be set for tests
with ``set_api_usage`` (kept in the ``salesforce.api_usage`` meta key). A FaultPlan's
``locator_expiry`` (connectors.sandbox.faults) evicts a queryMore cursor before answering (400
INVALID_QUERY_LOCATOR, the answer of any evicted cursor) or drops a Bulk job before a results
request with a locator (404 NOT_FOUND, what a job whose results expired answers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.sandbox.faults import request_faults
from connectors.sandbox.ids import sf_id
from connectors.sandbox.salesforce_bulk import BulkQueryJobs
from connectors.sandbox.salesforce_query import QueryService, deleted_records, ensure_indexes, requested_batch_size
from connectors.sandbox.salesforce_schema import SCHEMAS, ApiError, describe_global, describe_sobject
from connectors.sandbox.salesforce_writes import CollectionWriter, Payload
from connectors.sandbox.state import SandboxState

VERSIONS = (("Spring '24", "60.0"), ("Summer '24", "61.0"), ("Winter '25", "62.0"))
DAILY_API_REQUESTS = 15_000
FAULTS_META_KEY = "salesforce.faults"
API_USAGE_META_KEY = "salesforce.api_usage"
ORG_ID = "00DSB0000000001EAA"
_VERSION = re.compile(r"v\d+\.\d")
# Both REQUEST_LIMIT_EXCEEDED answers are 403s: the daily allocation and the concurrency limit
DAILY_LIMIT_MESSAGE = "TotalRequests Limit exceeded."
CONCURRENT_LIMIT_MESSAGE = "ConcurrentPerOrgLongTxn Limit exceeded."
_FAULT_BODIES = {
    403: (DAILY_LIMIT_MESSAGE, "REQUEST_LIMIT_EXCEEDED"),
    500: ("An unexpected error occurred. Please include this ErrorId if you contact support: "
          "1234567-89 (-1)", "UNKNOWN_EXCEPTION"),
    503: ("Server is temporarily unavailable, please try again later.", "SERVER_UNAVAILABLE"),
}


def inject_faults(state: SandboxState, status: int = 503, count: int = 1, after: int = 0,
                  code: str | None = None, message: str | None = None) -> None:
    """Let `after` data API calls through, then fail the next `count` with `status` (and `code`).

    For exercising clients' retries (5xx, or a 403 with ``message=CONCURRENT_LIMIT_MESSAGE``), runs
    that die mid-stream (a plain 403 is the daily allocation) and expired query cursors
    (400 INVALID_QUERY_LOCATOR). Without `code` the status's usual code is sent; without `message`,
    the status's usual message (or "injected <code>" when a code is given).
    """
    fault = {"status": status, "count": count, "after": after, "code": code, "message": message}
    state.set_meta(FAULTS_META_KEY, json.dumps(fault))


def set_api_usage(state: SandboxState, used: int | None, maximum: int = DAILY_API_REQUESTS) -> None:
    """Report `used` of `maximum` daily API requests from now on; each later data call adds one.

    The cap applies to the set figures too (a call past `maximum` gets the daily 403). `used=None`
    goes back to counting the calls actually served (the rolling 24 h window).
    """
    if used is not None and (used < 0 or maximum <= 0):
        raise ValueError("used must be >= 0 and maximum > 0")
    state.set_meta(API_USAGE_META_KEY, json.dumps({"used": used, "max": maximum} if used is not None else {}))


class _Usage:
    """API calls in a rolling 24 h window, for /limits, the Sforce-Limit-Info header and the cap.

    Figures set with set_api_usage (the API_USAGE_META_KEY meta key) replace the counted ones.
    """

    def __init__(self, state: SandboxState, maximum: int) -> None:
        self.state = state
        self._maximum = maximum
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def _override(self) -> dict[str, int] | None:
        raw = self.state.get_meta(API_USAGE_META_KEY)
        override = json.loads(raw) if raw else {}
        return override if override.get("used") is not None else None

    def record(self) -> tuple[int, int]:
        """Count one call; returns (used, maximum) including it."""
        now = time.monotonic()
        with self._lock:
            while self._calls and self._calls[0] < now - 86_400:
                self._calls.popleft()
            self._calls.append(now)
            override = self._override()
            if override is None:
                return len(self._calls), self._maximum
            override["used"] += 1
            self.state.set_meta(API_USAGE_META_KEY, json.dumps(override))
            return override["used"], override["max"]

    def current(self) -> tuple[int, int]:
        """(used, maximum) without counting a call."""
        with self._lock:
            override = self._override()
            return (len(self._calls), self._maximum) if override is None else (override["used"], override["max"])


def _locator_expires(request: Request) -> bool:
    """Whether the fault plan (connectors.sandbox.faults) expires this request's query locator."""
    faults = request_faults(request.scope)
    return faults is not None and faults.draw("locator_expiry", faults.plan.locator_expiry)


def _check_version(version: str) -> None:
    if not _VERSION.fullmatch(version):
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _errors(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": code}], status_code=status)


def _fault_response(fault: dict[str, Any]) -> JSONResponse:
    """The error answer of one injected fault (see inject_faults)."""
    status, code, message = int(fault["status"]), fault.get("code"), fault.get("message")
    default_message, default_code = _FAULT_BODIES.get(status, _FAULT_BODIES[500])
    if message is None:
        message = default_message if code is None else f"injected {code}"
    return _errors(status, code or default_code, message)


def create_app(state: SandboxState) -> FastAPI:
    """The Salesforce face of the sandbox org."""
    app = FastAPI(title="okr-sync sandbox: Salesforce", openapi_url=None, docs_url=None, redoc_url=None,
                  redirect_slashes=False)
    ensure_indexes(state)
    queries = QueryService(state)
    writer = CollectionWriter(state)
    bulk_jobs = BulkQueryJobs(state)
    usage = _Usage(state, DAILY_API_REQUESTS)
    fault_lock = threading.Lock()

    def take_fault() -> dict[str, Any] | None:
        with fault_lock:
            raw = state.get_meta(FAULTS_META_KEY)
            fault = json.loads(raw) if raw else {}
            if fault.get("count", 0) <= 0:
                return None
            if fault.get("after", 0) > 0:
                fault["after"] -= 1
                state.set_meta(FAULTS_META_KEY, json.dumps(fault))
                return None
            fault["count"] -= 1
            state.set_meta(FAULTS_META_KEY, json.dumps(fault))
            return fault

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Auth, injected faults and the daily allocation, in that order, for every data call."""
        if not request.url.path.startswith("/services/data/v"):
            return await call_next(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not hmac.compare_digest(token.strip(), state.token):
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        fault = take_fault()
        if fault is not None:
            return _fault_response(fault)
        used, maximum = usage.record()
        if used > maximum:
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", DAILY_LIMIT_MESSAGE)
        response = await call_next(request)
        response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{maximum}"
        return response

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return _errors(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def bad_body(_request: Request, error: RequestValidationError) -> JSONResponse:
        return _errors(400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {error.errors()[:1]}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 405:
            return _errors(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed.")
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")

    # -- login ------------------------------------------------------------------------------
    @app.post("/services/oauth2/token")
    async def oauth_token(request: Request) -> JSONResponse:
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        basic, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if basic.lower() == "basic" and encoded:
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            form.setdefault("client_id", client_id)
            form.setdefault("client_secret", client_secret)
        grant = form.get("grant_type", "")
        if grant not in ("password", "client_credentials", "refresh_token"):
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        needs_secret = grant != "refresh_token"
        if not form.get("client_id") or (needs_secret and not form.get("client_secret")):
            return _oauth_error("invalid_client", "invalid client credentials")
        if grant == "password" and not (form.get("username") and form.get("password")):
            return _oauth_error("invalid_grant", "authentication failure")
        if grant == "refresh_token" and not form.get("refresh_token"):  # any non-empty one is valid here
            return _oauth_error("invalid_grant", "expired access/refresh token")
        base = str(request.base_url).rstrip("/")
        issued = str(int(time.time() * 1000))
        identity = f"{base}/id/{ORG_ID}/{sf_id('User', 1)}"
        signature = base64.b64encode(hmac.new(state.token.encode(), (identity + issued).encode(),
                                              hashlib.sha256).digest()).decode()
        return JSONResponse({"access_token": state.token, "instance_url": base, "id": identity,
                             "token_type": "Bearer", "issued_at": issued, "signature": signature})

    @app.post("/services/Soap/u/{version}")
    async def soap_login(version: str, request: Request) -> Response:
        """The partner SOAP login simple-salesforce uses for username + password + security token."""
        try:
            root = ElementTree.fromstring(await request.body())
        except ElementTree.ParseError:
            root = ElementTree.Element("empty")
        values = {element.tag.rsplit("}", 1)[-1]: (element.text or "") for element in root.iter()}
        if not values.get("username") or not values.get("password"):
            return Response(_soap(_LOGIN_FAULT), status_code=500, media_type="text/xml")
        base = str(request.base_url).rstrip("/")
        result = (f"<loginResponse><result><passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
                  f"<serverUrl>{base}/services/Soap/u/{version}/{ORG_ID[:15]}</serverUrl>"
                  f"<sessionId>{state.token}</sessionId><userId>{sf_id('User', 1)}</userId>"
                  "</result></loginResponse>")
        return Response(_soap(result), media_type="text/xml")

    # -- discovery and limits ---------------------------------------------------------------
    @app.get("/services/data")
    @app.get("/services/data/")
    def versions() -> JSONResponse:
        return JSONResponse([{"label": label, "url": f"/services/data/v{number}", "version": number}
                             for label, number in VERSIONS])

    @app.get("/services/data/{version}")
    @app.get("/services/data/{version}/")
    def resources(version: str) -> JSONResponse:
        _check_version(version)
        names = ("composite", "jobs", "limits", "query", "queryAll", "sobjects")
        return JSONResponse({name: f"/services/data/{version}/{name}" for name in names})

    @app.get("/services/data/{version}/limits")
    @app.get("/services/data/{version}/limits/")
    def limits(version: str) -> JSONResponse:
        _check_version(version)
        used, maximum = usage.current()
        return JSONResponse({
            "DailyApiRequests": {"Max": maximum, "Remaining": max(maximum - used, 0)},
            "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1000},
        })

    # -- query ------------------------------------------------------------------------------
    @app.get("/services/data/{version}/query")
    @app.get("/services/data/{version}/query/")
    def query(version: str, request: Request, q: str = "") -> JSONResponse:
        _check_version(version)
        return JSONResponse(queries.run(version, q, False, requested_batch_size(request)))

    @app.get("/services/data/{version}/queryAll")
    @app.get("/services/data/{version}/queryAll/")
    def query_all(version: str, request: Request, q: str = "") -> JSONResponse:
        _check_version(version)
        return JSONResponse(queries.run(version, q, True, requested_batch_size(request)))

    @app.get("/services/data/{version}/query/{locator}")
    @app.get("/services/data/{version}/queryAll/{locator}")
    def query_more(version: str, locator: str, request: Request) -> JSONResponse:
        _check_version(version)
        return JSONResponse(queries.more(version, locator, expire=_locator_expires(request)))

    # -- describe ---------------------------------------------------------------------------
    @app.get("/services/data/{version}/sobjects")
    @app.get("/services/data/{version}/sobjects/")
    def sobjects(version: str) -> JSONResponse:
        _check_version(version)
        return JSONResponse(describe_global(version))

    @app.get("/services/data/{version}/sobjects/{name}/describe")
    @app.get("/services/data/{version}/sobjects/{name}/describe/")
    def describe(version: str, name: str) -> JSONResponse:
        _check_version(version)
        schema = SCHEMAS.get(name.lower())
        if schema is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return JSONResponse(describe_sobject(schema, version))

    @app.get("/services/data/{version}/sobjects/{name}/deleted")
    @app.get("/services/data/{version}/sobjects/{name}/deleted/")
    def deleted(version: str, name: str, start: str | None = None, end: str | None = None) -> JSONResponse:
        _check_version(version)
        return JSONResponse(deleted_records(state, name, start, end))

    # -- sObject Collections ------------------------------------------------------------------
    @app.post("/services/data/{version}/composite/sobjects")
    def create_records(version: str, payload: Payload) -> JSONResponse:
        _check_version(version)
        return JSONResponse(writer.write("create", payload))

    @app.patch("/services/data/{version}/composite/sobjects")
    def update_records(version: str, payload: Payload) -> JSONResponse:
        _check_version(version)
        return JSONResponse(writer.write("update", payload))

    @app.patch("/services/data/{version}/composite/sobjects/{name}/{external_id_field}")
    def upsert_records(version: str, name: str, external_id_field: str,
                       payload: Payload) -> JSONResponse:
        _check_version(version)
        return JSONResponse(writer.write("upsert", payload, name, external_id_field))

    # -- Bulk API 2.0 query jobs (connectors.sandbox.salesforce_bulk) -----------------------------
    @app.post("/services/data/{version}/jobs/query")
    async def create_query_job(version: str, request: Request) -> JSONResponse:
        _check_version(version)
        return JSONResponse(bulk_jobs.create(version, await _json_body(request)))

    @app.get("/services/data/{version}/jobs/query/{job_id}")
    def query_job(version: str, job_id: str) -> JSONResponse:
        _check_version(version)
        return JSONResponse(bulk_jobs.poll(job_id))

    @app.patch("/services/data/{version}/jobs/query/{job_id}")
    async def abort_query_job(version: str, job_id: str, request: Request) -> JSONResponse:
        _check_version(version)
        return JSONResponse(bulk_jobs.abort(job_id, await _json_body(request)))

    @app.delete("/services/data/{version}/jobs/query/{job_id}")
    def delete_query_job(version: str, job_id: str) -> Response:
        _check_version(version)
        bulk_jobs.delete(job_id)
        return Response(status_code=204)

    @app.get("/services/data/{version}/jobs/query/{job_id}/results")
    def query_job_results(version: str, job_id: str, request: Request, locator: str | None = None,
                          maxRecords: str | None = None) -> Response:  # noqa: N803 - the API's name
        _check_version(version)
        if locator and locator != "null" and _locator_expires(request):
            bulk_jobs.expire(job_id)  # Bulk locators last as long as their job: the job is gone (404)
        text, count, next_locator = bulk_jobs.results(job_id, locator, maxRecords)
        return Response(text, media_type="text/csv", headers={
            "Sforce-NumberOfRecords": str(count), "Sforce-Locator": next_locator})

    return app


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


_BAD_LOGIN = "Invalid username, password, security token; or user locked out."
_LOGIN_FAULT = ("<soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>"
                f"<faultstring>INVALID_LOGIN: {_BAD_LOGIN}</faultstring><detail>"
                "<sf:LoginFault xmlns:sf=\"urn:fault.partner.soap.sforce.com\">"
                f"<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>{_BAD_LOGIN}"
                "</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>")


def _soap(body: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
            f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>")


async def _json_body(request: Request) -> Any:
    """The request's JSON body (None when empty), or Salesforce's JSON_PARSER_ERROR."""
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as error:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from error
