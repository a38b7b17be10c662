"""The full and incremental syncs of one org, shared by the calls and memory benchmarks (run once per size).

For each size: a private copy of the seeded org served by `bench.serve`; a full sync of every
stream of Salesforce, then of HubSpot, each in a child process of its own (`bench.sync_child`, the
HubSpot client's own rate limiter lifted: the calls are the same, the waits go); the minimum pages;
1% of every table changed (a tenth of it deleted); an incremental sync of each CRM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import Context, SandboxProcess, fresh_copy, log, not_measured, seeded_org, stamp, sync_in_child

# Seconds per deal of a full unthrottled sync on the shared 2-core machine, as measured on 2026-11-27
# (Salesforce 100,000 deals in 73 s at a load of 4.6 once Bulk results streamed; HubSpot 10,000 in
# 19 s at a load of about 4 once its pages were read as raw JSON), with room for load, to leave out
# what cannot finish within the run's --max-minutes (the org's generation and copy not counted).
SECONDS_PER_DEAL = {"salesforce": 0.0012, "hubspot": 0.003}
# HubSpot through the sandbox does not scale linearly: each search page's `total` counts every match
# after the cursor (connectors.sandbox.hubspot_search), so a full sync is quadratic in a stream's
# size. A full sync of 1,000,000 deals stored 64,000 records a minute for its first 9 minutes
# (17:52-18:01 UTC, 2026-11-27; stopped): 8.4 million records in about 130 min.
SECONDS_PER_DEAL_AT = {("hubspot", 1_000_000): 0.0078}


def skipped(ctx: Context, crm: str, deals: int) -> str | None:
    """Why the full sync of `crm` at `deals` is not run (too long, or past the deadline), or None."""
    estimate = SECONDS_PER_DEAL_AT.get((crm, deals), SECONDS_PER_DEAL[crm]) * deals / 60
    if estimate > ctx.max_minutes:
        return (f"not run: a full {crm} sync of {deals:,} deals through the sandbox is estimated at "
                f"{estimate:.0f} min on this machine, over the run's {ctx.max_minutes:.0f} min budget")
    return ctx.too_late()


def per_crm(ctx: Context, sizes: list[int],
            figure: Callable[[dict[str, Any], str, int], dict[str, Any]]) -> dict[str, Any]:
    """One figure per CRM and size from the shared syncs (`figure(syncs, crm, deals)`); a size past
    the deadline or a sync left out is recorded as not measured, with the reason."""
    figures: dict[str, Any] = {}
    for deals in sizes:
        late = ctx.too_late()
        if late:
            figures.update({f"{crm}/{deals}": not_measured(late) for crm in ctx.crms})
            continue
        syncs = full_and_incremental(ctx, deals)
        for crm in ctx.crms:
            left_out = syncs[crm].get("skipped")
            figures[f"{crm}/{deals}"] = not_measured(left_out) if left_out else figure(syncs, crm, deals)
    return figures


def full_and_incremental(ctx: Context, deals: int) -> dict[str, Any]:
    return ctx.cached(("syncs", deals), lambda: _run(ctx, deals))


def _run(ctx: Context, deals: int) -> dict[str, Any]:
    crms = [crm for crm in ctx.crms if skipped(ctx, crm, deals) is None]
    result: dict[str, Any] = {crm: {"skipped": skipped(ctx, crm, deals)} for crm in ctx.crms if crm not in crms}
    if not crms:
        return result
    org, seeded = seeded_org(deals, ctx.cache)
    copy = fresh_copy(org, ctx.workdir / f"syncs-{deals}" / "org")
    result["seed_seconds"] = seeded
    with SandboxProcess(copy) as sandbox:
        counts = sandbox.command("counts")
        result["records"] = sum(counts.values())
        result["counts"] = counts
        for crm in crms:
            log(f"syncs {deals}: full {crm}")
            when = stamp()
            full = sync_in_child(sandbox, crm, copy.parent / f"{crm}.db", throttled=False)
            result[crm] = {"full": full, "minimum": sandbox.command("minimum", crm=crm), "full_stamp": when}
        result["changed"] = sandbox.command("change")
        for crm in crms:
            log(f"syncs {deals}: incremental {crm}")
            result[crm]["incremental_stamp"] = stamp()
            result[crm]["incremental"] = sync_in_child(sandbox, crm, copy.parent / f"{crm}.db", throttled=False)
    return result
