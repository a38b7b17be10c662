"""Stores one search stream: fresh records buffered across search pages, committed with their cursor.

The keyset pager (connectors.hubspot.paging) hands over pages of at most 200 records, each with
the cursor that is true once the page is stored. Records the store already holds unchanged (same
modified time, not deleted: re-read by the lookback) are dropped at once. The fresh ones are
buffered across up to settings.ASSOCIATION_BUFFER_PAGES pages, at most
settings.ASSOCIATION_BATCH_LIMIT (1000, the v4 batch limit), then mapped, given their associated
id in ONE v4 batch read and stored in one transaction together with the cursor of the last
buffered page: ceil(n / 1000) association reads a stream instead of one per page. A run killed
mid-buffer loses only the uncommitted buffer and resumes from the last committed cursor. A record
that cannot be mapped (connectors.row_checks) stops the stream the same way, with a BadRecord.

When the stream's custom fields changed (`reread`, connectors.incremental) every record read is
rewritten, unchanged or not, so each row gets the new `custom` values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.hubspot import helpers, settings
from connectors.hubspot.mappers import MAPPERS, Labels, custom_values
from connectors.incremental import Cursor, is_changed, later, save_cursor, stored_versions
from connectors.row_checks import map_record
from connectors.store import RECORD_MODELS, session_scope, upsert_rows

SOURCE = settings.SOURCE
Associate = Callable[[list[str]], dict[str, str]]


class StreamWriter:
    """Maps and stores the records of one search stream's run; `records` counts rows written."""

    def __init__(self, engine: Engine, stream: str, *, labels: Callable[[], Labels],
                 associate: Associate | None, custom: dict[str, str] | None = None,
                 saved: Cursor | None = None) -> None:
        spec = settings.SEARCH_STREAMS[stream]
        self.engine, self.stream, self.saved = engine, stream, saved or Cursor()
        self.model = RECORD_MODELS[spec.entity]
        self.mapper = MAPPERS[stream]
        self.cursor_property = spec.cursor_property
        self.link_field = spec.association[1] if spec.association else None
        self.custom = dict(custom or {})
        self.reread = self.saved.reread
        self._load_labels = labels
        self._labels: Labels | None = None
        self._associate = associate
        self._buffer: dict[str, Any] = {}  # id -> record, the latest version read
        self._pending: Cursor | None = None  # the cursor of the last buffered page
        self._pages = 0
        self.records = 0

    # -- rows -----------------------------------------------------------------------------------
    def rows(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        """Canonical rows of `records` (labels are loaded on the first record: a quiet run skips them)."""
        if not records:
            return []
        if self._labels is None:
            self._labels = self._load_labels()
        rows = []
        for record in records:
            rows.append(map_record(SOURCE, self.stream, self.model, str(record.id), record.properties or {},
                                   partial(self._row, record)))
        return rows

    def _row(self, record: Any, props: Mapping[str, Any]) -> dict[str, Any]:
        """One record's canonical row (`props`: its properties, read through row_checks' tracker)."""
        assert self._labels is not None
        row = {"source": SOURCE, "source_id": str(record.id), **self.mapper(props, self._labels),
               "modified_at": helpers.record_stamp(record, self.cursor_property), "is_deleted": False,
               "custom": custom_values(props, self.custom)}
        if self.link_field:
            row[self.link_field] = None
        return row

    def cursor(self, seen: Cursor) -> Cursor:
        """The cursor to save: `seen`, unless the run started later (lookback never moves it back)."""
        return later(self.saved, seen, helpers.cursor_key)

    # -- search pages ---------------------------------------------------------------------------
    def __call__(self, page: Sequence[Any], cursor: Cursor) -> None:
        """Buffer a page's fresh records; commit the buffer when one more page might not fit the batch."""
        if self.reread:
            fresh = list(page)
        else:
            with Session(self.engine) as session:  # one SELECT by primary key for the whole page
                stored = stored_versions(session, self.model, SOURCE, [str(record.id) for record in page])
            fresh = [record for record in page if is_changed(
                stored, str(record.id), helpers.record_stamp(record, self.cursor_property), False)]
        for record in fresh:
            self._buffer[str(record.id)] = record
        self._pending = cursor
        self._pages += 1
        if (self._pages >= settings.ASSOCIATION_BUFFER_PAGES
                or len(self._buffer) + settings.SEARCH_PAGE_SIZE > settings.ASSOCIATION_BATCH_LIMIT):
            self.flush()

    def flush(self) -> None:
        """Map the buffered records, read their associations (one call per 1000) and commit them
        with the cursor of the last buffered page; call once more after the search ends."""
        if self._pending is None:
            return
        rows = self.rows(list(self._buffer.values()))
        if rows and self._associate is not None and self.link_field:
            links = self._associate([row["source_id"] for row in rows])
            for row in rows:
                row[self.link_field] = links.get(row["source_id"])
        with session_scope(self.engine) as session:
            upsert_rows(session, self.model, rows)
            save_cursor(session, SOURCE, self.stream, self.cursor(self._pending), self.records + len(rows))
        self.records += len(rows)
        self._buffer, self._pending, self._pages = {}, None, 0

    # -- archived records -----------------------------------------------------------------------
    def archive(self, page: Sequence[Any], cursor: Cursor) -> int:
        """Mark a page of archived records deleted; returns how many changed in the store.

        A stored record keeps its fields and links and gets is_deleted and the archive time (and
        its new custom values on a re-read); one never stored is mapped from the list's properties
        (without associations: HubSpot drops an archived record's associations).
        """
        if not page:
            return 0
        ids = [str(record.id) for record in page]
        with Session(self.engine) as session:
            query = select(self.model).where(self.model.source == SOURCE,  # type: ignore[arg-type]
                                             self.model.source_id.in_(ids))  # type: ignore[attr-defined]
            stored = {row.source_id: row.is_deleted for row in session.exec(query)}  # type: ignore[attr-defined]
        unseen = [record for record in page if str(record.id) not in stored]
        rows = self.rows(unseen)
        for row, record in zip(rows, unseen, strict=True):
            row.update(is_deleted=True, modified_at=helpers.archived_stamp(record, self.cursor_property))
        updated = [record for record in page
                   if str(record.id) in stored and (self.reread or not stored[str(record.id)])]
        changed = len(rows) + len(updated)
        if not changed:
            return 0
        table = self.model.__table__  # type: ignore[attr-defined]
        with session_scope(self.engine) as session:
            upsert_rows(session, self.model, rows)
            for record in updated:
                values: dict[str, Any] = {"is_deleted": True,
                                          "modified_at": helpers.archived_stamp(record, self.cursor_property)}
                if self.reread:
                    values["custom"] = custom_values(record.properties or {}, self.custom)
                session.execute(table.update()
                                .where(table.c.source == SOURCE, table.c.source_id == str(record.id))
                                .values(**values))
            self.records += changed
            save_cursor(session, SOURCE, self.stream, cursor, self.records)
        return changed
