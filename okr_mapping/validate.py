"""Meaning checks that run after the schema accepted a config's shape.

Each check returns findings with a key path; the loader turns paths into file positions. All
checks run, so the reader sees every problem in one go. Messages are written for the person
maintaining the YAML, not for a programmer.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import TypeAdapter, ValidationError

from okr_mapping.config import (
    AnyMetric,
    ChangeTarget,
    CustomField,
    DerivedMetric,
    EachTarget,
    KeyResult,
    MeasureSource,
    Metric,
    OkrConfig,
    PhasedTarget,
    RatioMetric,
    Segment,
    custom_field_specs,
)
from okr_mapping.custom_fields import check_custom_fields, suggest_entity
from okr_mapping.derived import base_metrics, check_derived, formula_names
from okr_mapping.entities import BREAKDOWNS, ENTITIES, EntitySpec, with_custom_fields
from okr_mapping.errors import KeyPath, did_you_mean
from okr_mapping.findings import Finding
from okr_mapping.metrics import restarts_each_period
from okr_mapping.periods import PERIOD_HELP, RELATIVE_PERIODS, FiscalCalendar, is_valid_period_spec
from okr_mapping.rules import ALL_TIME, NUMERIC_FUNCTIONS, RuleError, parse_measure, parse_where, resolve_condition

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")
METRIC_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")


@dataclass
class ObjectivePart:
    """An objective's checkable pieces; `key_results` holds only those the schema accepted."""

    index: int
    id: str | None
    period: str | None
    key_results: list[tuple[int, KeyResult]] = field(default_factory=list)
    rejected_metric_refs: list[tuple[int, str]] = field(default_factory=list)  # (kr index, metric name)
    parent: str | None = None


@dataclass
class ConfigParts:
    """The parts of a config that passed the schema, so meaning checks can run even when others failed.

    `metric_names` holds every metric name written, valid or not, so a key result pointing at
    a metric with a schema error is not also reported as "unknown metric" (`segment_names` alike).
    """

    metrics: dict[str, AnyMetric]
    metric_names: set[str]
    objectives: list[ObjectivePart]
    complete: bool
    segments: dict[str, Segment] = field(default_factory=dict)
    segment_names: set[str] = field(default_factory=set)
    custom_fields: dict[str, dict[str, CustomField]] = field(default_factory=dict)

    @property
    def entities(self) -> dict[str, EntitySpec]:
        """The built-in entities with the config's custom fields (clashing names never replace a field)."""
        return with_custom_fields(custom_field_specs(self.custom_fields))

    @classmethod
    def of(cls, config: OkrConfig) -> ConfigParts:
        objectives = [
            ObjectivePart(
                index, objective.id, _text(objective.period), list(enumerate(objective.key_results)),
                parent=objective.parent,
            )
            for index, objective in enumerate(config.objectives)
        ]
        return cls(
            dict(config.metrics),
            set(config.metrics),
            objectives,
            complete=True,
            segments=dict(config.segments),
            segment_names=set(config.segments),
            custom_fields=dict(config.custom_fields),
        )

    @classmethod
    def salvage(cls, data: dict[str, Any]) -> ConfigParts:
        """Validate each metric and key result on its own and keep those that pass."""
        metrics: dict[str, AnyMetric] = {}
        raw_metrics = data.get("metrics")
        names = set(raw_metrics) if isinstance(raw_metrics, dict) else set()
        names |= _names_under_misspelt_key(data, "metrics")
        for name, raw in raw_metrics.items() if isinstance(raw_metrics, dict) else ():
            with contextlib.suppress(ValidationError):
                metrics[name] = _METRIC.validate_python(raw)
        objectives = []
        raw_objectives = data.get("objectives")
        for index, raw in enumerate(raw_objectives if isinstance(raw_objectives, list) else ()):
            if not isinstance(raw, dict):
                continue
            part = ObjectivePart(index, _text(raw.get("id")), _text(raw.get("period", "current")),
                                 parent=_text(raw.get("parent")))
            raw_krs = raw.get("key_results")
            for kr_index, raw_kr in enumerate(raw_krs if isinstance(raw_krs, list) else ()):
                try:
                    part.key_results.append((kr_index, KeyResult.model_validate(raw_kr)))
                except ValidationError:
                    if isinstance(raw_kr, dict) and isinstance(raw_kr.get("metric"), str):
                        part.rejected_metric_refs.append((kr_index, raw_kr["metric"]))
            objectives.append(part)
        segments: dict[str, Segment] = {}
        raw_segments = data.get("segments")
        for name, raw in raw_segments.items() if isinstance(raw_segments, dict) else ():
            with contextlib.suppress(ValidationError):
                segments[name] = Segment.model_validate(raw)
        segment_names = set(raw_segments) if isinstance(raw_segments, dict) else set()
        segment_names |= _names_under_misspelt_key(data, "segments")
        custom_fields: dict[str, dict[str, CustomField]] = {}
        raw_custom = data.get("custom_fields")
        for entity, raw_fields in raw_custom.items() if isinstance(raw_custom, dict) else ():
            for name, raw in raw_fields.items() if isinstance(raw_fields, dict) else ():
                with contextlib.suppress(ValidationError):
                    custom_fields.setdefault(str(entity), {})[str(name)] = CustomField.model_validate(raw)
        return cls(metrics, names, objectives, False, segments, segment_names, custom_fields)


