"""The config schema: what an ops person may write in `config/*.yaml`.

Pydantic checks the shape (unknown keys are errors, thanks to `extra="forbid"`, so a typo never
silently does nothing); `validate.py` then checks meaning (metrics exist, fields are allowed).
Unions use explicit discriminators so an error points at one alternative, not at all of them.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from okr_mapping.errors import Issue

Source = Literal["salesforce", "hubspot"]
KrType = Literal["increase", "decrease"]
Breakdown = Literal["owner", "team"]
Comparison = Literal["previous_period", "same_period_last_year"]

_CHANGE = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d+)?|\.\d+)\s*(%?)\s*$")


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ScoringSettings(StrictModel):
    """Pace thresholds: on track at ≥ on_track × expected progress, at risk at ≥ at_risk × expected."""

    on_track: float = Field(0.95, ge=0, le=1)
    at_risk: float = Field(0.75, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ScoringSettings:
        if self.at_risk > self.on_track:
            raise ValueError("at_risk must not be above on_track")
        return self


# A filter: `field: value` entries (all must hold) and the combinators all / any / not, nested.
# Its grammar lives in rules.py; schema.py swaps the "x-okr" marker for its full JSON Schema.
Where = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "x-okr": "where"})]


class Segment(StrictModel):
    """A named, reusable filter over one entity, e.g. `enterprise: {entity: deal, where: {...}}`."""

    entity: str
    where: Where
    description: str | None = None


class MeasureSource(StrictModel):
    """One side of a ratio: an entity, a measure and filters (time comes from the metric).

    With `segment: name` the segment's filter is ANDed with `where`.
    """

    entity: str
    measure: str = Field(
        json_schema_extra={
            "examples": ["count", "sum(amount)", "avg(amount)", "median(amount)", "percentile(amount, 90)"]
        }
    )
    segment: str | None = None
    where: Where | None = None
    time: str | None = None


class SimpleMetric(MeasureSource):
    """A metric computed by one aggregate over one entity, e.g. sum(amount) of won deals."""

    unit: str | None = None
    description: str | None = None


class RatioParts(StrictModel):
    numerator: MeasureSource
    denominator: MeasureSource


class RatioMetric(StrictModel):
    """numerator / denominator; with unit "%" the value is shown ×100 (0-100)."""

    ratio: RatioParts
    time: str | None = None
    unit: str | None = None
    description: str | None = None


def _metric_kind(value: Any) -> str | None:
    if isinstance(value, RatioMetric) or (isinstance(value, dict) and "ratio" in value):
        return "ratio_metric"
    if isinstance(value, SimpleMetric | dict):
        return "simple_metric"
    return None


Metric = Annotated[
    Annotated[SimpleMetric, Tag("simple_metric")] | Annotated[RatioMetric, Tag("ratio_metric")],
    Discriminator(
        _metric_kind,
        custom_error_type="metric_shape",
        custom_error_message="a metric must be a mapping with entity/measure, or with ratio",
    ),
]


class ChangeTarget(StrictModel):
    """Target relative to the same metric over an earlier period: "+10%", "-5%" or "+20000"."""

    change: Annotated[str, WithJsonSchema({"type": ["string", "number"], "examples": ["+10%", "-5%"]})]
    vs: Comparison = "previous_period"

    @field_validator("change", mode="before")
    @classmethod
    def _readable_change(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("write the change like '+10%', '-5%' or '+20000'")
        text = f"{value:+g}" if isinstance(value, int | float) else value
        if not _CHANGE.match(text):
            raise ValueError(f"'{value}' is not a change; write it like '+10%', '-5%' or '+20000'")
        return text.strip()

    @property
    def is_percent(self) -> bool:
        return self.change.endswith("%")

    @property
    def amount(self) -> float:
        """The signed number: 10.0 for "+10%", -5.0 for "-5%", 20000.0 for "+20000"."""
        match = _CHANGE.match(self.change)
        assert match is not None  # guaranteed by the validator
        sign = -1.0 if match.group(1) == "-" else 1.0
        return sign * float(match.group(2))

    def apply(self, baseline: float) -> float:
        """The target reached by changing `baseline` by this amount."""
        if self.is_percent:
            return baseline * (1 + self.amount / 100)
        return baseline + self.amount


class EachTarget(StrictModel):
    """The same target for every group of a breakdown (e.g. every rep)."""

    each: float


_TARGET_KEYS = {"change_target": ("change", "vs"), "each_target": ("each",)}


def _target_kind(value: Any) -> str | None:
    if isinstance(value, ChangeTarget):
        return "change_target"
    if isinstance(value, EachTarget):
        return "each_target"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    if isinstance(value, dict):
        if "change" in value:
            return "change_target"
        if "each" in value:
            return "each_target"
        # A misspelt key: route to the closest shape so the error says "did you mean".
        for key in value:
            for kind, keys in _TARGET_KEYS.items():
                if isinstance(key, str) and difflib.get_close_matches(key, keys, n=1, cutoff=0.6):
                    return kind
    return None


Target = Annotated[
    Annotated[float, Tag("number")]
    | Annotated[ChangeTarget, Tag("change_target")]
    | Annotated[EachTarget, Tag("each_target")],
    Discriminator(
        _target_kind,
        custom_error_type="target_shape",
        custom_error_message=(
            "the target must be a number (500000), a change ({change: '+10%', vs: previous_period})"
            " or a per-group value with a breakdown ({each: 100000})"
        ),
    ),
]


class KeyResult(StrictModel):
    """One measurable result: a metric, a target, and how progress is read."""

    id: str
    title: str | None = None
    metric: str
    type: KrType = "increase"
    baseline: float | None = None
    target: Target
    breakdown: Breakdown | None = None
    weight: float = Field(1.0, ge=0)
    owner: str | None = None


class Objective(StrictModel):
    """A qualitative goal for one period, measured by its key results."""

    id: str
    title: str
    period: str = "current"
    owner: str | None = None
    key_results: list[KeyResult] = Field(min_length=1)


class OkrConfig(StrictModel):
    """A whole config file: calendar, data source, scoring, named segments and metrics, and objectives."""

    fiscal_year_start_month: int = Field(1, ge=1, le=12)
    source: Source = "salesforce"
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    segments: dict[str, Segment] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    objectives: list[Objective] = Field(min_length=1)

    _warnings: list[Issue] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[Issue]:
        """Non-fatal issues found while loading (e.g. metrics no key result uses, unused segments)."""
        return list(self._warnings)
