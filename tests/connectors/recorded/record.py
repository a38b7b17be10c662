"""Record the vcrpy cassettes replayed by tests/connectors/recorded (run from the repo root):

    .venv/bin/python -m tests.connectors.recorded.record

What it does, every time from scratch (the cassettes are overwritten, record_mode="all"):
- starts a fresh private sandbox in a temp dir with the tiny org RECORD_ORG (fixed seed and the
  suite's fixed anchor 2026-11-15T12:00Z, so the generated records are the same on every run),
- on FIXED ports (SALESFORCE_PORT / HUBSPOT_PORT) and with a FIXED token (TOKEN), so a re-recording
  only changes what the API really changed,
- archives deal 7 (with one call and its line items) at anchor + 1 s, so queryAll and HubSpot's
  archived list return deleted records,
- runs the scenarios below with the REAL connectors, the same functions the replay tests run:
  every stream of each connector is recorded exactly once, users/owners, opportunities/deals and
  calls in *_extract, the other streams in *_streams (read with the custom field account.region:
  Region__c checked by Account's describe, `region` by GET /crm/v3/properties/companies).

Matching (see `make_vcr`): method, scheme, host, PORT, path, query and the JSON body. The port is
kept in matching and pinned instead: the replay tests point the connectors at exactly these URLs
(REPLAY_ENV), so a request to another port would be a test bug and fails loudly. The body matters
for HubSpot search (its pages differ only in the POST body); the one wall-clock value a connector
puts in a body (the KR rows' last-synced stamp) is ignored by the body matcher.
Re-recording is byte-identical except for wall-clock values the sandbox itself stamps: batch
startedAt/completedAt, written KR records' timestamps and the last-synced stamps sent.
The Authorization header is filtered out before anything is written (and the tests check it).

If a port is busy, stop whatever holds it; do not change the port without re-recording everything.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import vcr
from sqlalchemy.engine import Engine

from connectors.hubspot import HubSpotSource
from connectors.results import StreamResult, WritebackResult
from connectors.salesforce import SalesforceSource
from connectors.store import make_engine

CASSETTES = Path(__file__).parent / "cassettes"
SALESFORCE_PORT = 47811
HUBSPOT_PORT = 47812
TOKEN = "recorded-sandbox-token-0123456789abcdef"  # the sandbox's token while recording; never in cassettes
ANCHOR = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)  # = tests.conftest.TEST_ORG.anchor
# 30 deals; 12 calls per deal gives > 200 calls: Salesforce queryMore at batchSize 200, 2 HubSpot searches.
# The other kinds have random streams of their own (the generator's docstring): their counts are kept
# tiny here without changing the owners, accounts, deals and calls above.
RECORD_ORG = {"seed": 11, "deals": 30, "owners": 4, "accounts": 10, "calls_per_deal": 12.0,
              "products": 6, "emails_per_deal": 0.5, "meetings_per_deal": 0.4, "leads_per_deal": 0.3,
              "cases_per_account": 0.8, "campaigns": 4}
DELETED_DEAL = 7
# The custom field of the *_streams scenarios (the sandbox's Account.Region__c / company property `region`)
SF_CUSTOM_FIELDS = {"account": {"region": "Region__c"}}
HS_CUSTOM_FIELDS = {"account": {"region": "region"}}
SF_EXTRACT_STREAMS = ("users", "opportunities", "calls")
HS_EXTRACT_STREAMS = ("owners", "deals", "calls")
SF_STREAMS = ("accounts", "line_items", "emails", "meetings", "leads", "contacts", "cases", "campaigns")
HS_STREAMS = ("companies", "line_items", "emails", "meetings", "contacts", "tickets", "leads", "campaigns")
QUERY_BATCH_SIZE = 200

REPLAY_ENV = {
    "SALESFORCE_INSTANCE_URL": f"https://127.0.0.1:{SALESFORCE_PORT}",
    "SALESFORCE_ACCESS_TOKEN": "replay-token",  # any value: authorization is not recorded nor matched
    "HUBSPOT_HOST": f"https://127.0.0.1:{HUBSPOT_PORT}",
    "HUBSPOT_ACCESS_TOKEN": "replay-token",
    # OKR_SYNC_CA_BUNDLE: the tests add a dummy file (nothing is verified: no socket is opened)
}

SYNC_FIELDS = ("Last_Synced__c", "last_synced")  # wall-clock stamps the connectors add to KR writes
SF_LONG_KEY = "rec-sf-0-" + "k" * 255  # longer than Key__c allows: Salesforce rejects this record


def _strip_sync(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strip_sync(item) for key, item in value.items() if key not in SYNC_FIELDS}
    if isinstance(value, list):
        return [_strip_sync(item) for item in value]
    return value


def _body(request: Any) -> Any:
    raw = request.body
    if raw in (None, b"", ""):
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return _strip_sync(json.loads(text))
    except ValueError:
        return text


def json_body(r1: Any, r2: Any) -> None:
    """Bodies equal as JSON, ignoring the KR rows' last-synced stamps."""
    assert _body(r1) == _body(r2), "request bodies differ"


