"""Why a key result reads what it reads: its metric in words, the SQL behind it, the records it
counts and every number from value to status, as a plain data structure (flows render it).

The numbers come from `compute_key_results` itself (run over a config holding only this KR), so
an explanation can never disagree with what a run writes back. The records are read with the
aggregate query `build_query` produces, its columns swapped for each record's id and measured
field: the same FROM, joins and WHERE by construction, so the records listed are exactly those
the metric measures. Nothing here talks to a CRM.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, func, null, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.elements import ColumnElement

from okr_mapping import scoring, windows
from okr_mapping.compute import UNASSIGNED, KrResult, compute_key_results, window_of
from okr_mapping.config import (
    ChangeTarget,
    EachTarget,
    KeyResult,
    MeasureSource,
    Objective,
    OkrConfig,
    PhasedTarget,
)
from okr_mapping.errors import Issue
from okr_mapping.metrics import MetricEvaluator, MetricValue, build_query, resolve_where, restarts_each_period
from okr_mapping.periods import FiscalCalendar, Period
from okr_mapping.rules import ALL_TIME, Condition, Group, Measure, parse_measure

DEFAULT_LIMIT = 20
_OPS = {"eq": "is", "ne": "is not", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "in": "is one of",
        "not_in": "is none of"}


class ExplainError(ValueError):
    """A key result or group that cannot be explained as asked (unknown, ambiguous); a readable message."""


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


def find_key_result(config: OkrConfig, ref: str) -> tuple[Objective, KeyResult]:
    """The KR named `objective-id.kr-id`, or `kr-id` when only one objective has it; ExplainError otherwise."""
    qualified = {f"{o.id}.{kr.id}": (o, kr) for o in config.objectives for kr in o.key_results}
    if ref in qualified:
        return qualified[ref]
    bare = [key for key, (_, kr) in qualified.items() if kr.id == ref]
    if len(bare) == 1:
        return qualified[bare[0]]
    if bare:
        raise ExplainError(f"'{ref}' is a key result of several objectives: {', '.join(bare)}; "
                           f"name one as objective-id.kr-id")
    names = list(qualified) + sorted({kr.id for _, kr in qualified.values()})
    close = difflib.get_close_matches(ref, names, n=5, cutoff=0.5)
    close = close or [name for name in qualified if ref.lower() in name.lower()][:5]
    hint = f"did you mean {', '.join(close)}?" if close else f"key results: {', '.join(qualified)}"
    raise ExplainError(f"no key result '{ref}' in the config; {hint}")


def explain_key_result(
    engine: Engine,
    config: OkrConfig,
    ref: str,
    source: str | None = None,
    as_of: date | None = None,
    group: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Explanation:
    """Explain one key result; raises ExplainError for an unknown KR or group, ValueError for a bad source."""
    objective, kr = find_key_result(config, ref)
    chosen = source or config.source
    run_day = as_of or config.today()
    day = run_day - timedelta(days=config.reporting_lag_days)  # as compute_key_results measures
    calendar = FiscalCalendar(config.fiscal_year_start_month)
    period = calendar.resolve(objective.period, day)
    window = window_of(kr) if kr.metric is not None else "period"
    days = windows.measured(period, window, day)  # the days the KR counts (its window)
    only = config.model_copy(update={"objectives": [objective.model_copy(update={"key_results": [kr]})]})
    warnings: list[Issue] = []
    results = compute_key_results(engine, only, chosen, run_day, warnings)
    groups = [GroupValue(r.group, r.value, r.target, r.progress, r.status) for r in results if r.group is not None]
    result = _pick(results, kr, group, f"{objective.id}.{kr.id}")
    label = result.group if result is not None else None
    key = None if label in (None, UNASSIGNED) else label
    with engine.connect() as conn:
        evaluator = MetricEvaluator(conn, config, chosen)
        metric = config.metrics.get(kr.metric) if kr.metric is not None else None
        sides = _sides(conn, config, kr.metric, chosen, days, kr.breakdown, key, label, limit) if metric else []
        measured = evaluator.values(kr.metric, days, kr.breakdown).get(key, MetricValue(0.0, 0)) \
            if metric is not None and (result is not None) else MetricValue(0.0, 0, defined=False)
        before_period, before = None, None
        if isinstance(kr.target, ChangeTarget) and metric is not None:
            base_before = (calendar.shift(period, -1) if kr.target.vs == "previous_period"
                           else calendar.same_period_last_year(period))
            before_period = windows.earlier(window, period, base_before, day, kr.target.vs)
            before = evaluator.values(kr.metric, before_period, kr.breakdown).get(key, MetricValue(0.0, 0))
    explanation = Explanation(
        ref=f"{objective.id}.{kr.id}", objective_title=objective.title,
        title=kr.title or (kr.metric or kr.id).replace("_", " ").capitalize(), kr_type=kr.type,
        metric=kr.metric, metric_kind=_metric_kind(metric), formula=_formula(metric),
        unit=getattr(metric, "unit", None),
        source=chosen, as_of=day, period=period, breakdown=kr.breakdown, groups=groups, group=label, sides=sides,
        result=result, defined=measured.defined, value_how="", baseline_how="", target_how="", progress_formula="",
        score_how="", expected_how="", status_how="", notes=[issue.message for issue in warnings],
    )
    if config.reporting_lag_days:
        explanation.notes.append(f"measured as of {day}: the config's reporting lag is {config.reporting_lag_days} "
                                 f"day(s) before {run_day}")
    if days != period:
        explanation.notes.append(f"the key result counts {days.start} – {days.end} of {period.label} (window)")
    if result is None:
        explanation.notes.append(f"no {kr.breakdown} group has records in {period.label}: nothing to score yet")
        return explanation
    return _with_numbers(explanation, config, kr, result, measured, before_period, before)


def _pick(results: list[KrResult], kr: KeyResult, group: str | None, ref: str) -> KrResult | None:
    if kr.breakdown is None:
        if group is not None:
            raise ExplainError(f"{ref} has no breakdown, so --group does not apply")
        return results[0]
    if group is None:
        return results[0] if results else None
    for result in results:
        if result.group == group:
            return result
    labels = [result.group or "" for result in results]
    close = difflib.get_close_matches(group, labels, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else (
        f"groups: {', '.join(labels)}" if labels else "no group has records in the period")
    raise ExplainError(f"{ref} has no {kr.breakdown} group '{group}'; {hint}")


def _metric_kind(metric: Any) -> str | None:
    if metric is None:
        return None
    if hasattr(metric, "derived"):
        return "derived"
    return "ratio" if hasattr(metric, "ratio") else "simple"


def _formula(metric: Any) -> str | None:
    kind = _metric_kind(metric)
    if kind == "ratio":
        return "numerator / denominator" + (" × 100" if metric.unit == "%" else "")
    if kind == "derived":
        return str(metric.derived)
    return None


def _sides(conn: Connection, config: OkrConfig, name: str, source: str, period: Period, breakdown: str | None,
           key: str | None, label: str | None, limit: int, prefix: str = "") -> list[SideExplanation]:
    """Each aggregate query behind metric `name` (a derived metric's operands, one level at a time)."""
    metric = config.metrics[name]
    kind = _metric_kind(metric)
    if kind == "derived":
        from okr_mapping.derived import parse_formula

        sides: list[SideExplanation] = []
        for operand in sorted(parse_formula(metric.derived).names):
            sides += _sides(conn, config, operand, source, period, breakdown, key, label, limit,
                            f"{prefix}{operand}.")
        return sides
    if kind == "ratio":
        parts = [("numerator", metric.ratio.numerator), ("denominator", metric.ratio.denominator)]
        return [_side(conn, config, f"{prefix}{part_name}", part, part.time or metric.time, source, period,
                      breakdown, key, label, limit) for part_name, part in parts]
    return [_side(conn, config, prefix.rstrip(".") or "metric", metric, metric.time, source, period, breakdown,
                  key, label, limit)]


def _side(conn: Connection, config: OkrConfig, name: str, part: MeasureSource, time: str | None, source: str,
          period: Period, breakdown: str | None, key: str | None, label: str | None, limit: int) -> SideExplanation:
    entities = config.entities
    entity = entities[part.entity]
    measure = parse_measure(part.measure)
    time_field = entity.default_time if time in (None, ALL_TIME) else time  # a snapshot lists by its default date
    query = build_query(part, time, source, period, breakdown, config.segments, entities)
    sql, parameters = compile_sql(query, conn)
    value, rows = None, 0
    for row in conn.execute(query).mappings():
        if breakdown is None or row["group_key"] == key:
            raw = row["metric_value"]
            value = float(raw) if raw is not None else (0.0 if measure.defined_on_empty else None)
            rows = int(row["row_count"])
    if value is None and measure.defined_on_empty:
        value = 0.0
    records = records_query(query, part, time_field, measure, breakdown is not None and label is not None, key,
                            entities)
    listed = [ContributingRecord(str(r.id), None if r.value is None else float(r.value), _as_date(r.day),
                                 getattr(r, "kind", None))
              for r in conn.execute(records.limit(limit))] if limit > 0 else []
    total = conn.execute(select(func.count()).select_from(records.order_by(None).subquery())).scalar_one()
    table = entity.table
    store_rows = conn.execute(select(func.count()).select_from(table).where(table.c.source == source)).scalar_one()
    return SideExplanation(
        name=name, entity=part.entity, measure=part.measure, measure_words=measure_words(measure, part.entity),
        field=measure.field, filters=filter_words(part, config), time_field=time_field, sql=sql,
        parameters=parameters, value=value, row_count=rows, records=listed, total_records=int(total),
        store_rows=int(store_rows),
    )


def records_query(aggregate: Select[Any], part: MeasureSource, time_field: str, measure: Measure, grouped: bool,
                  key: str | None, entities: Mapping[str, Any]) -> Select[Any]:
    """The records behind `aggregate` (a build_query result): its FROM, joins and WHERE, one row per record.

    Columns: id (the CRM id), value (the measured field; NULL for a plain count), day (the time field)
    and, for activities, kind. A measured field's empty values are left out, as the aggregate skips
    them. `grouped`: keep to the group `key` (None: records without owner / team / value).
    """
    entity = entities[part.entity]
    table = entity.table
    inner = aggregate
    if measure.is_quantile:  # the filters sit in the ranked subquery
        inner = aggregate.get_final_froms()[0].element  # type: ignore[attr-defined]
    value: ColumnElement[Any] | None = None
    if measure.field is not None:
        value = entity.fields[measure.field].expr(table)
    columns: list[ColumnElement[Any]] = [table.c.source_id.label("id"),
                                         (null() if value is None else value).label("value"),
                                         entity.fields[time_field].expr(table).label("day")]
    if part.entity == "activity":
        columns.append(table.c.kind.label("kind"))
    query = inner.with_only_columns(*columns, maintain_column_froms=False).group_by(None)
    if grouped:
        group = inner.selected_columns["group_key"]
        element = getattr(group, "element", group)
        query = query.where(element.is_(None) if key is None else element == key)
    if value is not None:
        query = query.where(value.is_not(None)).order_by(value.desc(), table.c.source_id)
    else:
        query = query.order_by(entity.fields[time_field].expr(table).desc(), table.c.source_id)
    return query


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def compile_sql(query: Select[Any], conn: Connection) -> tuple[str, dict[str, Any] | None]:
    """The query as the store's dialect runs it, values inline; (SQL with placeholders, values) when a
    value's type cannot be written inline."""
    try:
        return str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})), None
    except (CompileError, NotImplementedError, TypeError, ValueError):
        compiled = query.compile(dialect=conn.dialect)
        return str(compiled), dict(compiled.params)


