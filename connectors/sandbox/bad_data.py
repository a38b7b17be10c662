"""Records a CRM face serves wrong, on purpose: what okr-sync must refuse to store (or store with care).

A test picks one record by the id the CRM shows (Salesforce `Id`, HubSpot `id`) and how it goes
wrong (`SandboxServer.serve_bad_data`); every JSON answer of that face holding the record (query
and queryMore pages, search pages, list pages) is rewritten on its way out, until `clear_bad_data`
(the record is fixed):
- "malformed": the whole answer is cut in half, so it is no longer JSON;
- "value": `field` is served as `value`: a wrong type (Amount "abc"), a date that is not one
  ("not-a-date"), a huge string (a 5 MB name), a picklist value or stage the org does not define;
- "missing": `field` is left out (Salesforce `Id`; HubSpot `id`).
A Salesforce field is a key of the record; a HubSpot field is a key of the record itself when it
has one (`id`, `createdAt`, `updatedAt`), else one of its `properties`. The org's tables are not
touched: once the rule is cleared, the same record is served as it always was. Bulk API 2.0 CSV
results are served unchanged.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BadDataKind = Literal["malformed", "value", "missing"]
_RECORD_LISTS = ("records", "results")  # Salesforce query pages; HubSpot search, list and batch answers
_TOP_LEVEL = ("id", "createdAt", "updatedAt", "archived", "archivedAt")  # HubSpot keys beside `properties`


@dataclass(frozen=True)
class BadDataRule:
    crm: str
    record_id: str
    kind: BadDataKind
    field: str | None = None
    value: Any = None

    def __post_init__(self) -> None:
        if self.kind not in ("malformed", "value", "missing"):
            raise ValueError(f"unknown kind of bad data: {self.kind!r}")
        if self.kind != "malformed" and not self.field:
            raise ValueError(f"bad data of kind {self.kind!r} needs a field")


def _holder(record: dict[str, Any], field: str, crm: str) -> dict[str, Any]:
    """The dict `field` lives in: the record, or a HubSpot record's properties."""
    if crm == "hubspot" and field not in _TOP_LEVEL and isinstance(record.get("properties"), dict):
        return record["properties"]
    return record


class BadDataMiddleware:
    """ASGI middleware rewriting one face's JSON answers by its rules (see the module docstring)."""

    def __init__(self, app: ASGIApp, crm: str) -> None:
        self.app, self.crm = app, crm
        self._rules: list[BadDataRule] = []
        self._lock = threading.Lock()
        self.served = 0  # answers rewritten so far

    def add(self, rule: BadDataRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self._lock:
            rules = list(self._rules)
        if scope["type"] != "http" or not rules:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            body = self._rewrite(b"".join(chunks), rules)
            headers = [(key, value) for key, value in start.get("headers", []) if key.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)

    def _rewrite(self, body: bytes, rules: list[BadDataRule]) -> bytes:
        """The answer with the rules applied to the records it holds; unchanged when it holds none."""
        wanted = [rule for rule in rules if rule.record_id.encode() in body]
        if not wanted:
            return body
        try:
            answer = json.loads(body)
        except ValueError:
            return body
        lists = [answer.get(name) for name in _RECORD_LISTS] if isinstance(answer, dict) else []
        records = [record for items in lists if isinstance(items, list) for record in items if isinstance(record, dict)]
        applied = False
        for rule in wanted:
            for record in records:
                if str(record.get("Id", record.get("id"))) != rule.record_id:
                    continue
                applied = True
                if rule.kind == "malformed":
                    with self._lock:
                        self.served += 1
                    return body[: len(body) // 2]
                holder = _holder(record, rule.field or "", self.crm)
                if rule.kind == "missing":
                    holder.pop(rule.field or "", None)
                else:
                    holder[rule.field or ""] = rule.value
        if not applied:
            return body
        with self._lock:
            self.served += 1
        return json.dumps(answer).encode()
