"""Keyset paging through the HubSpot search API that does not depend on the order of ties.

A search allows one sort, and HubSpot documents no order among records sharing the sort
value. So a page sorted by hs_lastmodifieddate proves only one thing: every matching record
modified before the page's last timestamp t' is on it (the head); which of the records at t'
made the page is arbitrary. The pager stores the head and restarts at (t', None), fetching
the t' records again with the next page (one extra record per page: ~0.5% more calls). When
a whole page shares t' there is no head: that tie group is read in its own searches sorted
by hs_object_id, a total order, before the main sort resumes after it.

Each stored page comes with a cursor that is true once the page is committed (see
connectors.incremental.Cursor), so a run that dies anywhere resumes without a gap, and no
record is stored twice in one run unless it changed meanwhile.

A run starts at (saved watermark - lookback, None), so its first request is a plain
hs_lastmodifieddate GTE search (see connectors.incremental); the store callback skips the
records it already holds unchanged and never saves a cursor earlier than the saved one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hubspot.crm.objects import PublicObjectSearchRequest

from connectors.errors import ConnectorError
from connectors.hubspot import helpers, settings
from connectors.incremental import Cursor

Fetch = Callable[[PublicObjectSearchRequest], Sequence[Any]]
Store = Callable[[Sequence[Any], Cursor], None]


def end_cursor(page: Sequence[Any], cursor_property: str = settings.CURSOR_PROPERTY) -> Cursor:
    """The cursor after a complete result: its latest timestamp and the largest id there."""
    top = max(helpers.record_stamp(record, cursor_property) for record in page)
    last = max(helpers.record_number(record) for record in page
               if helpers.record_stamp(record, cursor_property) == top)
    return Cursor(top, str(last))


@dataclass
class KeysetPager:
    """Reads every record after a cursor: `fetch` runs one search, `store` commits a page."""

    fetch: Fetch
    store: Store
    properties: tuple[str, ...]
    label: str  # for errors: "HubSpot deals"
    limit: int = settings.SEARCH_PAGE_SIZE
    cursor_property: str = settings.CURSOR_PROPERTY  # contacts: lastmodifieddate

    def _stamp(self, record: Any) -> datetime:
        return helpers.record_stamp(record, self.cursor_property)

    def run(self, cursor: Cursor) -> Cursor:
        """Page until a search comes back short (nothing left); returns the final cursor."""
        while True:
            before = cursor
            cursor, more = self._step(cursor)
            if not more:
                return cursor
            self._check_progress(before, cursor)

    def _step(self, cursor: Cursor) -> tuple[Cursor, bool]:
        """One search by timestamp: a short page is complete, a full one proves only its head."""
        page = self.fetch(helpers.search_request(cursor, self.properties, self.limit, self.cursor_property))
        if len(page) < self.limit:  # everything after the cursor: complete, ties and all
            if page:
                cursor = end_cursor(page, self.cursor_property)
                self.store(page, cursor)
            return cursor, False
        top = max(self._stamp(record) for record in page)
        head = [record for record in page if self._stamp(record) < top]
        if not head:
            return self._drain(top, cursor), True
        cursor = Cursor(top)
        self.store(head, cursor)
        return cursor, True

    def _drain(self, stamp: datetime, cursor: Cursor) -> Cursor:
        """Store the records at `stamp` page by page in id order, resuming after the cursor's id.

        The full page sorted by timestamp that led here held only `stamp` records, so none are
        left before `stamp`: a cursor at an earlier timestamp may move to (stamp, None).
        """
        cursor = cursor if cursor.watermark == stamp else Cursor(stamp)
        while True:
            page = self.fetch(helpers.tie_request(stamp, cursor.last_id, self.properties, self.limit,
                                                  self.cursor_property))
            before = cursor
            if page:
                cursor = Cursor(stamp, str(max(helpers.record_number(record) for record in page)))
                self.store(page, cursor)
            if len(page) < self.limit:
                return cursor
            self._check_progress(before, cursor)

    def _check_progress(self, before: Cursor, after: Cursor) -> None:
        """A full page that does not move the cursor forward would be fetched again forever."""
        if helpers.cursor_key(after) <= helpers.cursor_key(before):
            raise ConnectorError(f"{self.label} search made no progress at {before}"
                                 " (the API returned records the cursor already covers);"
                                 " stopping instead of looping")