def measure_words(measure: Measure, entity: str) -> str:
    plural = f"{entity}s" if not entity.endswith("s") else entity
    words = {
        "count": f"number of {plural}" if measure.field is None else f"number of {plural} with a {measure.field}",
        "count_distinct": f"number of distinct {measure.field} values of {plural}",
        "sum": f"total {measure.field} of {plural}",
        "avg": f"average {measure.field} of {plural}",
        "min": f"smallest {measure.field} of {plural}",
        "max": f"largest {measure.field} of {plural}",
        "median": f"median {measure.field} of {plural}",
    }
    if measure.func == "percentile":
        return f"{measure.percent:g}th percentile of {measure.field} of {plural}"
    return words[measure.func]


def filter_words(part: MeasureSource, config: OkrConfig) -> list[str]:
    """Each filter the measure applies, in words; a segment's are marked with its name."""
    trees = resolve_where(part, config.segments)
    words: list[str] = []
    for index, tree in enumerate(trees):
        in_segment = part.segment is not None and index == 0
        for item in tree.root.items:
            text = _node_words(item)
            words.append(f"{text} (segment {part.segment})" if in_segment else text)
    return words


def _value_words(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value_words(item) for item in value) + "]"
    return str(value)


def _node_words(node: Condition | Group) -> str:
    if isinstance(node, Condition):
        return f"{node.field} {_OPS.get(node.op, node.op)} {_value_words(node.value)}"
    parts = [_node_words(item) for item in node.items]
    if node.op == "not":
        return f"not ({parts[0]})"
    if len(parts) == 1 and node.op == "and":
        return parts[0]
    if node.op == "or":
        return "any of (" + "; ".join(parts) + ")"
    return "all of (" + "; ".join(parts) + ")"


