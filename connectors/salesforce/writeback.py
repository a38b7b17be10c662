"""Writeback of key results into OKR_Key_Result__c: the part of SalesforceSource that writes.

Upserts by the external key only (a retry never duplicates a row), 200 records per sObject
Collections call, and only rows whose content changed since the last confirmed write (ledger).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceResourceNotFound
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.ledger import PlannedChange, pending_rows, plan_rows, record_written
from connectors.results import WritebackResult
from connectors.salesforce.helpers import SOURCE, describe_errors, kr_payload, sf_datetime
from connectors.salesforce.settings import (
    KR_COLLECTION_PATH,
    KR_EXTERNAL_ID,
    KR_FIELDS,
    KR_OBJECT,
    KR_SYNCED_FIELD,
    WRITE_BATCH_SIZE,
)


class KeyResultWriter:
    """Mixed into SalesforceSource, which provides the client and the call layer used here."""

    client: Salesforce
    _target_checked: bool
    api_calls: int
    _call: Callable[..., Any]
    _failure: Callable[[SalesforceError, str], ConnectorError]
    _transport_failure: Callable[[requests.RequestException, str], ConnectorError]

    def check_writeback_target(self) -> None:
        """Fail early, naming what is missing, when the org lacks the deployed KR custom object."""
        try:
            describe = self._call(f"describe of {KR_OBJECT}", self.client.restful, f"sobjects/{KR_OBJECT}/describe")
        except SalesforceResourceNotFound:
            raise ConnectorError(
                f"Salesforce object {KR_OBJECT} does not exist in this org: deploy "
                "connectors/salesforce/metadata (see its README.md) before writing key results.") from None
        except SalesforceError as error:
            raise self._failure(error, f"describe of {KR_OBJECT}") from None
        except requests.RequestException as error:
            raise self._transport_failure(error, f"describe of {KR_OBJECT}") from None
        fields = {field["name"]: field for field in (describe or {}).get("fields", [])}
        problems = []
        missing = [name for name in KR_FIELDS if name not in fields]
        if missing:
            problems.append("missing fields " + ", ".join(missing))
        key = fields.get(KR_EXTERNAL_ID)
        if key is not None and not (key.get("externalId") and key.get("unique")):
            problems.append(f"{KR_EXTERNAL_ID} must be an External ID marked Unique")
        read_only = [name for name in KR_FIELDS if name in fields and not fields[name].get("updateable")]
        if read_only:
            problems.append("fields not writable by this user: " + ", ".join(read_only))
        if problems:
            raise ConnectorError(f"Salesforce object {KR_OBJECT} is not ready for writeback: "
                                 + "; ".join(problems) + " (deploy connectors/salesforce/metadata).")
        self._target_checked = True

    def plan_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> list[PlannedChange]:
        """What write_key_results would do with `rows`, judged from the ledger alone: no API call."""
        return plan_rows(engine, SOURCE, _ledger_rows(rows))

    def write_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> WritebackResult:
        """Upsert changed KR rows by Key__c, 200 per call; rejected rows are sent again next run."""
        counts = Counter(str(row["key"]) for row in rows)
        duplicates = sorted(key for key, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate key result keys: {', '.join(duplicates[:5])}")
        result = WritebackResult(target=SOURCE)
        calls_before = self.api_calls
        pending = pending_rows(engine, SOURCE, _ledger_rows(rows))
        result.unchanged = len(rows) - len(pending)
        if pending and not self._target_checked:  # a run with nothing to write costs no call at all
            self.check_writeback_target()
        synced = sf_datetime(datetime.now(UTC))
        batches = -(-len(pending) // WRITE_BATCH_SIZE)
        for number, start in enumerate(range(0, len(pending), WRITE_BATCH_SIZE), start=1):
            batch = pending[start:start + WRITE_BATCH_SIZE]
            records = [{"attributes": {"type": KR_OBJECT}, **{name: value for name, value in row.items()
                                                              if name != "key"}, KR_SYNCED_FIELD: synced}
                       for row, _digest in batch]
            outcomes = self._upsert(records, f"batch {number} of {batches}")
            record_written(engine, SOURCE, _tally(batch, outcomes, result))
        result.api_calls = self.api_calls - calls_before
        return result

    def _upsert(self, records: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
        """One sObject Collections upsert call (allOrNone false): a result per record, in order."""
        try:
            return self._call(f"upsert of {KR_OBJECT} records ({which})", self.client.restful,
                              KR_COLLECTION_PATH, method="PATCH",
                              json={"allOrNone": False, "records": records}) or []
        except SalesforceError as error:
            raise self._failure(error, f"upsert of {KR_OBJECT} records ({which})") from None
        except requests.RequestException as error:
            raise self._transport_failure(error, f"upsert of {KR_OBJECT} records ({which})") from None


def _ledger_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KR rows as sent to Salesforce (OKR_Key_Result__c fields, with `key`)."""
    return [{"key": str(row["key"]), **kr_payload(row)} for row in rows]


def _tally(batch: list[tuple[Mapping[str, Any], str]], outcomes: list[dict[str, Any]],
           result: WritebackResult) -> list[tuple[str, str, str | None, Mapping[str, Any]]]:
    """Count one batch's outcomes into `result`; returns the confirmed (key, digest, id, payload) writes."""
    written = []
    for (row, digest), outcome in zip(batch, outcomes, strict=True):
        if outcome.get("success"):
            written.append((row["key"], digest, outcome.get("id"), row))
            if outcome.get("created"):
                result.created += 1
            else:
                result.updated += 1
        else:
            result.failed += 1
            result.errors.append(f"key {row['key']}: {describe_errors(outcome)}")
    return written
