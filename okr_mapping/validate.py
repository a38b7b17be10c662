"""Meaning checks that run after the schema accepted a config's shape.

Each check returns findings with a key path; the loader turns paths into file positions. All
checks run, so the reader sees every problem in one go. Messages are written for the person
maintaining the YAML, not for a programmer.

This module holds check_config and the metric and segment checks. The checked parts live in
config_parts.py, the checks of a rule against its entity's fields in validate_fields.py, and the
objective and key-result checks in validate_key_results.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from okr_mapping.config import DerivedMetric, MeasureSource, OkrConfig, RatioMetric
from okr_mapping.config_parts import ConfigParts, ObjectivePart, metric_parts
from okr_mapping.custom_fields import check_custom_fields, suggest_entity
from okr_mapping.derived import check_derived, formula_names
from okr_mapping.entities import ENTITIES
from okr_mapping.errors import KeyPath, did_you_mean
from okr_mapping.findings import Finding
from okr_mapping.rules import ALL_TIME
from okr_mapping.validate_fields import check_coverage, check_measure, check_time, check_where, measured_field
from okr_mapping.validate_key_results import ID_PATTERN, check_hierarchy, check_objectives

# ConfigParts, ObjectivePart, metric_parts and ID_PATTERN moved out with the split; they stay importable from here
__all__ = ["ID_PATTERN", "METRIC_NAME_PATTERN", "ConfigParts", "ObjectivePart", "check_config", "metric_parts"]

METRIC_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")


def check_config(config: OkrConfig | ConfigParts) -> list[Finding]:
    """Every meaning problem in a config (or in the parts of it the schema accepted)."""
    parts = config if isinstance(config, ConfigParts) else ConfigParts.of(config)
    findings = list(check_custom_fields(parts.custom_fields))
    findings.extend(_check_segments(parts))
    findings.extend(_check_metrics(parts))
    findings.extend(check_objectives(parts))
    findings.extend(check_hierarchy(parts))
    if parts.complete:
        findings.extend(_check_unused_metrics(parts))
        findings.extend(_check_unused_segments(parts))
    return findings


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
        yield from check_where(entity, segment.where, (*base, "where"))


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
    yield from check_measure(entity, part.measure, (*path, "measure"))
    if time == ALL_TIME and part.measure.replace(" ", "").startswith("count_first("):
        yield Finding("error", time_path, "count_first needs a date to find each value's first record; "
                      f"use one of {', '.join(entity.names('date'))} instead of all")
    elif time is not None and time != ALL_TIME:
        yield from check_time(entity, time, time_path, side)
    yield from check_where(entity, part.where, (*path, "where"))
    measured = measured_field(part.measure)
    if measured is not None:
        yield from check_coverage(entity, measured, (*path, "measure"))


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
