"""Bulk API 2.0 query jobs of the sandbox's Salesforce face (what ``sf.bulk2.<Object>.query`` talks to).

``POST /jobs/query`` compiles the SOQL with the sandbox's compiler and snapshots the whole result
into a TEMP table at once, so results never change when records are written while the job runs.
A job then reports ``UploadComplete``, ``InProgress`` ... and ``JobComplete`` on later GETs:
``BULK_POLLS_META_KEY`` (default DEFAULT_POLLS_TO_COMPLETE) says on which GET it completes, 0
meaning the first. Results before completion answer 412 ``JOB_NOT_COMPLETE``; results are CSV as
Salesforce writes them (every value quoted, booleans ``true`` / ``false``, an empty value for
null, datetimes in the REST wire format), ``maxRecords`` rows at a time with the
``Sforce-NumberOfRecords`` and ``Sforce-Locator`` headers (the literal ``null`` on the last
chunk). Each job's GET count is kept in the state's meta (``job_polls``), so tests can check how
often a client polled.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox import soql
from connectors.sandbox.salesforce_query import wire_value  # the REST converters, one definition
from connectors.sandbox.salesforce_schema import SCHEMAS, ApiError
from connectors.sandbox.state import SandboxState

BULK_POLLS_META_KEY = "salesforce.bulk.polls_to_complete"
JOB_POLLS_META_KEY = "salesforce.bulk.job_polls"
DEFAULT_POLLS_TO_COMPLETE = 2  # UploadComplete at creation, InProgress on GET 1, JobComplete on GET 2
OPERATIONS = ("query", "queryAll")
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
MAX_JOBS = 16  # snapshots kept; older jobs are dropped (a real org keeps results 7 days)


def set_polls_to_complete(state: SandboxState, polls: int) -> None:
    """Jobs created from now on report JobComplete on GET number `polls` (0: on the first GET)."""
    state.set_meta(BULK_POLLS_META_KEY, str(int(polls)))


def job_polls(state: SandboxState) -> dict[str, int]:
    """GET /jobs/query/{id} calls served so far, per job id."""
    raw = state.get_meta(JOB_POLLS_META_KEY)
    return json.loads(raw) if raw else {}


def _csv_value(spec: soql.FieldSpec, value: Any, wire: Any) -> str:
    if value is None:
        return ""
    converted = wire(value)
    if isinstance(converted, bool):
        return "true" if converted else "false"
    if isinstance(converted, float) and converted.is_integer() and spec.type == "int":
        return str(int(converted))
    return str(converted)


@dataclass
class _Job:
    info: dict[str, Any]
    table: str
    compiled: soql.CompiledQuery
    total: int
    polls_to_complete: int
    polls: int = 0


class BulkQueryJobs:
    """The org's query jobs; every method raises ApiError with Salesforce's codes."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._counter = 0

    def create(self, version: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        operation, text = body.get("operation"), body.get("query")
        if operation not in OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"Invalid operation for a query job: {operation!r}")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "INVALIDJOB", "A query job needs a SOQL query")
        if body.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "contentType must be CSV")
        if body.get("columnDelimiter", "COMMA") != "COMMA":
            raise ApiError(400, "INVALIDJOB", "the sandbox supports columnDelimiter COMMA only")
        line_ending = body.get("lineEnding", "LF")
        if line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", f"Invalid lineEnding: {line_ending!r}")
        try:
            compiled = soql.compile_soql(text, SCHEMAS, operation == "queryAll", now=self.state.local_clock)
        except soql.SoqlError as error:
            raise ApiError(400, error.code, error.message) from error
        if compiled.count_only:
            raise ApiError(400, "INVALIDJOB", "Aggregate queries (COUNT()) are not supported by Bulk API 2.0")
        raw_polls = self.state.get_meta(BULK_POLLS_META_KEY)
        polls_to_complete = int(raw_polls) if raw_polls else DEFAULT_POLLS_TO_COMPLETE
        with self._lock:
            self._counter += 1
            job_id = f"750SB{self._counter:010d}AAA"
            table = f"sf_bulk_{self._counter}"
            sql, params = compiled.select()
            self.state.query(f"CREATE TEMP TABLE {table} AS {sql}", params)  # the snapshot
            total = self.state.query(f"SELECT COUNT(*) FROM temp.{table}")[0][0]
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
            info = {"id": job_id, "operation": operation, "object": compiled.sobject.name,
                    "createdById": "005SB0000000001AAA", "createdDate": now, "systemModstamp": now,
                    "state": "UploadComplete", "concurrencyMode": "Parallel", "contentType": "CSV",
                    "apiVersion": float(version.lstrip("v")), "lineEnding": line_ending,
                    "columnDelimiter": "COMMA"}
            self._jobs[job_id] = _Job(info, table, compiled, total, polls_to_complete)
            while len(self._jobs) > MAX_JOBS:
                self._drop(next(iter(self._jobs)))
            if polls_to_complete < 0:  # never completes: for tests of 412 and abort
                self._jobs[job_id].polls_to_complete = 1 << 30
        return dict(info)

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def poll(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._job(job_id)
            job.polls += 1
            if job.info["state"] in ("UploadComplete", "InProgress"):
                done = job.polls >= job.polls_to_complete
                job.info["state"] = "JobComplete" if done else "InProgress"
            polls = job_polls(self.state)
            polls[job_id] = job.polls
            self.state.set_meta(JOB_POLLS_META_KEY, json.dumps(polls))
            complete = job.info["state"] == "JobComplete"
            return {**job.info, "jobType": "V2Query", "numberRecordsProcessed": job.total if complete else 0,
                    "retries": 0, "totalProcessingTime": 0, "isPkChunkingSupported": True}

    def abort(self, job_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE", "A query job can only be set to Aborted")
        with self._lock:
            job = self._job(job_id)
            if job.info["state"] in ("JobComplete", "Failed", "Aborted"):
                raise ApiError(400, "INVALIDJOBSTATE", f"Job is already {job.info['state']}")
            job.info["state"] = "Aborted"
            return dict(job.info)

    def delete(self, job_id: str) -> None:
        with self._lock:
            job = self._job(job_id)
            if job.info["state"] in ("UploadComplete", "InProgress"):
                raise ApiError(400, "INVALIDJOBSTATE", "Abort the job before deleting it")
            self._drop(job_id)

    def expire(self, job_id: str) -> None:
        """The job's results are gone, as when Salesforce deletes a job whose results expired.

        Bulk API 2.0 locators themselves never expire: "As long as the associated job exists, the
        locator string for a set of results does not change" (Get Results for a Query Job). What
        does expire is the job: Salesforce keeps query results 7 days, then deletes the job, and
        every later request for it, results with any locator included, answers the job's 404
        ``[{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]``. So
        the fault plan's locator expiry on a results request drops the job (see salesforce_api).
        """
        with self._lock:
            self._drop(job_id)

    def _drop(self, job_id: str) -> None:
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self.state.query(f"DROP TABLE IF EXISTS temp.{job.table}")

    def results(self, job_id: str, locator: str | None, max_records: str | None) -> tuple[str, int, str]:
        """(CSV text, number of records, next locator or "null") of one results chunk."""
        with self._lock:
            job = self._job(job_id)
            if job.info["state"] == "Aborted":
                raise ApiError(400, "INVALIDJOBSTATE", "Job is Aborted: it has no results")
            if job.info["state"] != "JobComplete":
                raise ApiError(412, "JOB_NOT_COMPLETE", "Job is not complete yet; poll its state first")
            offset = _decode_locator(locator) if locator else 0
            if max_records in (None, ""):
                limit = job.total
            elif max_records.isascii() and max_records.isdecimal() and int(max_records) > 0:
                limit = int(max_records)
            else:
                raise ApiError(400, "INVALIDJOB", f"maxRecords must be a positive integer, got {max_records!r}")
            rows = self.state.query(f"SELECT * FROM temp.{job.table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                    (offset, limit))
            compiled, line_ending = job.compiled, LINE_ENDINGS[job.info["lineEnding"]]
        converters = [(spec, wire_value(spec)) for spec in compiled.fields]
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator=line_ending)
        writer.writerow([spec.name for spec in compiled.fields])
        for row in rows:
            writer.writerow([_csv_value(spec, row[index], convert)
                             for index, (spec, convert) in enumerate(converters, start=1)])
        end = offset + len(rows)
        next_locator = _encode_locator(end) if end < job.total else "null"
        return buffer.getvalue(), len(rows), next_locator


def _encode_locator(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    try:
        text = base64.urlsafe_b64decode(locator + "=" * (-len(locator) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not (text.isascii() and text.isdecimal()):
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
    return int(text)
