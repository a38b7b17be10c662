"""API calls of a full and of an incremental sync (after a 1% change), beside the lower bound.

The lower bound is every stream read in pages of the largest size its API allows (bench.serve
`minimum_pages`). Salesforce reads a stream's rest with Bulk API 2.0 above 10,000 records, which is
no page API: its full sync can be below that bound.
"""

from __future__ import annotations

from typing import Any

from bench.common import Context, not_measured
from bench.syncs import full_and_incremental

COMMAND = ".venv/bin/python -m bench --only calls --sizes {size}"


def run(ctx: Context, sizes: list[int]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for deals in sizes:
        late = ctx.too_late()
        if late:
            figures.update({f"{crm}/{deals}": not_measured(late) for crm in ctx.crms})
            continue
        syncs = full_and_incremental(ctx, deals)
        for crm in ctx.crms:
            figures[f"{crm}/{deals}"] = figure(syncs, crm, deals)
    return figures


def figure(syncs: dict[str, Any], crm: str, deals: int) -> dict[str, Any]:
    if syncs[crm].get("skipped"):
        return not_measured(syncs[crm]["skipped"])
    full, incremental = syncs[crm]["full"], syncs[crm]["incremental"]
    minimum = sum(syncs[crm]["minimum"].values())
    return {
        "crm": crm, "deals": deals, "records": syncs["records"], "full_calls": full["total_calls"],
        "minimum_pages": minimum, "full_over_minimum": round(full["total_calls"] / minimum, 3),
        "incremental_calls": incremental["total_calls"],
        "incremental_over_full": round(incremental["total_calls"] / full["total_calls"], 4),
        "full_seconds": full["seconds"], "incremental_seconds": incremental["seconds"],
        "changed_records": syncs["changed"], "full_per_stream": full["calls"],
        "minimum_per_stream": syncs[crm]["minimum"], "incremental_per_stream": incremental["calls"],
        "command": COMMAND.format(size=deals), **syncs[crm]["full_stamp"],
        "incremental_load": syncs[crm]["incremental_stamp"]["load"],
    }
