"""Fault injection shared by both CRM faces: an ASGI middleware driven by a `FaultPlan`.

`SandboxServer.set_faults(crm, plan)` installs a plan at runtime (None restores clean service).
Each request (login endpoints excepted) first waits `latency_ms`, then answers 401 once the session
has expired (`expire_after` calls since the plan was set or since the last login), else the daily
quota's refusal once `daily_quota` requests have been answered since the plan was set, else draws
ONE number from the plan's seeded RNG that picks at most one fault, by cumulative rate in this
order: dropped connection, rate limit, 500, 503, slow response. The same seed and the same
sequence of requests give the same faults. Setting a plan again (`SandboxServer.set_faults`) starts
a new day: the session and the daily quota are renewed, the RNG restarts from the seed.

Bodies follow each CRM's documented answers (/work/shared/reference/crm-api-facts.md):
- Salesforce has no 429 for rate limiting: its "rate" fault is 403 REQUEST_LIMIT_EXCEEDED
  (``ConcurrentPerOrgLongTxn Limit exceeded.``); 500 UNKNOWN_EXCEPTION; 503 SERVER_UNAVAILABLE;
  401 INVALID_SESSION_ID. A login (``/services/oauth2/token`` or the SOAP login) renews the session.
- HubSpot: 429 with the TEN_SECONDLY_ROLLING body, X-HubSpot-RateLimit-* headers (Remaining 0) and
  Retry-After; 500 / 503 error bodies; 401 EXPIRED_AUTHENTICATION (a private-app token does not
  renew: the session stays expired until the plan changes).
- A dropped connection closes the socket without sending a byte of response, so clients see a
  connection error (requests: ``ConnectionError``; urllib3: ``ProtocolError`` / ``MaxRetryError``).
- A slow response (`slow`, `slow_ms`) is answered by the face at once (a write is done) and held
  `slow_ms` before it is sent: a client whose read timeout is shorter gives up (requests:
  ``ReadTimeout``; urllib3: ``ReadTimeoutError``) without knowing what happened.
- The daily quota (`daily_quota`: the requests the CRM still accepts today, the rest of the day's
  allocation having gone to other integrations): Salesforce reports it in every answer's
  ``Sforce-Limit-Info: api-usage=USED/MAX`` (MAX = SALESFORCE_DAILY_MAX, USED = MAX - quota + the
  requests answered since), then answers 403 REQUEST_LIMIT_EXCEEDED ``TotalRequests Limit
  exceeded.``; HubSpot reports it in X-HubSpot-RateLimit-Daily / -Daily-Remaining, then answers 429
  with policyName DAILY (no Retry-After).

Two faults live in the CRM faces themselves, which alone know what a request reads; the middleware
hands them the request's `RequestFaults` in the ASGI scope (`request_faults(scope)`):
- `locator_expiry` (Salesforce): each queryMore request, and each Bulk 2.0 results request that
  carries a locator, draws one number from that kind's own RNG (seeded from the plan's seed and the
  kind, so requests that threads interleave between them do not change its draws) and, on a hit,
  finds its cursor expired: the cursor is really evicted, so sending the same URL again fails too
  (connectors.sandbox.salesforce_api).
- `index_lag_ms` (HubSpot): search does not see a record until the wall clock reaches its
  modification time plus a per-record delay in [0, index_lag_ms] (connectors.sandbox.hubspot_search
  `index_delay_ms`), so a record modified earlier can surface after one modified later. Lists,
  reads and archived lists are not affected. Records stamped ahead of the wall clock (an org
  ticked into the future) stay hidden until the wall clock reaches them.
- `partial_failure` (both): each record of a batch write (Salesforce sObject Collections, HubSpot
  batch create / update / upsert) draws one number from that kind's own RNG and, on a hit, is refused alone as a record
  busy in another transaction: Salesforce UNABLE_TO_LOCK_ROW in its entry of the answer, HubSpot one
  error (category CONFLICT) of a 207 answer, the other records written. The faces ask through
  connectors.sandbox.rejections, which reads the request's faults with `current_request_faults()`.
- `cut` (both): each answered request draws one number from that kind's own RNG and, on a hit,
  its answer breaks off half way: status, headers and half the first piece of the body are sent,
  then the connection closes (a network failure while a body streams).
Those count in `injected` (``cut`` per broken answer, ``locator_expiry`` per expired cursor,
``index_lag`` per search answer that left out at least one matching record, ``partial_failure``
per refused record).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SALESFORCE_LOGIN_PATHS = ("/services/oauth2/", "/services/Soap/")
HUBSPOT_RATE_MAX, HUBSPOT_RATE_INTERVAL_MS, HUBSPOT_RATE_DAILY = 190, 10_000, 1_000_000
SALESFORCE_DAILY_MAX = 15_000  # the allocation a `daily_quota` plan reports (the sandbox org's own)
SCOPE_KEY = "okr_sync.faults"  # where a request's RequestFaults sit in its ASGI scope
RANDOM_FAULTS = ("drop", "rate_limit", "server_error", "unavailable", "slow")  # one draw picks one, in this order


@dataclass(frozen=True)
class FaultPlan:
    """Rates are probabilities per request (their sum must not exceed 1)."""

    rate_limit: float = 0.0  # HubSpot 429 / Salesforce 403 REQUEST_LIMIT_EXCEEDED (concurrency)
    server_error: float = 0.0  # 500
    unavailable: float = 0.0  # 503
    drop: float = 0.0  # close the connection without a response
    latency_ms: int = 0  # added before every request
    expire_after: int | None = None  # the session expires after this many calls (then 401s)
    retry_after_s: int = 0  # HubSpot 429's Retry-After header
    seed: int = 0
    locator_expiry: float = 0.0  # Salesforce: per queryMore / Bulk results-with-locator request
    index_lag_ms: int = 0  # HubSpot search: the longest delay before a modified record is searchable
    slow: float = 0.0  # answered, then held `slow_ms` before it is sent (beyond a client's read timeout)
    slow_ms: int = 0
    partial_failure: float = 0.0  # per record of a batch write: refused alone (row lock / 207 CONFLICT)
    daily_quota: int | None = None  # requests the CRM still accepts today (then its daily-limit answer)
    cut: float = 0.0  # per answered request: the body breaks off half way (the connection closes)

    def __post_init__(self) -> None:
        rates = (self.rate_limit, self.server_error, self.unavailable, self.drop, self.slow)
        if any(rate < 0 for rate in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1: {rates}")
        for name in ("locator_expiry", "partial_failure", "cut"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1]: {getattr(self, name)}")
        counts = (self.latency_ms, self.index_lag_ms, self.slow_ms, self.expire_after or 0, self.daily_quota or 0)
        if any(count < 0 for count in counts):
            raise ValueError("latency_ms, index_lag_ms, slow_ms, expire_after and daily_quota must be >= 0")
        if self.slow and not self.slow_ms:
            raise ValueError("a slow response needs slow_ms > 0")


class RequestFaults:
    """The plan in force for one request, as the CRM face sees it (see the module docstring)."""

    def __init__(self, plan: FaultPlan, middleware: FaultMiddleware) -> None:
        self.plan = plan
        self._middleware = middleware

    def draw(self, kind: str, rate: float) -> bool:
        """Whether the fault `kind` strikes this request (one draw from the kind's RNG; none at rate 0)."""
        return rate > 0 and self._middleware._draw(kind, rate)

    def count(self, kind: str) -> None:
        """Record a fault the face applied on its own (e.g. records left out by index lag)."""
        self._middleware._count(kind)


_CURRENT: ContextVar[RequestFaults | None] = ContextVar("okr_sync_request_faults", default=None)


def request_faults(scope: MutableMapping[str, Any]) -> RequestFaults | None:
    """The RequestFaults of a request (None when no plan is installed or no middleware is in front)."""
    faults = scope.get(SCOPE_KEY)
    return faults if isinstance(faults, RequestFaults) else None


def current_request_faults() -> RequestFaults | None:
    """The RequestFaults of the request being served, for code that has no scope at hand (the
    handlers run in a copy of the middleware's context); None outside a request or without a plan."""
    return _CURRENT.get()


class DroppedConnection(Exception):
    """Raised only where the server's transport is out of reach (uvicorn then answers 500)."""


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps(body).encode(), {"content-type": "application/json", **(headers or {})}


def _salesforce(fault: str) -> tuple[int, bytes, dict[str, str]]:
    if fault == "daily_quota":
        return _json(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                     {"Sforce-Limit-Info": f"api-usage={SALESFORCE_DAILY_MAX}/{SALESFORCE_DAILY_MAX}"})
    status, code, message = {
        "expired": (401, "INVALID_SESSION_ID", "Session expired or invalid"),
        "rate_limit": (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
        "server_error": (500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this "
                                                   "ErrorId if you contact support: 1234567-89 (-1)"),
        "unavailable": (503, "SERVER_UNAVAILABLE", "Server is temporarily unavailable, please try again "
                                                   "later."),
    }[fault]
    return _json(status, [{"message": message, "errorCode": code}])


def _hubspot(fault: str, plan: FaultPlan) -> tuple[int, bytes, dict[str, str]]:
    correlation = str(uuid.uuid4())
    if fault == "rate_limit":
        body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "correlationId": correlation, "policyName": "TEN_SECONDLY_ROLLING"}
        return _json(429, body, {
            "X-HubSpot-RateLimit-Max": str(HUBSPOT_RATE_MAX), "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(HUBSPOT_RATE_INTERVAL_MS),
            "X-HubSpot-RateLimit-Daily": str(HUBSPOT_RATE_DAILY),
            "X-HubSpot-RateLimit-Daily-Remaining": str(HUBSPOT_RATE_DAILY - 1),
            "Retry-After": str(plan.retry_after_s)})
    if fault == "daily_quota":
        body = {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
                "correlationId": correlation, "policyName": "DAILY"}
        return _json(429, body, {"X-HubSpot-RateLimit-Daily": str(HUBSPOT_RATE_DAILY),
                                 "X-HubSpot-RateLimit-Daily-Remaining": "0"})
    status, message, category = {
        "expired": (401, "The OAuth token used to make this call expired 0 hour(s) ago.",
                    "EXPIRED_AUTHENTICATION"),
        "server_error": (500, "Internal error (injected by the sandbox)", "INTERNAL_ERROR"),
        "unavailable": (503, "Service unavailable (injected by the sandbox)", "SERVICE_UNAVAILABLE"),
    }[fault]
    return _json(status, {"status": "error", "message": message, "correlationId": correlation,
                          "category": category})


class FaultMiddleware:
    """ASGI middleware applying the current FaultPlan of one CRM face (see module docstring)."""

    def __init__(self, app: ASGIApp, crm: str) -> None:
        if crm not in ("salesforce", "hubspot"):
            raise ValueError(f"unknown CRM face: {crm}")
        self.app = app
        self.crm = crm
        self._lock = threading.Lock()
        self._plan: FaultPlan | None = None
        self._rng = random.Random(0)
        self._kind_rngs: dict[str, random.Random] = {}  # one stream per face-applied fault kind
        self._calls = 0  # calls since the plan was set or the last login
        self._used = 0  # calls counted against the plan's daily quota (since the plan was set)
        self.injected: dict[str, int] = {}  # faults answered since the plan was set, by kind

    @property
    def plan(self) -> FaultPlan | None:
        return self._plan

    def set_plan(self, plan: FaultPlan | None) -> None:
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed if plan else 0)
            self._kind_rngs = {}
            self._calls = 0
            self._used = 0
            self.injected = {}

    def _choose(self, path: str) -> tuple[FaultPlan | None, str | None]:
        with self._lock:
            plan = self._plan
            if plan is None:
                return None, None
            if self.crm == "salesforce" and path.startswith(SALESFORCE_LOGIN_PATHS):
                self._calls = 0  # a login renews the session
                return plan, None
            if plan.expire_after is not None and self._calls >= plan.expire_after:
                fault: str | None = "expired"
            elif plan.daily_quota is not None and self._used >= plan.daily_quota:
                fault = "daily_quota"
            else:
                self._calls += 1
                self._used += 1
                draw, fault, edge = self._rng.random(), None, 0.0
                for kind in RANDOM_FAULTS:
                    edge += getattr(plan, kind)
                    if draw < edge:
                        fault = kind
                        break
            if fault is not None:
                self.injected[fault] = self.injected.get(fault, 0) + 1
            return plan, fault

    def _draw(self, kind: str, rate: float) -> bool:
        with self._lock:
            seed = self._plan.seed if self._plan else 0
            rng = self._kind_rngs.setdefault(kind, random.Random(f"{seed} {kind}"))
            if rng.random() >= rate:
                return False
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return True

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        plan, fault = self._choose(scope["path"])
        if plan is not None and plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        if plan is None or fault in (None, "slow"):
            if plan is None:
                await self.app(scope, receive, send)
                return
            scope[SCOPE_KEY] = faults = RequestFaults(plan, self)
            token = _CURRENT.set(faults)
            answer = _cutting(send) if faults.draw("cut", plan.cut) else send
            try:
                await self._serve(scope, receive, self._quota_headers(plan, answer), plan, fault == "slow")
            finally:
                _CURRENT.reset(token)
            return
        if fault == "drop":
            await _drop(send)
            return
        status, body, headers = _salesforce(fault) if self.crm == "salesforce" else _hubspot(fault, plan)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(key.lower().encode(), value.encode()) for key, value in
                                {**headers, "content-length": str(len(body))}.items()]})
        await send({"type": "http.response.body", "body": body})


    async def _serve(self, scope: Scope, receive: Receive, send: Send, plan: FaultPlan, slow: bool) -> None:
        """Let the face answer; a slow response is held `slow_ms` before a byte of it is sent."""
        if not slow:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        await asyncio.sleep(plan.slow_ms / 1000)
        for message in held:  # uvicorn drops them silently once the client has gone
            await send(message)

    def _quota_headers(self, plan: FaultPlan, send: Send) -> Send:
        """`send`, reporting the plan's daily quota in the CRM's own headers (see the module docstring)."""
        if plan.daily_quota is None:
            return send
        with self._lock:
            left = max(plan.daily_quota - self._used, 0)
        if self.crm == "salesforce":
            used = SALESFORCE_DAILY_MAX - left
            replaced = {b"sforce-limit-info": f"api-usage={used}/{SALESFORCE_DAILY_MAX}".encode()}
        else:
            replaced = {b"x-hubspot-ratelimit-daily": str(HUBSPOT_RATE_DAILY).encode(),
                        b"x-hubspot-ratelimit-daily-remaining": str(left).encode()}

        async def reporting(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(key, value) for key, value in message.get("headers", []) if key.lower() not in replaced]
                message = {**message, "headers": headers + list(replaced.items())}
            await send(message)

        return reporting


def _cutting(send: Send) -> Send:
    """`send`, breaking the connection off half way through the first piece of the body (`cut`):
    the client has the status and headers, then a short body (requests: ``ChunkedEncodingError``;
    urllib3: ``ProtocolError``, IncompleteRead)."""
    cut = False

    async def cutting(message: Message) -> None:
        nonlocal cut
        if cut:
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body = message.get("body", b"")
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        cut = True
        await _drop(send)

    return cutting


async def _drop(send: Send) -> None:
    """Close the connection without a response. uvicorn's `send` is a method of the request cycle
    that owns the transport: closing it there sends nothing (the TLS layer closes cleanly), and once
    the cycle has seen the disconnect uvicorn writes nothing either. Elsewhere, raise."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise DroppedConnection("connection dropped by the sandbox's fault plan")
    transport.close()
    for _ in range(200):  # connection_lost runs on a later loop iteration
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)
