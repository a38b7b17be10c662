"""Peak memory (RSS) of a full sync, per CRM and size: the child process's own high-water mark.

The sync runs in a process of its own (bench.sync_child) and the sandbox in another (bench.serve),
so the figure is the client's alone: interpreter, connectors, clients, SQLite store and the pages in
flight. `rss_before_sync_mb` is the same process after its imports, before the first call.
"""

from __future__ import annotations

from typing import Any

from bench.common import Context
from bench.syncs import per_crm

COMMAND = ".venv/bin/python -m bench --only memory --sizes {size}"


def run(ctx: Context, sizes: list[int]) -> dict[str, Any]:
    return per_crm(ctx, sizes, figure)


def figure(syncs: dict[str, Any], crm: str, deals: int) -> dict[str, Any]:
    full = syncs[crm]["full"]
    return {"crm": crm, "deals": deals, "records": full["records"], "peak_rss_mb": full["peak_rss_mb"],
            "rss_before_sync_mb": full["rss_before_sync_mb"], "seconds": full["seconds"],
            "command": COMMAND.format(size=deals), **syncs[crm]["full_stamp"]}
