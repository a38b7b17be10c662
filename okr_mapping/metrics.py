"""Compile named metrics into SQLAlchemy Core queries over the canonical store, and run them.

Every field a rule names is looked up in the entities allow-list and becomes a column object;
every value from the config becomes a bound parameter. No SQL text is ever built from config.
Each query always keeps to one CRM (`source`), skips deleted records, and keeps to the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, distinct, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from okr_mapping.config import MeasureSource, OkrConfig, RatioMetric, SimpleMetric
from okr_mapping.entities import ENTITIES, OWNER_TABLE, EntitySpec, owner_join_condition
from okr_mapping.periods import Period
from okr_mapping.rules import Condition, iter_conditions, parse_measure, resolve_condition

GroupKey = str | None  # None: the whole population, or (with a breakdown) records with no owner/team
PERCENT = "%"


@dataclass(frozen=True)
class MetricValue:
    """A metric's value for one group; `defined` is False for an average of nothing or x/0."""

    value: float
    rows: int
    defined: bool = True


def _condition_expr(entity: EntitySpec, condition: Condition) -> ColumnElement[bool]:
    """One `where` entry as SQL; `ne`/`not_in` keep empty values, as a reader would expect."""
    field, op, value = resolve_condition(entity, condition)
    column = field.expr(entity.table)
    if op == "eq":
        return column.is_(None) if value is None else column == value
    if op == "ne":
        return column.is_not(None) if value is None else column.is_distinct_from(value)
    if op == "in":
        return column.in_(value)
    if op == "not_in":
        return or_(column.not_in(value), column.is_(None))
    comparisons = {"gt": column > value, "gte": column >= value, "lt": column < value, "lte": column <= value}
    return comparisons[op]


def _group_expr(entity: EntitySpec, breakdown: str) -> ColumnElement[Any]:
    """The group key: owner email (else the CRM owner id), or the owner's team."""
    if breakdown == "owner":
        return func.coalesce(OWNER_TABLE.c.email, entity.table.c.owner_id)
    return OWNER_TABLE.c.team


def build_query(
    part: MeasureSource, time_field: str | None, source: str, period: Period, breakdown: str | None = None
) -> Select[Any]:
    """SELECT [group_key,] aggregate AS metric_value, count(*) AS row_count for one side of a metric."""
    entity = ENTITIES[part.entity]
    table = entity.table
    measure = parse_measure(part.measure)
    conditions = list(iter_conditions(part.where))
    field_specs = [resolve_condition(entity, condition)[0] for condition in conditions]
    if measure.field is not None:
        field_specs.append(entity.fields[measure.field])
    time_spec = entity.fields[time_field or entity.default_time]
    needs_owner = breakdown is not None or any(spec.via_owner for spec in field_specs)

    if measure.func == "count":
        aggregate: ColumnElement[Any] = (
            func.count() if measure.field is None else func.count(entity.fields[measure.field].expr(table))
        )
    elif measure.func == "count_distinct":
        aggregate = func.count(distinct(entity.fields[measure.field or ""].expr(table)))
    else:
        aggregate = getattr(func, measure.func)(entity.fields[measure.field or ""].expr(table))

    columns: list[ColumnElement[Any]] = [aggregate.label("metric_value"), func.count().label("row_count")]
    group = _group_expr(entity, breakdown) if breakdown is not None else None
    if group is not None:
        columns.insert(0, group.label("group_key"))
    from_clause = table.outerjoin(OWNER_TABLE, owner_join_condition(table)) if needs_owner else table
    time_column = time_spec.expr(table)
    query = (
        select(*columns)
        .select_from(from_clause)
        .where(
            table.c.source == source,
            table.c.is_deleted.is_(False),
            time_column >= period.start,
            time_column <= period.end,
            *(_condition_expr(entity, condition) for condition in conditions),
        )
    )
    if group is not None:
        query = query.group_by(group)
    return query


def _run(
    conn: Connection,
    part: MeasureSource,
    time: str | None,
    source: str,
    period: Period,
    breakdown: str | None,
) -> dict[GroupKey, MetricValue]:
    measure = parse_measure(part.measure)
    result: dict[GroupKey, MetricValue] = {}
    for row in conn.execute(build_query(part, time, source, period, breakdown)).mappings():
        key = row["group_key"] if breakdown is not None else None
        raw = row["metric_value"]
        defined = raw is not None or measure.defined_on_empty
        result[key] = MetricValue(float(raw) if raw is not None else 0.0, int(row["row_count"]), defined)
    return result


def evaluate_metric(
    conn: Connection,
    metric: SimpleMetric | RatioMetric,
    source: str,
    period: Period,
    breakdown: str | None = None,
) -> dict[GroupKey, MetricValue]:
    """The metric per group (a single None group without breakdown) over one period.

    Ratio: numerator / denominator per group, ×100 when the unit is "%"; a zero denominator
    gives 0 and marks the value undefined. `rows` of a ratio is the denominator's row count.
    """
    if isinstance(metric, SimpleMetric):
        return _run(conn, metric, metric.time, source, period, breakdown)
    numerator = metric.ratio.numerator
    denominator = metric.ratio.denominator
    top = _run(conn, numerator, numerator.time or metric.time, source, period, breakdown)
    bottom = _run(conn, denominator, denominator.time or metric.time, source, period, breakdown)
    scale = 100.0 if metric.unit == PERCENT else 1.0
    result: dict[GroupKey, MetricValue] = {}
    for key in {*top, *bottom}:
        num = top.get(key, MetricValue(0.0, 0))
        den = bottom.get(key, MetricValue(0.0, 0))
        if den.value == 0 or not (num.defined and den.defined):
            result[key] = MetricValue(0.0, den.rows, defined=False)
        else:
            result[key] = MetricValue(num.value / den.value * scale, den.rows)
    return result


class MetricEvaluator:
    """Evaluates a config's metrics over one connection and source, caching each (metric, period, breakdown).

    Several key results often share a metric and a period (and a change target re-reads the
    previous period), so the cache saves repeated scans of the store.
    """

    def __init__(self, conn: Connection, config: OkrConfig, source: str) -> None:
        self.conn = conn
        self.config = config
        self.source = source
        self._cache: dict[tuple[str, Period, str | None], dict[GroupKey, MetricValue]] = {}

    def values(self, name: str, period: Period, breakdown: str | None = None) -> dict[GroupKey, MetricValue]:
        key = (name, period, breakdown)
        if key not in self._cache:
            metric = self.config.metrics[name]
            self._cache[key] = evaluate_metric(self.conn, metric, self.source, period, breakdown)
        return self._cache[key]