_METRIC: TypeAdapter[AnyMetric] = TypeAdapter(Metric)


def _names_under_misspelt_key(data: dict[str, Any], section: str) -> set[str]:
    """Names defined under a misspelt section key (`metircs:`): already reported as an unknown setting
    with a did-you-mean, so references to them are not reported again as unknown metrics or segments."""
    names: set[str] = set()
    for key, value in data.items():
        misspelt = key not in OkrConfig.model_fields and did_you_mean(key, [section]) == section
        if misspelt and isinstance(value, dict):
            names |= {str(name) for name in value}
    return names


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def check_config(config: OkrConfig | ConfigParts) -> list[Finding]:
    """Every meaning problem in a config (or in the parts of it the schema accepted)."""
    parts = config if isinstance(config, ConfigParts) else ConfigParts.of(config)
    findings = list(check_custom_fields(parts.custom_fields))
    findings.extend(_check_segments(parts))
    findings.extend(_check_metrics(parts))
    findings.extend(_check_objectives(parts))
    findings.extend(_check_hierarchy(parts))
    if parts.complete:
        findings.extend(_check_unused_metrics(parts))
        findings.extend(_check_unused_segments(parts))
    return findings


def metric_parts(metric: AnyMetric) -> list[tuple[str, MeasureSource, str | None]]:
    """(path suffix, measure source, time field) for each aggregate a metric is made of (a derived
    metric has none of its own: see derived.base_metrics)."""
    if isinstance(metric, DerivedMetric):
        return []
    if isinstance(metric, RatioMetric):
        return [
            ("ratio.numerator", metric.ratio.numerator, metric.ratio.numerator.time or metric.time),
            ("ratio.denominator", metric.ratio.denominator, metric.ratio.denominator.time or metric.time),
        ]
    return [("", metric, metric.time)]


def _check_metrics(parts: ConfigParts) -> Iterator[Finding]:
    for name, metric in parts.metrics.items():
        base: KeyPath = ("metrics", name)
        if not METRIC_NAME_PATTERN.match(name):
            yield Finding("error", base, "metric names may use only letters, digits and '_'", on_key=True)
        # A ratio's shared `time` is checked once per entity; when its sides measure different
        # entities, an error names the side the date does not fit.
        mixed = isinstance(metric, RatioMetric) and metric.ratio.numerator.entity != metric.ratio.denominator.entity
        shared_checked: set[str] = set()
        if isinstance(metric, DerivedMetric):
            yield from check_derived(name, metric, parts.metrics, parts.metric_names)
        for suffix, part, time in metric_parts(metric):
            path = base + tuple(suffix.split(".")) if suffix else base
            time_path = (*path, "time") if part.time is not None else (*base, "time")
            side = None
            if part.time is None and suffix:
                if part.entity in shared_checked:
                    time = None
                shared_checked.add(part.entity)
                side = suffix.rsplit(".", 1)[-1] if mixed else None
            yield from _check_part(parts, part, time, path, time_path, side)


def _check_segments(parts: ConfigParts) -> Iterator[Finding]:
    for name, segment in parts.segments.items():
        base: KeyPath = ("segments", name)
        if not METRIC_NAME_PATTERN.match(name):
            yield Finding("error", base, "segment names may use only letters, digits and '_'", on_key=True)
        entity = parts.entities.get(segment.entity)
        if entity is None:
            yield Finding(
                "error",
                (*base, "entity"),
                f"unknown entity '{segment.entity}'; segments can filter {', '.join(ENTITIES)}",
                suggest_entity(segment.entity),
            )
            continue
        yield from _check_where(entity, segment.where, (*base, "where"))


