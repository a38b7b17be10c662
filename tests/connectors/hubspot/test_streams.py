"""Every HubSpot stream through the real client against a private sandbox org: the store equals the
org (tests/connectors/stream_oracle.py), each search stream costs exactly its searches, association
reads (one per 1000 fresh records), archived pages and label lookups, campaigns one list page per
100, and a quiet night two calls a search stream and one for campaigns."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from connectors.hubspot import HubSpotSource, settings
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.tick import tick
from tests.conftest import private_sandbox
from tests.connectors.hubspot.search_model import association_reads, stored_pages
from tests.connectors.stream_oracle import differences, expected_rows, stored_rows, tables

pytestmark = pytest.mark.integration
CUSTOM = {"account": {"region": "region"}}
TABLES = {"companies": "accounts", "deals": "deals", "line_items": "line_items", "calls": "calls",
          "emails": "emails", "meetings": "meetings", "contacts": "leads", "leads": "leads", "tickets": "cases"}
# Lookups on a stream's first mapped record: properties (option labels; companies: also the custom
# field check, one read for both) and pipelines (deals, leads, tickets).
LOOKUPS = {"companies": 1, "deals": 2, "line_items": 0, "calls": 0, "emails": 0, "meetings": 1, "contacts": 1,
           "leads": 2, "tickets": 2}

# Archiving a record drops its associations (HubSpot, and the sandbox): the deletions pick records
# nothing links to, or a linked record re-read later would rightly lose its link, unlike the oracle's.
LINKED_BY = {"accounts": (("deals", "account_id"), ("leads", "account_id"), ("cases", "account_id")),
             "deals": (("line_items", "deal_id"), ("calls", "deal_id"), ("emails", "deal_id"),
                       ("meetings", "deal_id"))}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "hs-streams", seed=41, deals=400, owners=6, accounts=60,
                         calls_per_deal=2.0) as server:
        yield server


def expected_calls(org: SandboxServer, stream: str) -> int:
    if stream == "campaigns":  # the whole list, 100 a page
        return max(1, math.ceil(org.state.query("SELECT COUNT(*) FROM campaigns WHERE deleted = 0")[0][0] / 100))
    table = TABLES[stream]
    stamps = [row[0] for row in org.state.query(f"SELECT modified_ms FROM {table} WHERE deleted = 0")]
    archived = org.state.query(f"SELECT COUNT(*) FROM {table} WHERE deleted = 1")[0][0]
    searches, sizes = stored_pages(stamps)
    reads = association_reads(sizes) if settings.SEARCH_STREAMS[stream].association else 0
    return searches + reads + max(1, math.ceil(archived / 100)) + LOOKUPS[stream]


def assert_store_equals_org(org: SandboxServer, store: Engine) -> None:
    expected, stored = expected_rows(org.state, "hubspot", custom=True), stored_rows(store, "hubspot", custom=True)
    assert not differences(stored, expected), differences(stored, expected)


def test_every_stream_full_quiet_and_incremental(org: SandboxServer, store: Engine) -> None:
    assert set(TABLES) == set(settings.SEARCH_STREAMS)
    assert set(settings.STREAMS) == {"owners", *TABLES, "campaigns"}
    with HubSpotSource.from_env(org.connection_env(), custom_fields=CUSTOM) as source:
        full = {stream: source.extract(store, stream) for stream in source.STREAMS}
        assert_store_equals_org(org, store)
        wanted = {"owner", "account", "deal", "line_item", "call", "email", "meeting", "contact", "lead", "case",
                  "campaign"}
        assert wanted == {table for table, count in tables(stored_rows(store, "hubspot")).items() if count}
        calls = {stream: result.api_calls for stream, result in full.items() if stream != "owners"}
        assert calls == {stream: expected_calls(org, stream) for stream in calls}
        quiet = {stream: source.extract(store, stream) for stream in source.STREAMS}
        assert all(result.records == 0 and result.api_calls == (1 if stream == "campaigns" else 2)
                   for stream, result in quiet.items()), quiet

    summary = tick(org.state, days=2, seed=5)
    stamp = org.state.next_modstamp_ms()
    with org.state.transaction() as conn:  # one deletion in every table, whatever the tick did
        for table in {*TABLES.values(), "campaigns"}:
            unlinked = " ".join(f"AND id NOT IN (SELECT {column} FROM {other} WHERE {column} IS NOT NULL)"
                                for other, column in LINKED_BY.get(table, ()))
            conn.execute(f"UPDATE {table} SET deleted = 1, modified_ms = ? WHERE id = "
                         f"(SELECT MIN(id) FROM {table} WHERE deleted = 0 {unlinked})", (stamp,))
    with HubSpotSource.from_env(org.connection_env(), custom_fields=CUSTOM) as source:
        incremental = {stream: source.extract(store, stream) for stream in source.STREAMS}
    assert_store_equals_org(org, store)
    changed = sum(result.records for result in incremental.values())
    assert changed >= len(TABLES), (summary.describe(), incremental)
    assert sum(r.api_calls for r in incremental.values()) < sum(r.api_calls for r in full.values())
