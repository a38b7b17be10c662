"""One sync of every stream of one CRM into a store, in a process of its own (its peak RSS is the figure).

    python -m bench.sync_child --crm hubspot --store sqlite:///PATH [--unthrottled] [--parallel N]

Connection settings come from the environment (the sandbox's `connection_env`). Streams are
extracted as the nightly flow extracts them: in parallel threads, flows.parallel.PARALLEL_STREAMS of
them at once (Salesforce 4, HubSpot 3), through the connectors' own `extract`, without Prefect (whose
own memory is not the connector's). Prints one JSON line: calls per stream, records, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", required=True, choices=("salesforce", "hubspot"))
    parser.add_argument("--store", required=True, help="SQLAlchemy URL of the store")
    parser.add_argument("--unthrottled", action="store_true",
                        help="lift the HubSpot client's own rate limiter (same calls, no waits)")
    parser.add_argument("--parallel", type=int, default=None, help="streams at once (default: the flow's)")
    args = parser.parse_args(argv)

    from connectors.hubspot import settings as hubspot_settings

    if args.unthrottled:  # RateLimits reads these when a source is built
        hubspot_settings.TIER_LIMITS[hubspot_settings.DEFAULT_TIER] = 10**9
        hubspot_settings.SEARCH_RATE_LIMIT = 10**9
    from connectors.hubspot import HubSpotSource
    from connectors.salesforce import SalesforceSource
    from connectors.store import make_engine
    from flows.parallel import stream_limit

    engine = make_engine(args.store)
    rss_before = _rss_mb()
    source_class = SalesforceSource if args.crm == "salesforce" else HubSpotSource
    limit = args.parallel or stream_limit(args.crm, os.environ)
    started = time.perf_counter()
    with source_class.from_env(os.environ) as source:
        login_calls = source.api_calls
        with ThreadPoolExecutor(max_workers=limit) as pool:
            results = list(pool.map(lambda stream: source.extract(engine, stream), source.STREAMS))
        total_calls = source.api_calls
    seconds = time.perf_counter() - started
    engine.dispose()
    calls = {result.stream: result.api_calls for result in results}
    print(json.dumps({
        "crm": args.crm, "calls": calls, "total_calls": total_calls, "login_calls": login_calls,
        "records": sum(result.records for result in results), "seconds": round(seconds, 2),
        "parallel": limit, "rss_before_sync_mb": round(rss_before, 1),
    }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
