"""The config schema: what an ops person may write in `config/*.yaml`.

Pydantic checks the shape (unknown keys are errors, thanks to `extra="forbid"`, so a typo never
silently does nothing); `validate.py` then checks meaning (metrics exist, fields are allowed).
Unions use explicit discriminators so an error points at one alternative, not at all of them.
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from okr_mapping.config_base import Comparison, StrictModel  # noqa: F401  (the config's names, imported from here)
from okr_mapping.deployment_config import Org, Schedule, check_orgs
from okr_mapping.entities import CustomFieldSpec, EntitySpec, with_custom_fields
from okr_mapping.errors import Issue, KeyPath, Level
from okr_mapping.targets import ChangeTarget, EachTarget, PhasedTarget, Target  # noqa: F401  (likewise)

if TYPE_CHECKING:
    from okr_mapping.loader import SourceMap

Source = Literal["salesforce", "hubspot"]
KrType = Literal["increase", "decrease", "stay_above", "stay_below", "milestone", "manual"]
METRIC_KR_TYPES = ("increase", "decrease", "stay_above", "stay_below")
# owner | team | a text field of the metric's entity, e.g. account.region or product_family (validate_key_results.py)
Breakdown = Annotated[str, Field(min_length=1, description=(
    "One key result per group: owner (by email), team, or a text field of the metric's entity such as "
    "account.region, deal_type or product_family"))]


Pace = Literal["linear", "step", "seasonal"]
AlertTransition = Literal["at_risk", "off_track", "achieved"]
# on / off (YAML reads them as true / false), or the transitions to alert on (okr_mapping.alerts)
AlertSetting = Annotated[bool | list[AlertTransition], Field(description=(
    "Alerts in the CRM when a key result's status changes: on (every transition: a task for its owner when it"
    " turns at_risk or off_track, a celebration post when achieved), off, or a list of the transitions to"
    " alert on, e.g. [off_track, achieved]"))]


class ScoringSettings(StrictModel):
    """Pace thresholds: on track at ≥ on_track × expected progress, at risk at ≥ at_risk × expected."""

    on_track: float = Field(0.95, ge=0, le=1)
    at_risk: float = Field(0.75, ge=0, le=1)
    pace: Pace = Field("linear", description=(
        "The expected-progress curve of every key result without its own: linear (share of days gone by),"
        " step (month by month) or seasonal (last year's shape of the same period)"))

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
    time: str | None = Field(None, description=(
        "The date field that puts a record in a period (default: the entity's), or all for a snapshot "
        "filtered with period_start / period_end"))


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


class DerivedMetric(StrictModel):
    """Arithmetic over other metrics, each taken over the same period (and group of a breakdown)."""

    derived: str = Field(
        description="A formula of metric names, numbers, + - * / and parentheses",
        json_schema_extra={"examples": ["closed_won_revenue / won_deals", "(revenue - cost) / cost * 100"]},
    )
    unit: str | None = None
    description: str | None = None


AnyMetric = SimpleMetric | RatioMetric | DerivedMetric


def _metric_kind(value: Any) -> str | None:
    if isinstance(value, DerivedMetric) or (isinstance(value, dict) and "derived" in value):
        return "derived_metric"
    if isinstance(value, RatioMetric) or (isinstance(value, dict) and "ratio" in value):
        return "ratio_metric"
    if isinstance(value, SimpleMetric | dict):
        return "simple_metric"
    return None


Metric = Annotated[
    Annotated[SimpleMetric, Tag("simple_metric")]
    | Annotated[RatioMetric, Tag("ratio_metric")]
    | Annotated[DerivedMetric, Tag("derived_metric")],
    Discriminator(
        _metric_kind,
        custom_error_type="metric_shape",
        custom_error_message="a metric must be a mapping with entity/measure, with ratio, or with derived",
    ),
]


class KeyResult(StrictModel):
    """One measurable result: a metric (or a check-in, or a done flag), a target, and how progress is read.

    increase / decrease: progress runs from baseline to target. stay_above / stay_below: progress
    is 1 while the value is on the right side of the target (the target itself counts), else 0.
    milestone: `done: true/false`, or a metric whose value > 0 means done; progress 1 or 0.
    manual: the value is the latest check-in from the config's `checkins:` file.
    """

    id: str
    title: str | None = None
    metric: str | None = None
    type: KrType = "increase"
    baseline: float | None = None
    target: Target | None = None
    done: bool | None = None
    breakdown: Breakdown | None = None
    window: WindowSpec = Field(
        "period", description="Which days count: period (all of it), to_date (up to the run) or {trailing_days: N}")
    weight: float = Field(1.0, ge=0)
    owner: str | None = None
    pace: Pace | None = Field(None, description="linear, step or seasonal; default: scoring.pace")


class TrailingWindow(StrictModel):
    """The N days up to the day of the run, e.g. {trailing_days: 30}."""

    trailing_days: int = Field(ge=1, le=3660)


def _window_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "named"
    if isinstance(value, TrailingWindow | dict):
        return "trailing"
    return None


WindowSpec = Annotated[
    Annotated[Literal["period", "to_date"], Tag("named")] | Annotated[TrailingWindow, Tag("trailing")],
    Discriminator(
        _window_kind,
        custom_error_type="window_shape",
        custom_error_message="a window is period, to_date, or {trailing_days: N}",
    ),
]


class CustomPeriod(StrictModel):
    """A period of explicit dates, both inclusive: {start: 2026-10-01, end: 2026-12-15}."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> CustomPeriod:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")
        return self


