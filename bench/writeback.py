"""Writeback calls for K key results: the first write, an unchanged rewrite, a 1% change; beside
ceil(K / 200) (Salesforce sObject Collections) and ceil(K / 100) (HubSpot batch upsert), and beside
the naive one request per KR.

K synthetic key results (KrResult rows as okr_mapping computes them, one objective, no breakdown) go
through each connector's `write_okrs` into the sandbox's OKR objects, with a fresh store (so an empty
writeback ledger). The naive line sends the same rows one request per key result with the bare
client (a one-record sObject Collections upsert; a one-input HubSpot batch upsert), as a script that
updates each KR on its own does, every night, changed or not.
"""

from __future__ import annotations

import math
import time
from datetime import date
from typing import Any

import hubspot
from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputUpsert, SimplePublicObjectBatchInputUpsert
from simple_salesforce import Salesforce

from bench.common import Context, fresh_copy, log, not_measured, seeded_org, stamp
from connectors.hubspot import HubSpotSource
from connectors.hubspot import settings as hs_settings
from connectors.hubspot.writeback import payloads
from connectors.okr_records import OkrRecords
from connectors.salesforce import SalesforceSource
from connectors.salesforce.helpers import make_session
from connectors.salesforce.settings import API_VERSION, KR_SPEC, SYNCED_FIELD
from connectors.salesforce.writeback import ledger_rows
from connectors.sandbox.server import SandboxServer
from connectors.store import make_engine
from okr_mapping.compute import KrResult

COMMAND = ".venv/bin/python -m bench --only writeback"
BATCH = {"salesforce": 200, "hubspot": 100}
SOURCES = {"salesforce": SalesforceSource, "hubspot": HubSpotSource}
ORG_DEALS = 1000  # the org the KRs are written into (its size does not matter to a writeback)


def key_result_rows(count: int, bump: int = 0) -> list[dict[str, Any]]:
    """`count` key results of one objective; the first `bump` of them with a changed value."""
    rows = []
    for number in range(count):
        value = float(number) + (1.0 if number < bump else 0.0)
        result = KrResult(
            key=f"bench-okrs.2026-Q4.kr-{number:05d}", objective_id="bench-okrs", objective_title="Benchmark objective",
            kr_id=f"kr-{number:05d}", title=f"Key result {number}", group=None, metric="closed_won_revenue",
            period="2026-Q4", period_start=date(2026, 10, 1), period_end=date(2026, 12, 31), kr_type="increase",
            value=value, baseline=0.0, target=float(count), progress=value / count, score=min(1.0, value / count),
            expected_progress=0.62, status="on_track", forecast=value * 1.5, forecast_method="trend")
        rows.append({**result.as_row(), "objective_key": None, "forecast_confidence": None})
    return rows


def run(ctx: Context, sizes: list[int], krs: int | None = None) -> dict[str, Any]:
    count = krs or (20 if ctx.quick else 1000)
    late = ctx.too_late()
    if late:
        return {f"{crm}/{count}": not_measured(late) for crm in SOURCES}
    org, _ = seeded_org(min(ORG_DEALS, min(sizes)) if ctx.quick else ORG_DEALS, ctx.cache)
    copy = fresh_copy(org, ctx.workdir / "writeback" / "org")
    figures: dict[str, Any] = {}
    with SandboxServer(copy) as server:
        env = server.connection_env()
        for crm, source_class in SOURCES.items():
            log(f"writeback {count}: {crm}")
            when = stamp()
            engine = make_engine(f"sqlite:///{copy.parent / f'{crm}.db'}")
            with source_class.from_env(env) as source:
                started = time.perf_counter()
                first = source.write_okrs(engine, OkrRecords(key_results=key_result_rows(count)))
                first_s = time.perf_counter() - started
                started = time.perf_counter()
                again = source.write_okrs(engine, OkrRecords(key_results=key_result_rows(count)))
                again_s = time.perf_counter() - started
                changed = source.write_okrs(engine, OkrRecords(key_results=key_result_rows(count, bump=count // 100)))
            engine.dispose()
            server.reset_calls()
            started = time.perf_counter()
            naive_calls = naive_write(crm, env, key_result_rows(count))
            naive_s = time.perf_counter() - started
            served = server.calls(crm)
            figures[f"{crm}/{count}"] = {
                "crm": crm, "krs": count, "first_calls": first.api_calls, "first_seconds": round(first_s, 2),
                "first_written": first.created + first.updated, "first_failed": first.failed + len(first.rejected),
                "bound": math.ceil(count / BATCH[crm]), "unchanged_calls": again.api_calls,
                "unchanged_seconds": round(again_s, 3), "changed_1pct_calls": changed.api_calls,
                "naive_calls": naive_calls, "naive_calls_served": served, "naive_seconds": round(naive_s, 2),
                "command": COMMAND + (" --quick" if ctx.quick else ""), **when}
    return figures


def naive_write(crm: str, env: dict[str, str], rows: list[dict[str, Any]]) -> int:
    """One request per key result with the bare client; returns the requests sent."""
    calls = 0
    if crm == "salesforce":
        session = make_session(env["OKR_SYNC_CA_BUNDLE"])
        client = Salesforce(instance_url=env["SALESFORCE_INSTANCE_URL"], session_id=env["SALESFORCE_ACCESS_TOKEN"],
                            session=session, version=API_VERSION)
        for row in ledger_rows(KR_SPEC, rows):
            record = {"attributes": {"type": KR_SPEC.name}, **{k: v for k, v in row.items() if k != "key"},
                      SYNCED_FIELD: "2026-11-27T00:00:00Z"}
            client.restful(KR_SPEC.collection_path, method="PATCH", json={"allOrNone": False, "records": [record]})
            calls += 1
        session.close()
        return calls
    client = hubspot.Client.create(access_token=env["HUBSPOT_ACCESS_TOKEN"], host=env["HUBSPOT_HOST"],
                                   ssl_ca_cert=env["OKR_SYNC_CA_BUNDLE"])
    schemas = client.crm.schemas.core_api.get_all().results
    calls += 1
    type_id = next(schema.object_type_id for schema in schemas
                   if schema.name == hs_settings.OKR_OBJECT_NAMES["key_result"])
    for payload in payloads("key_result", rows):
        properties = {k: v for k, v in payload.items() if k != "key"}
        client.crm.objects.batch_api.upsert(type_id, BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
            SimplePublicObjectBatchInputUpsert(id=payload["key"], id_property=hs_settings.OKR_KEY_PROPERTY,
                                               properties=properties)]))
        calls += 1
    return calls
