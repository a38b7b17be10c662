"""The stream writer: fresh records of up to five search pages share one association read and
one commit with their cursor; a killed run resumes from the last commit (in-memory portal, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.hubspot import settings
from connectors.hubspot.mappers import Labels
from connectors.hubspot.paging import KeysetPager
from connectors.hubspot.writer import StreamWriter
from connectors.incremental import Cursor, load_cursor
from connectors.store import Activity, SyncState
from tests.connectors.hubspot.search_model import association_reads, stored_pages
from tests.connectors.hubspot.test_paging import BASE_MS, FakePortal


class FakeAssociations:
    """The v4 batch read: each call's id list, and a deal id per call."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, ids: list[str]) -> dict[str, str]:
        assert len(ids) <= settings.ASSOCIATION_BATCH_LIMIT
        self.batches.append(ids)
        return {record_id: str(20_000_000_000 + int(record_id)) for record_id in ids}


class Dying:
    """A search that dies after `searches` pages, as a dropped connection would."""

    def __init__(self, portal: FakePortal, searches: int) -> None:
        self.portal, self.searches = portal, searches

    def __call__(self, request: Any) -> Sequence[Any]:
        if self.portal.calls == self.searches:
            raise ConnectionError("dropped")
        return self.portal.search(request)


def _labels() -> Labels:
    return Labels()  # calls need none


def sync(store: Engine, portal: FakePortal, links: FakeAssociations, search: Any = None,
         custom: dict[str, str] | None = None) -> StreamWriter:
    saved = load_cursor(store, settings.SOURCE, "calls", None if not custom else "digest")
    writer = StreamWriter(store, "calls", labels=_labels, associate=links, custom=custom, saved=saved)
    pager = KeysetPager(search or portal.search, writer, ("hs_lastmodifieddate",), "HubSpot calls")
    pager.run(saved.start(timedelta(0)))
    writer.flush()
    return writer


def stored_ids(store: Engine) -> set[str]:
    with Session(store) as session:
        return {row.source_id for row in session.exec(select(Activity))}


@pytest.mark.parametrize("count", [1, 995, 996, 2400])
def test_one_association_read_per_five_pages_and_one_commit_each(store: Engine, count: int) -> None:
    records = {number: BASE_MS + number for number in range(1, count + 1)}
    portal, links = FakePortal(records), FakeAssociations()
    writer = sync(store, portal, links)
    searches, sizes = stored_pages(records.values())
    assert portal.calls == searches == max(1, -(-count // 199))
    assert len(links.batches) == association_reads(sizes) == -(-count // 995)
    assert writer.records == count and stored_ids(store) == {str(number) for number in records}
    with Session(store) as session:
        rows = session.exec(select(Activity)).all()
        state = session.get(SyncState, ("hubspot", "calls"))
    assert all(row.deal_id == str(20_000_000_000 + int(row.source_id)) for row in rows)
    assert state is not None and state.last_id == str(count) and state.records_last_run == count


def test_a_run_killed_mid_buffer_resumes_from_the_last_committed_buffer(store: Engine) -> None:
    records = {number: BASE_MS + number for number in range(1, 1501)}
    portal, links = FakePortal(records), FakeAssociations()
    with pytest.raises(ConnectionError):
        sync(store, portal, links, Dying(portal, 7))  # 5 pages committed, the 6th and 7th only buffered
    assert len(links.batches) == 1 and len(stored_ids(store)) == 5 * 199
    assert load_cursor(store, "hubspot", "calls").last_id is None  # (t of record 996, None)
    portal.calls, links.batches = 0, []
    writer = sync(store, portal, links)
    assert writer.records == 1500 - 995 and stored_ids(store) == {str(number) for number in records}
    assert portal.calls == 3 and len(links.batches) == 1  # 505 records: 199 + 199 + 107


def test_unchanged_records_cost_no_association_read(store: Engine) -> None:
    records = {number: BASE_MS + number for number in range(1, 401)}
    sync(store, FakePortal(records), FakeAssociations())
    portal, links = FakePortal(records), FakeAssociations()
    writer = StreamWriter(store, "calls", labels=_labels, associate=links)  # the whole stream read again
    KeysetPager(portal.search, writer, ("hs_lastmodifieddate",), "HubSpot calls").run(Cursor())
    writer.flush()
    assert writer.records == 0 and links.batches == [] and portal.calls == 3


def test_a_reread_rewrites_every_record_with_its_custom_values(store: Engine) -> None:
    records = {number: BASE_MS + number for number in range(1, 301)}
    sync(store, FakePortal(records), FakeAssociations())
    with Session(store) as session:
        assert all(row.custom == {} for row in session.exec(select(Activity)))
    links = FakeAssociations()
    writer = sync(store, FakePortal(records), links, custom={"ts": "hs_lastmodifieddate"})
    assert writer.reread and writer.records == 300 and sum(map(len, links.batches)) == 300
    with Session(store) as session:
        assert all(row.custom["ts"] for row in session.exec(select(Activity)))