def _n(value: float) -> str:
    """A number as written in a formula: no exponent, at most four decimals (as results are rounded)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _with_numbers(e: Explanation, config: OkrConfig, kr: KeyResult, r: KrResult, measured: MetricValue,
                  before_period: Period | None, before: MetricValue | None) -> Explanation:
    """Fill in how each number was obtained, with the numbers themselves."""
    kind: scoring.KrKind = "milestone" if kr.type == "milestone" else (
        ("decrease" if r.target < r.baseline else "increase") if kr.type == "manual" else kr.type)  # type: ignore[assignment]
    value_how, defined = _value_how(e, config, kr, r, measured)
    restarts = kr.metric in config.metrics and restarts_each_period(config.metrics[kr.metric], config.metrics)
    baseline_how, target_how = _baseline_target_how(e, kr, r, before_period, before, restarts)
    if before is not None and not (before.defined and (before.rows > 0 or not kr.target.is_percent)):  # type: ignore[union-attr]
        defined = False
        e.notes.append(f"the earlier period {before_period.label if before_period else ''} has no value to change "
                       f"from, so the target is undefined and progress reads 0")
    progress_formula = _progress_formula(kind, r, defined)
    expected = r.expected_progress
    p = e.period
    if e.as_of < p.start:
        expected_how = f"{p.label} has not started on {e.as_of}"
    elif e.as_of >= p.end:
        expected_how = f"{p.label} ended on {p.end}: the whole period has gone by"
    elif kr.metric is not None and windows.expected_share(window_of(kr), p, e.as_of,
                                                          isinstance(kr.target, ChangeTarget)) is not None:
        expected_how = "100%: the window's days are all counted, and so are the days its target covers"
    elif isinstance(kr.target, PhasedTarget):
        expected_how = (f"phased: the months before {e.as_of} in full and this month's share of its days, "
                        f"out of {_n(kr.target.total)} ({', '.join(_n(amount) for amount in kr.target.phased)})")
    else:
        expected_how = (f"{(e.as_of - p.start).days + 1} of {p.days} days of {p.label} gone by at the end of "
                        f"{e.as_of} (linear pace)")
    on, risk = config.scoring.on_track, config.scoring.at_risk
    if kind in scoring.BINARY_KINDS:
        if kind == "milestone":
            status_how = ("achieved once done; until then on track while the period runs, off track once it has "
                          f"ended (expected {expected:.0%})")
        else:
            status_how = "achieved while the target is held, off track the moment it is not (no pace)"
    else:
        status_how = (f"achieved at progress ≥ 100%; on track at ≥ {on:g} × {expected:.1%} = {on * expected:.1%}; "
                      f"at risk at ≥ {risk:g} × {expected:.1%} = {risk * expected:.1%}; else off track")
    return replace(e, defined=defined, value_how=value_how, baseline_how=baseline_how, target_how=target_how,
                   progress_formula=progress_formula, score_how=f"progress {r.progress:.1%} clamped to 0–1",
                   expected_how=expected_how, status_how=status_how)


def _value_how(e: Explanation, config: OkrConfig, kr: KeyResult, r: KrResult,
               measured: MetricValue) -> tuple[str, bool]:
    if kr.type == "manual":
        checkin = config.latest_checkin(e.ref, r.period_start, min(e.as_of, r.period_end))
        if checkin is None:
            return f"no check-in dated {r.period_start} – {min(e.as_of, r.period_end)} yet: 0", False
        note = f" ({checkin.note})" if checkin.note else ""
        return f"latest check-in: {_n(checkin.value)} on {checkin.date}{note}", True
    if kr.type == "milestone" and kr.metric is None:
        return f"done: {'true' if kr.done else 'false'} in the config", True
    defined = measured.defined
    if e.metric_kind == "ratio":
        num, den = e.sides[0], e.sides[1]
        how = f"{_n(num.value or 0)} / {_n(den.value or 0)}" + (" × 100" if e.unit == "%" else "")
    elif e.metric_kind == "derived":
        how = f"{e.formula} with " + ", ".join(f"{s.name} = {_n(s.value or 0)}" for s in e.sides)
    else:
        side = e.sides[0]
        how = f"{side.measure_words} over {side.row_count} record(s)"
    if kr.type == "milestone":
        how += f"; the metric reads {_n(measured.value)}: " + ("done (value 1)" if measured.value > 0 and defined
                                                                else "not done (value 0)")
    if not defined:
        how += "; undefined (nothing to average or divide by), read as 0"
    return how, defined


def _baseline_target_how(e: Explanation, kr: KeyResult, r: KrResult, before_period: Period | None,
                         before: MetricValue | None, restarts: bool) -> tuple[str, str]:
    if kr.type == "milestone":
        return "0 (not done)", "1 (done)"
    if isinstance(kr.target, ChangeTarget) and before is not None and before_period is not None:
        earlier = f"{before_period.label} ({before_period.start} – {before_period.end})"
        if restarts:
            baseline_how = "0: counts and sums restart every period, so progress runs from 0 to the target"
        else:
            baseline_how = f"the value of {earlier}: {_n(before.value)}"
        change, vs = kr.target.change, kr.target.vs.replace("_", " ")
        if kr.target.is_percent:
            sign = "+" if kr.target.amount >= 0 else "−"
            how = f"{_n(before.value)} × (1 {sign} {abs(kr.target.amount):g}%)"
        else:
            how = f"{_n(before.value)} {change}"
        return baseline_how, f"change {change} vs {vs}: {how} = {_n(r.target)}, from the {earlier} value"
    baseline_how = "given in the config" if kr.baseline is not None else "0 (no baseline given)"
    if isinstance(kr.target, EachTarget):
        if r.group is not None and r.group in kr.target.overrides:
            target_how = f"per group: the override for {r.group}"
        else:
            target_how = f"per group: each {_n(kr.target.each)}"
    elif isinstance(kr.target, PhasedTarget):
        target_how = f"phased by month: {' + '.join(_n(amount) for amount in kr.target.phased)} = {_n(r.target)}"
    else:
        target_how = "absolute, given in the config"
    return baseline_how, target_how


def _progress_formula(kind: scoring.KrKind, r: KrResult, defined: bool) -> str:
    v, b, t = _n(r.value), _n(r.baseline), _n(r.target)
    if not defined:
        return "the value is undefined, so progress is 0"
    if kind == "milestone":
        return f"1 when done, else 0: value {v}"
    if kind == "stay_above":
        return f"1 while value ≥ target, else 0: {v} ≥ {t} is {'true' if r.progress >= 1 else 'false'}"
    if kind == "stay_below":
        return f"1 while value ≤ target, else 0: {v} ≤ {t} is {'true' if r.progress >= 1 else 'false'}"
    if abs(r.target - r.baseline) < 1e-9:
        return f"target equals baseline ({t}): 1 when met, else 0"
    if kind == "decrease":
        return f"(baseline − value) / (baseline − target) = ({b} − {v}) / ({b} − {t}) = {r.progress:.4g}"
    return f"(value − baseline) / (target − baseline) = ({v} − {b}) / ({t} − {b}) = {r.progress:.4g}"
