"""A small SOQL compiler, so the sandbox answers queries with SQLite, not Python loops.

Queries are parsed by connectors.sandbox.soql_parser (the subset of SOQL it accepts is described
there) and their date literals evaluated by connectors.sandbox.soql_dates; this module holds the
schema a query compiles against (`SObjectSchema`, `FieldSpec`, `Relationship`) and the compiler,
and stays the entry point the rest of the sandbox imports (`compile_soql`, `parse`, `SoqlError`).
A date literal compares as its range of days: ``=`` means within it, ``<`` / ``>=`` compare with
its start and ``<=`` / ``>`` with its end, on date and datetime fields. SELECT may also name a
parent's field through a relationship the object declares (``Product2.Name`` on
OpportunityLineItem; see Relationship). WHERE and ORDER BY compile through each object's field
mapping to SQL with bound parameters (a value never becomes SQL text), so a filter over a million
rows runs inside SQLite. Rejections carry Salesforce's error codes and its "ERROR at Row:R:Column:C"
messages, so clients see what a real org would answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from functools import cached_property
from typing import Any

from connectors.sandbox.ids import SF_PREFIX, sf_number
from connectors.sandbox.soql_dates import DATE_LITERALS, N_DATE_LITERALS, date_literal_range
from connectors.sandbox.soql_parser import (
    BoolOp,
    Comparison,
    Expr,
    Literal,
    Name,
    Not,
    OrderItem,
    Query,
    SoqlError,
    located,
    parse,
)

__all__ = [  # the parser's and the date literals' names stay importable from here, as before the split
    "DATE_LITERALS", "ID_TYPES", "N_DATE_LITERALS", "NUMBER_TYPES", "STRING_TYPES", "BoolOp", "Comparison",
    "CompiledQuery", "Expr", "FieldSpec", "Literal", "Name", "Not", "OrderItem", "Query", "Relationship",
    "SObjectSchema", "SoqlError", "compile_query", "compile_soql", "date_literal_range", "id_key", "located",
    "parse",
]

STRING_TYPES = frozenset({"string", "picklist", "email", "textarea", "phone", "url", "combobox"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})
ID_TYPES = frozenset({"id", "reference"})
_ID_ABOVE_ALL = 1 << 62  # an id of a later key prefix sorts after every id of this object


# -- the schema a query compiles against -------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    """One sObject field: its SQL expression over the object's table and its describe facts."""

    name: str
    sql: str
    type: str
    label: str = ""
    reference_to: str | None = None  # the sObject whose integer ids the column holds (id/reference)
    length: int = 0
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    nillable: bool = True
    createable: bool = False
    updateable: bool = False
    picklist: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0
    relationship: str | None = None  # set on a parent's field selected through a relationship (Product2.Name)


@dataclass(frozen=True)
class Relationship:
    """A lookup a query may follow in SELECT (``Product2.Name``): only the parent fields listed here."""

    name: str  # the relationship name, e.g. Product2 (the reference field Product2Id without "Id")
    target: str  # the parent sObject
    column: str  # the column of the child's table holding the parent's integer id
    fields: tuple[str, ...]  # parent field names selectable through it


@dataclass(frozen=True)
class SObjectSchema:
    """An sObject served from one sandbox table; `live_where` hides deleted rows outside queryAll."""

    name: str
    label: str
    table: str
    fields: tuple[FieldSpec, ...]
    base_where: str = "1 = 1"
    live_where: str | None = None
    custom: bool = False
    writable: bool = False
    relationships: tuple[Relationship, ...] = ()

    @cached_property
    def _by_name(self) -> dict[str, FieldSpec]:
        return {spec.name.lower(): spec for spec in self.fields}

    def relationship(self, name: str) -> Relationship | None:
        return next((rel for rel in self.relationships if rel.name.lower() == name.lower()), None)

    def field(self, name: str) -> FieldSpec | None:
        """Field names are case-insensitive in SOQL, as in the REST API."""
        return self._by_name.get(name.lower())

    @property
    def id_field(self) -> FieldSpec:
        spec = self.field("Id")
        assert spec is not None, f"{self.name} has no Id field"
        return spec


