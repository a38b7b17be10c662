"""API calls of a full and of an incremental sync, per CRM and stream, against a generated sandbox org.

    .venv/bin/python -m benchmarks.sync_calls --deals 20000

Seeds a private sandbox org in a temporary directory, runs a full sync of every stream of both
connectors (real clients over HTTPS, calls counted by the sandbox), then changes 1% of the records of
every logical table (modified, a tenth of them deleted) and runs an incremental sync. Prints the calls
per stream, the minimum number of pages a full read needs, and the incremental / full ratio, as a
markdown table for BENCHMARKS.md. Wall time is shown too; HubSpot's is mostly its search rate limit
(5 searches a second per account).
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.hubspot import HubSpotSource
from connectors.salesforce import SalesforceSource
from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.server import SandboxServer
from connectors.store import make_engine

CHANGED_SHARE = 0.01
DELETED_SHARE_OF_CHANGED = 0.1
TABLES = ("accounts", "deals", "line_items", "calls", "emails", "meetings", "leads", "cases", "campaigns")
ANCHOR = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


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


def _sync(source: Any, engine: Any) -> tuple[dict[str, int], float]:
    calls: dict[str, int] = {}
    started = time.perf_counter()
    for stream in source.STREAMS:
        before = source.api_calls
        source.extract(engine, stream)
        calls[stream] = source.api_calls - before
    return calls, time.perf_counter() - started


def _count(server: SandboxServer, sql: str) -> int:
    return int(server.state.query(sql)[0][0])


def minimum_pages(server: SandboxServer, crm: str) -> int:
    """Pages a full read needs at the APIs' largest sizes (Salesforce REST 2,000; HubSpot search 200,
    associations 1,000 ids, archive list 100); owners and users are left out (one page each)."""
    if crm == "salesforce":
        tables = [*TABLES, "leads WHERE converted_ms IS NOT NULL"]
        return sum(max(1, math.ceil(_count(server, f"SELECT COUNT(*) FROM {table}") / 2000)) for table in tables)
    total = 0
    for table in TABLES[:-1]:  # no campaigns in HubSpot
        live = _count(server, f"SELECT COUNT(*) FROM {table} WHERE deleted = 0")
        archived = _count(server, f"SELECT COUNT(*) FROM {table} WHERE deleted = 1")
        total += max(1, math.ceil(live / 200)) + max(1, math.ceil(archived / 100))
        total += math.ceil(live / 1000) if table != "accounts" else 0
    return total


SOURCES = {"salesforce": SalesforceSource, "hubspot": HubSpotSource}


def run(deals: int, workdir: Path, bulk_threshold: int | None, crms: tuple[str, ...] = tuple(SOURCES)) -> str:
    spec = OrgSpec(seed=11, deals=deals, owners=max(10, deals // 100), accounts=max(50, deals // 5),
                   anchor=ANCHOR)
    started = time.perf_counter()
    lines = []
    with SandboxServer(workdir / "sandbox", spec) as server:
        records = sum(_count(server, f"SELECT COUNT(*) FROM {table}") for table in (*TABLES, "owners"))
        lines.append(f"Org: {deals:,} deals, {records:,} records in all (seeded in "
                     f"{time.perf_counter() - started:.0f} s).\n")
        lines.append("| CRM | full sync calls | minimum pages | full / minimum | incremental calls (1% changed) "
                     "| incremental / full | full wall time | incremental wall time |")
        lines.append("|---|---|---|---|---|---|---|---|")
        details = []
        results = {}
        env = server.connection_env()
        if bulk_threshold is not None:
            env["OKR_SYNC_SF_BULK_THRESHOLD"] = str(bulk_threshold)
        engines = {crm: make_engine(f"sqlite:///{workdir / f'{crm}.db'}") for crm in crms}
        for crm in crms:
            with SOURCES[crm].from_env(env) as source:
                results[crm] = {"full": _sync(source, engines[crm]), "minimum": minimum_pages(server, crm)}
        touched = change_one_percent(server)
        for crm in crms:
            with SOURCES[crm].from_env(env) as source:
                results[crm]["incremental"] = _sync(source, engines[crm])
        for crm, result in results.items():
            (full, full_s), (incremental, inc_s) = result["full"], result["incremental"]
            full_calls, inc_calls = sum(full.values()), sum(incremental.values())
            lines.append(f"| {crm} | {full_calls} | {result['minimum']} | {full_calls / result['minimum']:.3f} | "
                         f"{inc_calls} | {inc_calls / full_calls:.1%} | {full_s:.1f} s | {inc_s:.1f} s |")
            details.append(f"- {crm} per stream, full: {full}; incremental: {incremental}")
        lines.append("")
        lines.append(f"{touched:,} records changed between the two syncs (1% of each table, a tenth of them "
                     "deleted).")
        lines.extend(details)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=20_000, help="deals in the generated org (default 20000)")
    parser.add_argument("--bulk-threshold", type=int, default=None,
                        help="OKR_SYNC_SF_BULK_THRESHOLD for the run (default: the connector's)")
    parser.add_argument("--crm", choices=tuple(SOURCES), action="append",
                        help="only this CRM (repeatable; default both)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="okr-sync-bench-") as workdir:
        print(run(args.deals, Path(workdir), args.bulk_threshold, tuple(args.crm or SOURCES)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