def _check_segment_ref(parts: ConfigParts, part: MeasureSource, path: KeyPath) -> Iterator[Finding]:
    name = part.segment
    if name is None:
        return
    if name not in parts.segment_names:
        known = sorted(parts.segment_names)
        hint = f"; segments defined: {', '.join(known)}" if known else "; define it under segments:"
        yield Finding("error", path, f"unknown segment '{name}'{hint}", did_you_mean(name, known))
        return
    segment = parts.segments.get(name)
    if segment is not None and segment.entity in ENTITIES and segment.entity != part.entity:
        yield Finding(
            "error",
            path,
            f"segment '{name}' filters {segment.entity} records but this measures {part.entity}; "
            f"use a segment over {part.entity}",
        )


def _check_where(entity: EntitySpec, where: dict[str, Any] | None, path: KeyPath) -> Iterator[Finding]:
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
            yield from _check_coverage(entity, condition.field, (*path, *condition.path))


def _check_part(
    parts: ConfigParts,
    part: MeasureSource,
    time: str | None,
    path: KeyPath,
    time_path: KeyPath,
    side: str | None = None,
) -> Iterator[Finding]:
    yield from _check_segment_ref(parts, part, (*path, "segment"))
    entity = parts.entities.get(part.entity)
    if entity is None:
        yield Finding(
            "error",
            (*path, "entity"),
            f"unknown entity '{part.entity}'; rules can measure {', '.join(ENTITIES)}",
            suggest_entity(part.entity),
        )
        return
    yield from _check_measure(entity, part.measure, (*path, "measure"))
    if time == ALL_TIME and part.measure.replace(" ", "").startswith("count_first("):
        yield Finding("error", time_path, "count_first needs a date to find each value's first record; "
                      f"use one of {', '.join(entity.names('date'))} instead of all")
    elif time is not None and time != ALL_TIME:
        yield from _check_time(entity, time, time_path, side)
    yield from _check_where(entity, part.where, (*path, "where"))
    measured = _measured_field(part.measure)
    if measured is not None:
        yield from _check_coverage(entity, measured, (*path, "measure"))


def _measured_field(text: str) -> str | None:
    try:
        return parse_measure(text).field
    except RuleError:
        return None


def _check_coverage(entity: EntitySpec, name: str, path: KeyPath) -> Iterator[Finding]:
    """Warn where a field is filled by one CRM only: the same rule would differ between CRMs."""
    field = entity.field(name)
    if field is not None and field.only_from is not None:
        yield Finding("warning", path, f"'{name}' is filled only from {field.only_from} so far; KRs computed "
                      f"from another CRM see it as empty")


def _check_measure(entity: EntitySpec, text: str, path: KeyPath) -> Iterator[Finding]:
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


def _check_time(entity: EntitySpec, time: str, path: KeyPath, side: str | None = None) -> Iterator[Finding]:
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


def _check_objectives(parts: ConfigParts) -> Iterator[Finding]:
    seen_objectives: set[str] = set()
    for objective in parts.objectives:
        path: KeyPath = ("objectives", objective.index)
        if objective.id is not None:
            yield from _check_id(objective.id, (*path, "id"), seen_objectives, "objective")
        if objective.period is not None and not is_valid_period_spec(objective.period):
            yield Finding(
                "error",
                (*path, "period"),
                f"'{objective.period}' is not a period; {PERIOD_HELP}",
                did_you_mean(objective.period, RELATIVE_PERIODS),
            )
        seen_krs: set[str] = set()
        for kr_index, kr in objective.key_results:
            kr_path: KeyPath = (*path, "key_results", kr_index)
            yield from _check_id(kr.id, (*kr_path, "id"), seen_krs, "key result")
            yield from _check_key_result(parts, kr_path, kr)
            if isinstance(kr.target, PhasedTarget):
                yield from _check_phases(parts, objective.period, kr, kr_path)
        for kr_index, name in objective.rejected_metric_refs:
            yield from _check_metric_ref(parts, (*path, "key_results", kr_index), name)


