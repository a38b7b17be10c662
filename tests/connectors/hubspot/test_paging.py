"""The keyset pager against an in-memory portal whose tie order is random on every search (no network)."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubspot.crm.objects import PublicObjectSearchRequest, SimplePublicObject

from connectors.errors import ConnectorError
from connectors.hubspot import helpers
from connectors.hubspot.paging import KeysetPager
from connectors.incremental import Cursor
from tests.connectors.hubspot.search_model import search_calls, search_pages

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_MS = 1_790_000_000_000
OPERATORS = {"EQ": int.__eq__, "GT": int.__gt__, "GTE": int.__ge__}


class FakePortal:
    """Search over {id: modified ms} as HubSpot answers it, as far as the pager relies on it.

    Filters and the one sort are honoured; records tying on the sort value come back in a fresh
    random order on every search (HubSpot documents none), so any order assumption shows.
    """

    def __init__(self, records: dict[int, int], seed: int = 0, honour_filters: bool = True) -> None:
        self.records, self.rng, self.honour_filters = records, random.Random(seed), honour_filters
        self.calls = 0

    def search(self, request: PublicObjectSearchRequest) -> list[SimplePublicObject]:
        self.calls += 1
        body = request.to_dict()
        assert body.get("after") is None  # one fresh search per page
        groups = body["filter_groups"] if self.honour_filters else []
        found = [(number, ms) for number, ms in self.records.items()
                 if not groups or any(self._matches(number, ms, group["filters"]) for group in groups)]
        self.rng.shuffle(found)
        by_id = body["sorts"][0]["propertyName"] == "hs_object_id"
        found.sort(key=lambda item: item[0] if by_id else item[1])  # stable: ties keep the shuffle
        return [SimplePublicObject(id=str(number), properties={
            "hs_lastmodifieddate": helpers.iso_ms(EPOCH + timedelta(milliseconds=ms))})
            for number, ms in found[:body["limit"]]]

    @staticmethod
    def _matches(number: int, ms: int, filters: list[dict[str, Any]]) -> bool:
        values = {"hs_object_id": number, "hs_lastmodifieddate": ms}
        return all(OPERATORS[f["operator"]](values[f["property_name"]], int(f["value"])) for f in filters)


class Recorder:
    """The pager's store: every record it was given and the last cursor, like the store would keep."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.ids: Counter[int] = Counter()
        self.cursor = Cursor()
        self.pages = 0
        self.fail_after = fail_after

    def __call__(self, page: Sequence[Any], cursor: Cursor) -> None:
        if self.fail_after is not None and self.pages == self.fail_after:
            raise RuntimeError("the run dies here")
        self.pages += 1
        self.ids.update(int(record.id) for record in page)
        self.cursor = cursor


def read(portal: FakePortal, recorder: Recorder, cursor: Cursor | None = None) -> Cursor:
    pager = KeysetPager(portal.search, recorder, ("hs_lastmodifieddate",), "HubSpot deals")
    return pager.run(cursor or Cursor())


def deals(count: int, ties: dict[int, int] | None = None) -> dict[int, int]:
    """`count` deals (ids as HubSpot spells them) one second apart; `ties` moves some onto one ms."""
    records = {20_000_000_000 + number: BASE_MS + number * 1000 for number in range(1, count + 1)}
    for number, ms in (ties or {}).items():
        records[20_000_000_000 + number] = ms
    return records


@pytest.mark.parametrize("seed", range(5))
def test_450_of_600_on_one_timestamp_in_random_tie_order_are_all_read_once(seed: int) -> None:
    """The reviewer's reproduction: the old (timestamp, id) cursor stored 410 of these 600."""
    stamp = BASE_MS + 100_500
    records = deals(600, {number: stamp for number in random.Random(seed).sample(range(1, 601), 450)})
    portal, recorder = FakePortal(records, seed), Recorder()
    final = read(portal, recorder)
    assert recorder.ids == Counter(records.keys())  # every record, each exactly once
    assert (portal.calls, recorder.pages) == search_pages(records.values())  # each page: one association read
    top = max(records.values())
    assert final == Cursor(EPOCH + timedelta(milliseconds=top),
                           str(max(number for number, ms in records.items() if ms == top)))


def test_ties_straddling_a_page_boundary_are_read_once_at_half_a_percent_more_calls() -> None:
    records = deals(1000, {number: BASE_MS + 190_500 for number in range(190, 220)})
    portal, recorder = FakePortal(records, 1), Recorder()
    read(portal, recorder)
    assert recorder.ids == Counter(records.keys())
    assert portal.calls == search_calls(records.values()) == 6  # stores 189, 199 (the 30 ties first), 199, 199, 199, 15


@pytest.mark.parametrize("count", [0, 1, 199, 200, 398, 399, 1000])
def test_distinct_timestamps_cost_ceil_n_over_199_searches(count: int) -> None:
    portal, recorder = FakePortal(deals(count)), Recorder()
    read(portal, recorder)
    assert sum(recorder.ids.values()) == count
    assert portal.calls == search_calls(deals(count).values()) == max(1, math.ceil(count / 199))
    assert recorder.pages == search_pages(deals(count).values())[1] == math.ceil(count / 199)


@pytest.mark.parametrize("seed", range(8))
def test_random_tie_groups_of_any_size_are_read_once(seed: int) -> None:
    rng = random.Random(seed)
    records = {30_000 + number: BASE_MS + rng.choice([1, 2, 3, 50, 400]) * rng.randrange(6)
               for number in range(rng.randrange(300, 1500))}
    portal, recorder = FakePortal(records, seed), Recorder()
    read(portal, recorder)
    assert recorder.ids == Counter(records.keys())
    assert (portal.calls, recorder.pages) == search_pages(records.values())


@pytest.mark.parametrize("dies_after", [1, 2, 3, 4])
def test_a_run_that_dies_resumes_from_its_last_stored_cursor_without_a_gap(dies_after: int) -> None:
    stamp = BASE_MS + 50_500
    records = deals(700, {number: stamp for number in range(40, 500)})  # head, drain, then the rest
    portal, first = FakePortal(records, 3), Recorder(fail_after=dies_after)
    with pytest.raises(RuntimeError):
        read(portal, first)
    second = Recorder()
    read(portal, second, first.cursor)
    assert set(first.ids) | set(second.ids) == set(records)
    assert not set(first.ids) & set(second.ids)  # and nothing read twice: the cursor is exact


def test_nothing_new_is_one_search() -> None:
    records = deals(450, {number: BASE_MS + 9_999_999 for number in range(1, 451)})
    portal, recorder = FakePortal(records, 2), Recorder()
    final = read(portal, recorder)
    portal.calls, again = 0, Recorder()
    assert read(portal, again, final) == final
    assert portal.calls == 1 and not again.ids


def test_an_api_that_ignores_the_cursor_stops_the_run_instead_of_looping() -> None:
    with pytest.raises(ConnectorError, match="made no progress"):
        read(FakePortal(deals(500), honour_filters=False), Recorder())
    tied = deals(500, {number: BASE_MS for number in range(1, 501)})
    with pytest.raises(ConnectorError, match="made no progress"):
        read(FakePortal(tied, honour_filters=False), Recorder())
