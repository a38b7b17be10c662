"""The read side of the sandbox's Salesforce REST API: query / queryAll / queryMore and deleted/.

Split from connectors.sandbox.salesforce_api (which routes requests) so the query machinery reads
on its own: `QueryService` compiles SOQL (connectors.sandbox.soql), answers a single page straight
away and otherwise snapshots the whole result into a TEMP table behind a server-side cursor, so
queryMore pages never shift when records are written between pages; `wire_value` renders stored
values as the REST API (and the Bulk API's CSV) serves them; `deleted_records` answers the
replication resource /sobjects/{O}/deleted/; `ensure_indexes` indexes SystemModstamp for
incremental scans.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request

from connectors.sandbox import soql
from connectors.sandbox.ids import sf_id
from connectors.sandbox.salesforce_schema import MODSTAMP_SQL, SCHEMAS, SOBJECTS, ApiError
from connectors.sandbox.state import SandboxState

DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
OPEN_CURSORS = 16
REPLICATION_DAYS = 15  # how far back /sobjects/{O}/deleted/ reaches from the org's clock
# Objects the deleted/ resource serves (lower-case name -> the table or view their rows live in)
REPLICATED = {schema.name.lower(): schema.table for schema in SOBJECTS if not schema.custom and schema.name != "User"}
# Tables whose SystemModstamp (whole seconds) and id the API indexes for incremental ORDER BY scans
MODSTAMP_TABLES = ("owners", "accounts", "deals", "calls", "emails", "products", "line_items", "meetings", "leads",
                   "cases", "campaigns")


def wire_datetime(seconds: float) -> str:
    """Salesforce's datetime wire format; the org stores whole seconds, as a real org shows .000."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def wire_value(spec: soql.FieldSpec) -> Callable[[Any], Any]:
    """How one field's stored value is served (REST JSON; Bulk CSV writes it as text)."""
    if spec.type in soql.ID_TYPES:
        target = spec.reference_to or ""
        return lambda value: sf_id(target, int(value))
    converters: dict[str, Callable[[Any], Any]] = {
        "boolean": bool, "datetime": wire_datetime, "double": float, "currency": float, "percent": float,
        "int": int}
    return converters.get(spec.type, lambda value: value)


@dataclass
class _Cursor:
    table: str
    compiled: soql.CompiledQuery
    total: int
    batch_size: int


class _Cursors:
    """Open query cursors. Each is a TEMP table of the whole result taken when the query ran, so
    queryMore pages never shift or change when records are written between pages."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._open: OrderedDict[str, _Cursor] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = 0

    def open(self, compiled: soql.CompiledQuery, batch_size: int) -> tuple[str, _Cursor]:
        with self._lock:
            self._counter += 1
            locator = f"01gSB{self._counter:010d}"
            table = f"sf_cursor_{self._counter}"
            sql, params = compiled.select()
            self.state.query(f"CREATE TEMP TABLE {table} AS {sql}", params)
            total = self.state.query(f"SELECT COUNT(*) FROM temp.{table}")[0][0]
            self._open[locator] = cursor = _Cursor(table, compiled, total, batch_size)
            while len(self._open) > OPEN_CURSORS:
                self._drop(next(iter(self._open)))
            return locator, cursor

    def get(self, locator: str) -> _Cursor:
        with self._lock:
            cursor = self._open.get(locator)
            if cursor is None:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            self._open.move_to_end(locator)
            return cursor

    def rows(self, cursor: _Cursor, start: int) -> list[Any]:
        return self.state.query(f"SELECT * FROM temp.{cursor.table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                (start, cursor.batch_size))

    def close(self, locator: str) -> None:
        with self._lock:
            self._drop(locator)

    def _drop(self, locator: str) -> None:
        cursor = self._open.pop(locator, None)
        if cursor is not None:
            self.state.query(f"DROP TABLE IF EXISTS temp.{cursor.table}")


class QueryService:
    """query / queryAll / queryMore: compile, probe, snapshot when there is more than one page."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.cursors = _Cursors(state)

    def run(self, version: str, text: str, include_deleted: bool, batch_size: int) -> dict[str, Any]:
        try:
            compiled = soql.compile_soql(text, SCHEMAS, include_deleted, now=self.state.local_clock)
        except soql.SoqlError as error:
            raise ApiError(400, error.code, error.message) from error
        if compiled.count_only:
            sql, params = compiled.count()
            return {"totalSize": self.state.query(sql, params)[0][0], "done": True, "records": []}
        sql, params = compiled.select(cap=batch_size + 1)
        rows = self.state.query(sql, params)
        if len(rows) <= batch_size:
            return self._page(version, compiled, rows, len(rows), None)
        locator, cursor = self.cursors.open(compiled, batch_size)
        return self._more(version, locator, cursor, 0)

    def more(self, version: str, locator_with_offset: str, expire: bool = False) -> dict[str, Any]:
        """A queryMore page. `expire` (the fault plan's locator expiry) evicts the cursor first, so
        this request and every later one with its locator answer as an expired cursor does."""
        locator, _, offset = locator_with_offset.rpartition("-")
        if not offset.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        if expire:
            self.cursors.close(locator)
        return self._more(version, locator, self.cursors.get(locator), int(offset))

    def _more(self, version: str, locator: str, cursor: _Cursor, offset: int) -> dict[str, Any]:
        rows = self.cursors.rows(cursor, offset)
        end = offset + len(rows)
        if end >= cursor.total:
            self.cursors.close(locator)
            return self._page(version, cursor.compiled, rows, cursor.total, None)
        return self._page(version, cursor.compiled, rows, cursor.total,
                          f"/services/data/{version}/query/{locator}-{end}")

    @staticmethod
    def _page(version: str, compiled: soql.CompiledQuery, rows: list[Any], total: int,
              next_url: str | None) -> dict[str, Any]:
        render = _renderer(version, compiled)
        records = [render(row) for row in rows]
        page: dict[str, Any] = {"totalSize": total, "done": next_url is None}
        if next_url is not None:
            page["nextRecordsUrl"] = next_url
        page["records"] = records
        return page


