"""Wall time of a full sync with the sandbox enforcing the CRM's limits and 100 ms latency, beside the bound.

HubSpot: the sandbox enforces 190 requests per rolling 10 s and 5 searches per second
(connectors.sandbox.hubspot_limits) and answers every request 100 ms late (FaultPlan(latency_ms=100)).
The issue's bound is calls / (190 / 10 s). The client keeps to 171 per 10 s and to 4 searches a
second on average (5 per 1.25 s; connectors.hubspot.settings), and nearly every call of a full sync is a search,
so the bound the search limit sets, searches / 5 per second, is the one that binds, and the client's
own pace is searches / 4 per second: expected wall / issue bound = (searches / 4) / (calls / 19) ~ 4.4.

Salesforce has no per-second limit, only a daily allocation and 25 long-running requests at once; the
connector reads 4 streams at once (flows.parallel). With 100 ms latency per request the bound is
calls x 100 ms / 4 (requests in flight all the time, no work between them). Bulk 2.0 jobs add the
client's poll waits (the first status poll 0.5 s after a job starts, each later wait doubled:
connectors.salesforce.settings; the sandbox completes a job on its second poll, so 1.5 s a job),
reported apart.
"""

from __future__ import annotations

import math
from typing import Any

from bench.common import Context, SandboxProcess, fresh_copy, log, not_measured, seeded_org, stamp, sync_in_child
from bench.syncs import SECONDS_PER_DEAL
from connectors.salesforce.settings import BULK_POLL_SECONDS
from connectors.sandbox.salesforce_bulk import DEFAULT_POLLS_TO_COMPLETE

COMMAND = ".venv/bin/python -m bench --only ratelimit --sizes {size}"
LATENCY_MS = 100
HUBSPOT_LIMIT, HUBSPOT_WINDOW_S, HUBSPOT_SEARCHES_PER_S = 190, 10.0, 5
CLIENT_SEARCHES_PER_S = 4  # 90% of 5, at least one below (connectors.ratelimit.with_margin)
SALESFORCE_PARALLEL = 4
# the client's waits before a sandbox job is seen complete (it completes on the second status poll)
POLL_WAIT_PER_JOB = sum(BULK_POLL_SECONDS * 2**poll for poll in range(DEFAULT_POLLS_TO_COMPLETE))
# calls per deal of a full sync (measured at 10,000 deals), for the time estimate of a size
CALLS_PER_DEAL = {"hubspot": 0.056, "salesforce": 0.0035}


def estimate_minutes(crm: str, deals: int) -> float:
    calls = CALLS_PER_DEAL[crm] * deals
    if crm == "hubspot":
        return calls / CLIENT_SEARCHES_PER_S / 60
    return deals * SECONDS_PER_DEAL["salesforce"] / 60 + calls * LATENCY_MS / 1000 / SALESFORCE_PARALLEL / 60


def run(ctx: Context, sizes: list[int]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for deals in sizes:
        for crm in ctx.crms:
            key = f"{crm}/{deals}"
            minutes = estimate_minutes(crm, deals)
            late = ctx.too_late()
            if late:
                figures[key] = not_measured(late)
            elif minutes > ctx.max_minutes:
                figures[key] = not_measured(
                    f"not run: estimated at {minutes:.0f} min ({'4 searches/s' if crm == 'hubspot' else 'latency'}),"
                    f" over the run's {ctx.max_minutes:.0f} min budget")
            else:
                figures[key] = measure(ctx, crm, deals)
    return figures


def measure(ctx: Context, crm: str, deals: int) -> dict[str, Any]:
    org, _ = seeded_org(deals, ctx.cache)
    copy = fresh_copy(org, ctx.workdir / f"ratelimit-{crm}-{deals}" / "org")
    log(f"ratelimit {deals}: full {crm} under limits")
    with SandboxProcess(copy) as sandbox:
        if crm == "hubspot":
            sandbox.command("limits", per_interval=HUBSPOT_LIMIT, search_per_second=HUBSPOT_SEARCHES_PER_S)
        sandbox.command("faults", crm=crm, latency_ms=LATENCY_MS)
        when = stamp()
        full = sync_in_child(sandbox, crm, copy.parent / "store.db", throttled=True)
        paths = sandbox.command("call_paths", crm=crm)
        limit_stats = sandbox.command("limit_stats") if crm == "hubspot" else None
    calls, seconds = full["total_calls"], full["seconds"]
    figure: dict[str, Any] = {"crm": crm, "deals": deals, "calls": calls, "seconds": seconds,
                              "latency_ms": LATENCY_MS, "per_stream": full["calls"],
                              "command": COMMAND.format(size=deals), **when}
    if crm == "hubspot":
        searches = sum(count for path, count in paths.items() if path.startswith("POST") and path.endswith("/search"))
        bound = calls / (HUBSPOT_LIMIT / HUBSPOT_WINDOW_S)
        search_bound = max(bound, searches / HUBSPOT_SEARCHES_PER_S)
        client_pace = max(calls / (171 / HUBSPOT_WINDOW_S), searches / CLIENT_SEARCHES_PER_S)
        figure |= {"searches": searches, "bound_seconds": round(bound, 1), "over_bound": round(seconds / bound, 2),
                   "search_bound_seconds": round(search_bound, 1),
                   "over_search_bound": round(seconds / search_bound, 2),
                   "client_pace_seconds": round(client_pace, 1), "over_client_pace": round(seconds / client_pace, 2),
                   "rejected_429": limit_stats["rejected"] if limit_stats else {}}
    else:
        jobs = sum(count for path, count in paths.items() if path.startswith("POST") and path.endswith("/jobs/query"))
        bound = calls * LATENCY_MS / 1000 / SALESFORCE_PARALLEL
        per_stream_bound = max(full["calls"].values()) * LATENCY_MS / 1000
        figure |= {"bulk_jobs": jobs, "bound_seconds": round(max(bound, per_stream_bound), 1),
                   "over_bound": round(seconds / max(bound, per_stream_bound), 2),
                   "poll_wait_seconds": POLL_WAIT_PER_JOB * math.ceil(jobs / SALESFORCE_PARALLEL)}
    return figure
