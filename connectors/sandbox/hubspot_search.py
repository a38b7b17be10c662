"""Reads of the sandbox HubSpot portal: search requests compiled to SQLite, list pages, lookups.

Search filters become a WHERE clause over the sandbox tables with bound parameters only (SQL
text comes from the catalogue, never from the request), so a search over a million deals
uses the (modified_ms, id) index instead of scanning rows in Python.

Ordering: results follow the requested sort. HubSpot documents no order among records that
tie on the sort value, so the sandbox deliberately breaks ties in an order that is NOT id
order (a deterministic scramble of the id, `TIE_ORDER_SQL`): a connector that assumes tied
records come back in id order, e.g. one paging with a (timestamp, id) cursor under a
timestamp-only sort, loses records here as it would against HubSpot, and its tests fail.
Sorting by hs_object_id is a total order (ids are unique); without a sort, results come in id
order. `after` is an offset into that order.

Index lag (a FaultPlan's `index_lag_ms`, connectors.sandbox.faults): search, and search only, sees
a record once the wall clock reaches its modification time plus `index_delay_ms` of it, a delay
in [0, index_lag_ms] fixed by a hash of the record's number and modification time (the SQL twin,
`_indexed_sql`, is what search filters on). `total` counts only what the index already shows.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from connectors.sandbox.faults import RequestFaults
from connectors.sandbox.hubspot_objects import ObjectType, PropertyDef, iso_from_ms, ms_from_text
from connectors.sandbox.state import SandboxState

MAX_FILTER_GROUPS = 5
MAX_FILTERS = 25
MAX_SEARCH_LIMIT = 200
COMPARISONS = {"EQ": "=", "NEQ": "!=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}
# Tie order: Knuth's multiplicative hash of the id (a bijection below 2**32, so still total).
TIE_MULTIPLIER, TIE_MODULUS = 2654435761, 1 << 32
TIE_ORDER_SQL = f"(id * {TIE_MULTIPLIER}) % {TIE_MODULUS}"


# Index lag: a hash of (record number, modification ms) spread over [0, lag]. The factors keep the
# sum within SQLite's 64-bit integers for ids below 10**9 and timestamps far past year 3000.
LAG_ID_FACTOR, LAG_STAMP_FACTOR, LAG_MODULUS = 2654435761, 40503, 1_000_003


def tie_rank(number: int) -> int:
    """Where a record falls among ties on the sort value (the Python twin of TIE_ORDER_SQL)."""
    return (number * TIE_MULTIPLIER) % TIE_MODULUS


def index_delay_ms(number: int, modified_ms: int, lag_ms: int) -> int:
    """How long after its modification a record stays out of search, under an index lag of `lag_ms`.

    `number` is the record's row number (its HubSpot id less the type's id offset). The Python
    twin of `_indexed_sql`, so tests can pick records whose delays come in the order they need.
    """
    return (number * LAG_ID_FACTOR + modified_ms * LAG_STAMP_FACTOR) % LAG_MODULUS * lag_ms // (LAG_MODULUS - 1)


def _indexed_sql(kind: ObjectType) -> str:
    """The condition a record meets once search can see it; parameters: lag_ms, now_ms."""
    updated = f"({kind.updated_sql})"
    delay = f"((id * {LAG_ID_FACTOR} + {updated} * {LAG_STAMP_FACTOR}) % {LAG_MODULUS} * ? / {LAG_MODULUS - 1})"
    return f"{updated} + {delay} <= ?"


class ApiError(Exception):
    """An error the API answers with HubSpot's error body."""

    def __init__(self, status: int, message: str, category: str = "VALIDATION_ERROR",
                 context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.category, self.context = status, message, category, context


@dataclass
class Query:
    """A compiled WHERE clause with its parameters."""

    where: str
    params: list[Any]


def filter_value(prop: PropertyDef, raw: Any) -> Any:
    """A request value converted to what the property's SQL expression compares against."""
    if raw is None:
        raise ApiError(400, f"A value is required for the filter on {prop.name}")
    text = str(raw)
    try:
        if prop.offset:
            return int(text) - prop.offset
        if prop.type in ("datetime", "date"):
            return ms_from_text(text)
        if prop.type == "number":
            return float(text)
    except ValueError:
        message = f"{text!r} is not a valid value for property {prop.name} of type {prop.type}"
        raise ApiError(400, message) from None
    if prop.type == "bool":
        return text.lower()
    return text


def _compile_filter(kind: ObjectType, spec: dict[str, Any], params: list[Any]) -> str:
    name, operator = spec.get("propertyName"), str(spec.get("operator") or "EQ").upper()
    prop = kind.properties.get(str(name))
    if prop is None:
        raise ApiError(400, f"There was a problem with the request: property {name!r} does not exist"
                            f" on {kind.name}", context={"propertyName": [str(name)]})
    column = prop.comparable
    if operator in COMPARISONS:
        params.append(filter_value(prop, spec.get("value")))
        if operator == "NEQ":
            return f"({column} IS NULL OR {column} != ?)"
        return f"{column} {COMPARISONS[operator]} ?"
    if operator == "BETWEEN":
        params.extend([filter_value(prop, spec.get("value")), filter_value(prop, spec.get("highValue"))])
        return f"{column} BETWEEN ? AND ?"
    if operator in ("IN", "NOT_IN"):
        values = [filter_value(prop, value) for value in spec.get("values") or []]
        if not values:
            raise ApiError(400, f"{operator} on {prop.name} needs a non-empty 'values' list")
        params.extend(values)
        marks = ", ".join("?" for _ in values)
        if operator == "IN":
            return f"{column} IN ({marks})"
        return f"({column} IS NULL OR {column} NOT IN ({marks}))"
    if operator == "HAS_PROPERTY":
        return f"({column} IS NOT NULL AND {column} != '')"
    if operator == "NOT_HAS_PROPERTY":
        return f"({column} IS NULL OR {column} = '')"
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        params.append(str(spec.get("value") or "").strip("*").lower())
        test = f"instr(lower({column}), ?) > 0"
        return test if operator == "CONTAINS_TOKEN" else f"NOT ({test})"
    raise ApiError(400, f"Unknown filter operator {operator!r}")


def compile_filters(kind: ObjectType, body: dict[str, Any]) -> Query:
    """filterGroups are ORed, filters within a group ANDed; free-text `query` is ANDed on top."""
    groups = body.get("filterGroups") or []
    if len(groups) > MAX_FILTER_GROUPS:
        raise ApiError(400, f"Too many filter groups ({len(groups)}); the limit is {MAX_FILTER_GROUPS}")
    total = sum(len(group.get("filters") or []) for group in groups)
    if total > MAX_FILTERS:
        raise ApiError(400, f"Too many filters ({total}); the limit is {MAX_FILTERS}")
    params: list[Any] = list(kind.params)
    clauses = [kind.where]
    ored = []
    for group in groups:
        filters = [_compile_filter(kind, spec, params) for spec in group.get("filters") or []]
        if filters:
            ored.append("(" + " AND ".join(filters) + ")")
    if ored:
        clauses.append("(" + " OR ".join(ored) + ")")
    text = str(body.get("query") or "").strip().lower()
    if text and kind.searchable:
        columns = [kind.properties[name].sql for name in kind.searchable if name in kind.properties]
        clauses.append("(" + " OR ".join(f"instr(lower({column}), ?) > 0" for column in columns) + ")")
        params.extend([text] * len(columns))
    return Query(" AND ".join(clauses), params)


def _order_by(kind: ObjectType, sorts: list[Any]) -> str:
    terms = []
    for sort in sorts:
        if isinstance(sort, str):  # the client's "property" / "-property" shorthand
            name, descending = sort.lstrip("-"), sort.startswith("-")
        else:
            name = str(sort.get("propertyName"))
            descending = str(sort.get("direction") or "ASCENDING").upper() == "DESCENDING"
        prop = kind.properties.get(name)
        if prop is None:
            raise ApiError(400, f"Cannot sort by unknown property {name!r}")
        terms.append(f"{prop.comparable} {'DESC' if descending else 'ASC'}")
    if not terms:
        return "id ASC"
    return ", ".join([*terms, TIE_ORDER_SQL, "id ASC"])


def wanted_properties(kind: ObjectType, requested: list[str] | None) -> list[PropertyDef]:
    """The known properties a request asked for (unknown names are ignored, as HubSpot does)."""
    names: list[str] = []
    for entry in requested or []:
        names.extend(part.strip() for part in str(entry).split(",") if part.strip())
    names = names or list(kind.defaults)
    return [kind.properties[name] for name in dict.fromkeys(names) if name in kind.properties]


def _select(kind: ObjectType, props: list[PropertyDef]) -> str:
    columns = [f"{prop.sql} AS p{index}" for index, prop in enumerate(props)]
    system = ["id AS _id", f"{kind.created_sql} AS _created", f"{kind.updated_sql} AS _updated"]
    return ", ".join([*system, *columns])


def render(kind: ObjectType, row: Any, props: list[PropertyDef], archived: bool = False) -> dict[str, Any]:
    """One record in HubSpot's object shape; every property value a string (or null).

    An archived record (a logical row with deleted = 1) carries `archivedAt`: its last
    modification, which is when it was deleted.
    """
    record = {
        "id": kind.record_id(row["_id"]),
        "properties": {prop.name: prop.to_wire(row[f"p{index}"]) for index, prop in enumerate(props)},
        "createdAt": iso_from_ms(row["_created"]), "updatedAt": iso_from_ms(row["_updated"]),
        "archived": archived,
    }
    if archived:
        record["archivedAt"] = iso_from_ms(row["_updated"])
    return record


class CountCache:
    """Totals of recent searches, so paging through one search counts its matches once.

    A count over half a million deals costs ~0.5 s (the `deleted` flag is not in the index);
    pages of the same search share it until any write changes the database.
    """

    def __init__(self, size: int = 64) -> None:
        self._entries: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def count(self, state: SandboxState, sql: str, params: list[Any]) -> int:
        key = (sql, tuple(params), state.query("SELECT total_changes()")[0][0])
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        total = state.query(sql, params)[0][0]
        with self._lock:
            self._entries[key] = total
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return total


def search(state: SandboxState, kind: ObjectType, body: dict[str, Any], cap: int,
           counts: CountCache | None = None, faults: RequestFaults | None = None) -> dict[str, Any]:
    """POST /crm/v3/objects/{type}/search; `faults`: the request's fault plan (index lag)."""
    limit = int(body.get("limit") or 10)
    if not 0 < limit <= MAX_SEARCH_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
    try:
        offset = int(body.get("after") or 0)
    except ValueError:
        raise ApiError(400, f"Invalid paging cursor after={body.get('after')!r}") from None
    if offset >= cap:
        raise ApiError(400, "There was a problem with the request.",
                       context={"after": [str(offset)], "maxResults": [str(cap)]})
    query = compile_filters(kind, body)
    props = wanted_properties(kind, body.get("properties"))
    for extra in ("hs_object_id", "hs_lastmodifieddate", "lastmodifieddate", "createdate", "hs_createdate"):
        if extra in kind.properties and kind.properties[extra] not in props:
            props.append(kind.properties[extra])
    count_sql = f"SELECT COUNT(*) FROM {kind.table} WHERE {query.where}"
    total = (counts or CountCache()).count(state, count_sql, query.params)
    lag = faults.plan.index_lag_ms if faults is not None else 0
    if lag:  # one "now" for the count and the page
        query = Query(f"{query.where} AND {_indexed_sql(kind)}", [*query.params, lag, int(time.time() * 1000)])
        indexed = state.query(f"SELECT COUNT(*) FROM {kind.table} WHERE {query.where}", query.params)[0][0]
        if indexed < total and faults is not None:
            faults.count("index_lag")
        total = indexed
    rows = state.query(
        f"SELECT {_select(kind, props)} FROM {kind.table} WHERE {query.where}"
        f" ORDER BY {_order_by(kind, body.get('sorts') or [])} LIMIT ? OFFSET ?",
        [*query.params, limit, offset])
    response: dict[str, Any] = {"total": total, "results": [render(kind, row, props) for row in rows]}
    if offset + len(rows) < total:
        response["paging"] = {"next": {"after": str(offset + len(rows))}}
    return response


def list_page(state: SandboxState, kind: ObjectType, limit: int, after: str | None,
              requested: list[str] | None, archived: bool) -> dict[str, Any]:
    """GET /crm/v3/objects/{type}: keyset pages in id order; `after` is the next id to return."""
    props = wanted_properties(kind, requested)
    where = kind.archived_where if archived else kind.where
    start = 0
    if after:
        try:
            start = int(after) - kind.id_offset
        except ValueError:
            raise ApiError(400, f"Invalid paging cursor after={after!r}") from None
    rows = state.query(f"SELECT {_select(kind, props)} FROM {kind.table} WHERE {where} AND id >= ?"
                       " ORDER BY id LIMIT ?", [*kind.params, start, limit + 1])
    response: dict[str, Any] = {"results": [render(kind, row, props, archived) for row in rows[:limit]]}
    if len(rows) > limit:
        next_after = kind.record_id(rows[limit]["_id"])
        response["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
    return response


def find_record(state: SandboxState, kind: ObjectType, record_id: str, requested: list[str] | None,
                id_property: str | None = None, archived: bool = False) -> dict[str, Any] | None:
    """One record by its id or by the value of a unique property; None when there is none."""
    props = wanted_properties(kind, requested)
    if id_property and id_property != "hs_object_id":
        prop = kind.properties.get(id_property)
        if prop is None or not prop.unique:
            raise ApiError(400, f"{id_property} is not a unique property of {kind.name}")
        condition, value = f"{prop.comparable} = ?", filter_value(prop, record_id)
    else:
        try:
            condition, value = "id = ?", int(record_id) - kind.id_offset
        except ValueError:
            return None
    where = kind.archived_where if archived else kind.where
    rows = state.query(f"SELECT {_select(kind, props)} FROM {kind.table} WHERE {where} AND {condition}",
                       [*kind.params, value])
    return render(kind, rows[0], props, archived) if rows else None


# -- associations (v4) ----------------------------------------------------------------------------
MAX_ASSOCIATION_INPUTS = 1_000  # HubSpot: batch read accepts at most 1000 ids (since Feb 2025)


@dataclass(frozen=True)
class AssociationLink:
    """A link of the logical tables served as a v4 association: from.column = to.id."""

    column: str
    types: tuple[tuple[int, str | None], ...]  # (typeId, label), all HUBSPOT_DEFINED


# (from type, to type) -> how the logical tables link them, with HubSpot's association type ids.
# A primary company link carries two types: the labelled "Primary" one and the unlabelled one.
ASSOCIATION_LINKS = {
    ("deals", "companies"): AssociationLink("account_id", ((5, "Primary"), (341, None))),
    ("contacts", "companies"): AssociationLink("account_id", ((1, "Primary"), (279, None))),
    ("tickets", "companies"): AssociationLink("account_id", ((339, None),)),
    ("line_items", "deals"): AssociationLink("deal_id", ((20, None),)),
    ("calls", "deals"): AssociationLink("deal_id", ((206, None),)),
    ("emails", "deals"): AssociationLink("deal_id", ((210, None),)),
    ("meetings", "deals"): AssociationLink("deal_id", ((212, None),)),
    # Leads (0-136): the primary company (580) of a converted lead, and the contact of the same row number
    # (578 lead-to-primary-contact); each with the unlabelled type as well (610 company, 608 contact).
    ("leads", "companies"): AssociationLink("account_id", ((580, "Primary"), (610, None))),
    ("leads", "contacts"): AssociationLink("id", ((578, "Primary"), (608, None))),
}


def read_associations(state: SandboxState, source: ObjectType, target: ObjectType,
                      body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """POST /crm/v4/associations/{from}/{to}/batch/read: (results, errors).

    Only live records on both ends associate (archiving a record removes its associations);
    an id with no association gets a NO_ASSOCIATIONS_FOUND error, as in HubSpot (HTTP 207).
    """
    inputs = batch_inputs(body, MAX_ASSOCIATION_INPUTS)
    link = ASSOCIATION_LINKS.get((source.name, target.name))
    if link is None:
        raise ApiError(400, f"The sandbox has no associations from {source.name} to {target.name}")
    wanted: dict[int, str] = {}
    for item in inputs:
        raw = str(item.get("id") if isinstance(item, dict) else item)
        if raw.isdigit():
            wanted[int(raw) - source.id_offset] = raw
    found: dict[int, int] = {}
    numbers = list(wanted)
    for start in range(0, len(numbers), 500):  # SQLite's bound-parameter limit
        chunk = numbers[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = state.query(
            f"SELECT f.id AS from_id, t.id AS to_id FROM {source.table} f JOIN {target.table} t"
            f" ON t.id = f.{link.column} AND t.deleted = 0 WHERE f.deleted = 0 AND f.id IN ({marks})", chunk)
        found.update((row["from_id"], row["to_id"]) for row in rows)
    types = [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label} for type_id, label in link.types]
    results, errors = [], []
    for item in inputs:
        raw = str(item.get("id") if isinstance(item, dict) else item)
        number = int(raw) - source.id_offset if raw.isdigit() else None
        if number is not None and number in found:
            results.append({"from": {"id": raw},
                            "to": [{"toObjectId": int(target.record_id(found[number])), "associationTypes": types}]})
        else:
            errors.append(no_associations(source.name, target.name, raw))
    return results, errors


def no_associations(source: str, target: str, raw: str) -> dict[str, Any]:
    """The v4 batch read's error entry for an id with no association of the asked type (HTTP 207)."""
    return {"status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
            "message": f"No {target} is associated with {source} {raw}.", "context": {"fromObjectId": [raw]},
            "errors": [], "links": {}}


def batch_inputs(body: dict[str, Any], limit: int) -> list[Any]:
    """A batch request's `inputs`, refused as HubSpot does when missing or over the batch limit."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise ApiError(400, "Invalid input JSON: 'inputs' must be a list")
    if len(inputs) > limit:
        raise ApiError(400, f"The maximum number of inputs supported in a batch is {limit}",
                       context={"inputs": [str(len(inputs))]})
    return inputs
