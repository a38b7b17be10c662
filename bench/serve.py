"""Serve one sandbox org in this process, driven by JSON commands on stdin (bench.common.SandboxProcess).

    python -m bench.serve DATA_DIR

Prints the connection environment as the first line, then one JSON answer per command line:
calls, call_paths, reset_calls, counts, minimum, change, limits, limit_stats, faults, stop.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.hubspot_limits import HubSpotRateLimits
from connectors.sandbox.server import CRMS, SandboxServer

TABLES = ("accounts", "deals", "line_items", "calls", "emails", "meetings", "leads", "cases", "campaigns")
CHANGED_SHARE = 0.01
DELETED_SHARE_OF_CHANGED = 0.1


def _count(server: SandboxServer, sql: str) -> int:
    return int(server.state.query(sql)[0][0])


def counts(server: SandboxServer) -> dict[str, int]:
    return {table: _count(server, f"SELECT COUNT(*) FROM {table}") for table in (*TABLES, "owners")}


def change_one_percent(server: SandboxServer, seed: int = 3) -> int:
    """Touch 1% of every logical table's live rows (a tenth of those deleted); returns rows touched."""
    rng = random.Random(seed)
    stamp = server.state.next_modstamp_ms()
    touched = 0
    with server.state.transaction() as conn:
        for table in TABLES:
            ids = [row[0] for row in conn.execute(f"SELECT id FROM {table} WHERE deleted = 0")]
            chosen = rng.sample(ids, max(1, round(len(ids) * CHANGED_SHARE))) if ids else []
            for number, record_id in enumerate(chosen):
                deleted = 1 if number < len(chosen) * DELETED_SHARE_OF_CHANGED else 0
                conn.execute(f"UPDATE {table} SET modified_ms = ?, deleted = ? WHERE id = ?",
                             (stamp + number, deleted, record_id))
            touched += len(chosen)
    return touched


def minimum_pages(server: SandboxServer, crm: str) -> dict[str, int]:
    """Pages a full read of every stream needs at each API's largest page size, per stream.

    Salesforce: 2,000 rows per REST query page, one page at least per stream (Bulk 2.0 is no page
    API; see bench.calls); the contacts stream reads the converted leads. HubSpot: owners 100 a
    page; 200 per search page for the live records, 100 per archived-list page for the deleted
    ones, 1,000 ids per v4 association batch read for each stream with an association (all but
    companies); the leads table is both the contacts and the leads streams; campaigns 100 a page.
    The connectors' few lookups (pipelines, properties, describes) are not in the minimum."""
    pages: dict[str, int] = {}

    def count(table: str, where: str = "") -> int:
        return _count(server, f"SELECT COUNT(*) FROM {table} {where}")

    if crm == "salesforce":
        pages["users"] = max(1, math.ceil(count("owners") / 2000))
        for table in TABLES:
            pages[table] = max(1, math.ceil(count(table) / 2000))
        pages["contacts"] = max(1, math.ceil(count("leads", "WHERE converted_ms IS NOT NULL") / 2000))
        return pages
    pages["owners"] = max(1, math.ceil(count("owners") / 100))
    streams = {"companies": "accounts", "deals": "deals", "line_items": "line_items", "calls": "calls",
               "emails": "emails", "meetings": "meetings", "contacts": "leads", "leads": "leads", "tickets": "cases"}
    for stream, table in streams.items():
        live, archived = count(table, "WHERE deleted = 0"), count(table, "WHERE deleted = 1")
        pages[stream] = max(1, math.ceil(live / 200)) + max(1, math.ceil(archived / 100))
        pages[stream] += math.ceil(live / 1000) if stream != "companies" else 0
    pages["campaigns"] = max(1, math.ceil(count("campaigns") / 100))
    return pages


def handle(server: SandboxServer, request: dict[str, Any]) -> Any:
    name = request["command"]
    if name == "calls":
        return {crm: server.calls(crm) for crm in CRMS}
    if name == "call_paths":  # "METHOD /path" -> requests, of one CRM face
        return dict(server.counters[request["crm"]].counts)
    if name == "reset_calls":
        return server.reset_calls()
    if name == "counts":
        return counts(server)
    if name == "minimum":
        return minimum_pages(server, request["crm"])
    if name == "change":
        return change_one_percent(server)
    if name == "limits":  # HubSpot's Professional limits: 190 per rolling 10 s, 5 searches per second
        server.counters["hubspot"].app.state.rate_limits = HubSpotRateLimits(
            per_interval=request.get("per_interval", 190), search_per_second=request.get("search_per_second", 5))
        return None
    if name == "limit_stats":
        limits = server.counters["hubspot"].app.state.rate_limits
        return None if limits is None else {"accepted": limits.accepted, "rejected": dict(limits.rejected)}
    if name == "faults":
        latency = request.get("latency_ms", 0)
        server.set_faults(request["crm"], FaultPlan(latency_ms=latency) if latency else None)
        return None
    raise ValueError(f"unknown command {name!r}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with SandboxServer(Path(argv[0])) as server:
        print(json.dumps(server.connection_env()), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if request["command"] == "stop":
                print(json.dumps({"result": None}), flush=True)
                break
            try:
                answer = {"result": handle(server, request)}
            except Exception as error:  # noqa: BLE001 - reported to the runner, which raises it
                answer = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
