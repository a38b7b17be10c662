"""Bulk API 2.0 query jobs: the part of SalesforceSource that reads a large stream's rest.

One queryAll job per stream read, driven here as its three REST calls (see settings for the cost
and the cursor): create (POST jobs/query), status polls (GET jobs/query/{id}) until JobComplete,
then one results call per CSV chunk (GET jobs/query/{id}/results, maxRecords and locator). Every
one of them goes through the source's call layer (`_call`), as a REST query does: the quota guard
before each attempt, transient failures (429, 5xx, the concurrency limit, dropped connections)
retried with helpers.with_retry, and with refresh-token credentials an expired session renewed
once and the same step sent again. Each attempt reads the client's current headers, so a renewed
token is used from the next request on; simple-salesforce's own bulk2 handler copies the session
id when it is built, so a job it ran would go on with the expired one. Requests are sent by the
client's `_call_salesforce`, the one simple-salesforce's REST calls use: a username/password or
client-credentials client logs in again on INVALID_SESSION_ID in the Bulk path too.

Repeating a step is safe: a status poll reads, and a results call with the same locator returns
the same chunk. A job creation whose answer was lost (a dropped connection) is sent again and
leaves one unused job in the org, which Salesforce deletes after 7 days.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError, SalesforceResourceNotFound

from connectors.incremental import Cursor, later
from connectors.salesforce.helpers import bulk_soql, csv_record, parse_datetime
from connectors.salesforce.settings import BULK_JOB_TIMEOUT_SECONDS, StreamSpec

Page = tuple[list[dict[str, Any]], Cursor]
JSON = "application/json"
CSV = "text/csv"
DONE, ENDED = "JobComplete", ("Failed", "Aborted")


class BulkJobGone(Exception):
    """The job disappeared mid-read (Salesforce deletes jobs after 7 days, or an admin did): the read
    restarts from the last committed cursor with a new job, like an expired query locator."""


class BulkQueryReader:
    """Mixed into SalesforceSource, which provides the client, the call layer and the page sizes."""

    client: Salesforce
    query_batch_size: int
    bulk_max_records: int
    bulk_poll_seconds: float
    _csv_types: dict[str, str]
    _call: Callable[..., Any]

    def _bulk_pages(self, spec: StreamSpec, cursor: Cursor) -> Iterator[Page]:
        """The records after `cursor` from one Bulk 2.0 queryAll job, in pages of query_batch_size.

        The job's CSV is unordered (no ORDER BY, see settings): every page keeps `cursor` but the
        last, which carries the greatest (SystemModstamp, Id) the job returned. Each results call
        is made only once the pages before it were taken (and stored) by the caller.
        """
        operation = f"Bulk API 2.0 query of {spec.sobject}"
        job_id = self._call(operation, self._create_query_job, bulk_soql(spec, cursor))
        try:
            self._wait_for_job(operation, job_id)
        except SalesforceResourceNotFound:
            raise BulkJobGone(job_id) from None
        newest = cursor
        held: list[dict[str, Any]] = []  # one page held back: only the job's last page moves the cursor
        locator = ""
        while True:
            try:
                text, locator = self._call(operation, self._query_results, job_id, locator)
            except SalesforceResourceNotFound:
                raise BulkJobGone(job_id) from None
            for row in csv.DictReader(io.StringIO(text)):
                record = csv_record(row, self._csv_types)
                newest = later(newest, Cursor(parse_datetime(record["SystemModstamp"]), record["Id"]))
                if len(held) == self.query_batch_size:
                    yield held, cursor
                    held = []
                held.append(record)
            if not locator:
                break
        yield held, newest

    def _wait_for_job(self, operation: str, job_id: str) -> None:
        """Poll the job every bulk_poll_seconds (the first poll after one wait) until it completes.

        A job that failed or was aborted, or is still running after BULK_JOB_TIMEOUT_SECONDS, is a
        SalesforceOperationError (as simple-salesforce raises it).
        """
        deadline = time.monotonic() + BULK_JOB_TIMEOUT_SECONDS
        while True:
            time.sleep(self.bulk_poll_seconds)
            info = self._call(operation, self._query_job, job_id)
            state = info.get("state")
            if state == DONE:
                return
            if state in ENDED:
                detail = info.get("errorMessage") or "no error message"
                raise SalesforceOperationError(f"job {job_id} ended {state}: {detail}")
            if time.monotonic() > deadline:
                raise SalesforceOperationError(
                    f"job {job_id} still {state} after {BULK_JOB_TIMEOUT_SECONDS} seconds")

    # -- the three requests: one attempt each, sent again by _call ---------------------------------
    def _create_query_job(self, soql: str) -> str:
        """POST jobs/query: a queryAll job (deleted rows included, as the REST path reads); its id."""
        body = {"operation": "queryAll", "query": soql, "contentType": "CSV", "columnDelimiter": "COMMA",
                "lineEnding": "LF"}
        response = self._bulk_request("POST", "query", JSON, data=json.dumps(body))
        return str(response.json()["id"])

    def _query_job(self, job_id: str) -> dict[str, Any]:
        """GET jobs/query/{id}: the job's info (its state and, when it failed, errorMessage)."""
        info = self._bulk_request("GET", f"query/{job_id}", JSON).json()
        return info if isinstance(info, dict) else {}

    def _query_results(self, job_id: str, locator: str) -> tuple[str, str]:
        """GET jobs/query/{id}/results: (CSV text, locator of the next chunk or "" after the last)."""
        params: dict[str, Any] = {"maxRecords": self.bulk_max_records}
        if locator:
            params["locator"] = locator
        response = self._bulk_request("GET", f"query/{job_id}/results", CSV, params=params)
        following = response.headers.get("Sforce-Locator", "")
        text = response.content.decode("utf-8").replace("\x00", "")  # as simple-salesforce reads it
        return text, "" if following == "null" else following

    def _bulk_request(self, method: str, path: str, accept: str, **kwargs: Any) -> requests.Response:
        """One request under jobs/ with the client's current headers; an error status raises the
        SalesforceError of simple-salesforce's exception_handler (401: SalesforceExpiredSession)."""
        return self.client._call_salesforce(method, self.client.bulk2_url + path, headers={"Accept": accept},
                                            **kwargs)
