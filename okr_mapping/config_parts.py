"""The parts of a config the meaning checks read: the whole config once the schema accepted it, or
(`ConfigParts.salvage`) each metric, segment, custom field and key result that passes on its own.

It lives apart from the checks so validate.py and validate_key_results.py can both read it
without importing each other.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter, ValidationError

from okr_mapping.config import (
    AnyMetric,
    CustomField,
    DerivedMetric,
    KeyResult,
    MeasureSource,
    Metric,
    OkrConfig,
    RatioMetric,
    Segment,
    custom_field_specs,
)
from okr_mapping.entities import EntitySpec, with_custom_fields
from okr_mapping.errors import did_you_mean


@dataclass
class ObjectivePart:
    """An objective's checkable pieces; `key_results` holds only those the schema accepted."""

    index: int
    id: str | None
    period: str | None
    key_results: list[tuple[int, KeyResult]] = field(default_factory=list)
    rejected_metric_refs: list[tuple[int, str]] = field(default_factory=list)  # (kr index, metric name)
    parent: str | None = None
    owner: str | None = None


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

    @cached_property
    def entities(self) -> dict[str, EntitySpec]:
        """The built-in entities with the config's custom fields (clashing names never replace a field)."""
        return with_custom_fields(custom_field_specs(self.custom_fields))

    @classmethod
    def of(cls, config: OkrConfig) -> ConfigParts:
        objectives = [
            ObjectivePart(
                index, objective.id, _text(objective.period), list(enumerate(objective.key_results)),
                parent=objective.parent, owner=objective.owner,
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
                                 parent=_text(raw.get("parent")), owner=_text(raw.get("owner")))
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
