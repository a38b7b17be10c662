"""The small grammar inside a metric: `measure` strings and `where` filters.

Both validation (which reports problems with positions) and SQL compilation (which trusts a
validated config) read rules through these functions, so they can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from okr_mapping.entities import EntitySpec, FieldSpec
from okr_mapping.errors import did_you_mean

MEASURE_FUNCTIONS = ("count", "sum", "avg", "min", "max", "count_distinct")
NUMERIC_FUNCTIONS = ("sum", "avg", "min", "max")
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in")
ORDER_OPERATORS = ("gt", "gte", "lt", "lte")
LIST_OPERATORS = ("in", "not_in")

_MEASURE = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([A-Za-z_][A-Za-z0-9_.]*)?\s*\))?\s*$")
MEASURE_HELP = "write it as count, sum(field), avg(field), min(field), max(field) or count_distinct(field)"


class RuleError(ValueError):
    """A rule that cannot be used; `suggestion` is a likely intended name."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


@dataclass(frozen=True)
class Measure:
    """An aggregate: `func` over `field` (None for a plain row count)."""

    func: str
    field: str | None

    @property
    def defined_on_empty(self) -> bool:
        """Counts and sums of nothing are 0; an average of nothing is undefined."""
        return self.func in ("count", "count_distinct", "sum")


def parse_measure(text: str) -> Measure:
    """Measure("sum", "amount") from "sum(amount)"; RuleError with a hint otherwise."""
    match = _MEASURE.match(text)
    if not match:
        raise RuleError(f"'{text}' is not a measure; {MEASURE_HELP}")
    func, field = match.group(1), match.group(2)
    if func not in MEASURE_FUNCTIONS:
        raise RuleError(f"unknown measure '{func}'; {MEASURE_HELP}", did_you_mean(func, MEASURE_FUNCTIONS))
    if field is None and func != "count":
        raise RuleError(f"{func} needs a field in brackets, e.g. {func}(amount)")
    return Measure(func, field)


@dataclass(frozen=True)
class Condition:
    """One filter: `field <op> value`; `path` is where it sits under `where`."""

    field: str
    op: str
    value: Any
    path: tuple[str, ...]


def iter_conditions(where: Mapping[str, Any] | None) -> Iterator[Condition]:
    """Flatten `where` into conditions (AND of all). A bare value means eq, a bare list means in."""
    for field, spec in (where or {}).items():
        if isinstance(spec, dict):
            for op, value in spec.items():
                yield Condition(field, str(op), value, (field, str(op)))
        elif isinstance(spec, list):
            yield Condition(field, "in", spec, (field,))
        else:
            yield Condition(field, "eq", spec, (field,))


def _coerce(field: FieldSpec, value: Any) -> Any:
    """The value as the field's kind, or RuleError with a sentence explaining what was expected."""
    kind = field.kind
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise RuleError(f"'{field.name}' is a date; write it like 2026-01-31, got {value!r}")
    if kind == "text":
        shown = "true/false" if isinstance(value, bool) else repr(value)
        raise RuleError(f"'{field.name}' is text; put the value in quotes (got {shown})")
    if kind == "bool":
        raise RuleError(f"'{field.name}' is true or false, got {value!r}")
    raise RuleError(f"'{field.name}' is a number, got {value!r}")


def resolve_condition(entity: EntitySpec, condition: Condition) -> tuple[FieldSpec, str, Any]:
    """(field spec, op, typed value) for a condition; RuleError when any part is not allowed."""
    field = entity.field(condition.field)
    if field is None:
        raise RuleError(
            f"'{condition.field}' is not a field of {entity.name}",
            did_you_mean(condition.field, entity.names()),
        )
    op = condition.op
    if op not in OPERATORS:
        raise RuleError(
            f"unknown comparison '{op}'; use one of {', '.join(OPERATORS)}", did_you_mean(op, OPERATORS)
        )
    value = condition.value
    if op in LIST_OPERATORS:
        if not isinstance(value, list) or not value:
            raise RuleError(f"'{op}' needs a list of values, e.g. [Renewal, Upsell]")
        return field, op, [_coerce(field, item) for item in value]
    if value is None:
        if op not in ("eq", "ne"):
            raise RuleError(f"'{op}' needs a value to compare with")
        return field, op, None
    if op in ORDER_OPERATORS and field.kind not in ("number", "date"):
        raise RuleError(f"'{op}' compares numbers or dates, and '{field.name}' is {field.kind}")
    return field, op, _coerce(field, value)