def _renderer(version: str, compiled: soql.CompiledQuery) -> Callable[[Any], dict[str, Any]]:
    """How one result row becomes a REST record: attributes, then the selected fields in order.

    A parent's fields selected through a relationship nest under the relationship's name with the
    parent's attributes, or the relationship is null when the record has no parent, as Salesforce
    answers them: ``"Product2": {"attributes": {"type": "Product2", "url": ...}, "Name": ...}``.
    """
    sobject = compiled.sobject
    base = f"/services/data/{version}/sobjects/"
    id_wire = wire_value(sobject.id_field)
    parent_column = {name: (1 + len(compiled.fields) + position, target)
                     for position, (name, target, _sql) in enumerate(compiled.relationships)}
    columns = [(index, spec.relationship, spec.name.partition(".")[2] if spec.relationship else spec.name,
                wire_value(spec)) for index, spec in enumerate(compiled.fields, start=1)]

    def render(row: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"attributes": {"type": sobject.name,
                                                 "url": f"{base}{sobject.name}/{id_wire(row[0])}"}}
        for index, relationship, name, convert in columns:
            value = None if row[index] is None else convert(row[index])
            if relationship is None:
                record[name] = value
                continue
            if relationship not in record:
                column, target = parent_column[relationship]
                parent_id = row[column]
                record[relationship] = None if parent_id is None else {
                    "attributes": {"type": target, "url": f"{base}{target}/{sf_id(target, int(parent_id))}"}}
            if record[relationship] is not None:
                record[relationship][name] = value
        return record

    return render


def ensure_indexes(state: SandboxState) -> None:
    """Index SystemModstamp as served (whole seconds) with the id, for incremental ORDER BY scans."""
    for table in MODSTAMP_TABLES:
        state.query(f"CREATE INDEX IF NOT EXISTS sf_ix_{table}_modstamp ON {table} (({MODSTAMP_SQL}), id)")


def requested_batch_size(request: Request) -> int:
    match = re.search(r"batchSize\s*=\s*(\d+)", request.headers.get("Sforce-Query-Options", ""))
    return min(max(int(match.group(1)), MIN_BATCH), MAX_BATCH) if match else DEFAULT_BATCH


def _replication_moment(name: str, raw: str | None) -> datetime:
    """A start/end parameter of the replication resources: ISO 8601, UTC when no offset is given."""
    if not raw:
        raise ApiError(400, "MISSING_ARGUMENT", f"{name} parameter not specified")
    try:
        moment = datetime.fromisoformat(raw.strip().replace(" ", "+"))  # an unescaped '+' arrives as ' '
    except ValueError as error:
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"{name} is not a valid date: {raw}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def deleted_records(state: SandboxState, sobject: str, start_raw: str | None, end_raw: str | None
                    ) -> dict[str, Any]:
    """GET /sobjects/{O}/deleted/: records flagged deleted whose deletion (modified time) lies in
    [start, end], reaching at most REPLICATION_DAYS back from the org's clock."""
    schema = SCHEMAS.get(sobject.lower())
    deleted_field = schema.field("IsDeleted") if schema is not None else None
    if schema is None or deleted_field is None or sobject.lower() not in REPLICATED:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    start, end = _replication_moment("start", start_raw), _replication_moment("end", end_raw)
    clock = state.clock.astimezone(UTC)
    earliest = (clock - timedelta(days=REPLICATION_DAYS)).replace(second=0, microsecond=0)
    if start < earliest:
        raise ApiError(400, "INVALID_REPLICATION_DATE",
                       f"startDate cannot be more than {REPLICATION_DAYS} days ago")
    if start >= end:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    latest = min(end, clock).replace(second=0, microsecond=0)  # coverage ends on a whole minute
    rows = state.query(f"SELECT {schema.id_field.sql} AS id, modified_ms FROM {schema.table}"
                       f" WHERE ({schema.base_where}) AND ({deleted_field.sql}) = 1 AND modified_ms >= ?"
                       " AND modified_ms < ? ORDER BY modified_ms, id",
                       (int(start.timestamp() * 1000), int(latest.timestamp() * 1000)))
    return {"deletedRecords": [{"id": sf_id(schema.name, row["id"]),
                                "deletedDate": wire_datetime(row["modified_ms"] / 1000)} for row in rows],
            "earliestDateAvailable": wire_datetime(earliest.timestamp()),
            "latestDateCovered": wire_datetime(latest.timestamp())}
