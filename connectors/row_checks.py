"""Every canonical row is checked before it is stored: readable values, the types its table declares,
text of a sane length. A record that fails stops its stream with a BadRecord naming it.

Mappers (connectors.<crm>.mappers) convert CRM values as they read them; `map_record` runs one
mapper over a `ReadTracker` of the record's fields, so a conversion that fails (a date that is not
a date, an amount that is not a number) or a required field that is missing is reported with the
field read last: mappers convert each value right after reading it. What a mapper lets through is
checked against the column types of the row's table (connectors.store): text must be text, amounts
finite numbers, flags booleans, dates dates. A wrong value never reaches the store, where SQLite
would keep it as it came and PostgreSQL refuse the whole page.

Text longer than MAX_TEXT_CHARS is stored cut to that length, with a warning (logged) naming the record
and the column. No field either CRM serves to
okr-sync holds more (HubSpot caps a property value at 65,536 characters; the Salesforce fields read
are at most 255), so only a broken answer is cut; text feeds labels and names, never a figure, so
cutting it keeps the numbers right where refusing would stop the CRM's key results for a name.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import lru_cache
from types import UnionType
from typing import Any, Union, get_args, get_origin

from sqlmodel import SQLModel

from connectors.errors import BadRecord, shown

log = logging.getLogger(__name__)
MAX_TEXT_CHARS = 65_536
MAX_DETAIL = 160  # characters of a conversion error kept in a message (it may quote the whole value)
Row = dict[str, Any]


class ReadTracker(Mapping[str, Any]):
    """A record's fields as a read-only mapping that remembers the field read last."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields
        self.last: str | None = None

    def __getitem__(self, key: str) -> Any:
        self.last = key
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


class BadValue(ValueError):
    """A mapped value of the wrong kind for its column."""

    def __init__(self, column: str, value: Any, expected: str) -> None:
        super().__init__(f"{column} {shown(value)} is not {expected}")
        self.column, self.value, self.expected = column, value, expected


@lru_cache(maxsize=32)
def _columns(model: type[SQLModel]) -> dict[str, tuple[type, bool]]:
    """Field name -> (the Python type it holds, whether it may be None), from the model's annotations
    (`str | None`, `float`, `dict[str, Any]`...): the column types of the store say `object` for text."""
    columns = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        kinds = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
        nullable = type(None) in kinds
        kind = next(kind for kind in kinds if kind is not type(None))
        columns[name] = (get_origin(kind) or kind, nullable)
    return columns


def _cut(text: str, cuts: list[tuple[str, int]], column: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cuts.append((column, len(text)))
    return text[:MAX_TEXT_CHARS]


def _checked(column: str, kind: type, nullable: bool, value: Any, cuts: list[tuple[str, int]]) -> Any:
    if value is None:
        if nullable:
            return None
        raise BadValue(column, value, "set (it is required)")
    if kind is str:
        if not isinstance(value, str):
            raise BadValue(column, value, "text")
        return _cut(value, cuts, column)
    if kind is float or kind is int:
        numeric = isinstance(value, int) if kind is int else isinstance(value, int | float)
        if not numeric or isinstance(value, bool) or not math.isfinite(value):
            raise BadValue(column, value, "a finite number")
        return value
    if kind is bool and not isinstance(value, bool):
        raise BadValue(column, value, "true or false")
    if kind is date and (not isinstance(value, date) or isinstance(value, datetime)):
        raise BadValue(column, value, "a date")
    if kind is datetime and not isinstance(value, datetime):
        raise BadValue(column, value, "a date and time")
    if kind is dict:
        if not isinstance(value, dict):
            raise BadValue(column, value, "a set of custom fields")
        return {name: _cut(item, cuts, f"{column}.{name}") if isinstance(item, str) else item
                for name, item in value.items()}
    return value


def check_row(model: type[SQLModel], row: Row) -> tuple[Row, list[tuple[str, int]]]:
    """`row` with over-long text cut, and (column, original length) of each cut; BadValue when a value
    does not fit its column. Keys that are not columns of `model` are left to the store."""
    columns = _columns(model)
    cuts: list[tuple[str, int]] = []
    checked = {name: _checked(name, *columns[name], value, cuts) if name in columns else value
               for name, value in row.items()}
    return checked, cuts


def unreadable(crm: str, stream: str, record_id: str | None, field: str | None, value: Any, error: Exception,
               position: int | None = None) -> BadRecord:
    """A BadRecord for a value whose conversion raised `error` (its message cut: it may quote the value)."""
    detail = str(error)
    detail = detail if len(detail) <= MAX_DETAIL else detail[:MAX_DETAIL] + "..."
    problem = f"{shown(value)} cannot be read ({detail})" if field is not None else f"cannot be read ({detail})"
    return BadRecord(crm, stream, record_id, problem, field, position)


def map_record(crm: str, stream: str, model: type[SQLModel], record_id: str | None, fields: Mapping[str, Any],
               mapper: Callable[[Mapping[str, Any]], Row], position: int | None = None) -> Row:
    """`mapper(fields)` checked (see the module docstring): a BadRecord naming the record and the field
    when it cannot be read; each cut of long text logged as a warning naming them."""
    tracker = ReadTracker(fields)
    try:
        row, cuts = check_row(model, mapper(tracker))
    except BadValue as error:
        problem = "is missing" if error.value is None else f"{shown(error.value)} is not {error.expected}"
        raise BadRecord(crm, stream, record_id, problem, error.column, position) from None
    except KeyError as error:
        raise BadRecord(crm, stream, record_id, "is missing", str(error.args[0]) if error.args else tracker.last,
                        position) from None
    except (ValueError, TypeError, AttributeError, OverflowError) as error:
        value = fields.get(tracker.last) if tracker.last is not None and isinstance(fields, Mapping) else None
        raise unreadable(crm, stream, record_id, tracker.last, value, error, position) from None
    for column, length in cuts:
        log.warning("%s %s: record %s: %s is %s characters long; stored cut to the first %s", crm, stream,
                    record_id, column, f"{length:,}", f"{MAX_TEXT_CHARS:,}")
    return row