# -- compiling -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledQuery:
    """SQL pieces of one query. `select()` puts the record's integer id first, then the fields."""

    sobject: SObjectSchema
    fields: tuple[FieldSpec, ...]
    count_only: bool
    from_sql: str
    params: tuple[Any, ...]
    order_sql: str
    limit: int | None
    offset: int
    # Relationships followed in SELECT, in order of first use: (name, parent sObject, SQL of the parent's id)
    # Their parent ids come after the fields, so a renderer can nest them (or answer null for no parent).
    relationships: tuple[tuple[str, str, str], ...] = ()

    def select(self, cap: int | None = None) -> tuple[str, list[Any]]:
        limit = self.limit if cap is None else cap if self.limit is None else min(cap, self.limit)
        columns = ", ".join([f"({self.sobject.id_field.sql}) AS c_id"]
                            + [f"({spec.sql}) AS c{index}" for index, spec in enumerate(self.fields)]
                            + [f"({rel[2]}) AS r{index}" for index, rel in enumerate(self.relationships)])
        sql = f"SELECT {columns} {self.from_sql} {self.order_sql} LIMIT ? OFFSET ?"
        return sql, [*self.params, -1 if limit is None else limit, self.offset]

    def count(self) -> tuple[str, list[Any]]:
        sql = f"SELECT COUNT(*) FROM (SELECT 1 {self.from_sql} LIMIT ? OFFSET ?)"
        return sql, [*self.params, -1 if self.limit is None else self.limit, self.offset]


def compile_query(query: Query, schemas: Mapping[str, SObjectSchema], include_deleted: bool = False,
                  now: datetime | None = None) -> CompiledQuery:
    """Resolve names against `schemas` (keyed by lower-case object name) and build bound SQL.

    Date literals are evaluated against `now` (the org's clock; the wall clock when None) in its own
    time zone (the org's: Salesforce uses the running user's); a naive `now` means UTC.
    """
    sobject = schemas.get(query.sobject.text.lower())
    if sobject is None:
        raise SoqlError("INVALID_TYPE", located(query.text, query.sobject.pos, (
            f"sObject type '{query.sobject.text}' is not supported. If you are attempting to use a custom"
            " object, be sure to append the '__c' after the entity name. Please reference your WSDL or the"
            " describe call for the appropriate names.")))
    fields: list[FieldSpec] = []
    relationships: dict[str, tuple[str, str, str]] = {}
    for ref in query.fields:
        spec = _resolve_selected(query.text, sobject, ref, schemas, relationships)
        if spec in fields:
            raise SoqlError("MALFORMED_QUERY",
                            located(query.text, ref.pos, f"duplicate field selected: {ref.text}"))
        fields.append(spec)
    params: list[Any] = []
    conditions = [sobject.base_where]
    if sobject.live_where and not include_deleted:
        conditions.append(sobject.live_where)
    if query.where is not None:
        moment = now or datetime.now(UTC)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        conditions.append(_compile_expr(query.text, sobject, query.where, params, moment))
    from_sql = f"FROM {sobject.table} WHERE " + " AND ".join(f"({condition})" for condition in conditions)
    order_terms: list[str] = []
    ordered_by_id = False
    for item in query.order_by:
        spec = _resolve(query.text, sobject, item.field)
        ordered_by_id = spec is sobject.id_field
        term = f"({spec.sql})" + (" COLLATE NOCASE" if spec.type in STRING_TYPES else "")
        term += " DESC" if item.descending else " ASC"
        order_terms.append(term + (f" NULLS {item.nulls}" if item.nulls else ""))
    if not ordered_by_id:  # a stable order, so snapshots and OFFSET page deterministically
        order_terms.append(f"({sobject.id_field.sql}) ASC")
    return CompiledQuery(sobject, tuple(fields), query.count_only, from_sql, tuple(params),
                         "ORDER BY " + ", ".join(order_terms), query.limit, query.offset or 0,
                         tuple(relationships.values()))


