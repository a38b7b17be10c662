"""API calls of a full and of an incremental sync (after a 1% change), beside the lower bound.

The lower bound is every stream read in pages of the largest size its API allows (bench.serve
`minimum_pages`). Salesforce reads a stream's rest with Bulk API 2.0 above 10,000 records, which is
no page API: its full sync can be below that bound.
"""

from __future__ import annotations

from typing import Any

from bench.common import Context
from bench.syncs import per_crm

COMMAND = ".venv/bin/python -m bench --only calls --sizes {size}"


def run(ctx: Context, sizes: list[int]) -> dict[str, Any]:
    return per_crm(ctx, sizes, figure)


def figure(syncs: dict[str, Any], crm: str, deals: int) -> dict[str, Any]:
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