def _check_phases(parts: ConfigParts, period: str | None, kr: KeyResult, path: KeyPath) -> Iterator[Finding]:
    """Phases are monthly amounts of one count or sum: one per month of the period, no breakdown."""
    assert isinstance(kr.target, PhasedTarget)
    target_path = (*path, "target")
    if kr.type != "increase":
        yield Finding("error", target_path, f"phased targets are for increase key results; a {kr.type} key result "
                      "takes one target number")
        return
    if kr.breakdown is not None:
        yield Finding("error", (*path, "breakdown"), "a phased target is one total for the key result; remove the "
                      "breakdown, or give per-group targets with {each: ...}")
    if kr.window != "period":
        yield Finding("error", (*path, "window"), "a phased target spreads the whole period's total over its "
                      "months; remove the window")
    metric = parts.metrics.get(kr.metric or "")
    if metric is not None and not restarts_each_period(metric, parts.metrics):
        yield Finding("error", target_path, "phased targets are monthly amounts of a count or a sum that "
                      "restarts each period; for this metric give one target number")
    try:
        resolved = FiscalCalendar(1).resolve(period or "current", date.today())
    except ValueError:
        return  # the period itself is reported
    months = (resolved.end.year * 12 + resolved.end.month) - (resolved.start.year * 12 + resolved.start.month) + 1
    if len(kr.target.phased) != months:
        yield Finding("error", target_path, f"the period has {months} month(s) but the phased target gives "
                      f"{len(kr.target.phased)} amount(s): give one amount per month, in order")


def _check_hierarchy(parts: ConfigParts) -> Iterator[Finding]:
    """Every parent names another objective, and no objective rolls up into itself."""
    parents = {part.id: part.parent for part in parts.objectives if part.id is not None}
    known = sorted(parents)
    for part in parts.objectives:
        if part.parent is None:
            continue
        path: KeyPath = ("objectives", part.index, "parent")
        if part.parent not in parents:
            yield Finding("error", path, f"parent '{part.parent}' is not the id of an objective in this file",
                          did_you_mean(part.parent, known))
            continue
        seen, current = {part.id}, part.parent
        while current is not None and current not in seen:
            seen.add(current)
            current = parents.get(current)
        if current is not None and current == part.id:
            yield Finding("error", path, f"objective '{part.id}' rolls up into itself through its parents; "
                          "parents must form a tree (company -> team -> rep)")


def _check_id(value: str, path: KeyPath, seen: set[str], what: str) -> Iterator[Finding]:
    if not ID_PATTERN.match(value):
        yield Finding(
            "error", path, f"{what} ids may use only letters, digits, '-' and '_' (no spaces or dots), max 60"
        )
    if value in seen:
        yield Finding("error", path, f"{what} id '{value}' is used twice; ids must be unique")
    seen.add(value)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _check_kr_shape(path: KeyPath, kr: KeyResult) -> Iterator[Finding]:
    """Which keys each type needs and refuses: metric, target, done, baseline, breakdown."""
    kind = kr.type
    if kind != "milestone" and kr.done is not None:
        yield Finding("error", (*path, "done"), "done: applies to milestones only; add type: milestone", on_key=True)
    if kind == "manual":
        if kr.metric is not None:
            yield Finding(
                "error",
                (*path, "metric"),
                "a manual key result takes its value from the check-in file; remove the metric",
                on_key=True,
            )
    elif kind == "milestone":
        if (kr.metric is None) == (kr.done is None):
            yield Finding(
                "error",
                (*path, "type"),
                "a milestone needs either done: true/false or a metric (done when its value is above 0), "
                "not both",
            )
    elif kr.metric is None:
        yield Finding("error", (*path, "metric"), f"{_article(kind)} {kind} key result needs a metric", on_key=True)
    if kind == "milestone":
        if kr.target is not None:
            yield Finding(
                "error", (*path, "target"), "a milestone is done or not; remove the target", on_key=True
            )
    elif kr.target is None:
        yield Finding("error", (*path, "target"), f"{_article(kind)} {kind} key result needs a target", on_key=True)
    if kind in ("manual", "milestone") and kr.breakdown is not None:
        yield Finding(
            "error", (*path, "breakdown"), f"a {kind} key result cannot be broken down; remove the breakdown",
            on_key=True,
        )
    if kind in ("stay_above", "stay_below", "milestone") and kr.baseline is not None:
        yield Finding(
            "error",
            (*path, "baseline"),
            f"remove the baseline: a {kind} key result compares its value with the target only"
            if kind != "milestone"
            else "remove the baseline: a milestone is done or not",
            on_key=True,
        )
    if kind == "manual" and isinstance(kr.target, EachTarget | ChangeTarget):
        yield Finding(
            "error",
            (*path, "target"),
            "a manual key result needs a number target (its value comes from check-ins, per key result)",
        )