def compile_soql(text: str, schemas: Mapping[str, SObjectSchema], include_deleted: bool = False,
                 now: datetime | None = None) -> CompiledQuery:
    return compile_query(parse(text), schemas, include_deleted, now)


def _resolve_selected(text: str, sobject: SObjectSchema, ref: Name, schemas: Mapping[str, SObjectSchema],
                      used: dict[str, tuple[str, str, str]]) -> FieldSpec:
    """A SELECT item: a field of the object, or a parent's field through one of its relationships.

    A parent field becomes a correlated subquery over the parent's table, named by its path
    (``Product2.Name``); the relationship's parent id is recorded in `used` (see CompiledQuery).
    """
    rel_name, dot, field_name = ref.text.partition(".")
    rel = sobject.relationship(rel_name) if dot and "." not in field_name else None
    parent = schemas.get(rel.target.lower()) if rel is not None else None
    spec = parent.field(field_name) if parent is not None else None
    if rel is None or parent is None:
        return _resolve(text, sobject, ref)
    if spec is None or spec.name not in rel.fields:
        raise SoqlError("INVALID_FIELD", located(text, ref.pos, _no_such_column(field_name, parent.name)))
    alias = f"rel_{rel.name.lower()}"
    join = f"FROM {parent.table} AS {alias} WHERE {alias}.id = {sobject.table}.{rel.column}"
    used.setdefault(rel.name, (rel.name, parent.name, f"SELECT {alias}.id {join}"))
    return replace(spec, name=f"{rel.name}.{spec.name}", sql=f"SELECT {spec.sql} {join}", relationship=rel.name)


def _resolve(text: str, sobject: SObjectSchema, ref: Name) -> FieldSpec:
    spec = sobject.field(ref.text)
    if spec is not None:
        return spec
    if "." in ref.text:
        detail = (f"Didn't understand relationship '{ref.text.split('.')[0]}' in field path. If you are"
                  " attempting to use a custom relationship, be sure to append the '__r' after the custom"
                  " relationship name. Please reference your WSDL or the describe call for the appropriate"
                  " names.")
    else:
        detail = _no_such_column(ref.text, sobject.name)
    raise SoqlError("INVALID_FIELD", located(text, ref.pos, detail))


def _no_such_column(field: str, sobject: str) -> str:
    return (f"No such column '{field}' on entity '{sobject}'. If you are attempting to use a custom field, be"
            " sure to append the '__c' after the custom field name. Please reference your WSDL or the describe"
            " call for the appropriate names.")


def _compile_expr(text: str, sobject: SObjectSchema, expr: Expr, params: list[Any], now: datetime) -> str:
    if isinstance(expr, BoolOp):
        return f" {expr.op} ".join(f"({_compile_expr(text, sobject, item, params, now)})"
                                   for item in expr.items)
    if isinstance(expr, Not):
        return f"NOT ({_compile_expr(text, sobject, expr.item, params, now)})"
    spec = _resolve(text, sobject, expr.field)
    column = f"({spec.sql})"
    if spec.type in STRING_TYPES:
        column += " COLLATE NOCASE"
    if isinstance(expr.value, tuple):
        values = [_bind(text, spec, literal) for literal in expr.value]
        present = [value for value in values if value is not None]
        marks = ", ".join("?" * len(present)) or "NULL"
        params.extend(present)
        if expr.op == "IN":
            sql = f"{column} IN ({marks})"
            return f"({sql} OR {column} IS NULL)" if None in values else sql
        sql = f"({column} IS NULL OR {column} NOT IN ({marks}))"
        return f"({column} IS NOT NULL AND {column} NOT IN ({marks}))" if None in values else sql
    literal = expr.value
    if expr.op == "LIKE":
        if spec.type not in STRING_TYPES or literal.kind != "string":
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", located(
                text, expr.field.pos, f"invalid operator on {spec.type} field: LIKE on {spec.name}"))
        params.append(literal.value)
        return f"({spec.sql}) LIKE ? ESCAPE '\\'"
    if literal.kind == "dateliteral":
        return _compile_date_literal(text, spec, expr.op, literal, params, now)
    value = _bind(text, spec, literal)
    if value is None:
        if expr.op not in ("=", "!="):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", located(
                text, literal.pos, f"invalid operator on null value: {expr.op}"))
        return f"{column} IS {'NOT ' if expr.op == '!=' else ''}NULL"
    params.append(value)
    if expr.op == "!=":  # SOQL's != also matches rows where the field is null
        return f"{column} IS NOT ?"
    return f"{column} {expr.op} ?"


