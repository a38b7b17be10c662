"""Why a key result reads what it reads: its metric in words, the SQL behind it, the records it
counts and every number from value to status, as a plain data structure (flows render it).

The numbers come from `compute_key_results` itself (run over a config holding only this KR), so
an explanation can never disagree with what a run writes back. The records are read with the
aggregate query `build_query` produces, its columns swapped for each record's id and measured
field: the same FROM, joins and WHERE by construction, so the records listed are exactly those
the metric measures. Nothing here talks to a CRM.

The data it returns is defined in explanation.py and the wording of its numbers in
explain_words.py; both stay importable from here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, func, null, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.elements import ColumnElement

from okr_mapping import windows
from okr_mapping.compute import UNASSIGNED, KrResult, compute_key_results, window_of
from okr_mapping.config import ChangeTarget, KeyResult, MeasureSource, Objective, OkrConfig
from okr_mapping.errors import Issue
from okr_mapping.explain_words import filter_words, measure_words, with_numbers
from okr_mapping.explanation import ContributingRecord, Explanation, GroupValue, SideExplanation
from okr_mapping.metrics import MetricEvaluator, MetricValue, build_query
from okr_mapping.periods import FiscalCalendar, Period
from okr_mapping.rules import ALL_TIME, Measure, parse_measure

# the explanation's data and its wording moved out with the split; they stay importable from here
__all__ = [
    "DEFAULT_LIMIT",
    "ContributingRecord",
    "ExplainError",
    "Explanation",
    "GroupValue",
    "SideExplanation",
    "compile_sql",
    "explain_key_result",
    "filter_words",
    "find_key_result",
    "measure_words",
    "records_query",
]

DEFAULT_LIMIT = 20


class ExplainError(ValueError):
    """A key result or group that cannot be explained as asked (unknown, ambiguous); a readable message."""


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
            base_before = (calendar.shift(period, -1) if kr.target.vs != "same_period_last_year"
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
    return with_numbers(explanation, config, kr, result, measured, before_period, before)


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
