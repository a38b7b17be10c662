"""The small grammar inside a metric: `measure` strings and `where` filters.

Both validation (which reports problems with positions) and SQL compilation (which trusts a
validated config) read rules through these functions, so they can never disagree.

A `where` is a mapping whose entries all hold (AND). Besides `field: condition` entries it may
hold the combinators `all: [where, ...]`, `any: [where, ...]` and `not: where`, nested freely.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from okr_mapping.entities import EntitySpec, FieldSpec
from okr_mapping.errors import did_you_mean

MEASURE_FUNCTIONS = (
    "count", "sum", "avg", "min", "max", "count_distinct", "count_first", "median", "percentile"
)
NUMERIC_FUNCTIONS = ("sum", "avg", "min", "max", "median", "percentile")
QUANTILE_FUNCTIONS = ("median", "percentile")
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in")
ORDER_OPERATORS = ("gt", "gte", "lt", "lte")
LIST_OPERATORS = ("in", "not_in")
COMBINATORS = ("all", "any", "not")
_COMBINATOR_ALIASES = {"and": "all", "or": "any", "none": "not"}

_MEASURE = re.compile(
    r"^\s*([a-z_]+)\s*(?:\(\s*([A-Za-z_][A-Za-z0-9_.]*)?\s*(?:,\s*([^)]*?)\s*)?\))?\s*$"
)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
MEASURE_HELP = (
    "write it as count, sum(field), avg(field), min(field), max(field), count_distinct(field),"
    " count_first(field), median(field) or percentile(field, 90); count_first(field) counts the values"
    " of field (e.g. account_id) whose earliest matching record, over all history, falls in the period"
)


class RuleError(ValueError):
    """A rule that cannot be used; `suggestion` is a likely intended name."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


@dataclass(frozen=True)
class Measure:
    """An aggregate: `func` over `field` (None for a plain row count).

    `percent` is the p of percentile(field, p), 50 for median, None otherwise.
    `count_first(field)` counts first times: the values of `field` whose earliest record (over all
    history, with the same filters) lies in the period; see okr_mapping.cohorts.
    """

    func: str
    field: str | None
    percent: float | None = None

    @property
    def defined_on_empty(self) -> bool:
        """Counts and sums of nothing are 0; an average (or median) of nothing is undefined."""
        return self.func in ("count", "count_distinct", "count_first", "sum")

    @property
    def is_quantile(self) -> bool:
        return self.func in QUANTILE_FUNCTIONS

    @property
    def is_first(self) -> bool:
        """count_first(field): a first-time cohort count, measured over all history."""
        return self.func == "count_first"


def parse_measure(text: str) -> Measure:
    """Measure("sum", "amount") from "sum(amount)"; RuleError with a hint otherwise."""
    match = _MEASURE.match(text)
    if not match:
        raise RuleError(f"'{text}' is not a measure; {MEASURE_HELP}")
    func, field, argument = match.group(1), match.group(2), match.group(3)
    if func not in MEASURE_FUNCTIONS:
        raise RuleError(f"unknown measure '{func}'; {MEASURE_HELP}", did_you_mean(func, MEASURE_FUNCTIONS))
    if field is None and func != "count":
        example = {"percentile": "percentile(amount, 90)", "count_first": "count_first(account_id)"}.get(
            func, f"{func}(amount)"
        )
        raise RuleError(f"{func} needs a field in brackets, e.g. {example}")
    if func != "percentile":
        if argument is not None:
            raise RuleError(f"{func} takes one field only, e.g. {func}({field})")
        return Measure(func, field, 50.0 if func == "median" else None)
    if argument is None or not argument:
        raise RuleError(f"percentile needs a field and a percent, e.g. percentile({field}, 90)")
    if not _NUMBER.match(argument) or not 0 < float(argument) < 100:
        raise RuleError(f"the percent in percentile({field}, {argument}) must be a number between 0 and 100")
    return Measure(func, field, float(argument))


WherePath = tuple[str | int, ...]


