"""The HubSpot source: owners, deals and calls into the canonical store; KR rows back out.

Deals and calls are read incrementally through the search API with a (hs_lastmodifieddate,
hs_object_id) cursor, each page stored together with the advanced cursor. Every page is a
fresh search from the cursor (no offset paging: no 10,000-result cap, no record skipped when
another one changes mid-sync), and the paging never relies on the order of records sharing a
timestamp, which HubSpot does not document (connectors.hubspot.paging). Each stored page gets
its associations (deal -> company, call -> deal, HubSpot ids) in one v4 batch read, and after
the search the archived records (listed with archived=true) are marked is_deleted, as the
Salesforce connector does with queryAll. Calls per deals/calls run: searches + one association
read per stored page + ceil(archived / 100) archived list pages (at least 1); deals add the two
lookups (pipelines, dealtype) when anything is mapped. The first search starts `lookback` (10
minutes by default) before the saved watermark, for records the search index surfaced late;
re-read records the store holds unchanged get no association read, are not rewritten and do
not count, so a quiet night still costs one search per stream. Key results are
upserted into a custom object by their unique `okr_key`, sending only rows that changed.
Every request first waits for client-side rate limit slots (helpers.RateLimits: the tier's
10-second window from $OKR_SYNC_HUBSPOT_TIER, searches also a per-second one; see settings);
a 429 for the daily quota stops the run with a ConnectorError instead of retrying.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hubspot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectBatchInputUpsert,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.hubspot import helpers, settings
from connectors.hubspot.paging import KeysetPager
from connectors.incremental import (
    Cursor,
    is_changed,
    later,
    load_cursor,
    lookback_from_env,
    save_cursor,
    stored_versions,
    validate_lookback,
)
from connectors.ledger import PlannedChange, pending_rows, plan_rows, record_written
from connectors.results import StreamResult, WritebackResult
from connectors.store import Activity, Deal, Owner, session_scope, upsert_rows

log = logging.getLogger(__name__)
SOURCE = settings.SOURCE
_OWNER_FIELDS = ("email", "name", "team", "region", "is_active")


class _PageWriter:
    """Stores one search stream's pages, each in one transaction with the cursor it proves.

    Only the records new to the store or changed (hs_lastmodifieddate, deletion) are mapped,
    get their associated ids (deal -> company, call -> deal) in one v4 batch read and are
    stored; the rest were re-read by the lookback. The saved cursor is never earlier than
    `saved`, the one the run started from. Archived records are marked deleted by `archive`.
    """

    def __init__(self, engine: Engine, stream: str,
                 load_lookups: Callable[[], helpers.DealLookups] | None,
                 associate: Callable[[list[str]], dict[str, str]], saved: Cursor | None = None) -> None:
        self.engine, self.stream, self.saved = engine, stream, saved or Cursor()
        self.model, self.mapper = (Deal, helpers.deal_row) if stream == "deals" else (Activity, helpers.call_row)
        self.link_field = settings.ASSOCIATIONS[stream][2]
        self._load_lookups = load_lookups
        self._lookups: helpers.DealLookups | None = None
        self._associate = associate
        self.records = 0

    def _map(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        if self._load_lookups is not None and self._lookups is None:
            self._lookups = self._load_lookups()  # only when there is a deal to map: a quiet run skips it
        return [self.mapper(record, self._lookups) for record in records]

    def cursor(self, seen: Cursor) -> Cursor:
        """The cursor to save: `seen`, unless the run started later (lookback never moves it back)."""
        return later(self.saved, seen, helpers.cursor_key)

    def __call__(self, page: Sequence[Any], cursor: Cursor) -> None:
        with Session(self.engine) as session:  # one SELECT by primary key for the whole page
            stored = stored_versions(session, self.model, SOURCE, [str(record.id) for record in page])
        fresh = [record for record in page
                 if is_changed(stored, str(record.id), helpers.record_stamp(record), False)]
        rows = self._map(fresh) if fresh else []
        links = self._associate([row["source_id"] for row in rows]) if rows else {}
        for row in rows:
            row[self.link_field] = links.get(row["source_id"])
        with session_scope(self.engine) as session:
            upsert_rows(session, self.model, rows)
            save_cursor(session, SOURCE, self.stream, self.cursor(cursor), self.records + len(rows))
        self.records += len(rows)

    def archive(self, page: Sequence[Any], cursor: Cursor) -> int:
        """Mark a page of archived records deleted; returns how many changed in the store.

        A stored record keeps its fields and gets is_deleted and the archive time; one never
        stored is mapped from the list's properties (without associations: HubSpot drops an
        archived record's associations).
        """
        if not page:
            return 0
        ids = [str(record.id) for record in page]
        with Session(self.engine) as session:
            query = select(self.model).where(self.model.source == SOURCE,  # type: ignore[arg-type]
                                             self.model.source_id.in_(ids))  # type: ignore[attr-defined]
            stored = {row.source_id: (row.is_deleted, row.modified_at) for row in session.exec(query)}
        unseen = [record for record in page if str(record.id) not in stored]
        rows = self._map(unseen) if unseen else []
        for row, record in zip(rows, unseen, strict=True):
            row.update(is_deleted=True, modified_at=helpers.archived_stamp(record))
        flipped = [record for record in page if str(record.id) in stored and not stored[str(record.id)][0]]
        changed = len(rows) + len(flipped)
        if not changed:
            return 0
        table = self.model.__table__  # type: ignore[attr-defined]
        with session_scope(self.engine) as session:
            upsert_rows(session, self.model, rows)
            for record in flipped:
                session.execute(table.update()
                                .where(table.c.source == SOURCE, table.c.source_id == str(record.id))
                                .values(is_deleted=True, modified_at=helpers.archived_stamp(record)))
            self.records += changed
            save_cursor(session, SOURCE, self.stream, cursor, self.records)
        return changed


class HubSpotSource:
    """One HubSpot portal reached with a private app token (see `from_env`)."""

    name = SOURCE
    STREAMS = ("owners", "deals", "calls")

    def __init__(self, access_token: str, host: str = settings.DEFAULT_HOST, ca_bundle: str | None = None,
                 *, sleep: Callable[[float], None] = time.sleep,
                 lookback: timedelta = timedelta(minutes=settings.LOOKBACK_MINUTES),
                 tier: str = settings.DEFAULT_TIER, rate_limits: helpers.RateLimits | None = None) -> None:
        """`lookback`: how far before the saved watermark the first search of a run starts (see
        connectors.hubspot.settings); timedelta(0) continues exactly after the cursor. `tier`: the
        portal's API limit tier, which sets the client-side rate limits (`rate_limits` replaces them,
        e.g. to share one budget between sources of the same portal)."""
        self.lookback = validate_lookback(lookback)
        self.rate_limits = rate_limits or helpers.RateLimits(tier)
        if not access_token:
            raise ConnectorConfigError(f"HubSpot access token is empty: set {settings.TOKEN_ENV}")
        options: dict[str, Any] = {"access_token": access_token, "host": host.rstrip("/"),
                                   "retry": False}  # retries are ours (tenacity), not urllib3's
        if ca_bundle:
            options["ssl_ca_cert"] = ca_bundle
        self._client = hubspot.Client.create(**options)
        self.host = host
        self._sleep = sleep
        self._calls = helpers.CallCounter()
        self._key_result_type: str | None = None

    def __repr__(self) -> str:  # never the token
        return f"HubSpotSource(host={self.host!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HubSpotSource:
        """HUBSPOT_ACCESS_TOKEN (required); HUBSPOT_HOST, OKR_SYNC_CA_BUNDLE, OKR_SYNC_LOOKBACK_MINUTES,
        OKR_SYNC_HUBSPOT_TIER."""
        token = (env.get(settings.TOKEN_ENV) or "").strip()
        if not token:
            raise ConnectorConfigError(
                f"HubSpot is not configured: set {settings.TOKEN_ENV} to a private app access token"
                f" (optionally {settings.HOST_ENV} for another API host)")
        host = (env.get(settings.HOST_ENV) or settings.DEFAULT_HOST).strip()
        if not host.startswith(("https://", "http://")):
            raise ConnectorConfigError(f"{settings.HOST_ENV} must be an http(s) URL, got {host!r}")
        ca_bundle = (env.get(settings.CA_BUNDLE_ENV) or "").strip() or None
        if ca_bundle and not Path(ca_bundle).is_file():
            raise ConnectorConfigError(
                f"{settings.CA_BUNDLE_ENV} points to {ca_bundle!r}, which is not a file")
        lookback = lookback_from_env(env, settings.LOOKBACK_ENV, settings.LOOKBACK_MINUTES)
        return cls(token, host, ca_bundle, lookback=lookback, tier=helpers.tier_from_env(env))

    def close(self) -> None:
        """Close the connection pools (idle keep-alive connections hold server threads open)."""
        if "_api" in self.__dict__:
            for api in vars(self._api).values():
                api.api_client.last_response = None  # it holds the socket open past the pool's close
                api.api_client.rest_client.pool_manager.clear()
            del self.__dict__["_api"]

    def __enter__(self) -> HubSpotSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api_calls(self) -> int:
        """Requests made so far by this source (retries included)."""
        return self._calls.count

    @cached_property
    def _api(self) -> SimpleNamespace:
        """The generated APIs, built once: each `client.crm...` lookup makes a new connection pool."""
        crm = self._client.crm
        return SimpleNamespace(search=crm.objects.search_api, batch=crm.objects.batch_api,
                               objects=crm.objects.basic_api, associations=crm.associations.v4.batch_api,
                               owners=crm.owners.owners_api, pipelines=crm.pipelines.pipelines_api,
                               properties=crm.properties.core_api, schemas=crm.schemas.core_api)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return helpers.call_api(self._calls, fn, *args, sleep=self._sleep, limits=self.rate_limits, **kwargs)

    def _failure(self, exc: BaseException, action: str) -> ConnectorError:
        status = helpers.api_status(exc)
        hint = f"; check {settings.TOKEN_ENV} and the private app's scopes" if status in (401, 403) else ""
        return ConnectorError(f"HubSpot {action} failed: {helpers.api_message(exc)}{hint}")

    # -- extract --------------------------------------------------------------------------------
    def extract(self, engine: Engine, stream: str) -> StreamResult:
        """Bring one stream's new and changed records into the store; returns counts."""
        if stream not in self.STREAMS:
            raise ConnectorError(f"HubSpot has no stream {stream!r}; streams: {', '.join(self.STREAMS)}")
        before = self.api_calls
        try:
            extract = self._extract_owners if stream == "owners" else partial(self._extract_search, stream=stream)
            records = extract(engine)
        except ConnectorError:
            raise
        except Exception as exc:
            if helpers.api_status(exc) is None and not helpers.is_transient(exc):
                raise
            raise self._failure(exc, f"extract of {stream}") from exc
        return StreamResult(SOURCE, stream, records, self.api_calls - before)

    def _owner_pages(self, archived: bool) -> Iterator[Any]:
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self._call(self._api.owners.get_page, limit=settings.OWNERS_PAGE_SIZE, after=after,
                              archived=archived)
            yield from page.results
            after = page.paging.next.after if page.paging and page.paging.next else None
            if not after:
                return
            if after in seen:
                raise ConnectorError(f"HubSpot owners paging loops at after={after}")
            seen.add(after)

    def _extract_owners(self, engine: Engine) -> int:
        """All owners, active and archived (cheap); only new or changed ones count and get written."""
        rows = [helpers.owner_row(owner)
                for archived in (False, True) for owner in self._owner_pages(archived)]
        with Session(engine) as session:
            query = select(Owner).where(Owner.source == SOURCE)
            stored = {owner.source_id: owner for owner in session.exec(query)}

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

    def _deal_lookups(self) -> helpers.DealLookups:
        pipelines = self._call(self._api.pipelines.get_all, settings.DEAL_PIPELINE_OBJECT)
        stages = {stage.id: helpers.stage_from_pipeline(stage)
                  for pipeline in pipelines.results for stage in pipeline.stages or []}
        deal_type = self._call(self._api.properties.get_by_name, settings.DEAL_PIPELINE_OBJECT,
                               settings.DEAL_TYPE_PROPERTY)
        return helpers.DealLookups(stages, {option.value: option.label for option in deal_type.options or []})

    def _extract_search(self, engine: Engine, stream: str) -> int:
        """Page the stream through the search API from its stored cursor (see connectors.hubspot.paging),
        then mark the archived records deleted (search never returns them)."""
        object_type, properties = settings.SEARCH_STREAMS[stream]
        saved = load_cursor(engine, SOURCE, stream)
        writer = _PageWriter(engine, stream, self._deal_lookups if stream == "deals" else None,
                             partial(self._associations, stream), saved)
        pager = KeysetPager(partial(self._search, object_type), writer, properties, f"HubSpot {stream}",
                            settings.SEARCH_PAGE_SIZE)
        cursor = writer.cursor(pager.run(saved.start(self.lookback)))
        if not writer.records:  # records_last_run: 0
            with session_scope(engine) as session:
                save_cursor(session, SOURCE, stream, cursor, 0)
        for page in self._archived_pages(object_type, properties):
            writer.archive(page, cursor)
        return writer.records

    def _search(self, object_type: str, request: Any) -> list[Any]:
        """One search page's records (the pager never follows `paging.next`)."""
        return list(self._call(self._api.search.do_search, object_type, request).results or [])

    def _archived_pages(self, object_type: str, properties: tuple[str, ...]) -> Iterator[list[Any]]:
        """Every archived record, a list page at a time (no cursor: the list cannot filter on archivedAt)."""
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self._call(self._api.objects.get_page, object_type, limit=settings.ARCHIVED_PAGE_SIZE,
                              after=after, properties=list(properties), archived=True)
            yield list(page.results or [])
            after = page.paging.next.after if page.paging and page.paging.next else None
            if not after:
                return
            if after in seen:
                raise ConnectorError(f"HubSpot archived {object_type} paging loops at after={after}")
            seen.add(after)

    def _associations(self, stream: str, ids: list[str]) -> dict[str, str]:
        """Each record's associated id (deal -> company, call -> deal): one v4 batch read per 1000 ids."""
        from_type, to_type, _field = settings.ASSOCIATIONS[stream]
        links: dict[str, str] = {}
        for start in range(0, len(ids), settings.ASSOCIATION_BATCH_LIMIT):
            chunk = ids[start:start + settings.ASSOCIATION_BATCH_LIMIT]
            request = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=record_id) for record_id in chunk])
            links.update(helpers.associated_ids(
                self._call(self._api.associations.get_page, from_type, to_type, request)))
        return links

    # -- writeback ------------------------------------------------------------------------------
    def check_writeback_target(self) -> None:
        """Find the okr_key_result custom object and check it has the properties okr-sync writes."""
        try:
            schemas = self._call(self._api.schemas.get_all)
        except Exception as exc:
            if helpers.api_status(exc) is None and not helpers.is_transient(exc):
                raise
            raise self._failure(exc, "reading custom object schemas") from exc
        wanted = settings.KEY_RESULT_OBJECT
        schema = next((item for item in schemas.results if item.name == wanted
                       or (item.fully_qualified_name or "").endswith(f"_{wanted}")), None)
        if schema is None:
            raise ConnectorError(
                f"HubSpot has no custom object {wanted!r} to write key results into. An admin creates"
                " it once with POST /crm/v3/schemas and the body in"
                " connectors.hubspot.settings.KEY_RESULT_SCHEMA (custom objects need an Enterprise portal).")
        present = {prop.name: prop for prop in schema.properties or []}
        needed = [*settings.KEY_RESULT_FIELDS.values(), settings.LAST_SYNCED_PROPERTY]
        missing = [name for name in needed if name not in present]
        if missing:
            raise ConnectorError(f"HubSpot custom object {wanted!r} lacks properties {missing}; add them"
                                 " as in connectors.hubspot.settings.KEY_RESULT_SCHEMA")
        if not present[settings.KEY_RESULT_ID_PROPERTY].has_unique_value:
            raise ConnectorError(f"Property {settings.KEY_RESULT_ID_PROPERTY!r} of {wanted!r} must have"
                                 " unique values (hasUniqueValue), or upserts could duplicate key results")
        self._key_result_type = schema.object_type_id

    def plan_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> list[PlannedChange]:
        """What write_key_results would do with `rows`, judged from the ledger alone: no API call."""
        return plan_rows(engine, SOURCE, _ledger_rows(rows))

    def write_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> WritebackResult:
        """Upsert changed KR rows by okr_key; per-record rejections are reported and retried next run."""
        before = self.api_calls
        result = WritebackResult(SOURCE)
        payloads = _ledger_rows(rows)
        pending = pending_rows(engine, SOURCE, payloads)
        result.unchanged = len(payloads) - len(pending)
        if pending:
            if self._key_result_type is None:
                self.check_writeback_target()
            synced = helpers.iso_ms(datetime.now(UTC))
            for start in range(0, len(pending), settings.BATCH_SIZE):
                self._upsert_batch(engine, pending[start:start + settings.BATCH_SIZE], synced, result)
        result.api_calls = self.api_calls - before
        return result

    def _upsert_batch(self, engine: Engine, batch: list[tuple[Mapping[str, Any], str]], synced: str,
                      result: WritebackResult) -> None:
        digests = {payload["key"]: digest for payload, digest in batch}
        sent = {payload["key"]: payload for payload, _ in batch}
        inputs = [SimplePublicObjectBatchInputUpsert(
            id=payload["key"], id_property=settings.KEY_RESULT_ID_PROPERTY,
            properties={**{name: value for name, value in payload.items() if name != "key"},
                        settings.LAST_SYNCED_PROPERTY: synced})
            for payload, _ in batch]
        try:
            response = self._call(self._api.batch.upsert, self._key_result_type,
                                  BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
        except Exception as exc:
            status = helpers.api_status(exc)
            if status is None and not helpers.is_transient(exc):
                raise
            if status in (401, 403):
                raise self._failure(exc, "key result upsert") from exc
            result.failed += len(batch)
            result.errors.extend(f"{key}: {helpers.api_message(exc)}" for key in digests)
            return
        written = []
        for record in response.results or []:
            key = (record.properties or {}).get(settings.KEY_RESULT_ID_PROPERTY)
            if key in digests:
                written.append((key, digests.pop(key), str(record.id), sent[key]))
                if record.new:
                    result.created += 1
                else:
                    result.updated += 1
        record_written(engine, SOURCE, written)
        messages = {}
        for error in getattr(response, "errors", None) or []:
            for key in (error.context or {}).get("id", []):
                messages[key] = error.message
        for key in digests:  # sent, not confirmed: failed, and pending again next run
            result.failed += 1
            result.errors.append(f"{key}: {messages.get(key, 'not confirmed by HubSpot')}")


def _ledger_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KR rows as sent to HubSpot (custom-object properties, with `key`); one per key, the last wins."""
    return list({row["key"]: {"key": row["key"], **helpers.key_result_properties(row)} for row in rows}.values())
