"""Deletes (archived records) and associations (deal -> company, call -> deal) in a private sandbox.

The HubSpot store must equal the sandbox's logical tables, deleted rows and links included,
as the Salesforce connector's store does through queryAll and AccountId / WhatId.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from connectors.hubspot import HubSpotSource
from connectors.sandbox.ids import hs_id
from connectors.sandbox.server import SandboxServer
from connectors.store import Activity, Deal
from tests.conftest import private_sandbox
from tests.connectors.hubspot.search_model import search_pages, sync_calls
from tests.connectors.hubspot.test_extract import expected_calls, expected_deals, live_stamps, stored

pytestmark = pytest.mark.integration


@pytest.fixture
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A small org of this test's own: the tests delete records."""
    with private_sandbox(tmp_path_factory, "hs-deletes", seed=13, deals=300, owners=5, accounts=30,
                         calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def source(org: SandboxServer) -> Iterator[HubSpotSource]:
    with HubSpotSource.from_env(org.connection_env()) as hubspot_source:
        yield hubspot_source


def delete(org: SandboxServer, table: str, ids: list[int]) -> None:
    stamp = org.state.next_modstamp_ms()
    with org.state.transaction() as conn:
        conn.executemany(f"UPDATE {table} SET deleted = 1, modified_ms = ? WHERE id = ?",
                         [(stamp, number) for number in ids])


def deleted_ids(store: Engine, model: type[Deal] | type[Activity]) -> set[str]:
    return {source_id for source_id, row in stored(store, model).items() if row["is_deleted"]}


def test_deleted_deal_and_call_are_marked_once_and_links_match(source: HubSpotSource, store: Engine,
                                                               org: SandboxServer) -> None:
    deals, calls = source.extract(store, "deals"), source.extract(store, "calls")
    assert stored(store, Deal) == expected_deals(org) and stored(store, Activity) == expected_calls(org)
    assert (deals.records, calls.records) == (300, len(expected_calls(org)))
    assert all(row["account_id"] and row["account_id"].startswith("1000") for row in stored(store, Deal).values())
    call_id = org.state.query("SELECT id FROM calls WHERE deal_id != 7 ORDER BY id LIMIT 1")[0][0]
    delete(org, "deals", [7])
    delete(org, "calls", [call_id])

    deals, calls = source.extract(store, "deals"), source.extract(store, "calls")
    assert (deals.records, calls.records) == (1, 1)  # exactly the two deletes
    assert (deals.api_calls, calls.api_calls) == (2, 2)  # an empty search, one archived list page
    assert deleted_ids(store, Deal) == {hs_id("deals", 7)}
    assert deleted_ids(store, Activity) == {hs_id("calls", call_id)}
    # deleted rows keep their fields and links, with the archive time as modified_at
    assert stored(store, Deal) == expected_deals(org, deleted=True)
    assert stored(store, Activity) == expected_calls(org, deleted=True)

    deals, calls = source.extract(store, "deals"), source.extract(store, "calls")
    assert (deals.records, calls.records, deals.api_calls, calls.api_calls) == (0, 0, 2, 2)


def test_a_full_sync_stores_never_seen_archived_records_deleted_at_exact_call_counts(
        source: HubSpotSource, store: Engine, org: SandboxServer) -> None:
    delete(org, "deals", list(range(1, 131)))  # 130 archived: two archived list pages
    first = source.extract(store, "deals")
    stamps = live_stamps(org, "deals")
    searches, pages = search_pages(stamps)
    assert (searches, pages) == (1, 1)  # 170 live deals fit one search page
    # pipeline + dealtype, the search, one association read for its page, two archived list pages
    assert first.api_calls == 2 + searches + pages + 2 == 2 + sync_calls(stamps, archived=130) == 6
    assert first.records == 300
    expected = expected_deals(org, deleted=True)
    for number in range(1, 131):  # HubSpot drops an archived record's associations
        expected[hs_id("deals", number)]["account_id"] = None
    assert stored(store, Deal) == expected
    assert deleted_ids(store, Deal) == {hs_id("deals", number) for number in range(1, 131)}
    again = source.extract(store, "deals")
    assert (again.records, again.api_calls) == (0, 1 + 2)


def test_a_restored_record_is_live_again(source: HubSpotSource, store: Engine, org: SandboxServer) -> None:
    source.extract(store, "calls")
    delete(org, "calls", [5])
    assert source.extract(store, "calls").records == 1
    with org.state.transaction() as conn:
        conn.execute("UPDATE calls SET deleted = 0, modified_ms = ? WHERE id = 5", (org.state.next_modstamp_ms(),))
    restored = source.extract(store, "calls")
    assert restored.records == 1 and not deleted_ids(store, Activity)
    assert stored(store, Activity) == expected_calls(org)
