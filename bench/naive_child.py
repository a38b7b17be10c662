"""The naive baseline, one CRM, in a process of its own: what a team writes by hand.

    python -m bench.naive_child --crm salesforce|hubspot

Every night: pull every record of every object with the client's defaults (simple-salesforce
`query_all` per object, its default page size; hubspot-api-client `get_all` per object type, 100 a
page), keep it all in Python lists, compute the key results in Python loops, and send one update
request per key result (bench.writeback.naive_write). No incremental cursor, no store, no change
tracking, no rate limiting. Prints one JSON line: records, KR results, seconds per phase, requests sent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from datetime import date, datetime
from typing import Any

ANCHOR_DAY = date(2026, 11, 15)  # bench.common.ANCHOR: the generated org's "now"
QUARTER = (date(2026, 10, 1), date(2026, 12, 31))
LAST_QUARTER = (date(2026, 7, 1), date(2026, 9, 30))
CONNECTED = ("Connected", "f240bbac-87c9-4f6e-bf70-924b57d47db7")  # HubSpot's label or its GUID


def pull_salesforce(env: dict[str, str]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    from simple_salesforce import Salesforce

    from connectors.salesforce.helpers import make_session
    from connectors.salesforce.settings import API_VERSION, STREAMS

    client = Salesforce(instance_url=env["SALESFORCE_INSTANCE_URL"], session_id=env["SALESFORCE_ACCESS_TOKEN"],
                        session=make_session(env["OKR_SYNC_CA_BUNDLE"]), version=API_VERSION)
    data: dict[str, list[dict[str, Any]]] = {}
    for stream, spec in STREAMS.items():
        soql = f"SELECT {', '.join(spec.fields)} FROM {spec.sobject}" + (f" WHERE {spec.where}" if spec.where else "")
        data[stream] = client.query_all(soql)["records"]
    deals = [{"amount": r["Amount"] or 0.0, "close": r["CloseDate"], "created": r["CreatedDate"][:10],
              "won": r["IsWon"], "closed": r["IsClosed"], "type": r["Type"], "owner": r["OwnerId"]}
             for r in data["opportunities"]]
    activities = [{"kind": kind, "day": r["ActivityDate"], "owner": r["OwnerId"],
                   "connected": r.get("CallDisposition") == "Connected"}
                  for kind in ("calls", "emails", "meetings") for r in data[kind]]
    return {"deals": deals, "activities": activities}, sum(len(rows) for rows in data.values())


def pull_hubspot(env: dict[str, str]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    import hubspot

    from connectors.hubspot.settings import SEARCH_STREAMS

    client = hubspot.Client.create(access_token=env["HUBSPOT_ACCESS_TOKEN"], host=env["HUBSPOT_HOST"],
                                   ssl_ca_cert=env["OKR_SYNC_CA_BUNDLE"])
    data: dict[str, list[Any]] = {"owners": client.crm.owners.get_all()}
    for stream, spec in SEARCH_STREAMS.items():
        if stream == "leads":
            continue  # the Leads object is newer than the scripts teams keep
        association = [spec.association[0]] if spec.association else None
        data[stream] = client.crm.objects.get_all(spec.object_type, properties=list(spec.properties),
                                                  associations=association)
    stages = {stage.id: stage for pipeline in client.crm.pipelines.pipelines_api.get_all("deals").results
              for stage in pipeline.stages}

    def day(value: str | None) -> str | None:
        if not value:
            return None
        return (datetime.fromtimestamp(int(value) / 1000) if value.isdigit()
                else datetime.fromisoformat(value.replace("Z", "+00:00"))).date().isoformat()

    deals = []
    for record in data["deals"]:
        props = record.properties
        stage = stages.get(props.get("dealstage"))
        meta = stage.metadata if stage else {}
        deals.append({"amount": float(props.get("amount") or 0), "close": day(props.get("closedate")),
                      "created": day(props.get("createdate")), "won": meta.get("probability") == "1.0",
                      "closed": meta.get("isClosed") == "true", "type": props.get("dealtype"),
                      "owner": props.get("hubspot_owner_id")})
    activities = [{"kind": kind, "day": day(r.properties.get("hs_timestamp")),
                   "owner": r.properties.get("hubspot_owner_id"),
                   "connected": r.properties.get("hs_call_disposition") in CONNECTED}
                  for kind in ("calls", "emails", "meetings") for r in data[kind]]
    return {"deals": deals, "activities": activities}, sum(len(rows) for rows in data.values())


def compute(data: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Twelve sales key results of the quarter, in plain Python loops over the pulled records (two of
    them per owner), as a hand-written script computes them: each its own pass over the records."""
    start, end = (day.isoformat() for day in QUARTER)
    last_start, last_end = (day.isoformat() for day in LAST_QUARTER)
    deals, activities = data["deals"], data["activities"]

    def in_q(value: str | None, lo: str = start, hi: str = end) -> bool:
        return value is not None and lo <= value <= hi

    won = [d for d in deals if d["won"] and in_q(d["close"])]
    closed = [d for d in deals if d["closed"] and in_q(d["close"])]
    last_won = sum(d["amount"] for d in deals if d["won"] and in_q(d["close"], last_start, last_end))
    renewals_closed = [d for d in deals if d["closed"] and d["type"] == "Renewal" and in_q(d["close"])]
    cycles = [(date.fromisoformat(d["close"]) - date.fromisoformat(d["created"])).days for d in won if d["created"]]
    values = {
        "won-revenue": sum(d["amount"] for d in won),
        "won-revenue-vs-last-quarter": sum(d["amount"] for d in won) / last_won - 1 if last_won else 0.0,
        "new-business-revenue": sum(d["amount"] for d in won if d["type"] == "New Business"),
        "deals-won": len(won),
        "average-deal-size": statistics.mean(d["amount"] for d in won) if won else 0.0,
        "win-rate": len(won) / len(closed) if closed else 0.0,
        "renewal-rate": (sum(1 for d in renewals_closed if d["won"]) / len(renewals_closed)) if renewals_closed else 0,
        "sales-cycle-median-days": statistics.median(cycles) if cycles else 0.0,
        "calls": sum(1 for a in activities if a["kind"] == "calls" and in_q(a["day"])),
        "connected-calls": sum(1 for a in activities if a["kind"] == "calls" and a["connected"] and in_q(a["day"])),
        "meetings": sum(1 for a in activities if a["kind"] == "meetings" and in_q(a["day"])),
    }
    results = [{"key": f"naive.{name}", "value": value} for name, value in values.items()]
    per_owner: dict[str, float] = defaultdict(float)
    for d in won:
        per_owner[d["owner"] or "none"] += d["amount"]
    calls_per_owner: dict[str, int] = defaultdict(int)
    for a in activities:
        if a["kind"] == "calls" and in_q(a["day"]):
            calls_per_owner[a["owner"] or "none"] += 1
    results += [{"key": f"naive.owner-revenue.{owner}", "value": value} for owner, value in per_owner.items()]
    results += [{"key": f"naive.owner-calls.{owner}", "value": value} for owner, value in calls_per_owner.items()]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", required=True, choices=("salesforce", "hubspot"))
    args = parser.parse_args(argv)
    from bench.writeback import key_result_rows, naive_write

    env = dict(os.environ)
    started = time.perf_counter()
    data, records = (pull_salesforce if args.crm == "salesforce" else pull_hubspot)(env)
    pulled = time.perf_counter()
    results = compute(data)
    computed = time.perf_counter()
    rows = key_result_rows(len(results))
    for row, result in zip(rows, results, strict=True):
        row["key"], row["value"] = result["key"], float(result["value"])
    writes = naive_write(args.crm, env, rows)
    done = time.perf_counter()
    print(json.dumps({"crm": args.crm, "records": records, "kr_results": len(results), "write_requests": writes,
                      "pull_seconds": round(pulled - started, 2), "compute_seconds": round(computed - pulled, 3),
                      "write_seconds": round(done - computed, 2), "seconds": round(done - started, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
