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

import codecs
import csv
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError, SalesforceResourceNotFound

from connectors.incremental import Cursor, later
from connectors.salesforce.helpers import RETRY_ATTEMPTS, bulk_soql, csv_record, parse_datetime
from connectors.salesforce.settings import BULK_JOB_TIMEOUT_SECONDS, BULK_POLL_MAX_SECONDS, StreamSpec

Page = tuple[list[dict[str, Any]], Cursor]
JSON = "application/json"
CSV = "text/csv"
DONE, ENDED = "JobComplete", ("Failed", "Aborted")
STREAM_PIECE_BYTES = 1 << 16  # a results chunk is decoded and parsed 64 KiB at a time
# what a connection lost while a chunk streams raises from iter_content (requests wraps urllib3's)
READ_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


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
            rows, locator = self._results_chunk(operation, job_id, locator)
            for row in rows:
                record = csv_record(row, self._csv_types)
                newest = later(newest, Cursor(parse_datetime(record["SystemModstamp"]), record["Id"]))
                if len(held) == self.query_batch_size:
                    yield held, cursor
                    held = []
                held.append(record)
            if not locator:
                break
        yield held, newest

    def _results_chunk(self, operation: str, job_id: str, locator: str) -> tuple[Iterator[dict[str, str]], str]:
        """One results call: (its CSV rows, read as they arrive; the next chunk's locator or "").

        The chunk is never held whole (up to bulk_max_records rows: hundreds of MB on a wide object).
        A connection lost while the rows stream asks for the same chunk again (the same locator
        returns the same rows) and skips the rows already taken, at most RETRY_ATTEMPTS times.
        """
        try:
            response, following = self._call(operation, self._query_results, job_id, locator)
        except SalesforceResourceNotFound:
            raise BulkJobGone(job_id) from None

        def rows() -> Iterator[dict[str, str]]:
            current, taken, attempts = response, 0, 1
            try:
                while True:
                    try:
                        for seen, row in enumerate(csv.DictReader(_text_lines(current)), 1):
                            if seen > taken:
                                taken = seen
                                yield row
                        return
                    except READ_ERRORS:
                        current.close()
                        if attempts >= RETRY_ATTEMPTS:
                            raise
                        attempts += 1
                        try:
                            current, _ = self._call(operation, self._query_results, job_id, locator)
                        except SalesforceResourceNotFound:
                            raise BulkJobGone(job_id) from None
            finally:
                current.close()

        return rows(), following

    def _wait_for_job(self, operation: str, job_id: str) -> None:
        """Poll the job until it completes: the first poll after bulk_poll_seconds, each later wait
        twice the one before, up to BULK_POLL_MAX_SECONDS (a small job is read soon, a long one
        costs few polls).

        A job that failed or was aborted, or is still running after BULK_JOB_TIMEOUT_SECONDS, is a
        SalesforceOperationError (as simple-salesforce raises it).
        """
        deadline = time.monotonic() + BULK_JOB_TIMEOUT_SECONDS
        wait = self.bulk_poll_seconds
        while True:
            time.sleep(wait)
            wait = min(wait * 2, max(self.bulk_poll_seconds, BULK_POLL_MAX_SECONDS))
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

    def _query_results(self, job_id: str, locator: str) -> tuple[requests.Response, str]:
        """GET jobs/query/{id}/results: (the streamed response, locator of the next chunk or "" after the last)."""
        params: dict[str, Any] = {"maxRecords": self.bulk_max_records}
        if locator:
            params["locator"] = locator
        response = self._bulk_request("GET", f"query/{job_id}/results", CSV, params=params, stream=True)
        following = response.headers.get("Sforce-Locator", "")
        return response, "" if following == "null" else following

    def _bulk_request(self, method: str, path: str, accept: str, **kwargs: Any) -> requests.Response:
        """One request under jobs/ with the client's current headers; an error status raises the
        SalesforceError of simple-salesforce's exception_handler (401: SalesforceExpiredSession)."""
        return self.client._call_salesforce(method, self.client.bulk2_url + path, headers={"Accept": accept},
                                            **kwargs)


def _text_lines(response: requests.Response) -> Iterator[str]:
    """The response body as UTF-8 lines ending in "\\n" (csv reads a quoted line break across them),
    NULs dropped as simple-salesforce drops them, decoded piece by piece as the body arrives."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    tail = ""
    for piece in response.iter_content(STREAM_PIECE_BYTES):
        lines = (tail + decoder.decode(piece).replace("\x00", "")).split("\n")
        tail = lines.pop()
        for line in lines:
            yield line + "\n"
    tail += decoder.decode(b"", final=True).replace("\x00", "")
    if tail:
        yield tail
