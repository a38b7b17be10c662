"""What an explanation of a key result holds, as plain frozen data: the key result's numbers and
how each was obtained, and each aggregate query with the records it counts.

explain.py fills it in, explain_words.py words its numbers and flows render it; keeping the
data here lets the two okr_mapping modules share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from okr_mapping.compute import KrResult
from okr_mapping.periods import Period


@dataclass(frozen=True)
class ContributingRecord:
    """One record the metric measures: its CRM id, the measured field's value (None for a plain
    count), its date in the metric's time field, and an activity's kind (which CRM object it is)."""

    id: str
    value: float | None
    day: date | None
    kind: str | None = None


@dataclass(frozen=True)
class SideExplanation:
    """One aggregate query of a metric: a simple metric's, or a ratio's numerator or denominator."""

    name: str  # "metric", "numerator", "denominator"; a derived metric's operands are prefixed by name
    entity: str
    measure: str
    measure_words: str
    field: str | None
    filters: list[str]
    time_field: str
    sql: str
    parameters: dict[str, Any] | None  # set only when the SQL could not show the values inline
    value: float | None  # this side's aggregate for the explained group; None when undefined
    row_count: int
    records: list[ContributingRecord]
    total_records: int  # records with a value in the measured field (all matched rows for a count)
    store_rows: int  # records of the entity from this source in the store at all (0: never synced)


@dataclass(frozen=True)
class GroupValue:
    """One group of a breakdown as the run computes it."""

    label: str
    value: float
    target: float
    progress: float
    status: str


@dataclass(frozen=True)
class Explanation:
    """Everything behind one key result (one group of a breakdown) on one day from one source."""

    ref: str  # objective-id.kr-id
    objective_title: str
    title: str
    kr_type: str
    metric: str | None
    metric_kind: str | None  # "simple", "ratio", "derived" or None (manual, milestone without metric)
    formula: str | None  # how the sides combine (ratio, derived)
    unit: str | None
    source: str
    as_of: date
    period: Period
    breakdown: str | None
    groups: list[GroupValue]
    group: str | None
    sides: list[SideExplanation]
    result: KrResult | None  # None: a breakdown with no group in the period
    defined: bool
    value_how: str
    baseline_how: str
    target_how: str
    progress_formula: str
    score_how: str
    expected_how: str
    status_how: str
    notes: list[str] = field(default_factory=list)
