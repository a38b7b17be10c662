"""Incremental extraction against a private sandbox whose records the tests change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from connectors.errors import ConnectorError
from connectors.salesforce import SalesforceSource
from connectors.salesforce.mappers import MAPPERS
from connectors.sandbox.ids import EMAIL_TASK_OFFSET, sf_id
from connectors.sandbox.salesforce_api import inject_faults
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.state import SandboxState
from connectors.store import Activity, Deal, SyncState
from tests.conftest import private_sandbox


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-incremental",
                         seed=5, deals=300, owners=6, accounts=40, calls_per_deal=3.0) as server:
        yield server


@pytest.fixture
def source(org: SandboxServer) -> Iterator[SalesforceSource]:
    with SalesforceSource.from_env(org.connection_env()) as connected:
        yield connected


def later_ms(state: SandboxState) -> int:
    """A whole second after every record's SystemModstamp, so changed rows sort last."""
    newest = max(state.query(f"SELECT MAX(modified_ms) FROM {table}")[0][0] for table in ("deals", "calls"))
    return (newest // 1000 + 5) * 1000


def stamp(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, UTC)


def test_changed_records_are_picked_up_exactly_once(org: SandboxServer, store: Engine,
                                                    source: SalesforceSource) -> None:
    assert source.extract(store, "opportunities").records == 300
    when = later_ms(org.state)
    with org.state.transaction() as conn:
        conn.execute("UPDATE deals SET amount = amount + 1, modified_ms = ? WHERE id IN (7, 70, 170)",
                     (when,))
    assert source.extract(store, "opportunities").records == 3
    amounts = {row["id"]: row["amount"] for row in org.state.query("SELECT id, amount FROM deals")}
    with Session(store) as session:
        deals = {deal.source_id: deal for deal in session.exec(select(Deal))}
    for number in (7, 70, 170):
        deal = deals[sf_id("Opportunity", number)]
        assert deal.amount == amounts[number] and deal.modified_at == stamp(when)
    assert len(deals) == 300
    assert source.extract(store, "opportunities").records == 0


def test_deleted_records_arrive_flagged(org: SandboxServer, store: Engine, source: SalesforceSource) -> None:
    source.extract(store, "calls")
    with org.state.transaction() as conn:
        conn.execute("UPDATE calls SET deleted = 1, modified_ms = ? WHERE id = 5", (later_ms(org.state),))
    assert source.extract(store, "calls").records == 1
    with Session(store) as session:
        call = session.get(Activity, ("salesforce", sf_id("Task", 5)))
    assert call is not None and call.is_deleted


def test_shared_timestamp_across_a_page_boundary_survives_a_crash(org: SandboxServer, store: Engine,
                                                                  source: SalesforceSource) -> None:
    """250 calls share one SystemModstamp; the run dies after page one (200); the rerun gets the 50 left.

    Lookback 0: this is the exact (SystemModstamp, Id) continuation, with no window re-read.
    """
    source.lookback = timedelta(0)
    source.extract(store, "calls")
    when = later_ms(org.state)
    with org.state.transaction() as conn:
        conn.execute("UPDATE calls SET modified_ms = ? WHERE id IN (SELECT id FROM calls ORDER BY id DESC"
                     " LIMIT 250)", (when,))
    source.query_batch_size = 200
    inject_faults(org.state, status=403, count=1, after=1)  # the queryMore call hits the daily quota
    with pytest.raises(ConnectorError, match="daily API request quota"):
        source.extract(store, "calls")

    def at_stamp() -> int:
        with Session(store) as session:
            return session.exec(select(func.count()).select_from(Activity).where(
                Activity.modified_at == stamp(when))).one()

    assert at_stamp() == 200
    with Session(store) as session:
        cursor = session.get(SyncState, ("salesforce", "calls"))
    assert cursor is not None and cursor.watermark == stamp(when)
    resumed = source.extract(store, "calls")
    assert resumed.records == 50 and at_stamp() == 250
    assert source.extract(store, "calls").records == 0


def test_an_expired_query_cursor_restarts_from_the_last_page(org: SandboxServer, store: Engine,
                                                             source: SalesforceSource) -> None:
    source.query_batch_size = 200
    inject_faults(org.state, status=400, code="INVALID_QUERY_LOCATOR", after=1)
    result = source.extract(store, "opportunities")
    with Session(store) as session:
        assert session.exec(select(func.count()).select_from(Deal)).one() == 300
    # page one (200), the refused queryMore, then a new query from the cursor (the 100 left)
    assert result.records == 300 and result.api_calls == 3


def test_transient_failures_are_retried(org: SandboxServer, store: Engine, source: SalesforceSource) -> None:
    inject_faults(org.state, status=503, count=1)
    result = source.extract(store, "users")
    assert result.records == 6 and result.api_calls == 2


# stream -> (sandbox table, condition picking a live row of it, sObject, Id number of that row)
DELETABLE = {
    "accounts": ("accounts", "1", "Account", 0), "line_items": ("line_items", "1", "OpportunityLineItem", 0),
    "emails": ("emails", "1", "Task", EMAIL_TASK_OFFSET), "meetings": ("meetings", "1", "Event", 0),
    "leads": ("leads", "1", "Lead", 0), "contacts": ("leads", "converted_ms IS NOT NULL", "Contact", 0),
    "cases": ("cases", "1", "Case", 0), "campaigns": ("campaigns", "1", "Campaign", 0),
}


@pytest.mark.parametrize("stream", list(DELETABLE))
def test_each_new_stream_picks_up_deletions_incrementally(org: SandboxServer, store: Engine,
                                                          source: SalesforceSource, stream: str) -> None:
    table, condition, sobject, offset = DELETABLE[stream]
    first = source.extract(store, stream)
    assert first.records > 0
    number = org.state.query(f"SELECT MIN(id) FROM {table} WHERE deleted = 0 AND {condition}")[0][0]
    with org.state.transaction() as conn:
        conn.execute(f"UPDATE {table} SET deleted = 1, modified_ms = ? WHERE id = ?",
                     (org.state.next_modstamp_ms(), number))
    again = source.extract(store, stream)
    assert (again.records, again.api_calls) == (1, 1)
    model = MAPPERS[stream][0]
    with Session(store) as session:
        row = session.get(model, ("salesforce", sf_id(sobject, number + offset)))
        total = session.exec(select(func.count()).select_from(model).where(model.source == "salesforce")).one()
    assert row is not None and row.is_deleted
    assert total == first.records or model is Activity  # activities: other kinds may share the table