def _period_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "named"
    if isinstance(value, CustomPeriod | dict):
        return "custom"
    return None


PeriodSpec = Annotated[
    Annotated[str, Tag("named")] | Annotated[CustomPeriod, Tag("custom")],
    Discriminator(
        _period_kind,
        custom_error_type="period_shape",
        custom_error_message=(
            "the period must be a name (current, current_half, current_year, 2026-Q4, 2026-H1, FY2026)"
            " or custom dates {start: 2026-10-01, end: 2026-12-15}"
        ),
    ),
]


class CheckIn(StrictModel):
    """One entry of a check-in file: `{kr: objective-id.kr-id, value: 42, date: 2026-11-20, note: ...}`."""

    kr: str
    value: float
    date: dt.date
    note: str | None = None


class Objective(StrictModel):
    """A qualitative goal for one period, measured by its key results."""

    id: str
    title: str
    period: PeriodSpec = "current"
    owner: str | None = Field(None, description="The owner's email, matched to the CRM user with that email")
    parent: str | None = Field(
        None, description="Id of the objective this one rolls up into (company -> team -> rep)")
    weight: float = Field(1.0, ge=0, description="This objective's weight in its parent's roll-up")
    alerts: AlertSetting | None = None  # None: the file's `alerts:`
    key_results: list[KeyResult] = Field(min_length=1)


class CustomField(StrictModel):
    """A CRM field read into an entity's records under a name rules can use like any other field.

    Name it once for each CRM it comes from; okr-sync checks it exists in the CRM before reading.
    """

    salesforce: str | None = Field(None, description="API name of the Salesforce field, e.g. Region__c")
    hubspot: str | None = Field(None, description="internal name of the HubSpot property, e.g. region")
    type: Literal["text", "number", "bool", "date"] = Field(
        "text", description="what its values are: text, number, bool (true/false) or date")
    description: str | None = None


