"""Reading the HubSpot streams: owners from the owners API, campaigns from the marketing campaigns
API (connectors.hubspot.campaigns), every other stream through search.

A search stream (settings.SEARCH_STREAMS) is paged from its stored cursor by the keyset pager
(connectors.hubspot.paging) into a StreamWriter (connectors.hubspot.writer), which buffers the
fresh records of up to five pages, reads their associations in one v4 batch call and commits
them with the cursor. After the search, the archived records (listed with archived=true) are
marked deleted. Calls per stream: searches + ceil(fresh / 1000) association reads (about) +
max(1, ceil(archived / 100)) archived pages, plus the lookups: the pipelines of deals, leads and tickets
and the properties (option labels, custom-field check), each read once per object type and source
(a source serves one run), and only when a record is mapped or custom fields are configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import BadRecord, ConnectorError
from connectors.hubspot import campaigns, custom_fields, helpers, raw_pages, settings
from connectors.hubspot.mappers import Labels, Stage, options_of, owner_row, stage_from_pipeline
from connectors.hubspot.paging import KeysetPager
from connectors.hubspot.writer import StreamWriter
from connectors.incremental import Cursor, field_set_digest, load_cursor, save_cursor, save_field_set
from connectors.local_dates import DEFAULT_TIME_ZONE, zone_of
from connectors.row_checks import map_record, unreadable
from connectors.store import Owner, session_scope, upsert_rows

log = logging.getLogger(__name__)
SOURCE = settings.SOURCE
_OWNER_FIELDS = ("email", "name", "team", "region", "is_active")
Call = Callable[..., Any]


class StreamReader:
    """Extracts streams for one HubSpotSource: `call` sends a request (retries, rate limits, counts),
    `api` gives the generated API namespace."""

    def __init__(self, call: Call, api: Callable[[], SimpleNamespace], lookback: timedelta,
                 fields: dict[str, dict[str, str]],
                 generic: Callable[[], campaigns.GenericRequests] | None = None,
                 time_zone: str = DEFAULT_TIME_ZONE) -> None:
        self.call, self.api, self.lookback, self.fields, self.generic = call, api, lookback, fields, generic
        self.time_zone, self.zone = time_zone, zone_of(time_zone)  # the calendar of the rows' dates
        # Read from the portal once per object type and source (a source serves one run):
        self._properties: dict[str, list[Any]] = {}  # object type -> its property definitions
        self._pipelines: dict[str, dict[str, Stage]] = {}  # object type -> stage id -> Stage

    # -- owners ---------------------------------------------------------------------------------
    def _owner_pages(self, archived: bool) -> Iterator[Any]:
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self.call(self.api().owners.get_page, limit=settings.OWNERS_PAGE_SIZE, after=after,
                             archived=archived)
            yield from page.results
            after = page.paging.next.after if page.paging and page.paging.next else None
            if not after:
                return
            if after in seen:
                raise ConnectorError(f"HubSpot owners paging loops at after={after}")
            seen.add(after)

    def owners(self, engine: Engine) -> int:
        """All owners, active and archived (cheap); only new or changed ones count and get written."""
        rows = [map_record(SOURCE, "owners", Owner, owner.id, {}, lambda _fields, owner=owner: owner_row(owner))
                for archived in (False, True) for owner in self._owner_pages(archived)]
        with Session(engine) as session:
            stored = {owner.source_id: owner for owner in session.exec(select(Owner).where(Owner.source == SOURCE))}

        def changed(row: dict[str, Any]) -> bool:
            old = stored.get(row["source_id"])
            if old is None or helpers.naive_utc(row["modified_at"]) != helpers.naive_utc(old.modified_at):
                return True
            return any(getattr(old, name) != row[name] for name in _OWNER_FIELDS)

        fresh = [row for row in rows if changed(row)]
        latest = max(rows, key=lambda row: (row["modified_at"] or helpers.EPOCH, int(row["source_id"])),
                     default=None)
        cursor = Cursor(latest["modified_at"], latest["source_id"]) if latest else Cursor()
        with session_scope(engine) as session:
            upsert_rows(session, Owner, fresh)
            save_cursor(session, SOURCE, "owners", cursor, len(fresh))
        return len(fresh)

    # -- search streams -------------------------------------------------------------------------
    def search(self, engine: Engine, stream: str) -> int:
        """Check the stream's custom fields, page it from its stored cursor, then mark the archived
        records deleted (search never returns them); the field set is recorded once all is stored."""
        spec = settings.SEARCH_STREAMS[stream]
        fields = custom_fields.for_stream(self.fields, stream)
        if fields:
            self.check_custom_fields(stream, fields)
        field_set = field_set_digest(fields, self.time_zone)
        saved = load_cursor(engine, SOURCE, stream, field_set)
        properties = spec.read_properties(tuple(fields.values()))
        writer = StreamWriter(engine, stream, labels=partial(self.labels, stream),
                              associate=partial(self.associations, stream) if spec.association else None,
                              custom=fields, saved=saved)
        pager = KeysetPager(partial(self._search, stream), writer, properties, f"HubSpot {stream}",
                            settings.SEARCH_PAGE_SIZE, spec.cursor_property)
        seen = pager.run(saved.start(self.lookback))
        writer.flush()
        cursor = writer.cursor(seen)
        if not writer.records:  # records_last_run: 0
            with session_scope(engine) as session:
                save_cursor(session, SOURCE, stream, cursor, 0)
        for page in self._archived_pages(spec.object_type, properties):
            writer.archive(checked_identities(stream, page, spec.cursor_property, archived=True), cursor)
        save_field_set(engine, SOURCE, stream, field_set)
        return writer.records

    def check_custom_fields(self, stream: str, fields: dict[str, str]) -> None:
        """The portal has every configured property of the stream's object type."""
        if stream == settings.CAMPAIGN_STREAM and self._properties.get(settings.CAMPAIGN_OBJECT_TYPE) == []:
            return  # the portal could not list campaign properties: checked once, not again
        object_type = (settings.CAMPAIGN_OBJECT_TYPE if stream == settings.CAMPAIGN_STREAM
                       else settings.SEARCH_STREAMS[stream].object_type)
        custom_fields.missing(object_type, settings.STREAM_ENTITIES[stream], fields,
                              (prop.name for prop in self._portal_properties(object_type)))

    # -- campaigns ------------------------------------------------------------------------------
    def campaigns(self, engine: Engine) -> int:
        """List every campaign (the generic request method, 100 a page) and diff the list with the store:
        new or changed ones written, unlisted ones marked deleted (connectors.hubspot.campaigns)."""
        if self.generic is None:
            raise ConnectorError("HubSpot campaigns need the client's generic request method")
        stream = settings.CAMPAIGN_STREAM
        fields = custom_fields.for_stream(self.fields, stream)
        if fields:
            try:
                self.check_custom_fields(stream, fields)
            except Exception as exc:
                # A portal whose properties API does not know campaigns cannot check them: read the
                # fields anyway (an unknown one stays None), and say so.
                if helpers.api_status(exc) not in (400, 404):
                    raise
                self._properties[settings.CAMPAIGN_OBJECT_TYPE] = []
                log.warning("HubSpot cannot list campaign properties (%s): campaign custom fields %s are read"
                            " unchecked", helpers.api_message(exc), sorted(fields.values()))
        field_set = field_set_digest(fields, self.time_zone)
        saved = load_cursor(engine, SOURCE, stream, field_set)
        properties = tuple(dict.fromkeys((*settings.CAMPAIGN_PROPERTIES, *fields.values())))
        generic = self.generic()

        def page(after: str | None) -> Any:
            return self.call(generic.api_request, campaigns.campaign_options(properties, after))

        records = campaigns.store_campaigns(engine, campaigns.list_campaigns(page), fields, self.zone,
                                           saved.reread)
        save_field_set(engine, SOURCE, stream, field_set)
        return records

    def labels(self, stream: str) -> Labels:
        """The stream's stage and option labels, read from the portal (called when a record is mapped)."""
        spec = settings.SEARCH_STREAMS[stream]
        stages = self._stages(spec.object_type) if spec.stages else {}
        options = options_of(self._portal_properties(spec.object_type), spec.options) if spec.options else {}
        return Labels(stages, options, self.zone)

    def _portal_properties(self, object_type: str) -> list[Any]:
        """GET /crm/v3/properties/{type}, once per type and source (custom-field check, option labels)."""
        if object_type not in self._properties:
            self._properties[object_type] = list(self.call(self.api().properties.get_all, object_type).results or [])
        return self._properties[object_type]

    def _stages(self, object_type: str) -> dict[str, Stage]:
        """Pipeline stage id -> Stage of every pipeline of the type, once per type and source."""
        if object_type not in self._pipelines:
            pipelines = self.call(self.api().pipelines.get_all, object_type)
            self._pipelines[object_type] = {stage.id: stage_from_pipeline(stage)
                                            for pipeline in pipelines.results or [] for stage in pipeline.stages or []}
        return self._pipelines[object_type]

    def _search(self, stream: str, request: Any) -> list[raw_pages.Record]:
        """One search page's records (the pager never follows `paging.next`), each with an id and a
        modification time the pager can order by (else a BadRecord). Decoded from the raw JSON
        (connectors.hubspot.raw_pages): the SDK's models cost more CPU than the rest of the sync."""
        spec = settings.SEARCH_STREAMS[stream]
        page = self.call(self.api().search.do_search, spec.object_type, request, decode=raw_pages.records_page)
        return checked_identities(stream, page.results, spec.cursor_property)

    def _archived_pages(self, object_type: str, properties: tuple[str, ...]) -> Iterator[list[raw_pages.Record]]:
        """Every archived record, a list page at a time (no cursor: the list cannot filter on archivedAt),
        decoded from the raw JSON as the search pages are."""
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self.call(self.api().objects.get_page, object_type, limit=settings.ARCHIVED_PAGE_SIZE,
                             after=after, properties=list(properties), archived=True, decode=raw_pages.records_page)
            yield page.results
            after = page.after
            if not after:
                return
            if after in seen:
                raise ConnectorError(f"HubSpot archived {object_type} paging loops at after={after}")
            seen.add(after)

    def associations(self, stream: str, ids: list[str]) -> dict[str, str]:
        """Each record's associated id (e.g. deal -> company): one v4 batch read per 1000 ids, the request
        a plain JSON body and the answer decoded from its JSON (building or reading a model per id
        costs more CPU than the request: connectors.hubspot.raw_pages)."""
        spec = settings.SEARCH_STREAMS[stream]
        assert spec.association is not None
        links: dict[str, str] = {}
        for start in range(0, len(ids), settings.ASSOCIATION_BATCH_LIMIT):
            chunk = ids[start:start + settings.ASSOCIATION_BATCH_LIMIT]
            request = {"inputs": [{"id": record_id} for record_id in chunk]}
            links.update(self.call(self.api().associations.get_page, spec.object_type, spec.association[0], request,
                                   decode=helpers.associated_ids))
        return links


