"""The naive baseline measured in the same run: pull everything nightly with the clients' defaults,
compute in Python, one update request per KR (bench.naive_child, in a process of its own).

Figures per CRM and size: requests (as the sandbox served them), records pulled, KR results and
write requests, wall time per phase and peak RSS. The sandbox enforces no rate limit here (the
naive client has none and no retry on 429): on a real HubSpot portal its pull alone needs at least
requests / 19 per second, and a burst over 190 per 10 s fails the script.
"""

from __future__ import annotations

import os
from typing import Any

from bench.common import Context, SandboxProcess, fresh_copy, log, not_measured, run_child, seeded_org, stamp

COMMAND = ".venv/bin/python -m bench --only naive --sizes {size}"
SECONDS_PER_DEAL = {"salesforce": 0.002, "hubspot": 0.009}  # on this machine under load, for the budget
# The naive pull holds every record at once: peak RSS per deal measured at 100,000 deals (2,258 and
# 1,936 MB), to leave out a size whose pull would not fit in half the machine's memory.
MB_PER_DEAL = {"salesforce": 0.0226, "hubspot": 0.0194}


def run(ctx: Context, sizes: list[int]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for deals in sizes:
        todo = []
        for crm in ctx.crms:
            minutes = SECONDS_PER_DEAL[crm] * deals / 60
            megabytes = MB_PER_DEAL[crm] * deals
            late = ctx.too_late()
            if late:
                figures[f"{crm}/{deals}"] = not_measured(late)
            elif megabytes > machine_memory_mb() / 2:
                figures[f"{crm}/{deals}"] = not_measured(
                    f"not run: its pull holds every record at once, about {megabytes / 1024:.0f} GB at this size "
                    f"(measured {MB_PER_DEAL[crm] * 100_000:,.0f} MB at 100,000 deals), over half the machine's "
                    f"{machine_memory_mb() / 1024:.0f} GB")
            elif minutes > ctx.max_minutes:
                figures[f"{crm}/{deals}"] = not_measured(
                    f"not run: estimated at {minutes:.0f} min, over the run's {ctx.max_minutes:.0f} min budget")
            else:
                todo.append(crm)
        if not todo:
            continue
        org, _ = seeded_org(deals, ctx.cache)
        copy = fresh_copy(org, ctx.workdir / f"naive-{deals}" / "org")
        with SandboxProcess(copy) as sandbox:
            for crm in todo:
                if ctx.too_late():
                    figures[f"{crm}/{deals}"] = not_measured(ctx.too_late() or "")
                    continue
                log(f"naive {deals}: {crm}")
                when = stamp()
                before = sandbox.command("calls")[crm]
                child = run_child("bench.naive_child", ["--crm", crm], env=sandbox.env)
                served = sandbox.command("calls")[crm] - before
                figures[f"{crm}/{deals}"] = {
                    **child.output, "deals": deals, "requests": served,
                    "pull_requests": served - child.output["write_requests"],
                    "peak_rss_mb": round(child.peak_rss_mb, 1), "command": COMMAND.format(size=deals), **when}
    return figures


def machine_memory_mb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
