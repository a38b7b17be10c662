"""Writeback of objectives, key results and check-ins into the OKR custom objects.

Upserts by the external key Key__c only (a retry never duplicates a record), 200 records per
sObject Collections call, parents first (objectives, key results, check-ins; a parent objective
in an earlier call than its children, as lookups resolve against records already saved), and
only rows whose content changed since the last confirmed write (the ledger, one target per
object). The ledger is written after every call, so a run that dies between two calls re-sends
only what was not confirmed. A record refused for a passing reason (a locked row: settings.
TRANSIENT_WRITE_ERRORS) is sent again within the run, with the others so refused in its batch, after
each short wait of settings.WRITE_RETRY_WAITS. A record the org still refuses (validation rule,
locked row, unknown parent or owner) is reported, kept in the rejection table and sent again next
run; a call refused as a whole with a 400 is split in halves until the refused records stand alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceError, SalesforceMalformedRequest
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.ledger import PlannedChange, pending_rows, plan_rows, record_rejections, record_written
from connectors.okr_records import OKR_OBJECTS, OkrRecords, ledger_target
from connectors.results import Rejection, WritebackResult
from connectors.salesforce import settings
from connectors.salesforce.helpers import SOURCE, describe_errors, error_items, okr_payload, sf_datetime
from connectors.salesforce.settings import (
    EXTERNAL_ID,
    KR_SPEC,
    OKR_OBJECT_SPECS,
    SYNCED_FIELD,
    WRITE_BATCH_SIZE,
    OkrObjectSpec,
)
from connectors.salesforce.setup_check import SetupChecker

Pending = tuple[Mapping[str, Any], str]  # (ledger row, fingerprint)
Answer = tuple[Pending, dict[str, Any]]  # a row sent and the org's result for it
# A whole-request 400 is split in halves; past this many extra calls for one batch the records
# still unisolated are reported as refused (and sent again next run) instead of costing more calls.
MAX_SPLIT_CALLS = 64
_LABELS = {"objective": "objective", "key_result": "key result", "checkin": "check-in"}


class OkrWriter(SetupChecker):
    """Mixed into SalesforceSource, which provides the client and the call layer used here."""

    api_calls: int

    def check_writeback_target(self) -> None:
        """Fail early, naming what is missing, when the org's OKR_Key_Result__c is not deployed as shipped."""
        self._ensure_writable(KR_SPEC)

    def plan_okrs(self, engine: Engine, records: OkrRecords) -> list[PlannedChange]:
        """What write_okrs would send, per object, judged from the ledger alone: no API call."""
        plan: list[PlannedChange] = []
        for kind in OKR_OBJECTS:
            spec = OKR_OBJECT_SPECS[kind]
            plan.extend(plan_rows(engine, ledger_target(SOURCE, kind), ledger_rows(spec, records.rows(kind)),
                                  kind=kind))
        return plan

    def write_okrs(self, engine: Engine, records: OkrRecords) -> WritebackResult:
        """Upsert the changed rows of every object by Key__c (objectives, key results, check-ins).

        Each object is described once per source before its first write (only the fields sent are
        required). Refused records land in `rejected` and `errors`, not in the ledger.
        """
        for kind in OKR_OBJECTS:
            _refuse_duplicate_keys(kind, records.rows(kind))
        result = WritebackResult(target=SOURCE)
        calls_before = self.api_calls
        synced = sf_datetime(datetime.now(UTC))
        for kind in OKR_OBJECTS:
            spec = OKR_OBJECT_SPECS[kind]
            rows = records.rows(kind)
            pending = pending_rows(engine, ledger_target(SOURCE, kind), ledger_rows(spec, rows))
            result.unchanged += len(rows) - len(pending)
            if not pending:  # nothing to send: not even a describe
                continue
            self._ensure_writable(spec, _fields_sent(pending))
            batches = _batches(kind, pending)
            for number, batch in enumerate(batches, start=1):
                self._write_batch(engine, spec, batch, synced, f"batch {number} of {len(batches)}", result)
        result.api_calls = self.api_calls - calls_before
        return result

    def plan_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> list[PlannedChange]:
        """plan_okrs with key results only (the flow's former entry point)."""
        return self.plan_okrs(engine, OkrRecords(key_results=rows))

    def write_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> WritebackResult:
        """write_okrs with key results only (the flow's former entry point)."""
        return self.write_okrs(engine, OkrRecords(key_results=rows))

    # -- one batch -------------------------------------------------------------------------------
    def _write_batch(self, engine: Engine, spec: OkrObjectSpec, batch: Sequence[Pending], synced: str, which: str,
                     result: WritebackResult) -> None:
        """Upsert one batch, then send again the records refused for a passing reason (a locked row).

        A lock is usually released within seconds while the next run is a day away, so after each
        wait of settings.WRITE_RETRY_WAITS those records alone go again in one call (none when there
        are none): upserts by Key__c, safe to repeat. Written rows reach the ledger after every call;
        refused ones are reported once, with their last answer, in batch order.
        """
        budget = [MAX_SPLIT_CALLS]  # one split budget for the batch and its retries
        answers = list(zip(batch, self._upsert_isolating(spec, batch, synced, which, budget), strict=True))
        self._record(engine, spec.kind, _written(answers), result)
        for attempt, wait in enumerate(settings.WRITE_RETRY_WAITS, start=1):
            again = [index for index, (_entry, outcome) in enumerate(answers) if _transient(outcome)]
            if not again:
                break
            time.sleep(wait)
            rows = [answers[index][0] for index in again]
            try:
                outcomes = self._upsert_isolating(spec, rows, synced, f"{which}, retry {attempt}", budget)
            except Exception:
                self._record(engine, spec.kind, _refused(answers), result)  # as known before this call
                raise
            for index, outcome in zip(again, outcomes, strict=True):
                answers[index] = (answers[index][0], outcome)
            self._record(engine, spec.kind, _written(list(zip(rows, outcomes, strict=True))), result)
        self._record(engine, spec.kind, _refused(answers), result)

    def _upsert_isolating(self, spec: OkrObjectSpec, batch: Sequence[Pending], synced: str, which: str,
                          budget: list[int]) -> list[dict[str, Any]]:
        """One result per row of `batch`; a call refused as a whole (400) is split in halves."""
        records = [{"attributes": {"type": spec.name}, **{name: value for name, value in row.items()
                                                          if name != "key"}, SYNCED_FIELD: synced}
                   for row, _digest in batch]
        try:
            return self._upsert(spec, records, which)
        except SalesforceMalformedRequest as error:
            refused = {"id": None, "success": False,
                       "errors": [{"statusCode": code, "message": message} for code, message in error_items(error)]
                       or [{"statusCode": f"HTTP {error.status}", "message": str(error.content)[:500]}]}
            if len(batch) == 1 or budget[0] < 2:
                return [refused] * len(batch)
            budget[0] -= 2
            half = len(batch) // 2
            return (self._upsert_isolating(spec, batch[:half], synced, f"{which}, split", budget)
                    + self._upsert_isolating(spec, batch[half:], synced, f"{which}, split", budget))

    def _upsert(self, spec: OkrObjectSpec, records: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
        """One sObject Collections upsert call (allOrNone false): a result per record, in order."""
        operation = f"upsert of {spec.name} records ({which})"
        try:
            outcomes = self._call(operation, self.client.restful, spec.collection_path, method="PATCH",
                                  json={"allOrNone": False, "records": records}) or []
        except SalesforceMalformedRequest:
            raise  # the caller splits the batch
        except SalesforceError as error:
            raise self._failure(error, operation) from None
        except requests.RequestException as error:
            raise self._transport_failure(error, operation) from None
        if len(outcomes) != len(records):
            raise ConnectorError(f"Salesforce {operation} answered {len(outcomes)} results for {len(records)} "
                                 "records; nothing of it was confirmed, the rows go again next run.")
        return outcomes

    def _record(self, engine: Engine, kind: str, answers: Sequence[Answer], result: WritebackResult) -> None:
        """Count answered rows into `result`; confirm the written ones in the ledger, keep the rejections."""
        if not answers:
            return
        written, rejections = [], []
        for (row, digest), outcome in answers:
            key = str(row["key"])
            if outcome.get("success"):
                written.append((key, digest, outcome.get("id"), row))
                if outcome.get("created"):
                    result.created += 1
                else:
                    result.updated += 1
            else:
                message = describe_errors(outcome)
                rejections.append(Rejection(kind, key, message))
                result.failed += 1
                label = "key" if kind == "key_result" else f"{_LABELS[kind]} key"
                result.errors.append(f"{label} {key}: {message}")
        result.rejected.extend(rejections)
        record_written(engine, ledger_target(SOURCE, kind), written)  # type: ignore[arg-type]
        record_rejections(engine, SOURCE, rejections, written=[(kind, key) for key, *_rest in written])


def _transient(outcome: Mapping[str, Any]) -> bool:
    """Whether a record was refused for a passing reason only (settings.TRANSIENT_WRITE_ERRORS)."""
    codes = {error.get("statusCode") for error in outcome.get("errors") or []}
    return not outcome.get("success") and bool(codes) and codes <= settings.TRANSIENT_WRITE_ERRORS


def _written(answers: Sequence[Answer]) -> list[Answer]:
    return [(entry, outcome) for entry, outcome in answers if outcome.get("success")]


def _refused(answers: Sequence[Answer]) -> list[Answer]:
    return [(entry, outcome) for entry, outcome in answers if not outcome.get("success")]


def ledger_rows(spec: OkrObjectSpec, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as sent to `spec`'s object (its fields, with `key`): what the ledger fingerprints and plans."""
    return [{"key": str(row["key"]), **okr_payload(spec, {**row, "key": str(row["key"])})} for row in rows]


def _refuse_duplicate_keys(kind: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Two rows with one key would race in one upsert call: refused before any call."""
    counts = Counter(str(row["key"]) for row in rows)
    duplicates = sorted(key for key, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate {_LABELS[kind]} keys: {', '.join(duplicates[:5])}")


def _fields_sent(pending: Sequence[Pending]) -> list[str]:
    """The fields a write sets (a lookup's `X__r` is its field `X__c`), for the pre-write check."""
    names: dict[str, None] = {EXTERNAL_ID: None, SYNCED_FIELD: None}
    for row, _digest in pending:
        names.update((name.removesuffix("__r") + "__c" if name.endswith("__r") else name, None)
                     for name in row if name != "key")
    return list(names)


def _batches(kind: str, pending: list[Pending]) -> list[list[Pending]]:
    """Calls of at most 200 records; objectives in waves by depth, so a parent is saved before its children.

    Depth counts only parents written in this run (others are in the org already, or missing,
    which the org reports per record); a cycle is cut where it is found.
    """
    waves: list[list[Pending]] = [pending]
    if kind == "objective":
        parent_of = {str(row["key"]): _parent_key(row) for row, _digest in pending}
        depth: dict[str, int] = {}

        def depth_of(key: str, seen: frozenset[str] = frozenset()) -> int:
            if key not in depth:
                parent = parent_of.get(key)
                depth[key] = 0 if parent not in parent_of or parent in seen else \
                    depth_of(parent, seen | {key}) + 1  # type: ignore[arg-type]
            return depth[key]

        levels = [depth_of(str(row["key"])) for row, _digest in pending]
        waves = [[entry for entry, level in zip(pending, levels, strict=True) if level == wave]
                 for wave in range(max(levels) + 1)]
    return [wave[start:start + WRITE_BATCH_SIZE] for wave in waves for start in range(0, len(wave), WRITE_BATCH_SIZE)]


def _parent_key(row: Mapping[str, Any]) -> str | None:
    parent = row.get("Parent_Objective__r")
    return str(parent[EXTERNAL_ID]) if isinstance(parent, Mapping) else None
