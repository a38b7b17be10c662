"""Evaluate a whole config against the store: one `KrResult` per key result (per group).

This is the single entry point flows call. It resolves each objective's period against
`as_of`, reads the metrics (and, for change targets, the earlier period), and scores them.
Manual key results read the latest check-in dated within the period up to `as_of`; milestones
read their `done:` flag or whether their metric is above 0.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from connectors.store import SOURCES
from okr_mapping import forecast, history, pace, period_close, scoring, windows
from okr_mapping.config import (
    ChangeTarget,
    CheckIn,
    EachTarget,
    KeyResult,
    Objective,
    OkrConfig,
    PhasedTarget,
)
from okr_mapping.errors import Issue, KeyPath, did_you_mean
from okr_mapping.metrics import UNASSIGNED, GroupKey, MetricEvaluator, MetricValue, restarts_each_period
from okr_mapping.owners import crm_users, unknown_owners
from okr_mapping.periods import FiscalCalendar, Period

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")
_MAX_SLUG = 80
_LOG = logging.getLogger(__name__)


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
    owner_id: str | None = None  # the CRM user whose email is `owner`, when the store knows one
    pace: str = "linear"  # the expected-progress curve used (okr_mapping.pace)
    forecast: float | None = None  # the projected end-of-period value (okr_mapping.forecast)
    forecast_confidence: float | None = None  # 0-1: chance of reaching the target (pipeline forecasts)
    forecast_method: str | None = None  # trend | pipeline | final
    final: bool = False  # the frozen result of a closed period (okr_mapping.period_close)

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
    engine: Engine,
    config: OkrConfig,
    source: str | None = None,
    as_of: date | None = None,
    warnings: list[Issue] | None = None,
) -> list[KrResult]:
    """Every key result of `config`, from `source` (default: the config's) as of `as_of` (default: today).

    Raises ValueError for an unknown source; the config is trusted to have passed `load_config`.
    Data-dependent warnings (a per-group override naming no group in the data) are logged and,
    when `warnings` is given, appended to it.
    """
    chosen = source or config.source
    if chosen not in SOURCES:
        raise ValueError(f"unknown source '{chosen}'; use one of {', '.join(SOURCES)}")
    day = measured_day(config, as_of)
    calendar = FiscalCalendar(config.fiscal_year_start_month)
    results: list[KrResult] = []
    found: list[Issue] = []
    reported = history.reported_groups(engine, chosen)
    with engine.connect() as conn:
        evaluator = MetricEvaluator(conn, config, chosen)
        for index, objective in enumerate(config.objectives):
            period = calendar.resolve(objective.period, day)
            for kr_index, kr in enumerate(objective.key_results):
                if kr.type == "manual":
                    results.append(_manual_result(evaluator, config, objective, kr, period, day))
                    continue
                if kr.type == "milestone":
                    results.append(_milestone_result(evaluator, config, objective, kr, period, day))
                    continue
                path: KeyPath = ("objectives", index, "key_results", kr_index, "target", "overrides")
                closed = _closed_baselines(conn, config, chosen, objective, kr, calendar.shift(period, -1),
                                           (*path[:-1], "vs"), found)
                rows = _key_result(evaluator, calendar, config, objective, kr, period, day,
                                   reported.get((objective.id, kr.id, period.label), set()), closed)
                results.extend(rows)
                found.extend(_unseen_overrides(config, kr, rows, path))
        users = crm_users(conn, chosen)
        points = history.trend_points(engine, chosen, results, day)
        results = forecast.attach(conn, config, chosen, results, day, points)
    results = [replace(result, owner_id=users.get(result.owner.lower())) if result.owner else result
               for result in results]
    results = period_close.apply_frozen(engine, chosen, results)  # a closed period keeps its final values
    found.extend(unknown_owners(config, users, chosen))
    for issue in found:
        _LOG.warning("%s", issue.render())
    if warnings is not None:
        warnings.extend(found)
    return results


def measured_day(config: OkrConfig, as_of: date | None = None) -> date:
    """The day a run measures as of: `as_of` (default today in the config's zone) less the reporting lag."""
    return (as_of or config.today()) - timedelta(days=config.reporting_lag_days)


def _closed_baselines(conn: Connection, config: OkrConfig, source: str, objective: Objective, kr: KeyResult,
                      before: Period, path: KeyPath, found: list[Issue]) -> dict[str | None, float] | None:
    """For a change `vs: closed`, per group the final value of `before` (None for other targets); when
    `before` is not closed, a warning, and the change compares with its live values instead."""
    if not isinstance(kr.target, ChangeTarget) or kr.target.vs != "closed":
        return None
    values = period_close.closed_values(conn, source, objective.id, kr.id, before.label)
    if not values:
        found.append(config.issue("warning", path, f"{before.label} is not closed for {source} yet (`okr-sync "
                                  f"close-period {before.label}`): the change compares with its live values"))
    return values


def _unseen_overrides(config: OkrConfig, kr: KeyResult, rows: list[KrResult], path: KeyPath) -> list[Issue]:
    """A warning per override key that names no group of this run (it may still appear later)."""
    if not isinstance(kr.target, EachTarget):
        return []
    seen = sorted(row.group for row in rows if row.group is not None)
    issues = []
    for label in kr.target.overrides:
        if label not in seen:
            what = {"owner": "owner email", "team": "team"}.get(kr.breakdown or "", f"{kr.breakdown} value")
            issues.append(
                config.issue(
                    "warning",
                    (*path, label),
                    f"no {what} '{label}' has records for this key result yet; its override applies once one does",
                    did_you_mean(label, seen),
                )
            )
    return issues


def _key_result(
    evaluator: MetricEvaluator,
    calendar: FiscalCalendar,
    config: OkrConfig,
    objective: Objective,
    kr: KeyResult,
    period: Period,
    as_of: date,
    reported: set[str] = frozenset(),  # type: ignore[assignment]
    closed: dict[str | None, float] | None = None,
) -> list[KrResult]:
    """The KR's results, one per group of a breakdown: the groups with records now, and the groups
    `reported` before in this period (whose records have gone since: they read empty, not stale).
    `closed`: per group, the final value of the previous period (a change `vs: closed`)."""
    assert kr.metric is not None and kr.target is not None  # guaranteed by validation
    metric = config.metrics[kr.metric]
    window = window_of(kr)
    current = evaluator.values(kr.metric, windows.measured(period, window, as_of), kr.breakdown)
    earlier: dict[GroupKey, MetricValue] = {}
    if isinstance(kr.target, ChangeTarget):
        before_period = (
            calendar.shift(period, -1)
            if kr.target.vs != "same_period_last_year"
            else calendar.same_period_last_year(period)
        )
        earlier = evaluator.values(kr.metric, windows.earlier(window, period, before_period, as_of, kr.target.vs),
                                   kr.breakdown)
        earlier |= {None if group in (None, UNASSIGNED) else group: MetricValue(value, 1 if value else 0)
                    for group, value in (closed or {}).items()}  # vs: closed, the groups the period closed with

    curve = pace.curve(evaluator, calendar, kr.metric, kr.pace or config.scoring.pace, period, as_of, kr.breakdown)
    labels = {key: (key if key is not None else UNASSIGNED) for key in current}
    labels |= {(None if label == UNASSIGNED else label): label for label in reported if label not in labels.values()}
    if kr.breakdown is None:
        labels = {None: ""}
    empty = MetricValue(0.0, 0, defined=restarts_each_period(metric, config.metrics))  # a count of nothing is 0
    slugs = _group_slugs(list(labels.values())) if kr.breakdown is not None else {}
    results = []
    for key, label in sorted(labels.items(), key=lambda item: item[1]):
        measured = current.get(key, empty)
        defined = measured.defined
        if isinstance(kr.target, ChangeTarget):
            before = earlier.get(key, MetricValue(0.0, 0))
            # A percentage of nothing is no target: without earlier records there is no baseline.
            defined = defined and before.defined and (before.rows > 0 or not kr.target.is_percent)
            target = kr.target.apply(before.value)
            # A count or sum restarts at 0 each period, so progress runs from 0 to the target;
            # an average or ratio carries over, so it runs from where the last period ended.
            baseline = 0.0 if restarts_each_period(metric, config.metrics) else before.value
        else:
            baseline = kr.baseline if kr.baseline is not None else 0.0
            if isinstance(kr.target, PhasedTarget):
                target = kr.target.total
            else:
                target = kr.target.for_group(label) if isinstance(kr.target, EachTarget) else float(kr.target)
        kind = _metric_kind(kr)
        raw = scoring.progress(kind, measured.value, baseline, target) if defined else 0.0
        group = label if kr.breakdown is not None else None
        if isinstance(kr.target, PhasedTarget):
            expected, used = windows.phased_share(period, kr.target.phased, as_of), "phased"
        else:
            expected = windows.expected_share(window, period, as_of, isinstance(kr.target, ChangeTarget))
            used = "linear" if expected is None else "complete window"
            if expected is None:
                expected, used = curve(key)
        result = _build(config, objective, kr, period, as_of, kind=kind, value=measured.value,
                        baseline=baseline, target=target, raw=raw, rows=measured.rows,
                        source=evaluator.source, unit=metric.unit, group=group,
                        slug=None if group is None else slugs[label], expected=expected)
        results.append(replace(result, pace=used))
    return results


def window_of(kr: KeyResult) -> windows.Window:
    """The KR's window as windows.py takes it."""
    return kr.window if isinstance(kr.window, str) else kr.window.trailing_days


def _metric_kind(kr: KeyResult) -> scoring.KrKind:
    if kr.type in ("increase", "decrease", "stay_above", "stay_below"):
        return kr.type
    raise ValueError(f"key result '{kr.id}' of type {kr.type} has no metric progress")


def _single_result(
    config: OkrConfig,
    objective: Objective,
    kr: KeyResult,
    period: Period,
    as_of: date,
    kind: scoring.KrKind,
    value: float,
    baseline: float,
    target: float,
    rows: int,
    source: str,
    unit: str | None = None,
) -> KrResult:
    """A result without breakdown for a manual or milestone KR (always defined)."""
    raw = scoring.progress(kind, value, baseline, target)
    return _build(config, objective, kr, period, as_of, kind=kind, value=value, baseline=baseline, target=target,
                  raw=raw, rows=rows, source=source, unit=unit)


def _build(
    config: OkrConfig,
    objective: Objective,
    kr: KeyResult,
    period: Period,
    as_of: date,
    *,
    kind: scoring.KrKind,
    value: float,
    baseline: float,
    target: float,
    raw: float,
    rows: int,
    source: str,
    unit: str | None,
    group: str | None = None,
    slug: str | None = None,
    expected: float | None = None,
) -> KrResult:
    """One KrResult: the key, the rounding, the score and the pace status, in one place.

    `expected`: the expected progress when it does not follow the calendar (a phased target).
    """
    expected = period.elapsed_share(as_of) if expected is None else expected
    base_key = f"{objective.id}.{kr.id}.{period.label}"
    return KrResult(
        key=base_key if slug is None else f"{base_key}.{slug}",
        objective_id=objective.id,
        objective_title=objective.title,
        kr_id=kr.id,
        title=kr.title or _default_title(kr.metric or kr.id),
        group=group,
        metric=kr.metric or "",
        period=period.label,
        period_start=period.start,
        period_end=period.end,
        kr_type=kr.type,
        value=_round(value),
        baseline=_round(baseline),
        target=_round(target),
        progress=_round(raw),
        score=_round(scoring.score(raw)),
        expected_progress=_round(expected),
        status=scoring.kr_status(kind, raw, expected, config.scoring.on_track, config.scoring.at_risk),
        unit=unit,
        weight=kr.weight,
        owner=_owner(kr, objective, group),
        sample_size=rows,
        source=source,
    )


def _manual_result(
    evaluator: MetricEvaluator, config: OkrConfig, objective: Objective, kr: KeyResult, period: Period, as_of: date
) -> KrResult:
    """Value = the latest check-in dated in the period up to `as_of`; none yet reads value 0, progress 0.

    Progress runs from the baseline (default 0) to the target, downwards when the target is below it.
    """
    assert kr.target is not None and not isinstance(kr.target, EachTarget | ChangeTarget)
    target = float(kr.target)
    baseline = kr.baseline if kr.baseline is not None else 0.0
    checkin: CheckIn | None = config.latest_checkin(
        f"{objective.id}.{kr.id}", period.start, min(as_of, period.end)
    )
    kind: scoring.KrKind = "decrease" if target < baseline else "increase"
    if checkin is None:
        result = _single_result(
            config, objective, kr, period, as_of, kind, 0.0, baseline, target, 0, evaluator.source
        )
        # No check-in yet: nothing measured, so no progress (not even for a decrease from a baseline).
        return _with_progress(result, 0.0, config, kind)
    return _single_result(
        config, objective, kr, period, as_of, kind, checkin.value, baseline, target, 1, evaluator.source
    )


def _with_progress(result: KrResult, raw: float, config: OkrConfig, kind: scoring.KrKind) -> KrResult:
    status = scoring.kr_status(kind, raw, result.expected_progress, config.scoring.on_track, config.scoring.at_risk)
    return replace(result, progress=_round(raw), score=_round(scoring.score(raw)), status=status)


def _milestone_result(
    evaluator: MetricEvaluator, config: OkrConfig, objective: Objective, kr: KeyResult, period: Period, as_of: date
) -> KrResult:
    """Value 1 when done (the `done:` flag, or the metric's value > 0 over the period), else 0; target 1."""
    rows = 0
    if kr.metric is not None:
        measured = evaluator.values(kr.metric, period).get(None, MetricValue(0.0, 0))
        done = measured.defined and measured.value > 0
        rows = measured.rows
    else:
        done = bool(kr.done)
    value = 1.0 if done else 0.0
    return _single_result(
        config, objective, kr, period, as_of, "milestone", value, 0.0, 1.0, rows, evaluator.source
    )


def _owner(kr: KeyResult, objective: Objective, group: str | None) -> str | None:
    """Who answers for the result: the rep for a per-owner group, else the KR's or objective's owner."""
    if kr.breakdown == "owner" and group is not None and group != UNASSIGNED:
        return group
    return kr.owner or objective.owner
