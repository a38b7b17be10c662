"""HubSpotSource.extract against the sandbox: the store must equal the sandbox's own tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.hubspot import HubSpotSource, settings
from connectors.sandbox.generator import STAGES
from connectors.sandbox.hubspot_api import SEARCH_CAP
from connectors.sandbox.ids import hs_id
from connectors.sandbox.server import SandboxServer
from connectors.store import Activity, Deal, Owner, SyncState, make_engine
from tests.conftest import TEST_TIME_ZONE, private_sandbox
from tests.connectors.hubspot.search_model import search_calls, search_pages, sync_calls
from tests.stores import store_url

pytestmark = pytest.mark.integration
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def source(sandbox: SandboxServer) -> Iterator[HubSpotSource]:
    with HubSpotSource.from_env(sandbox.connection_env(), time_zone=TEST_TIME_ZONE) as hubspot_source:
        yield hubspot_source


@pytest.fixture(scope="module")
def tie_org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """An org of its own for the tests that give many calls one timestamp: left in the shared
    sandbox, such a tie group would sit in the lookback window of every later sync of it."""
    with private_sandbox(tmp_path_factory, "hs-ties", seed=17, deals=300, owners=5, accounts=30,
                         calls_per_deal=3.0) as server:
        yield server


@pytest.fixture
def tie_source(tie_org: SandboxServer) -> Iterator[HubSpotSource]:
    """Exact cursor continuation (lookback 0): the call counts of the tie tests model the pager alone."""
    with HubSpotSource.from_env({**tie_org.connection_env(), settings.LOOKBACK_ENV: "0"}) as hubspot_source:
        yield hubspot_source


@pytest.fixture
def tie_search_cap(tie_org: SandboxServer) -> Iterator[Any]:
    """The private org app's state; whatever a test does to search_cap is undone afterwards."""
    app_state = tie_org.counters["hubspot"].app.state
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


def expected_deals(sandbox: SandboxServer, deleted: bool = False) -> dict[str, dict[str, Any]]:
    """The canonical deals computed straight from the sandbox tables (not through the API).

    account_id is the logical link as a HubSpot company id; `deleted` adds the deleted rows.
    """
    rows = sandbox.state.query("SELECT * FROM deals" + ("" if deleted else " WHERE deleted = 0"))
    return {hs_id("deals", r["id"]): {
        "name": r["name"], "owner_id": hs_id("owners", r["owner_id"]),
        "account_id": hs_id("companies", r["account_id"]),
        "deal_type": r["deal_type"], "stage": STAGES[r["stage"]][0], "amount": r["amount"],
        "probability": float(r["probability"]), "is_closed": STAGES[r["stage"]][2],
        "is_won": STAGES[r["stage"]][3], "created_date": date.fromisoformat(r["created_date"]),
        "close_date": date.fromisoformat(r["close_date"]), "lead_source": r["lead_source"],
        "modified_at": at_ms(r["modified_ms"]), "is_deleted": bool(r["deleted"])} for r in rows}


def expected_calls(sandbox: SandboxServer, deleted: bool = False) -> dict[str, dict[str, Any]]:
    rows = sandbox.state.query("SELECT * FROM calls" + ("" if deleted else " WHERE deleted = 0"))
    return {hs_id("calls", r["id"]): {
        "kind": "call", "subject": r["subject"], "owner_id": hs_id("owners", r["owner_id"]),
        "deal_id": hs_id("deals", r["deal_id"]),
        "activity_date": at_ms(r["ts_ms"]).astimezone(sandbox.state.zone).date(),
        "duration_seconds": r["duration_s"],
        "outcome": r["outcome"], "direction": r["direction"].lower(),
        "modified_at": at_ms(r["modified_ms"]), "is_deleted": bool(r["deleted"])} for r in rows}


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


def live_stamps(sandbox: SandboxServer, table: str) -> list[int]:
    return [row[0] for row in sandbox.state.query(f"SELECT modified_ms FROM {table} WHERE deleted = 0")]