def _compile_date_literal(text: str, spec: FieldSpec, op: str, literal: Literal, params: list[Any],
                          now: datetime) -> str:
    """A comparison with a date literal's range [start, end) of days in `now`'s zone, as bound values
    of the field's type."""
    if spec.type not in ("date", "datetime"):
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", located(
            text, literal.pos, f"value of filter criterion for field '{spec.name}' must be of type "
                               f"{spec.type}"))
    name, count = literal.value
    start, end = date_literal_range(name, count, now.date())
    if spec.type == "datetime":  # whole seconds since the epoch, as the datetime columns hold
        bounds: tuple[Any, Any] = tuple(int(datetime.combine(d, time(), now.tzinfo).timestamp())
                                        for d in (start, end))
    else:
        bounds = (start.isoformat(), end.isoformat())
    column = f"({spec.sql})"
    if op == "=":
        params.extend(bounds)
        return f"({column} >= ? AND {column} < ?)"
    if op == "!=":  # SOQL's != also matches rows where the field is null
        params.extend(bounds)
        return f"({column} IS NULL OR {column} < ? OR {column} >= ?)"
    bound, sql_op = {"<": (bounds[0], "<"), ">=": (bounds[0], ">="), "<=": (bounds[1], "<"),
                     ">": (bounds[1], ">=")}[op]
    params.append(bound)
    return f"{column} {sql_op} ?"


def _bind(text: str, spec: FieldSpec, literal: Literal) -> Any:
    """The SQL parameter for a literal compared with `spec`, or an error if the types disagree."""
    if literal.kind == "null":
        return None
    if literal.kind == "dateliteral":
        raise SoqlError("MALFORMED_QUERY", located(
            text, literal.pos, "date literals are only supported with = != < <= > >= in this sandbox"))
    expected = {"boolean": "boolean", "date": "date", "datetime": "datetime"}.get(spec.type)
    if spec.type in ID_TYPES or spec.type in STRING_TYPES:
        expected = "string"
    elif spec.type in NUMBER_TYPES:
        expected = "number"
    if literal.kind != expected:
        quoted = " and should not be enclosed in quotes" if literal.kind == "string" else ""
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", located(
            text, literal.pos, f"value of filter criterion for field '{spec.name}' must be of type "
                               f"{spec.type}{quoted}"))
    if spec.type in ID_TYPES:
        return id_key(text, literal, spec.reference_to or "")
    return literal.value


def id_key(text: str, literal: Literal, sobject: str) -> int:
    """The integer an id literal compares as, keeping Salesforce's string order across key prefixes."""
    value = str(literal.value)
    if len(value) not in (15, 18) or not value.isalnum():
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR",
                        located(text, literal.pos, f"invalid ID field: {value}"))
    prefix = SF_PREFIX[sobject]
    if value[:3] != prefix:
        return -1 if value[:3] < prefix else _ID_ABOVE_ALL
    return sf_number(value)[1]
