"""Full and repeated extraction from the shared sandbox, checked against its own tables."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce import SalesforceSource
from connectors.sandbox.generator import STAGES
from connectors.sandbox.ids import sf_id
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.state import SandboxState
from connectors.store import Activity, Deal, Owner, SyncState
from tests.conftest import TEST_TIME_ZONE


@pytest.fixture
def source(sandbox: SandboxServer) -> Iterator[SalesforceSource]:
    with SalesforceSource.from_env(sandbox.connection_env(), time_zone=TEST_TIME_ZONE) as connected:
        yield connected
    gc.collect()  # let go of any response still holding a connection to the shared sandbox


def utc(ms: int) -> datetime:
    """A sandbox ms stamp as Salesforce serves it: whole seconds, UTC."""
    return datetime.fromtimestamp(ms // 1000, UTC)


def local_date(ms: int) -> date:
    """The org's calendar day of a ms stamp (its users', and the configured, time zone)."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(TEST_TIME_ZONE)).date()


def expected_owners(state: SandboxState) -> dict[str, dict[str, Any]]:
    return {sf_id("User", row["id"]): {
        "email": row["email"], "name": f"{row['first_name']} {row['last_name']}", "team": row["team"],
        "region": row["region"], "is_active": bool(row["is_active"]), "modified_at": utc(row["modified_ms"]),
    } for row in state.query("SELECT * FROM owners")}


def expected_deals(state: SandboxState) -> dict[str, dict[str, Any]]:
    return {sf_id("Opportunity", row["id"]): {
        "name": row["name"], "owner_id": sf_id("User", row["owner_id"]),
        "account_id": sf_id("Account", row["account_id"]), "deal_type": row["deal_type"],
        "stage": STAGES[row["stage"]][0], "amount": row["amount"], "probability": float(row["probability"]),
        "is_closed": STAGES[row["stage"]][2], "is_won": STAGES[row["stage"]][3],
        "created_date": local_date(row["created_ms"]), "close_date": date.fromisoformat(row["close_date"]),
        "lead_source": row["lead_source"], "modified_at": utc(row["modified_ms"]),
        "is_deleted": bool(row["deleted"]),
    } for row in state.query("SELECT * FROM deals")}


def expected_calls(state: SandboxState) -> dict[str, dict[str, Any]]:
    return {sf_id("Task", row["id"]): {
        "kind": "call", "subject": row["subject"], "owner_id": sf_id("User", row["owner_id"]),
        "deal_id": sf_id("Opportunity", row["deal_id"]), "activity_date": local_date(row["ts_ms"]),
        "duration_seconds": row["duration_s"], "outcome": row["outcome"],
        "modified_at": utc(row["modified_ms"]), "is_deleted": bool(row["deleted"]),
    } for row in state.query("SELECT * FROM calls")}


def stored(engine: Engine, model: type, fields: list[str]) -> dict[str, dict[str, Any]]:
    with Session(engine) as session:
        rows = session.exec(select(model).where(model.source == "salesforce")).all()
    return {row.source_id: {name: getattr(row, name) for name in fields} for row in rows}


@pytest.mark.parametrize(("stream", "model", "expected"), [
    ("users", Owner, expected_owners),
    ("opportunities", Deal, expected_deals),
    ("calls", Activity, expected_calls),
])
def test_full_extract_equals_the_sandbox_org(sandbox: SandboxServer, store: Engine, source: SalesforceSource,
                                             stream: str, model: type, expected: Any) -> None:
    calls_before = sandbox.calls("salesforce")
    result = source.extract(store, stream)
    want = expected(sandbox.state)
    assert result.records == len(want)
    assert stored(store, model, list(next(iter(want.values())))) == want
    assert result.api_calls == sandbox.calls("salesforce") - calls_before == -(-len(want) // 2000)


def test_second_extract_returns_nothing_in_one_call(sandbox: SandboxServer, store: Engine,
                                                    source: SalesforceSource) -> None:
    first = source.extract(store, "opportunities")
    second = source.extract(store, "opportunities")
    assert first.records > 0 and second.records == 0 and second.api_calls == 1
    with Session(store) as session:
        state = session.get(SyncState, ("salesforce", "opportunities"))
    newest = sandbox.state.query("SELECT id, modified_ms FROM deals ORDER BY modified_ms / 1000 DESC, id DESC"
                                 " LIMIT 1")[0]
    assert state is not None and state.records_last_run == 0
    assert state.watermark == utc(newest["modified_ms"])
    assert state.last_id == sf_id("Opportunity", newest["id"])


def test_unknown_stream_is_refused(store: Engine, source: SalesforceSource) -> None:
    streams = ("users, accounts, opportunities, line_items, calls, emails, meetings, leads, contacts, cases, "
               "campaigns")
    with pytest.raises(ValueError, match=f"expected one of {streams}$"):
        source.extract(store, "tasks")
