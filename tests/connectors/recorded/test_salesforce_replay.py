"""The real SalesforceSource against recorded sandbox responses (record_mode="none": no server runs)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.incremental import Cursor, load_cursor
from connectors.salesforce import SalesforceSource
from connectors.store import Activity, Deal, Owner
from tests.connectors.recorded.record import (
    SF_LONG_KEY,
    cassette,
    kr_rows,
    salesforce_extract,
    salesforce_writeback,
)


def rows(store: Engine, model: Any) -> dict[str, Any]:
    with Session(store) as session:
        return {row.source_id: row for row in session.exec(select(model).where(model.source == "salesforce"))}


def test_extract_parses_queryall_and_querymore_pages(store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("salesforce_extract", "none") as recorded, SalesforceSource.from_env(replay_env) as source:
        results = salesforce_extract(source, store)
        assert recorded.all_played and recorded.play_count == 4
    # one queryAll each; the 232 calls come as 200 + 32 (queryMore on nextRecordsUrl)
    assert {name: (result.records, result.api_calls) for name, result in results.items()} == {
        "users": (4, 1), "opportunities": (30, 1), "calls": (232, 2)}

    deals = rows(store, Deal)
    assert len(deals) == 30
    deal = deals["00600000000000OAAQ"]
    assert (deal.name, deal.stage, deal.amount, deal.deal_type) == (
        "New Business - account 7 #24", "Closed Lost", 40700.0, "New Business")
    assert (deal.is_closed, deal.is_won, deal.probability, deal.lead_source) == (True, False, 0.0, "Outbound")
    assert (deal.owner_id, deal.account_id) == ("005000000000002AAA", "001000000000007AAA")
    assert (deal.created_date, deal.close_date) == (date(2026, 5, 12), date(2026, 7, 26))
    assert deal.modified_at.replace(tzinfo=UTC) == datetime(2026, 5, 28, 17, 51, tzinfo=UTC)
    assert deal.is_deleted is False
    assert [key for key, row in deals.items() if row.is_deleted] == ["006000000000007AAA"]  # via queryAll

    owner = rows(store, Owner)["005000000000003AAA"]
    assert (owner.name, owner.email, owner.team, owner.region, owner.is_active) == (
        "Priya Fischer", "priya.fischer.3@example.com", "SMB", "APAC", True)

    calls = rows(store, Activity)
    assert len(calls) == 232
    deleted_call = calls["00T00000000000fEAA"]  # the last record of the queryMore page
    assert (deleted_call.kind, deleted_call.deal_id, deleted_call.duration_seconds, deleted_call.outcome) == (
        "call", "006000000000007AAA", 667, "Connected")
    assert (deleted_call.activity_date, deleted_call.is_deleted) == (date(2026, 8, 29), True)
    assert load_cursor(store, "salesforce", "calls") == Cursor(
        datetime(2026, 11, 15, 12, 0, 1, tzinfo=UTC), "00T00000000000fEAA")


def test_writeback_reports_the_per_record_error_and_keeps_the_rest(
        store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("salesforce_writeback", "none") as recorded, SalesforceSource.from_env(replay_env) as source:
        result = salesforce_writeback(source, store)
        assert recorded.all_played  # describe of OKR_Key_Result__c, then one composite upsert
        # the two confirmed rows are in the ledger: sending them again costs no request at all
        again = source.write_key_results(store, kr_rows("rec-sf", 3)[1:])
    assert (result.created, result.updated, result.failed, result.api_calls) == (2, 0, 1, 2)
    assert result.errors == [f"key {SF_LONG_KEY}: STRING_TOO_LONG: Key: data value too large: "
                             f"{SF_LONG_KEY[:40]} (max length=255)"]
    assert (again.unchanged, again.created, again.failed, again.api_calls) == (2, 0, 0, 0)