def _check_breakdown(entity: EntitySpec, breakdown: str, path: KeyPath) -> Iterator[Finding]:
    """owner / team need an owner; any other breakdown must be a text field of the entity."""
    if breakdown in BREAKDOWNS:
        if not entity.has_owner:
            yield Finding("error", path, f"{entity.name} records have no owner to break down by")
        return
    field = entity.field(breakdown)
    texts = entity.names("text")
    if field is None or field.kind != "text":
        what = "is not a field of" if field is None else f"is a {field.kind}, not a text field of"
        examples = [name for name in texts if "." not in name and not name.endswith("_id")][:5]
        yield Finding("error", path, f"'{breakdown}' {what} {entity.name}; break down by owner, team or a text "
                      f"field such as {', '.join(examples)}",
                      did_you_mean(breakdown, [*BREAKDOWNS, *texts]) if field is None else None)
    else:
        yield from _check_coverage(entity, breakdown, path)


def _check_key_result(parts: ConfigParts, path: KeyPath, kr: KeyResult) -> Iterator[Finding]:
    shape = list(_check_kr_shape(path, kr))
    yield from shape
    if kr.metric is not None:
        yield from _check_metric_ref(parts, path, kr.metric)
    if shape or kr.type in ("manual", "milestone") or kr.target is None or kr.metric is None:
        return
    metric = parts.metrics.get(kr.metric)
    if metric is not None and kr.breakdown is not None:
        aggregates = [part for name in base_metrics(kr.metric, parts.metrics)
                      for _suffix, part, _time in metric_parts(parts.metrics[name])]
        for part in aggregates:
            entity = parts.entities.get(part.entity)
            if entity is not None:
                yield from _check_breakdown(entity, kr.breakdown, (*path, "breakdown"))
    target = kr.target
    if isinstance(target, EachTarget) and kr.breakdown is None:
        yield Finding(
            "error", (*path, "target"), "{each: ...} needs a breakdown (owner, team or a field) on this key result"
        )
    if not isinstance(target, EachTarget | ChangeTarget) and kr.breakdown is not None:
        yield Finding(
            "error",
            (*path, "target"),
            "with a breakdown, give the target per group as {each: N}, or as a change like {change: '+10%'}",
        )
    if kr.type in ("stay_above", "stay_below"):
        return
    if isinstance(target, ChangeTarget):
        if kr.baseline is not None:
            yield Finding(
                "error",
                (*path, "baseline"),
                "remove the baseline: with a change target the baseline is the metric over the "
                + target.vs.replace("_", " "),
                on_key=True,
            )
        if kr.type == "increase" and target.amount < 0:
            yield Finding(
                "error",
                (*path, "target", "change"),
                "an increase needs a positive change; use type: decrease to aim lower",
            )
        if kr.type == "decrease" and target.amount > 0:
            yield Finding(
                "error", (*path, "target", "change"), "a decrease needs a negative change like '-10%'"
            )
        return
    if isinstance(target, PhasedTarget):
        goal = target.total
    else:
        goal = target.each if isinstance(target, EachTarget) else float(target)
    if kr.type == "decrease" and kr.baseline is None:
        yield Finding(
            "error",
            (*path, "type"),
            "a decrease needs a baseline (the value you start from), e.g. baseline: 60",
        )
        return
    baseline = kr.baseline if kr.baseline is not None else 0.0
    if kr.type == "increase" and goal < baseline:
        yield Finding(
            "error",
            (*path, "target"),
            f"the target ({goal:g}) is below the baseline ({baseline:g}); use type: decrease to aim lower",
        )
    if kr.type == "decrease" and goal > baseline:
        yield Finding(
            "error",
            (*path, "target"),
            f"the target ({goal:g}) is above the baseline ({baseline:g}); a decrease aims below its baseline",
        )


def _check_metric_ref(parts: ConfigParts, path: KeyPath, name: str) -> Iterator[Finding]:
    if name not in parts.metric_names:
        known = sorted(parts.metric_names)
        yield Finding("error", (*path, "metric"), f"unknown metric '{name}'", did_you_mean(name, known))


def _check_unused_metrics(parts: ConfigParts) -> Iterator[Finding]:
    used = {kr.metric for objective in parts.objectives for _index, kr in objective.key_results if kr.metric}
    used |= {read for metric in parts.metrics.values() for read in formula_names(metric)}
    for name in parts.metrics:
        if name not in used:
            message = f"metric '{name}' is defined but no key result uses it"
            yield Finding("warning", ("metrics", name), message, on_key=True)


def _check_unused_segments(parts: ConfigParts) -> Iterator[Finding]:
    used = {part.segment for metric in parts.metrics.values() for _suffix, part, _time in metric_parts(metric)}
    for name in parts.segments:
        if name not in used:
            message = f"segment '{name}' is defined but no metric uses it"
            yield Finding("warning", ("segments", name), message, on_key=True)