def checked_identities(stream: str, page: list[Any], cursor_property: str, archived: bool = False) -> list[Any]:
    """`page`, once every record has a HubSpot id (digits) and a readable modification time (`archived`:
    and archive time): what the pager orders and the writer stores by. The first that has not stops
    the stream (BadRecord); the time stays text until read (connectors.hubspot.raw_pages)."""
    for position, record in enumerate(page, 1):
        record_id = record.id if isinstance(record.id, str) and record.id.isdigit() else None
        if record_id is None:  # named by its hs_object_id property, when it has one
            named = (record.properties or {}).get(settings.ID_PROPERTY)
            raise BadRecord(SOURCE, stream, str(named) if named else None,
                            "is missing" if record.id is None else f"{record.id!r} is not an id", "id", position)
        try:
            helpers.record_stamp(record, cursor_property)
        except (TypeError, ValueError, OverflowError) as error:
            value = (record.properties or {}).get(cursor_property)
            raise unreadable(SOURCE, stream, record_id, cursor_property, value, error, position) from None
        if archived:
            try:
                helpers.parse_time(record.archived_at)
            except (TypeError, ValueError, OverflowError) as error:
                raise unreadable(SOURCE, stream, record_id, "archivedAt", record.archived_at, error,
                                 position) from None
    return page