class OkrConfig(StrictModel):
    """A whole config file: calendar, data source, scoring, named segments and metrics, and objectives."""

    fiscal_year_start_month: int = Field(1, ge=1, le=12)
    time_zone: str = Field("UTC", description=(
        "The company's time zone (an IANA name such as Europe/Berlin), normally the CRM's: which day 'today'"
        " is for a run, and which day a CRM time (a call at 8 pm, a case closed at night) counts on"))
    reporting_lag_days: int = Field(
        0, ge=0, le=90,
        description="Measure as of this many days before the run, when the CRM's latest days are still incomplete")
    source: Source = "salesforce"
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    segments: dict[str, Segment] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    checkins: str | None = Field(
        None, description="Check-in file for manual key results, relative to this config file"
    )
    custom_fields: dict[str, dict[str, CustomField]] = Field(
        default_factory=dict,
        description="Extra CRM fields per entity, e.g. account: {region: {salesforce: Region__c, hubspot: region}}",
    )
    objectives: list[Objective] = Field(min_length=1)
    alerts: AlertSetting = True  # every objective's, unless it sets its own
    schedule: Schedule = Field(default_factory=Schedule, description=(
        "When the nightly deployment runs (okr-sync deployments / serve): a cron schedule in time_zone"))
    orgs: list[Org] = Field(default_factory=list, description=(
        "The CRM orgs this config is run for, one deployment each, each with its own credentials and store "
        "(docs/scheduling.md); none: one org, credentials from the environment"))

    _warnings: list[Issue] = PrivateAttr(default_factory=list)
    _checkins: dict[str, list[CheckIn]] = PrivateAttr(default_factory=dict)
    _source_map: SourceMap | None = PrivateAttr(None)
    _entities: dict[str, EntitySpec] | None = PrivateAttr(None)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            suggestion = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f"; did you mean {suggestion[0]}?" if suggestion else " such as Europe/Berlin or America/New_York"
            raise ValueError(f"'{value}' is not a time zone name{hint}") from None
        return value

    @field_validator("orgs")
    @classmethod
    def _distinct_orgs(cls, orgs: list[Org]) -> list[Org]:
        return check_orgs(orgs)

    def org(self, name: str) -> Org | None:
        """The org called `name` (None when the config has no such org)."""
        return next((org for org in self.orgs if org.name == name), None)

    def today(self) -> dt.date:
        """Today's date in the config's time zone (the default day a run measures as of)."""
        return dt.datetime.now(ZoneInfo(self.time_zone)).date()

    @property
    def entities(self) -> dict[str, EntitySpec]:
        """The entities rules may use: the built-in ones with this config's custom fields added (built once:
        every metric evaluation asks)."""
        if self._entities is None:
            self._entities = with_custom_fields(custom_field_specs(self.custom_fields))
        return self._entities

    def crm_custom_fields(self, crm: str) -> dict[str, dict[str, str]]:
        """entity -> {name: CRM field} of the custom fields `crm` fills (what its connector reads)."""
        mapping: dict[str, dict[str, str]] = {}
        for entity, fields in self.custom_fields.items():
            for name, spec in fields.items():
                crm_field = getattr(spec, crm, None)
                if crm_field:
                    mapping.setdefault(entity, {})[name] = crm_field
        return mapping

    def latest_checkin(self, kr_key: str, start: dt.date, end: dt.date) -> CheckIn | None:
        """The latest check-in for `objective-id.kr-id` dated within start..end (both inclusive)."""
        found = [checkin for checkin in self._checkins.get(kr_key, ()) if start <= checkin.date <= end]
        return max(found, key=lambda checkin: checkin.date, default=None)

    def issue(self, level: Level, path: KeyPath, message: str, suggestion: str | None = None) -> Issue:
        """An issue at `path`, placed at its file and line when the config was read from YAML."""
        if self._source_map is not None:
            return self._source_map.issue(level, path, message, suggestion, on_key=True)
        return Issue(level, message, path, suggestion=suggestion)

    @property
    def warnings(self) -> list[Issue]:
        """Non-fatal issues found while loading (e.g. metrics no key result uses, unused segments)."""
        return list(self._warnings)


def custom_field_specs(fields: dict[str, dict[str, CustomField]]) -> dict[str, list[CustomFieldSpec]]:
    """The config's custom fields as the entities allow-list takes them."""
    return {
        entity: [CustomFieldSpec(entity, name, spec.type,
                                 tuple(crm for crm in ("salesforce", "hubspot") if getattr(spec, crm)),
                                 spec.description or "")
                 for name, spec in named.items()]
        for entity, named in fields.items()
    }
