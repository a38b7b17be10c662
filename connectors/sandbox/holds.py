"""Holds: keep one chosen request of a CRM face unanswered until a test lets it go.

A crash test needs the client stopped at a precise point (mid-extraction, between compute and
writeback, between two write batches) without a hook in okr-sync's own code. The sandbox is where
every such point shows: each is "the client sent request N and waits for its answer". So a test
arms a hold (`SandboxServer.hold(crm, after_requests=N, on=predicate)`), waits until the request
is held, SIGKILLs the client, then releases the request:

- `release()` hands it to the CRM face, as a request the CRM received before the client died (a
  write is applied though the client never learns it); `release(deliver=False)` drops it unanswered,
  as a request lost on the way. A hold never answers a client that is still alive differently from
  the CRM (it only delays it), so a released hold whose client lives on just sees a slow answer.
- The request body is read in full before the hold, so the CRM face gets it intact even when the
  client is gone by then (uvicorn answers `http.disconnect` to a dead client's late body reads).
- `after_requests=N` lets N requests pass (those matching `on`, when given: e.g. `okr_write` and
  N=1 holds the second write batch) and holds the next one; each hold catches one request.

It also keeps, when asked (`count_served`), a tally of the records each read answered, per object
(`ServedRecords`): a test compares what a rerun read with what the store already held.
Salesforce records carry their sObject in `attributes.type`; HubSpot objects are named by the path
(`/crm/v3/objects/deals/search` -> "deals", `/crm/v3/owners` -> "owners", `/marketing/v3/campaigns` ->
"campaigns"). Bulk API CSV results and association reads are not tallied.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_POLL_S = 0.005  # how often a held request looks for its release (the loop keeps serving the others)
_HUBSPOT_OBJECT = re.compile(r"^/(?:crm/v3/objects/(?P<type>[^/]+)(?:/search|/batch/read)?|crm/v3/(?P<owners>owners)"
                             r"|marketing/v3/(?P<campaigns>campaigns))/?$")
_WRITE_PATH = re.compile(r"/composite/sobjects|/batch/(?:upsert|create|update|associate)")


@dataclass(frozen=True)
class Request:
    """What a hold sees of a request: enough to choose it and to name it in a message."""

    method: str
    path: str
    query: str = ""

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")


Predicate = Callable[[Request], bool]


def okr_write(request: Request) -> bool:
    """A writeback request of either CRM: Salesforce sObject Collections, HubSpot batch writes."""
    return request.method in ("POST", "PATCH", "PUT") and bool(_WRITE_PATH.search(request.path))


class Hold:
    """One armed hold; `wait` until it holds its request, then `release` it (see the module docstring)."""

    def __init__(self, after_requests: int, on: Predicate | None) -> None:
        if after_requests < 0:
            raise ValueError(f"after_requests must be >= 0, got {after_requests}")
        self.after_requests = after_requests
        self.on = on
        self.seen = 0  # matching requests passed so far
        self.request: Request | None = None  # the request held, once there is one
        self._held = threading.Event()
        self._released = threading.Event()
        self._done = threading.Event()
        self.delivered: bool | None = None  # after release: whether the CRM face got the request

    def _catches(self, request: Request) -> bool:
        """Called under the middleware's lock for each request while armed."""
        if self.request is not None or (self.on is not None and not self.on(request)):
            return False
        if self.seen < self.after_requests:
            self.seen += 1
            return False
        self.request = request
        return True

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def wait(self, timeout: float) -> Request:
        """Block until a request is held; TimeoutError after `timeout` seconds."""
        if not self._held.wait(timeout):
            raise TimeoutError(f"no request held within {timeout:g} s ({self.seen} matching request(s) passed)")
        assert self.request is not None
        return self.request

    def release(self, deliver: bool = True) -> None:
        """Let the held request go on to the CRM face (or drop it unanswered); disarms a hold not yet held."""
        if self.delivered is None:
            self.delivered = deliver
        self._released.set()
        if not self.held:
            self._done.set()

    def join(self, timeout: float) -> None:
        """Block until the released request is over: answered by the CRM face (to whoever still listens) or
        dropped. TimeoutError after `timeout` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the held request {self.request} did not finish within {timeout:g} s")

    async def _until_released(self) -> bool:
        self._held.set()
        while not self._released.is_set():
            await asyncio.sleep(_POLL_S)
        return bool(self.delivered)


@dataclass
class ServedRecords:
    """Records a CRM face answered reads with since counting began, per object."""

    records: Counter[str] = field(default_factory=Counter)

    def add(self, obj: str, count: int) -> None:
        self.records[obj] += count


class HoldMiddleware:
    """ASGI middleware of one CRM face: applies armed holds, and tallies served records when asked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._holds: list[Hold] = []
        self.served: ServedRecords | None = None  # None: not counting (no response is parsed)

    def hold(self, after_requests: int = 0, on: Predicate | None = None) -> Hold:
        armed = Hold(after_requests, on)
        with self._lock:
            self._holds = [each for each in self._holds if not each._done.is_set()] + [armed]
        return armed

    def release_all(self, deliver: bool = False) -> None:
        """Disarm every hold and let every request still held go (dropped by default): the server stops."""
        with self._lock:
            holds, self._holds = self._holds, []
        for each in holds:
            each.release(deliver)

    def count_served(self) -> ServedRecords:
        """Start a fresh tally of served records (see ServedRecords) and return it."""
        with self._lock:
            self.served = ServedRecords()
            return self.served

    def _catch(self, request: Request) -> Hold | None:
        with self._lock:
            for each in self._holds:
                if not each._released.is_set() and each._catches(request):
                    return each
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (not self._holds and self.served is None):
            await self.app(scope, receive, send)
            return
        request = Request(scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"))
        caught = self._catch(request) if self._holds else None
        served = self.served
        answer = send
        if served is not None and request.method in ("GET", "POST") and not okr_write(request):
            answer = _tally(send, request, served)
        if caught is None:
            await self.app(scope, receive, answer)
            return
        try:
            body = await _read_body(receive)
            if not await caught._until_released():
                _close_connection(send)
                return
            await self.app(scope, _replay(body, receive), answer)
        finally:
            caught._done.set()


async def _read_body(receive: Receive) -> list[Message]:
    """Every body message of the request (ends early if the client has gone)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = [message for message in messages if message["type"] == "http.request"] or \
        [{"type": "http.request", "body": b"", "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _close_connection(send: Send) -> None:
    """Drop the request unanswered: close the transport of uvicorn's request cycle, if the client is still there."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None and not getattr(cycle, "disconnected", True):
        transport.close()


def _tally(send: Send, request: Request, served: ServedRecords) -> Send:
    """`send`, counting the records of a JSON answer into `served` once it is complete."""
    chunks: list[bytes] = []
    is_json = False

    async def counting(message: Message) -> None:
        nonlocal is_json
        if message["type"] == "http.response.start":
            is_json = any(name.lower() == b"content-type" and b"json" in value.lower()
                          for name, value in message.get("headers", []))
        elif message["type"] == "http.response.body" and is_json:
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                _count(b"".join(chunks), request, served)
        await send(message)

    return counting


def _count(body: bytes, request: Request, served: ServedRecords) -> None:
    try:
        document: Any = json.loads(body or b"null")
    except ValueError:
        return
    if not isinstance(document, dict):
        return
    if isinstance(document.get("records"), list):  # Salesforce query / queryMore
        for record in document["records"]:
            if isinstance(record, dict):
                served.add(str((record.get("attributes") or {}).get("type") or "?"), 1)
        return
    match = _HUBSPOT_OBJECT.match(request.path)
    if match and isinstance(document.get("results"), list):
        served.add(match["type"] or match["owners"] or match["campaigns"], len(document["results"]))

