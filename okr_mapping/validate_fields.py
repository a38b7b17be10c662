"""Checks of one rule against its entity's fields: a where filter, a measure, a time field, and
whether a field is filled by every CRM.

They need only the entity, not the rest of the config, so the metric and segment checks
(validate.py) and the breakdown check (validate_key_results.py) share them from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from okr_mapping.entities import EntitySpec
from okr_mapping.errors import KeyPath, did_you_mean
from okr_mapping.findings import Finding
from okr_mapping.rules import NUMERIC_FUNCTIONS, RuleError, parse_measure, parse_where, resolve_condition


def check_where(entity: EntitySpec, where: dict[str, Any] | None, path: KeyPath) -> Iterator[Finding]:
    tree = parse_where(where)
    for where_path, error in tree.problems:
        yield Finding("error", (*path, *where_path), error.message, error.suggestion)
    for condition in tree.conditions():
        try:
            resolve_condition(entity, condition)
        except RuleError as exc:
            on_key = condition.field not in entity.fields
            yield Finding("error", (*path, *condition.path), exc.message, exc.suggestion, on_key)
        else:
            yield from check_coverage(entity, condition.field, (*path, *condition.path))


def measured_field(text: str) -> str | None:
    try:
        return parse_measure(text).field
    except RuleError:
        return None


def check_coverage(entity: EntitySpec, name: str, path: KeyPath) -> Iterator[Finding]:
    """Warn where a field is filled by one CRM only: the same rule would differ between CRMs."""
    field = entity.field(name)
    if field is not None and field.only_from is not None:
        yield Finding("warning", path, f"'{name}' is filled only from {field.only_from} so far; KRs computed "
                      f"from another CRM see it as empty")


def check_measure(entity: EntitySpec, text: str, path: KeyPath) -> Iterator[Finding]:
    try:
        measure = parse_measure(text)
    except RuleError as exc:
        yield Finding("error", path, exc.message, exc.suggestion)
        return
    if measure.field is None:
        return
    field = entity.field(measure.field)
    if field is None:
        yield Finding(
            "error",
            path,
            f"'{measure.field}' is not a field of {entity.name}",
            did_you_mean(measure.field, entity.names()),
        )
    elif measure.func in NUMERIC_FUNCTIONS and field.kind != "number":
        numbers = ", ".join(entity.names("number"))
        yield Finding(
            "error",
            path,
            f"{measure.func}() needs a number field and '{field.name}' is {field.kind} ({numbers})",
        )


def check_time(entity: EntitySpec, time: str, path: KeyPath, side: str | None = None) -> Iterator[Finding]:
    """`side` names the ratio side whose entity the metric's shared time was checked against."""
    dates = entity.names("date")
    if time not in dates:
        if side is not None:
            message = (
                f"'{time}' is not a date field of {entity.name}, which the ratio's {side} measures; "
                f"give the {side} its own time: (one of {', '.join(dates)})"
            )
        else:
            message = f"'{time}' is not a date field of {entity.name}; use one of {', '.join(dates)}"
        yield Finding("error", path, message, did_you_mean(time, dates))
