"""Evaluate a whole config against the store: one `KrResult` per key result (per group).

This is the single entry point flows call. It resolves each objective's period against
`as_of`, reads the metrics (and, for change targets, the earlier period), and scores them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine

from connectors.store import SOURCES
from okr_mapping import scoring
from okr_mapping.config import (
    ChangeTarget,
    EachTarget,
    KeyResult,
    Objective,
    OkrConfig,
    RatioMetric,
    SimpleMetric,
)
from okr_mapping.metrics import GroupKey, MetricEvaluator, MetricValue
from okr_mapping.periods import FiscalCalendar, Period
from okr_mapping.rules import parse_measure

UNASSIGNED = "(unassigned)"  # not a value a CRM team or email takes, so it never merges with one
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")
_MAX_SLUG = 80
_SHIFT = {"previous_period": -1, "same_period_last_year": -4}


@dataclass(frozen=True)
class KrResult:
    """A key result's computed state for one period (and one group of a breakdown).

    `key` is stable across runs and unique within a config; writeback upserts on it.
    `sample_size` is the number of records measured (the denominator's for a ratio). When the
    value is undefined — an average of nothing, a ratio over nothing, or a percentage change
    from a period with no records — value/baseline read 0 and progress is 0, so an empty
    quarter never reads as "achieved".
    """

    key: str
    objective_id: str
    objective_title: str
    kr_id: str
    title: str
    group: str | None
    metric: str
    period: str
    period_start: date
    period_end: date
    kr_type: str
    value: float
    baseline: float
    target: float
    progress: float
    score: float
    expected_progress: float
    status: scoring.Status
    unit: str | None = None
    weight: float = 1.0
    owner: str | None = None
    sample_size: int = 0
    source: str = ""

    def as_row(self) -> dict[str, Any]:
        """JSON-friendly dict (dates as ISO strings) for writeback and reports."""
        row = asdict(self)
        row["period_start"] = self.period_start.isoformat()
        row["period_end"] = self.period_end.isoformat()
        return row


def slugify(value: str) -> str:
    """A group label reduced to key-safe characters ([A-Za-z0-9._:-]), lower-cased for stability."""
    slug = _UNSAFE.sub("-", value.strip().lower()).strip("-.") or "none"
    if len(slug) > _MAX_SLUG:
        slug = f"{slug[: _MAX_SLUG - 9]}-{_digest(value)}"
    return slug


def _digest(value: str) -> str:
    return hashlib.sha1(value.encode("utf-8")).hexdigest()[:8]


def _group_slugs(labels: list[str]) -> dict[str, str]:
    """Slug per label; labels whose slugs collide get a short hash so keys stay unique."""
    slugs = {label: slugify(label) for label in labels}
    counts: dict[str, int] = {}
    for slug in slugs.values():
        counts[slug] = counts.get(slug, 0) + 1
    return {label: slug if counts[slug] == 1 else f"{slug}-{_digest(label)}" for label, slug in slugs.items()}


def _default_title(metric: str) -> str:
    return metric.replace("_", " ").capitalize()


def _round(value: float) -> float:
    """Four decimals: enough for money and percentages, and stable for change detection."""
    return round(value, 4) + 0.0  # + 0.0 turns -0.0 into 0.0


def compute_key_results(
    engine: Engine, config: OkrConfig, source: str | None = None, as_of: date | None = None
) -> list[KrResult]:
    """Every key result of `config`, from `source` (default: the config's) as of `as_of` (default: today).

    Raises ValueError for an unknown source; the config is trusted to have passed `load_config`.
    """
    chosen = source or config.source
    if chosen not in SOURCES:
        raise ValueError(f"unknown source '{chosen}'; use one of {', '.join(SOURCES)}")
    day = as_of or date.today()
    calendar = FiscalCalendar(config.fiscal_year_start_month)
    results: list[KrResult] = []
    with engine.connect() as conn:
        evaluator = MetricEvaluator(conn, config, chosen)
        for objective in config.objectives:
            period = calendar.resolve(objective.period, day)
            for kr in objective.key_results:
                results.extend(_key_result(evaluator, calendar, config, objective, kr, period, day))
    return results


def _key_result(
    evaluator: MetricEvaluator,
    calendar: FiscalCalendar,
    config: OkrConfig,
    objective: Objective,
    kr: KeyResult,
    period: Period,
    as_of: date,
) -> list[KrResult]:
    metric = config.metrics[kr.metric]
    current = evaluator.values(kr.metric, period, kr.breakdown)
    earlier: dict[GroupKey, MetricValue] = {}
    if isinstance(kr.target, ChangeTarget):
        earlier = evaluator.values(kr.metric, calendar.shift(period, _SHIFT[kr.target.vs]), kr.breakdown)

    labels = {key: (key if key is not None else UNASSIGNED) for key in current}
    if kr.breakdown is None:
        labels = {None: ""}
    slugs = _group_slugs(list(labels.values())) if kr.breakdown is not None else {}
    expected = period.elapsed_share(as_of)
    base_key = f"{objective.id}.{kr.id}.{period.label}"
    results = []
    for key, label in sorted(labels.items(), key=lambda item: item[1]):
        measured = current.get(key, MetricValue(0.0, 0))
        defined = measured.defined
        if isinstance(kr.target, ChangeTarget):
            before = earlier.get(key, MetricValue(0.0, 0))
            # A percentage of nothing is no target: without earlier records there is no baseline.
            defined = defined and before.defined and (before.rows > 0 or not kr.target.is_percent)
            target = kr.target.apply(before.value)
            # A count or sum restarts at 0 each period, so progress runs from 0 to the target;
            # an average or ratio carries over, so it runs from where the last period ended.
            baseline = 0.0 if _accumulates(metric) else before.value
        else:
            baseline = kr.baseline if kr.baseline is not None else 0.0
            target = kr.target.each if isinstance(kr.target, EachTarget) else float(kr.target)
        raw = scoring.progress(kr.type, measured.value, baseline, target) if defined else 0.0
        group = label if kr.breakdown is not None else None
        results.append(
            KrResult(
                key=base_key if group is None else f"{base_key}.{slugs[label]}",
                objective_id=objective.id,
                objective_title=objective.title,
                kr_id=kr.id,
                title=kr.title or _default_title(kr.metric),
                group=group,
                metric=kr.metric,
                period=period.label,
                period_start=period.start,
                period_end=period.end,
                kr_type=kr.type,
                value=_round(measured.value),
                baseline=_round(baseline),
                target=_round(target),
                progress=_round(raw),
                score=_round(scoring.score(raw)),
                expected_progress=_round(expected),
                status=scoring.status(raw, expected, config.scoring.on_track, config.scoring.at_risk),
                unit=metric.unit,
                weight=kr.weight,
                owner=_owner(kr, objective, group),
                sample_size=measured.rows,
                source=evaluator.source,
            )
        )
    return results


def _accumulates(metric: SimpleMetric | RatioMetric) -> bool:
    """True for metrics that grow through a period from zero (counts and sums)."""
    return isinstance(metric, SimpleMetric) and parse_measure(metric.measure).defined_on_empty


def _owner(kr: KeyResult, objective: Objective, group: str | None) -> str | None:
    """Who answers for the result: the rep for a per-owner group, else the KR's or objective's owner."""
    if kr.breakdown == "owner" and group is not None and group != UNASSIGNED:
        return group
    return kr.owner or objective.owner
