"""A record of the requests the sandbox served, for tests that must see what a client really sent.

Off by default (a long-running `okr-sync sandbox serve` keeps nothing); `SandboxServer.request_log`
records while started. Each entry keeps the CRM face, method, path, query parameters and the body
(JSON when it parses, else text), never a header: the Authorization header is the one secret a
request carries, and the log is the last place it should end up.

    server.request_log.start()
    ... run a sync ...
    server.request_log.soql()            # every SOQL query Salesforce received (REST and Bulk 2.0)
    server.request_log.writes("hubspot")  # every non-GET request to the HubSpot face
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_QUERY_PATHS = ("/query", "/queryAll")


@dataclass
class LoggedRequest:
    crm: str
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any = None  # parsed JSON, text; None without a body, or when the face refused the request unread
    raw: bytes = field(default=b"", repr=False)

    @property
    def is_write(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")


class RequestLog:
    """Every request of every CRM face while started; `middleware(crm, app)` wraps one face."""

    def __init__(self) -> None:
        self.entries: list[LoggedRequest] = []
        self.recording = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self.entries.clear()
            self.recording = True

    def stop(self) -> None:
        self.recording = False

    def middleware(self, crm: str, app: ASGIApp) -> ASGIApp:
        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not self.recording:
                await app(scope, receive, send)
                return
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            entry = LoggedRequest(crm, scope["method"], scope["path"], query)
            with self._lock:
                self.entries.append(entry)
            chunks: list[bytes] = []

            async def receive_logged() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body"):
                        entry.raw = b"".join(chunks)
                        entry.body = _parsed(entry.raw)
                return message

            await app(scope, receive_logged, send)

        return logged

    def of(self, crm: str) -> list[LoggedRequest]:
        with self._lock:
            return [entry for entry in self.entries if entry.crm == crm]

    def writes(self, crm: str) -> list[LoggedRequest]:
        """The non-GET requests one face received (logins, searches and query jobs included)."""
        return [entry for entry in self.of(crm) if entry.is_write]

    def soql(self) -> list[str]:
        """Every SOQL text the Salesforce face received: `q` of query / queryAll, `query` of Bulk jobs."""
        found = []
        for entry in self.of("salesforce"):
            if entry.method == "GET" and entry.path.rstrip("/").endswith(_QUERY_PATHS):
                found.extend(entry.query.get("q", []))
            elif entry.method == "POST" and entry.path.rstrip("/").endswith("/jobs/query") \
                    and isinstance(entry.body, dict):
                found.append(str(entry.body.get("query", "")))
        return found

    def searches(self) -> list[Any]:
        """The bodies of every HubSpot search request."""
        return [entry.body for entry in self.of("hubspot")
                if entry.method == "POST" and entry.path.rstrip("/").endswith("/search")]


def _parsed(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