def test_deals_extract_equals_sandbox_then_second_run_is_empty(source: HubSpotSource, store: Engine,
                                                               sandbox: SandboxServer) -> None:
    first = source.extract(store, "deals")
    expected = expected_deals(sandbox)
    assert stored(store, Deal) == expected
    assert first.records == len(expected)
    stamps = live_stamps(sandbox, "deals")
    searches, pages = search_pages(stamps)
    ties = len(stamps) - len(set(stamps))  # records sharing a modified time with another (few, by chance)
    assert searches == pages <= -(-len(expected) // 199) + ties
    # pipelines + properties, the searches, one association read per 1000 deals, one archived list page
    reads = -(-len(expected) // 995)
    assert first.api_calls == 2 + searches + reads + 1 == 2 + sync_calls(live_stamps(sandbox, "deals"))
    second = source.extract(store, "deals")
    assert (second.records, second.api_calls) == (0, 2)  # one search, one archived list: no lookups
    with Session(store) as session:
        state = session.get(SyncState, ("hubspot", "deals"))
    assert state is not None and state.records_last_run == 0 and state.last_id


def test_calls_extract_equals_sandbox(source: HubSpotSource, store: Engine, sandbox: SandboxServer) -> None:
    first = source.extract(store, "calls")
    expected = expected_calls(sandbox)
    assert stored(store, Activity) == expected
    assert first.records == len(expected)
    assert first.api_calls == sync_calls(live_stamps(sandbox, "calls"))
    again = source.extract(store, "calls")
    assert (again.records, again.api_calls) == (0, 2)


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


def _fresh_stamp(sandbox: SandboxServer, table: str) -> int:
    """A modification time after every record of the table (tests may have set some ahead)."""
    latest = sandbox.state.query(f"SELECT MAX(modified_ms) FROM {table}")[0][0] or 0
    return max(sandbox.state.next_modstamp_ms(), latest + 1)


def _tie_calls(sandbox: SandboxServer, count: int) -> int:
    """Give `count` calls one shared modification time, as a bulk update in HubSpot would."""
    stamp = _fresh_stamp(sandbox, "calls")
    with sandbox.state.transaction() as conn:
        conn.execute("UPDATE calls SET modified_ms = ?"
                     " WHERE id IN (SELECT id FROM calls ORDER BY id LIMIT ?)", (stamp, count))
    return stamp


def test_a_whole_page_of_ties_is_read_by_id_and_extracted_once(tie_source: HubSpotSource, store: Engine,
                                                               tie_org: SandboxServer,
                                                               tmp_path: Path) -> None:
    tie_source.extract(store, "calls")
    stamp = _tie_calls(tie_org, 450)  # more than a page: no head, the tie group is drained by id
    tied = tie_source.extract(store, "calls")
    assert tied.records == 450 and stored(store, Activity) == expected_calls(tie_org)
    assert search_calls([stamp] * 450) == 1 + 3 + 1  # page, 3 by id, then nothing new
    assert tied.api_calls == sync_calls([stamp] * 450) == 5 + 1 + 1  # + 1 association read, 1 archived page
    assert tie_source.extract(store, "calls").api_calls == 2
    fresh = make_engine(store_url(tmp_path, 'fresh'))  # a full sync over the same tie group
    full = tie_source.extract(fresh, "calls")
    assert full.records == len(expected_calls(tie_org)) and stored(fresh, Activity) == expected_calls(tie_org)
    assert full.api_calls == sync_calls(live_stamps(tie_org, "calls"))


def test_ties_straddling_a_page_boundary_are_extracted_once(tie_source: HubSpotSource, store: Engine,
                                                            tie_org: SandboxServer) -> None:
    tie_source.extract(store, "calls")
    base = _fresh_stamp(tie_org, "calls")
    ids = [row[0] for row in tie_org.state.query("SELECT id FROM calls WHERE deleted = 0 ORDER BY id LIMIT 215")]
    stamps = [base + index for index in range(185)] + [base + 185] * 30  # page one: 185 + 15 of 30 ties
    with tie_org.state.transaction() as conn:
        conn.executemany("UPDATE calls SET modified_ms = ? WHERE id = ?", list(zip(stamps, ids, strict=True)))
    changed = tie_source.extract(store, "calls")
    assert changed.records == 215 and stored(store, Activity) == expected_calls(tie_org)
    assert search_calls(stamps) == 2  # the head of 185, then the 30 ties, complete
    assert changed.api_calls == sync_calls(stamps) == 2 + 1 + 1  # + one association read, archived page
    assert tie_source.extract(store, "calls").records == 0


def test_a_lowered_search_cap_does_not_limit_a_sync(tie_source: HubSpotSource, store: Engine,
                                                    tie_org: SandboxServer, tie_search_cap: Any) -> None:
    _tie_calls(tie_org, 450)
    tie_search_cap.search_cap = 200  # the portal refuses any `after`: every page is a fresh search
    result = tie_source.extract(store, "calls")
    expected = expected_calls(tie_org)
    assert result.records == len(expected)  # each record stored exactly once
    assert stored(store, Activity) == expected
    assert result.api_calls == sync_calls(live_stamps(tie_org, "calls"))
    assert tie_source.extract(store, "calls").records == 0