def _drop_volatile_headers(response: dict[str, Any]) -> dict[str, Any]:
    for name in list(response["headers"]):
        if name.lower() in ("date", "server"):
            del response["headers"][name]
    return response


def make_vcr(record_mode: str) -> vcr.VCR:
    recorder = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode=record_mode,
                       match_on=("method", "scheme", "host", "port", "path", "query", "json_body"),
                       filter_headers=["authorization"], decode_compressed_response=True,
                       before_record_response=_drop_volatile_headers)
    recorder.register_matcher("json_body", json_body)
    return recorder


# -- the scenarios: exactly the calls replayed by the tests ----------------------------------------
def salesforce_extract(source: SalesforceSource, store: Engine) -> dict[str, StreamResult]:
    source.query_batch_size = QUERY_BATCH_SIZE  # 200: the calls stream (>200 Tasks) pages with queryMore
    return {stream: source.extract(store, stream) for stream in SF_EXTRACT_STREAMS}


def kr_rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{
        "key": f"{prefix}-{index}", "objective_id": "grow", "objective_title": "Grow revenue",
        "kr_id": "revenue", "title": f"Closed-won revenue #{index}", "group": None if index % 2 else "EMEA",
        "metric": "closed_won_revenue", "period": "2026-Q4", "period_start": "2026-10-01",
        "period_end": "2026-12-31", "kr_type": "increase", "value": 1000.0 * (index + 1), "baseline": 0.0,
        "target": 5000.0, "progress": 0.2 * (index + 1), "score": 0.2 * (index + 1),
        "expected_progress": 0.5, "status": "on_track", "unit": "USD",
    } for index in range(count)]


def salesforce_writeback(source: SalesforceSource, store: Engine) -> WritebackResult:
    """describe of OKR_Key_Result__c, then one composite upsert: 2 created, 1 rejected (key too long)."""
    rows = kr_rows("rec-sf", 3)
    rows[0]["key"] = SF_LONG_KEY
    return source.write_key_results(store, rows)


def salesforce_streams(source: SalesforceSource, store: Engine) -> dict[str, StreamResult]:
    """Every Salesforce stream not in salesforce_extract, with SF_CUSTOM_FIELDS (the source's)."""
    return {stream: source.extract(store, stream) for stream in SF_STREAMS}


def hubspot_extract(source: HubSpotSource, store: Engine) -> dict[str, StreamResult]:
    return {stream: source.extract(store, stream) for stream in HS_EXTRACT_STREAMS}


def hubspot_streams(source: HubSpotSource, store: Engine) -> dict[str, StreamResult]:
    """Every HubSpot stream not in hubspot_extract, with HS_CUSTOM_FIELDS (the source's)."""
    return {stream: source.extract(store, stream) for stream in HS_STREAMS}


def hubspot_writeback(source: HubSpotSource, store: Engine) -> tuple[WritebackResult, WritebackResult]:
    """schemas, a batch upsert of 3 good rows (200), then 3 new rows with one bad number (207)."""
    first = source.write_key_results(store, kr_rows("rec-hs-a", 3))
    rows = kr_rows("rec-hs-b", 3)
    rows[2]["target"] = "half a million"  # not a number: HubSpot rejects this input only
    second = source.write_key_results(store, rows)
    return first, second


