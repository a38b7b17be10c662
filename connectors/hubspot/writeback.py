"""HubSpot writeback: objectives, key results and check-ins upserted into okr-sync's custom objects.

Per object, parents first (connectors.okr_records.OKR_OBJECTS), only the rows whose content
changed since the last confirmed write (connectors.ledger, target `ledger_target("hubspot",
kind)`) are sent, 100 a batch upsert (HubSpot's maximum) on the unique `okr_key`, so a retry or a
rerun after a crash never duplicates a record. After each batch, confirmed rows go into the ledger
and refused ones into the rejection table (connectors.ledger.record_rejections, cleared when the
record is later written); a refused row is not in the ledger, so the next run sends it again.

HubSpot refuses records two ways: one input of a 207 answer (the others written), or the whole
batch with a 400 (a validation error in any input). A refused batch is split in halves until
each refused record stands alone; its 400 message becomes the record's Rejection. An input refused
in a 207 for a passing reason (settings.TRANSIENT_WRITE_CATEGORIES: CONFLICT, a record busy in
another request) is sent again within the run, with the others so refused in its batch, after each
short wait of settings.WRITE_RETRY_WAITS; still refused after the last, it is a Rejection like any
other. 401/403 stop the run; 429/5xx are retried (helpers.call_api) and, when retries run out, count
the batch as failed (not as rejections: the records are not at fault).

Key results are associated with their objective and check-ins with their key result (v4 batch
associate, one call per batch) when the record is first written: new in HubSpot's answer, or
absent from the ledger (a run that crashed between the upsert and the ledger makes them again;
associating twice changes nothing). The parent's record id comes from the parent object's ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hubspot.crm.associations.v4 import (
    BatchInputPublicDefaultAssociationMultiPost,
    PublicDefaultAssociationMultiPost,
    PublicObjectId,
)
from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputUpsert, SimplePublicObjectBatchInputUpsert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import ConnectorError
from connectors.hubspot import helpers, settings
from connectors.hubspot.setup import SETUP_HINT, problems, type_ids
from connectors.ledger import PlannedChange, pending_rows, plan_rows, record_rejections, record_written
from connectors.okr_records import OKR_OBJECTS, OkrRecords, ledger_target
from connectors.results import Rejection, WritebackResult
from connectors.store import WritebackLedger

SOURCE = settings.SOURCE
Pending = list[tuple[Mapping[str, Any], str]]  # (payload, fingerprint) as connectors.ledger.pending_rows gives


def properties(kind: str, row: Mapping[str, Any]) -> dict[str, str]:
    """One row as its object's properties (wire strings), without last_synced; the owner only when
    the row names one (None leaves the record's owner as it is)."""
    props = {prop: helpers.to_wire(row.get(name)) for name, prop in settings.OKR_FIELDS[kind].items()
             if name in row or prop != settings.FINAL_PROPERTY}  # `final` only on a closed period's rows
    if kind in settings.NAME_FROM_KEY:
        props["name"] = helpers.to_wire(row.get("key"))
    owner = row.get("owner_id")
    if owner not in (None, ""):
        props[settings.OWNER_PROPERTY] = str(owner)
    return props


def payloads(kind: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as sent (properties plus `key`), one per key (the last wins): what the ledger keeps."""
    return list({row["key"]: {"key": row["key"], **properties(kind, row)} for row in rows}.values())


def ledger_ids(engine: Engine, target: str) -> dict[str, str | None]:
    """Key -> HubSpot record id of every row confirmed to `target`."""
    with Session(engine) as session:
        query = select(WritebackLedger).where(WritebackLedger.target == target)
        return {entry.key: entry.record_id for entry in session.exec(query)}


@dataclass
class BatchOutcome:
    """What one batch (and its halves, when split) came to."""

    written: list[tuple[str, str, str | None, Mapping[str, Any]]] = field(default_factory=list)
    new: set[str] = field(default_factory=set)
    rejected: list[Rejection] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, why): not the record's fault
    # refused for a passing reason (settings.TRANSIENT_WRITE_CATEGORIES): ((payload, fingerprint), what
    # HubSpot said), sent again by Writeback._upsert_retrying, a Rejection once it gives up
    busy: list[tuple[tuple[Mapping[str, Any], str], Rejection]] = field(default_factory=list)

    def add_to(self, result: WritebackResult) -> None:
        result.created += len(self.new)
        result.updated += len(self.written) - len(self.new)
        result.failed += len(self.rejected) + len(self.failed)
        result.rejected += self.rejected
        result.errors += [f"{rejection.key}: {rejection.message}" for rejection in self.rejected]
        result.errors += [f"{key}: {why}" for key, why in self.failed]


class Writeback:
    """The writeback of one HubSpotSource: `call` makes a counted, retried request, `api()` gives
    the generated APIs, `failure` words a fatal error (see connectors.hubspot.HubSpotSource)."""

    def __init__(self, call: Callable[..., Any], api: Callable[[], Any],
                 failure: Callable[[BaseException, str], ConnectorError]) -> None:
        self._call, self._api, self._failure = call, api, failure
        self._schemas: list[Any] | None = None

    def plan(self, engine: Engine, records: OkrRecords) -> list[PlannedChange]:
        """What `write` would send, per object, judged from the ledger alone: no API call."""
        return [change for kind in OKR_OBJECTS for change in plan_rows(
            engine, ledger_target(SOURCE, kind), payloads(kind, records.rows(kind)), kind=kind)]

    def write(self, engine: Engine, records: OkrRecords, result: WritebackResult) -> None:
        """Write every object's changed rows; the objects are checked before the first write, so a
        portal missing one of them refuses the run as a whole rather than half-way."""
        work: dict[str, Pending] = {}
        for kind in OKR_OBJECTS:
            sent = payloads(kind, records.rows(kind))
            pending = pending_rows(engine, ledger_target(SOURCE, kind), sent)
            result.unchanged += len(sent) - len(pending)
            if pending:
                work[kind] = pending
        if not work:
            return
        types = self.object_types(list(work))
        for kind, pending in work.items():
            self._write_object(engine, kind, pending, types, result)

    def object_types(self, kinds: Sequence[str]) -> dict[str, str]:
        """OKR object -> objectTypeId (one schemas call per source); raises when one of `kinds`
        cannot be written (missing, or lacking a property okr-sync writes)."""
        if self._schemas is None:
            try:
                self._schemas = list(self._call(self._api().schemas.get_all).results or [])
            except Exception as exc:
                if helpers.api_status(exc) is None and not helpers.is_transient(exc):
                    raise
                raise self._failure(exc, "reading custom object schemas") from exc
        found = problems(self._schemas, kinds, for_write=True)
        if found:
            self._schemas = None  # read again next time: an admin may fix it meanwhile
            raise ConnectorError("HubSpot cannot take okr-sync's records: " + "; ".join(found)
                                 + f". To fix: {SETUP_HINT}.")
        return type_ids(self._schemas)

    # -- one object -----------------------------------------------------------------------------
    def _write_object(self, engine: Engine, kind: str, pending: Pending, types: dict[str, str],
                      result: WritebackResult) -> None:
        target = ledger_target(SOURCE, kind)
        known = ledger_ids(engine, target)
        link = next(((parent, prop) for source, parent, prop in settings.OKR_ASSOCIATIONS if source == kind), None)
        parents = ledger_ids(engine, ledger_target(SOURCE, link[0])) if link else {}
        synced = helpers.iso_ms(datetime.now(UTC))
        for start in range(0, len(pending), settings.BATCH_SIZE):
            outcome = BatchOutcome()
            self._upsert_retrying(kind, types[kind], pending[start:start + settings.BATCH_SIZE], synced, outcome)
            if link is not None:
                fresh = [(key, record_id, payload) for key, _, record_id, payload in outcome.written
                         if key in outcome.new or key not in known]
                unlinked = self._associate(kind, link, types, fresh, parents)
                # Not ledgered: the next run sends them again and, not knowing them, associates them again.
                outcome.written = [entry for entry in outcome.written if entry[0] not in unlinked]
                outcome.new -= unlinked.keys()
                outcome.failed += list(unlinked.items())
            record_written(engine, target, outcome.written)
            record_rejections(engine, SOURCE, outcome.rejected, written=[(kind, entry[0]) for entry in outcome.written])
            outcome.add_to(result)

    def _upsert_retrying(self, kind: str, type_id: str, batch: Pending, synced: str, outcome: BatchOutcome) -> None:
        """Upsert one batch, then send again the inputs refused for a passing reason (CONFLICT).

        The other request is usually done within seconds while the next run is a day away, so after
        each wait of settings.WRITE_RETRY_WAITS those inputs alone go again in one upsert (none when
        there are none); an upsert on okr_key never makes a second record. Still refused after the
        last wait, they become Rejections; the caller ledgers the batch once, as before.
        """
        self._upsert(kind, type_id, batch, synced, outcome)
        for wait in settings.WRITE_RETRY_WAITS:
            if not outcome.busy:
                break
            again, outcome.busy = outcome.busy, []
            time.sleep(wait)
            self._upsert(kind, type_id, [entry for entry, _rejection in again], synced, outcome)
        outcome.rejected += [rejection for _entry, rejection in outcome.busy]
        outcome.busy = []

    def _upsert(self, kind: str, type_id: str, batch: Pending, synced: str, outcome: BatchOutcome) -> None:
        """Upsert one batch; a whole-batch 400 is split in halves down to the refused records."""
        inputs = [SimplePublicObjectBatchInputUpsert(
            id=payload["key"], id_property=settings.OKR_KEY_PROPERTY,
            properties={**{name: value for name, value in payload.items() if name != "key"},
                        settings.LAST_SYNCED_PROPERTY: synced}) for payload, _ in batch]
        try:
            response = self._call(self._api().batch.upsert, type_id,
                                  BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
        except Exception as exc:
            status = self._refused(exc, f"{settings.OKR_OBJECT_NAMES[kind]} upsert")
            if status == 400 and len(batch) > 1:
                middle = len(batch) // 2
                self._upsert(kind, type_id, batch[:middle], synced, outcome)
                self._upsert(kind, type_id, batch[middle:], synced, outcome)
            elif status == 400:
                outcome.rejected.append(Rejection(kind, batch[0][0]["key"], helpers.api_message(exc)))
            else:
                outcome.failed += [(payload["key"], helpers.api_message(exc)) for payload, _ in batch]
            return
        waiting = {payload["key"]: (payload, digest) for payload, digest in batch}
        for record in response.results or []:
            key = (record.properties or {}).get(settings.OKR_KEY_PROPERTY)
            if key in waiting:
                payload, digest = waiting.pop(key)
                outcome.written.append((key, digest, str(record.id), payload))
                if record.new:
                    outcome.new.add(key)
        errors = {key: error for error in getattr(response, "errors", None) or []
                  for key in (error.context or {}).get("id", [])}
        for key, entry in waiting.items():  # sent, not confirmed: sent again (busy) or pending next run
            error = errors.get(key)
            if error is None:
                outcome.failed.append((key, "not confirmed by HubSpot"))
            elif error.category in settings.TRANSIENT_WRITE_CATEGORIES:
                outcome.busy.append((entry, Rejection(kind, key, error.message)))
            else:
                outcome.rejected.append(Rejection(kind, key, error.message))

    def _refused(self, exc: Exception, action: str) -> int | None:
        """The HTTP status of a request HubSpot refused, for the caller to work around; re-raises what
        is no API answer (a bug) and stops the run on 401/403 (no later request would fare better)."""
        status = helpers.api_status(exc)
        if status is None and not helpers.is_transient(exc):
            raise exc
        if status in (401, 403):
            raise self._failure(exc, action) from exc
        return status

    def _associate(self, kind: str, link: tuple[str, str], types: dict[str, str],
                   fresh: list[tuple[str, str | None, Mapping[str, Any]]], parents: Mapping[str, str | None],
                   ) -> dict[str, str]:
        """Associate newly written records with their parent record (one v4 call for the batch);
        returns the keys left unassociated, with why."""
        parent_kind, prop = link
        pairs, paired, orphans = [], [], []
        for key, record_id, payload in fresh:
            parent_key = payload.get(prop)
            if not parent_key:
                continue
            parent_id = parents.get(parent_key)
            if parent_id and record_id:
                pairs.append(PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=record_id),
                                                               to=PublicObjectId(id=parent_id)))
                paired.append(key)
            else:
                orphans.append(key)
        parent_name = settings.OKR_OBJECT_NAMES[parent_kind]
        unlinked = {key: f"not associated with its {parent_name}, which HubSpot has not confirmed (tried again"
                         " next run)" for key in orphans}
        if not pairs:
            return unlinked
        try:
            response = self._call(self._api().associations.create_default, types[kind], types[parent_kind],
                                  BatchInputPublicDefaultAssociationMultiPost(inputs=pairs))
        except Exception as exc:
            self._refused(exc, f"associating {settings.OKR_OBJECT_NAMES[kind]} records")
            why = f"not associated with its {parent_name}: {helpers.api_message(exc)} (tried again next run)"
            return unlinked | dict.fromkeys(paired, why)
        made = len(getattr(response, "results", None) or [])
        if made < len(pairs):  # a 207 (the client gives no body for it) or a short answer: which is unknown
            why = f"association with its {parent_name} not confirmed by HubSpot (tried again next run)"
            return unlinked | dict.fromkeys(paired, why)
        return unlinked
