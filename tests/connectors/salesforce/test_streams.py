"""Every Salesforce stream through the real client against the shared sandbox org.

The expectation comes from the sandbox's own tables (tests/connectors/stream_oracle.py), never
from the connector's mappers; each stream costs its minimum number of REST pages.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce import SalesforceSource
from connectors.salesforce.settings import QUERY_BATCH_SIZE, STREAMS
from connectors.sandbox.server import SandboxServer
from connectors.store import Activity, LineItem
from tests.conftest import TEST_TIME_ZONE
from tests.connectors.stream_oracle import differences, expected_rows, stored_rows

pytestmark = pytest.mark.integration
TABLE = {"users": "owner", "accounts": "account", "opportunities": "deal", "line_items": "line_item",
         "calls": "call", "emails": "email", "meetings": "meeting", "leads": "lead", "contacts": "contact",
         "cases": "case", "campaigns": "campaign"}


@pytest.fixture
def source(sandbox: SandboxServer) -> Iterator[SalesforceSource]:
    with SalesforceSource.from_env(sandbox.connection_env(), time_zone=TEST_TIME_ZONE) as connected:
        yield connected
    gc.collect()


def pages(records: int) -> int:
    return max(1, math.ceil(records / QUERY_BATCH_SIZE))


def test_every_stream_has_a_table() -> None:
    assert set(TABLE) == set(STREAMS) == set(SalesforceSource.STREAMS)


@pytest.mark.parametrize("stream", list(TABLE))
def test_a_full_extract_of_each_stream_equals_the_org(sandbox: SandboxServer, store: Engine,
                                                      source: SalesforceSource, stream: str) -> None:
    calls_before = sandbox.calls("salesforce")
    result = source.extract(store, stream)
    table = TABLE[stream]
    expected = {key: row for key, row in expected_rows(sandbox.state, "salesforce").items() if key[0] == table}
    stored = {key: row for key, row in stored_rows(store, "salesforce").items() if key[0] == table}
    assert expected and not differences(stored, expected), differences(stored, expected)
    assert result.records == len(expected)
    assert result.api_calls == sandbox.calls("salesforce") - calls_before == pages(result.records)


def test_a_full_sync_costs_the_minimum_pages_and_a_quiet_one_a_query_per_stream(
        sandbox: SandboxServer, store: Engine, source: SalesforceSource) -> None:
    full = {stream: source.extract(store, stream) for stream in source.STREAMS}
    assert all(result.records > 0 for result in full.values()), full
    fixed = 0  # session credentials, no custom fields: no login, no describe
    assert sum(result.api_calls for result in full.values()) == sum(
        pages(result.records) for result in full.values()) + fixed
    assert not differences(stored_rows(store, "salesforce"), expected_rows(sandbox.state, "salesforce"))
    quiet = {stream: source.extract(store, stream) for stream in source.STREAMS}
    assert {stream: (result.records, result.api_calls) for stream, result in quiet.items()} == dict.fromkeys(
        source.STREAMS, (0, 1))


def test_activities_of_each_kind_stay_apart(store: Engine, source: SalesforceSource) -> None:
    """Calls and emails are both Tasks (TaskSubtype filters), meetings Events: one table, kinds intact."""
    counts = {stream: source.extract(store, stream).records for stream in ("calls", "emails", "meetings")}
    with Session(store) as session:
        stored = list(session.exec(select(Activity)))
    assert {kind: sum(1 for row in stored if row.kind == kind) for kind in ("call", "email", "meeting")} == {
        "call": counts["calls"], "email": counts["emails"], "meeting": counts["meetings"]}
    calls = [row for row in stored if row.kind == "call" and not row.is_deleted]
    assert {row.direction for row in calls} == {"inbound", "outbound"}
    assert all(row.direction is None and row.duration_seconds is None for row in stored if row.kind == "email")
    assert all(15 * 60 <= (row.duration_seconds or 0) <= 120 * 60 for row in stored if row.kind == "meeting")


def test_line_items_carry_their_products_name_and_family(store: Engine, source: SalesforceSource) -> None:
    source.extract(store, "line_items")
    with Session(store) as session:
        items = [item for item in session.exec(select(LineItem)) if item.product_id is not None]
    assert items and all(item.product_name and item.product_family in ("Platform", "Add-on", "Services")
                         for item in items)
    assert all(item.total_price == pytest.approx((item.quantity or 0) * (item.unit_price or 0)) for item in items)
