"""HubSpotSource.extract against the sandbox: the store must equal the sandbox's own tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.hubspot import HubSpotSource
from connectors.sandbox.generator import STAGES
from connectors.sandbox.hubspot_api import SEARCH_CAP
from connectors.sandbox.ids import hs_id
from connectors.sandbox.server import SandboxServer
from connectors.store import Activity, Deal, Owner, SyncState

pytestmark = pytest.mark.integration
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def source(sandbox: SandboxServer) -> Iterator[HubSpotSource]:
    with HubSpotSource.from_env(sandbox.connection_env()) as hubspot_source:
        yield hubspot_source


@pytest.fixture
def search_cap(sandbox: SandboxServer) -> Iterator[Any]:
    """The sandbox app's state; whatever a test does to search_cap is undone afterwards."""
    app_state = sandbox.counters["hubspot"].app.state
    try:
        yield app_state
    finally:
        app_state.search_cap = SEARCH_CAP


def at_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def stored(store: Engine, model: Any) -> dict[str, dict[str, Any]]:
    with Session(store) as session:
        rows = session.exec(select(model).where(model.source == "hubspot")).all()
    return {row.source_id: row.model_dump(exclude={"source", "source_id", "custom"}) for row in rows}


def expected_deals(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    """The canonical deals computed straight from the sandbox tables (not through the API)."""
    rows = sandbox.state.query("SELECT * FROM deals WHERE deleted = 0")
    return {hs_id("deals", r["id"]): {
        "name": r["name"], "owner_id": hs_id("owners", r["owner_id"]), "account_id": None,
        "deal_type": r["deal_type"], "stage": STAGES[r["stage"]][0], "amount": r["amount"],
        "probability": float(r["probability"]), "is_closed": STAGES[r["stage"]][2],
        "is_won": STAGES[r["stage"]][3], "created_date": date.fromisoformat(r["created_date"]),
        "close_date": date.fromisoformat(r["close_date"]), "lead_source": r["lead_source"],
        "modified_at": at_ms(r["modified_ms"]), "is_deleted": False} for r in rows}


def expected_calls(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    rows = sandbox.state.query("SELECT * FROM calls WHERE deleted = 0")
    return {hs_id("calls", r["id"]): {
        "kind": "call", "subject": r["subject"], "owner_id": hs_id("owners", r["owner_id"]), "deal_id": None,
        "activity_date": at_ms(r["ts_ms"]).date(), "duration_seconds": r["duration_s"],
        "outcome": r["outcome"],
        "modified_at": at_ms(r["modified_ms"]), "is_deleted": False} for r in rows}


def test_owners_extract_all_then_nothing(source: HubSpotSource, store: Engine,
                                        sandbox: SandboxServer) -> None:
    first = source.extract(store, "owners")
    rows = sandbox.state.query("SELECT * FROM owners WHERE deleted = 0")
    expected = {hs_id("owners", r["id"]): {
        "email": r["email"], "name": f"{r['first_name']} {r['last_name']}", "team": r["team"], "region": None,
        "is_active": bool(r["is_active"]), "modified_at": at_ms(r["modified_ms"])} for r in rows}
    assert stored(store, Owner) == expected
    assert first.records == len(rows) and first.api_calls == 2  # one page of active, one of archived
    again = source.extract(store, "owners")
    assert (again.records, again.api_calls) == (0, 2)


def test_deals_extract_equals_sandbox_then_second_run_is_empty(source: HubSpotSource, store: Engine,
                                                               sandbox: SandboxServer) -> None:
    first = source.extract(store, "deals")
    expected = expected_deals(sandbox)
    assert stored(store, Deal) == expected
    assert first.records == len(expected)
    assert first.api_calls == 2 + -(-len(expected) // 200)  # pipeline + dealtype, then pages of 200
    second = source.extract(store, "deals")
    assert (second.records, second.api_calls) == (0, 3)
    with Session(store) as session:
        state = session.get(SyncState, ("hubspot", "deals"))
    assert state is not None and state.records_last_run == 0 and state.last_id


def test_calls_extract_equals_sandbox(source: HubSpotSource, store: Engine, sandbox: SandboxServer) -> None:
    first = source.extract(store, "calls")
    expected = expected_calls(sandbox)
    assert stored(store, Activity) == expected
    assert first.records == len(expected)
    assert source.extract(store, "calls").records == 0


def test_a_modified_deal_is_picked_up_exactly_once(source: HubSpotSource, store: Engine,
                                                  sandbox: SandboxServer) -> None:
    source.extract(store, "deals")
    with sandbox.state.transaction() as conn:
        conn.execute("UPDATE deals SET amount = amount + 1, modified_ms = ? WHERE id = 42",
                     (sandbox.state.next_modstamp_ms(),))
    changed = source.extract(store, "deals")
    assert changed.records == 1
    assert stored(store, Deal)[hs_id("deals", 42)] == expected_deals(sandbox)[hs_id("deals", 42)]
    assert source.extract(store, "deals").records == 0


def _tie_calls(sandbox: SandboxServer, count: int) -> int:
    """Give `count` calls one shared modification time, as a bulk update in HubSpot would."""
    stamp = sandbox.state.next_modstamp_ms()
    with sandbox.state.transaction() as conn:
        conn.execute("UPDATE calls SET modified_ms = ?"
                     " WHERE id IN (SELECT id FROM calls ORDER BY id LIMIT ?)", (stamp, count))
    return stamp


def test_ties_on_one_timestamp_across_pages_are_all_extracted(source: HubSpotSource, store: Engine,
                                                              sandbox: SandboxServer) -> None:
    source.extract(store, "calls")
    _tie_calls(sandbox, 450)
    source.search_cap = 200  # one page per window: every page starts at the stored (timestamp, id)
    tied = source.extract(store, "calls")
    assert tied.records == 450 and tied.api_calls == 3
    assert stored(store, Activity) == expected_calls(sandbox)


def _windowed_calls(remaining: int, page: int, cap: int) -> int:
    """Requests for `remaining` records when the portal refuses pages starting at or past `cap`."""
    pages_per_window = -(-cap // page)  # pages whose offset is below the cap
    calls = 0
    while remaining > page * pages_per_window:
        calls += pages_per_window + 1  # the pages, then the refused one
        remaining -= page * pages_per_window
    return calls + max(-(-remaining // page), 1)


def test_windows_past_a_lowered_search_cap_extract_everything_once(source: HubSpotSource, store: Engine,
                                                                   sandbox: SandboxServer,
                                                                   search_cap: Any) -> None:
    _tie_calls(sandbox, 450)  # a tie group that straddles window boundaries
    search_cap.search_cap = 300  # the portal refuses after=400: the connector must open new windows
    source.search_cap = 10_000  # offset paging within a window, as far as HubSpot documents it
    result = source.extract(store, "calls")
    expected = expected_calls(sandbox)
    assert result.records == len(expected)  # each record stored exactly once
    assert stored(store, Activity) == expected
    assert result.api_calls == _windowed_calls(len(expected), page=200, cap=300)
    assert source.extract(store, "calls").records == 0