@dataclass(frozen=True)
class Condition:
    """One filter: `field <op> value`; `path` is where it sits under `where`."""

    field: str
    op: str
    value: Any
    path: WherePath


@dataclass(frozen=True)
class Group:
    """Combined filters: `and` (a where-mapping or `all`), `or` (`any`) or `not` (one child)."""

    op: Literal["and", "or", "not"]
    items: tuple[Condition | Group, ...]
    path: WherePath = ()


@dataclass
class WhereTree:
    """A parsed `where`: its filter tree and any shape problems (path under `where`, error)."""

    root: Group
    problems: list[tuple[WherePath, RuleError]] = dataclasses.field(default_factory=list)

    def conditions(self) -> Iterator[Condition]:
        """Every field condition in the tree, depth first."""
        stack: list[Condition | Group] = [self.root]
        while stack:
            node = stack.pop(0)
            if isinstance(node, Group):
                stack[0:0] = node.items
            else:
                yield node


def parse_where(where: Mapping[str, Any] | None) -> WhereTree:
    """The filter tree of a `where`; shape problems are collected, never raised (the tree skips them)."""
    tree = WhereTree(Group("and", ()))
    tree.root = _parse_mapping(where or {}, (), tree.problems)
    return tree


def _parse_mapping(where: Mapping[str, Any], path: WherePath, problems: list[tuple[WherePath, RuleError]]) -> Group:
    items: list[Condition | Group] = []
    for key, spec in where.items():
        key = str(key)
        here = (*path, key)
        if key in ("all", "any"):
            if not isinstance(spec, list) or not spec:
                problems.append((here, RuleError(
                    f"'{key}' needs a list of filters, e.g. {key}: [{{stage: Closed Won}}, {{amount: {{gt: 0}}}}]"
                )))
                continue
            children = [_parse_child(item, (*here, index), problems) for index, item in enumerate(spec)]
            items.append(Group("and" if key == "all" else "or", tuple(c for c in children if c), here))
        elif key == "not":
            child = _parse_child(spec, here, problems)
            if child is not None:
                items.append(Group("not", (child,), here))
        elif isinstance(spec, dict):
            for op, value in spec.items():
                items.append(Condition(key, str(op), value, (*here, str(op))))
        elif isinstance(spec, list):
            items.append(Condition(key, "in", spec, here))
        else:
            items.append(Condition(key, "eq", spec, here))
    return Group("and", tuple(items), path)


def _parse_child(spec: Any, path: WherePath, problems: list[tuple[WherePath, RuleError]]) -> Group | None:
    if not isinstance(spec, dict) or not spec:
        what = "an empty filter" if isinstance(spec, dict) else f"{spec!r}"
        problems.append((path, RuleError(
            f"expected a filter like {{deal_type: Renewal}} (field: value, or all/any/not), got {what}"
        )))
        return None
    return _parse_mapping(spec, path, problems)


def iter_conditions(where: Mapping[str, Any] | None) -> Iterator[Condition]:
    """Every field condition of `where`, at any depth. A bare value means eq, a bare list means in."""
    return parse_where(where).conditions()


ALL_TIME = "all"  # a metric's `time: all`: no period filter (snapshots such as open pipeline)
PERIOD_DATES = ("period_start", "period_end")


@dataclass(frozen=True)
class PeriodDate:
    """`period_start` / `period_end` in a date filter: the first or last day of the days measured,
    filled in when the query is built (with `time: all`, this is how a snapshot picks its day)."""

    which: str

    def resolve(self, start: date, end: date) -> date:
        return start if self.which == "period_start" else end


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
            if value.strip() in PERIOD_DATES:
                return PeriodDate(value.strip())
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise RuleError(f"'{field.name}' is a date; write it like 2026-01-31, or period_start / period_end, "
                        f"got {value!r}")
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
        suggestion = _COMBINATOR_ALIASES.get(condition.field) or did_you_mean(
            condition.field, [*entity.names(), *COMBINATORS]
        )
        raise RuleError(
            f"'{condition.field}' is not a field of {entity.name} (nor all / any / not)", suggestion
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
