"""The real HubSpotSource against recorded sandbox responses (record_mode="none": no server runs)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.hubspot import HubSpotSource
from connectors.store import Activity, Deal, Owner
from tests.connectors.recorded.record import cassette, hubspot_extract, hubspot_writeback


def rows(store: Engine, model: Any) -> dict[str, Any]:
    with Session(store) as session:
        return {row.source_id: row for row in session.exec(select(model).where(model.source == "hubspot"))}


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def test_extract_parses_owners_lookups_search_pages_associations_and_archived(
        store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("hubspot_extract", "none") as recorded, HubSpotSource.from_env(replay_env) as source:
        results = hubspot_extract(source, store)
        assert recorded.all_played and recorded.play_count == 12
    # owners: active + archived lists; deals: search, pipelines, dealtype, associations, archived list;
    # calls: 2 searches (200 + the rest), an association read per stored page, archived list
    assert {name: (result.records, result.api_calls) for name, result in results.items()} == {
        "owners": (4, 2), "deals": (30, 5), "calls": (232, 5)}

    owner = rows(store, Owner)["70000003"]
    assert (owner.name, owner.email, owner.team, owner.is_active) == (
        "Priya Fischer", "priya.fischer.3@example.com", "SMB", True)

    deals = rows(store, Deal)
    assert len(deals) == 30
    deal = deals["20000000024"]
    # stage and type arrive as internal values ("closedlost", "newbusiness"): labels come from the lookups
    assert (deal.name, deal.amount, deal.stage, deal.deal_type) == (
        "New Business - account 7 #24", 40700.0, "Closed Lost", "New Business")
    assert (deal.is_closed, deal.is_won, deal.owner_id, deal.account_id) == (True, False, "70000002", "10000007")
    assert (deal.close_date, deal.lead_source, deal.is_deleted) == (date(2026, 7, 26), "Outbound", False)
    assert utc(deal.modified_at) == datetime(2026, 5, 28, 17, 51, tzinfo=UTC)
    archived = deals["20000000007"]  # only in the archived list: stored deleted, at its archive time
    assert (archived.is_deleted, archived.amount, archived.account_id) == (True, 71500.0, None)
    assert utc(archived.modified_at) == datetime(2026, 11, 15, 12, 0, 1, tzinfo=UTC)

    calls = rows(store, Activity)
    assert len(calls) == 232
    second_page = calls["40000000019"]  # on the second search page, linked by its page's v4 read
    assert (second_page.deal_id, second_page.duration_seconds, second_page.outcome) == (
        "20000000003", 76, "No answer")
    assert (second_page.subject, second_page.activity_date) == ("Call about Renewal - account 2 #3",
                                                                date(2026, 11, 15))
    assert calls["40000000041"].is_deleted is True


def test_writeback_counts_a_200_batch_then_a_207_partial_failure(
        store: Engine, replay_env: dict[str, str]) -> None:
    with cassette("hubspot_writeback", "none") as recorded, HubSpotSource.from_env(replay_env) as source:
        first, second = hubspot_writeback(source, store)
        assert recorded.all_played
    assert [response["status"]["code"] for response in recorded.responses] == [200, 200, 207]
    assert (first.created, first.updated, first.failed, first.api_calls, first.errors) == (3, 0, 0, 2, [])
    assert (second.created, second.failed, second.api_calls) == (2, 1, 1)  # schemas already known
    assert len(second.errors) == 1 and second.errors[0].startswith("rec-hs-b-2: Property values were not valid")
    assert "'half a million' was not a valid number" in second.errors[0]