SCENARIOS: dict[str, tuple[str, Callable[..., Any]]] = {
    "salesforce_extract": ("salesforce", salesforce_extract),
    "salesforce_streams": ("salesforce", salesforce_streams),
    "salesforce_writeback": ("salesforce", salesforce_writeback),
    "hubspot_extract": ("hubspot", hubspot_extract),
    "hubspot_streams": ("hubspot", hubspot_streams),
    "hubspot_writeback": ("hubspot", hubspot_writeback),
}
# Scenarios whose source is built with custom fields from config
CUSTOM_FIELDS: dict[str, dict[str, dict[str, str]]] = {
    "salesforce_streams": SF_CUSTOM_FIELDS, "hubspot_streams": HS_CUSTOM_FIELDS}


@contextmanager
def cassette(name: str, record_mode: str) -> Iterator[Any]:
    """The cassette `name`.yaml with this module's matching and filters."""
    with make_vcr(record_mode).use_cassette(f"{name}.yaml") as recorded:
        yield recorded


@contextmanager
def scenario_source(name: str, env: dict[str, str]) -> Iterator[Any]:
    """A fresh connector for scenario `name`, built from `env` with the scenario's custom fields."""
    crm, _ = SCENARIOS[name]
    custom_fields = CUSTOM_FIELDS.get(name)
    source_type = SalesforceSource if crm == "salesforce" else HubSpotSource
    with source_type.from_env(env, custom_fields=custom_fields) as source:
        yield source


def run_scenario(name: str, env: dict[str, str], store: Engine, record_mode: str) -> Any:
    """Run one scenario with a fresh connector inside its cassette."""
    _, scenario = SCENARIOS[name]
    with cassette(name, record_mode), scenario_source(name, env) as source:
        return scenario(source, store)


def main() -> None:
    from connectors.sandbox.generator import OrgSpec
    from connectors.sandbox.server import SandboxServer
    from connectors.sandbox.state import open_sandbox

    CASSETTES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="okr-record-") as tmp:
        root = Path(tmp)
        spec = OrgSpec(anchor=ANCHOR, **RECORD_ORG)  # type: ignore[arg-type]
        seeded = open_sandbox(root / "sandbox", spec)  # the HubSpot face reads the token once, at start
        seeded.set_meta("token", TOKEN)
        seeded.close()
        with SandboxServer(root / "sandbox", spec, salesforce_port=SALESFORCE_PORT,
                           hubspot_port=HUBSPOT_PORT) as server:
            assert server.token == TOKEN
            stamp = int(server.state.clock.timestamp() * 1000) + 1000  # deterministic, not wall clock
            call_id = server.state.query("SELECT id FROM calls ORDER BY deal_id != ?, id LIMIT 1",
                                         (DELETED_DEAL,))[0][0]
            with server.state.transaction() as conn:
                conn.execute("UPDATE deals SET deleted = 1, modified_ms = ? WHERE id = ?", (stamp, DELETED_DEAL))
                conn.execute("UPDATE calls SET deleted = 1, modified_ms = ? WHERE id = ?", (stamp, call_id))
                conn.execute("UPDATE line_items SET deleted = 1, modified_ms = ? WHERE deal_id = ?",
                             (stamp, DELETED_DEAL))
            env = server.connection_env()
            assert env["SALESFORCE_INSTANCE_URL"] == REPLAY_ENV["SALESFORCE_INSTANCE_URL"]
            assert env["HUBSPOT_HOST"] == REPLAY_ENV["HUBSPOT_HOST"]
            for name in SCENARIOS:
                (CASSETTES / f"{name}.yaml").unlink(missing_ok=True)
                store = make_engine(f"sqlite:///{root / (name + '.db')}")
                result = run_scenario(name, env, store, "all")
                store.dispose()
                size = (CASSETTES / f"{name}.yaml").stat().st_size
                print(f"{name}: {size:,} bytes; {result}")


if __name__ == "__main__":
    main()
