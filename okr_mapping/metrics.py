"""Compile named metrics into SQLAlchemy Core queries over the canonical store, and run them.

Every field a rule names is looked up in the entities allow-list and becomes a column object;
every value from the config becomes a bound parameter. No SQL text is ever built from config.
Each query always keeps to one CRM (`source`), skips deleted records, and keeps to the period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select, and_, case, cast, distinct, false, func, literal, not_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from okr_mapping.cohorts import first_time_query
from okr_mapping.config import DerivedMetric, MeasureSource, OkrConfig, RatioMetric, Segment, SimpleMetric
from okr_mapping.derived import FormulaError, parse_formula, restarts_at_zero
from okr_mapping.entities import (
    BREAKDOWNS,
    ENTITIES,
    OWNER_TABLE,
    EntitySpec,
    FieldSpec,
    owner_join_condition,
    relation,
)
from okr_mapping.periods import Period
from okr_mapping.rules import (
    ALL_TIME,
    Condition,
    Group,
    Measure,
    PeriodDate,
    RuleError,
    WhereTree,
    parse_measure,
    parse_where,
    resolve_condition,
)

GroupKey = str | None  # None: the whole population, or (with a breakdown) records with no owner/team
UNASSIGNED = "(unassigned)"  # the label of GroupKey None in a breakdown: no CRM team or email is spelled so
PERCENT = "%"


@dataclass(frozen=True)
class MetricValue:
    """A metric's value for one group; `defined` is False for an average of nothing or x/0."""

    value: float
    rows: int
    defined: bool = True


def _dated(value: Any, period: Period) -> Any:
    """period_start / period_end (PeriodDate) as the measured days' first or last day."""
    if isinstance(value, PeriodDate):
        return value.resolve(period.start, period.end)
    if isinstance(value, list):
        return [_dated(item, period) for item in value]
    return value


def _condition_expr(entity: EntitySpec, condition: Condition, period: Period) -> ColumnElement[bool]:
    """One `where` entry as SQL; `ne`/`not_in` keep empty values, as a reader would expect."""
    field, op, value = resolve_condition(entity, condition)
    value = _dated(value, period)
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


def _where_expr(entity: EntitySpec, node: Condition | Group, period: Period) -> ColumnElement[bool]:
    """A filter tree as SQL. A comparison with an empty value counts as false (ne/not_in as true),
    so `not` inverts exactly: `not: {stage: Won}` keeps deals with no stage, like `stage: {ne: Won}`.
    """
    if isinstance(node, Condition):
        return _condition_expr(entity, node, period)
    parts = [_where_expr(entity, item, period) for item in node.items]
    if node.op == "not":
        # SQL's NOT of an unknown (NULL) is unknown; read unknown as false first.
        return not_(func.coalesce(parts[0], false()))
    if node.op == "or":
        return or_(false(), *parts)
    return and_(true(), *parts)


def resolve_where(part: MeasureSource, segments: Mapping[str, Segment] | None = None) -> list[WhereTree]:
    """The filter trees a measure source applies: its segment's (if any) and its own `where`, ANDed."""
    trees = []
    if part.segment is not None:
        segment = (segments or {}).get(part.segment)
        if segment is None:
            raise ValueError(f"unknown segment '{part.segment}' (validate the config first)")
        trees.append(parse_where(segment.where))
    trees.append(parse_where(part.where))
    for tree in trees:
        if tree.problems:
            path, error = tree.problems[0]
            raise ValueError(f"where.{'.'.join(map(str, path))}: {error.message} (validate the config first)")
    return trees


def _group_expr(entity: EntitySpec, breakdown: str) -> ColumnElement[Any]:
    """The group key: owner email (else the CRM owner id), the owner's team, or a text field's value."""
    if breakdown == "owner":
        return func.coalesce(OWNER_TABLE.c.email, entity.table.c.owner_id)
    if breakdown == "team":
        return OWNER_TABLE.c.team
    return entity.fields[breakdown].expr(entity.table)


def _joined(entity: EntitySpec, fields: list[FieldSpec], owner: bool) -> Any:
    """The entity's table, outer-joined to the owner and each related entity its fields read."""
    table = entity.table
    joined: Any = table
    vias = {spec.via for spec in fields if spec.via is not None}
    if owner or "owner" in vias:
        joined = joined.outerjoin(OWNER_TABLE, owner_join_condition(table))
    for name in sorted(vias - {"owner"}):
        link = relation(entity.name, name)
        if link is None:  # the allow-list only offers fields of declared relations
            raise ValueError(f"{entity.name} has no relation {name!r}")
        joined = joined.outerjoin(link.table(), link.condition(table))
    return joined


def build_query(
    part: MeasureSource,
    time_field: str | None,
    source: str,
    period: Period,
    breakdown: str | None = None,
    segments: Mapping[str, Segment] | None = None,
    entities: Mapping[str, EntitySpec] = ENTITIES,
) -> Select[Any]:
    """SELECT [group_key,] aggregate AS metric_value, count(*) AS row_count for one side of a metric.

    `entities`: the allow-list to resolve fields in (a config's, with its custom fields).
    """
    entity = entities[part.entity]
    table = entity.table
    measure = parse_measure(part.measure)
    trees = resolve_where(part, segments)
    conditions = [condition for tree in trees for condition in tree.conditions()]
    field_specs = [resolve_condition(entity, condition)[0] for condition in conditions]
    if measure.field is not None:
        field_specs.append(entity.fields[measure.field])
    all_time = time_field == ALL_TIME
    time_spec = entity.fields[entity.default_time if all_time else time_field or entity.default_time]
    field_specs.append(time_spec)
    if breakdown is not None and breakdown not in BREAKDOWNS:
        field_specs.append(entity.fields[breakdown])

    group = _group_expr(entity, breakdown) if breakdown is not None else None
    from_clause = _joined(entity, field_specs, owner=breakdown in BREAKDOWNS)
    time_column = time_spec.expr(table)
    wheres = tuple(_where_expr(entity, tree.root, period) for tree in trees if tree.root.items)
    if measure.is_first:  # first-time cohorts look at all history, not only the period
        scope = (table.c.source == source, table.c.is_deleted.is_(False), *wheres)
        return first_time_query(entity, measure, from_clause, scope, time_column, period, group)
    in_period = () if all_time else (time_column >= period.start, time_column <= period.end)
    filters = (table.c.source == source, table.c.is_deleted.is_(False), *in_period, *wheres)
    if measure.is_quantile:
        return _quantile_query(entity, measure, from_clause, filters, group)

    if measure.func == "count":
        aggregate: ColumnElement[Any] = (
            func.count() if measure.field is None else func.count(entity.fields[measure.field].expr(table))
        )
    elif measure.func == "count_distinct":
        aggregate = func.count(distinct(entity.fields[measure.field or ""].expr(table)))
    else:
        aggregate = getattr(func, measure.func)(entity.fields[measure.field or ""].expr(table))

    columns: list[ColumnElement[Any]] = [aggregate.label("metric_value"), func.count().label("row_count")]
    if group is not None:
        columns.insert(0, group.label("group_key"))
    query = select(*columns).select_from(from_clause).where(*filters)
    if group is not None:
        query = query.group_by(group)
    return query


def _quantile_query(
    entity: EntitySpec,
    measure: Measure,
    from_clause: Any,
    filters: tuple[ColumnElement[bool], ...],
    group: ColumnElement[Any] | None,
) -> Select[Any]:
    """percentile(f, p) per group with linear interpolation, in portable SQL (SQLite and PostgreSQL).

    Over the n non-empty values sorted ascending (0-based rank i), the position is h = (n-1)·p/100;
    the value is x[⌊h⌋] + (h-⌊h⌋)·(x[⌊h⌋+1] - x[⌊h⌋]) — numpy's default, and statistics.median at
    p = 50. Window functions rank the values per group; the outer query sums the (at most two)
    weighted neighbours of h without a floor() function, which SQLite may lack. Empty values are
    left out of the ranking but still counted in row_count, as for avg().
    """
    value = cast(entity.fields[measure.field or ""].expr(entity.table), Float)
    is_empty = case((value.is_(None), 1), else_=0)
    partition = [is_empty] if group is None else [group, is_empty]
    inner_columns: list[ColumnElement[Any]] = [
        value.label("v"),
        (func.row_number().over(partition_by=partition, order_by=value) - 1).label("i"),
        func.count(value).over(partition_by=group).label("n"),
    ]
    if group is not None:
        inner_columns.insert(0, group.label("group_key"))
    ranked = select(*inner_columns).select_from(from_clause).where(*filters).subquery("ranked")
    fraction = literal(measure.percent / 100.0, Float)  # type: ignore[operator]
    position = cast(ranked.c.n - 1, Float) * fraction
    i, v = ranked.c.i, ranked.c.v
    weighted = case(
        (and_(v.is_not(None), i <= position, position < i + 1), v * (1 - (position - i))),
        (and_(v.is_not(None), i > position, i - 1 <= position), v * (position - (i - 1))),
    )
    columns: list[ColumnElement[Any]] = [func.sum(weighted).label("metric_value"), func.count().label("row_count")]
    if group is not None:
        columns.insert(0, ranked.c.group_key)
    query = select(*columns).select_from(ranked)
    if group is not None:
        query = query.group_by(ranked.c.group_key)
    return query


def _run(
    conn: Connection,
    part: MeasureSource,
    time: str | None,
    source: str,
    period: Period,
    breakdown: str | None,
    segments: Mapping[str, Segment] | None,
    entities: Mapping[str, EntitySpec],
) -> dict[GroupKey, MetricValue]:
    measure = parse_measure(part.measure)
    result: dict[GroupKey, MetricValue] = {}
    query = build_query(part, time, source, period, breakdown, segments, entities)
    for row in conn.execute(query).mappings():
        key = row["group_key"] if breakdown is not None else None
        raw = row["metric_value"]
        defined = raw is not None or measure.defined_on_empty
        result[key] = MetricValue(float(raw) if raw is not None else 0.0, int(row["row_count"]), defined)
    return result


def evaluate_metric(
    conn: Connection,
    metric: SimpleMetric | RatioMetric | DerivedMetric,
    source: str,
    period: Period,
    breakdown: str | None = None,
    segments: Mapping[str, Segment] | None = None,
    entities: Mapping[str, EntitySpec] = ENTITIES,
) -> dict[GroupKey, MetricValue]:
    """The metric per group (a single None group without breakdown) over one period.

    Ratio: numerator / denominator per group, ×100 when the unit is "%"; a zero denominator
    gives 0 and marks the value undefined. `rows` of a ratio is the denominator's row count.
    """
    if isinstance(metric, DerivedMetric):
        raise TypeError("a derived metric reads other metrics: evaluate it with MetricEvaluator")
    if isinstance(metric, SimpleMetric):
        return _run(conn, metric, metric.time, source, period, breakdown, segments, entities)
    numerator = metric.ratio.numerator
    denominator = metric.ratio.denominator
    top = _run(conn, numerator, numerator.time or metric.time, source, period, breakdown, segments, entities)
    bottom = _run(conn, denominator, denominator.time or metric.time, source, period, breakdown, segments, entities)
    scale = 100.0 if metric.unit == PERCENT else 1.0
    result: dict[GroupKey, MetricValue] = {}
    for key in {*top, *bottom}:
        # A group one side has no records for: 0 from a count or sum, undefined from an average and the like
        num = top.get(key, MetricValue(0.0, 0, parse_measure(numerator.measure).defined_on_empty))
        den = bottom.get(key, MetricValue(0.0, 0, parse_measure(denominator.measure).defined_on_empty))
        if den.value == 0 or not (num.defined and den.defined):
            result[key] = MetricValue(0.0, den.rows, defined=False)
        else:
            result[key] = MetricValue(num.value / den.value * scale, den.rows)
    return result


def restarts_each_period(metric: SimpleMetric | RatioMetric | DerivedMetric,
                         metrics: Mapping[str, SimpleMetric | RatioMetric | DerivedMetric],
                         seen: frozenset[int] = frozenset()) -> bool:
    """Whether the metric grows through a period from 0: a count or a sum (not a snapshot, `time: all`),
    or a derived metric that adds, subtracts or scales such metrics (see derived.restarts_at_zero).

    A change target on such a metric runs from 0 to the target; on any other, from the earlier
    period's value. The one place that decides it (compute, explain and validate ask here).
    """
    if isinstance(metric, DerivedMetric):
        if id(metric) in seen:  # a cycle (validation reports it)
            return False
        try:
            formula = parse_formula(metric.derived)
        except FormulaError:
            return False
        return restarts_at_zero(formula) and all(
            name in metrics and restarts_each_period(metrics[name], metrics, seen | {id(metric)})
            for name in formula.names)
    if not isinstance(metric, SimpleMetric) or metric.time == ALL_TIME:
        return False
    try:
        return parse_measure(metric.measure).defined_on_empty
    except RuleError:
        return False


def _parts(metric: SimpleMetric | RatioMetric) -> list[MeasureSource]:
    return [metric.ratio.numerator, metric.ratio.denominator] if isinstance(metric, RatioMetric) else [metric]


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
        self._synced: dict[str, bool] = {}

    def values(self, name: str, period: Period, breakdown: str | None = None) -> dict[GroupKey, MetricValue]:
        key = (name, period, breakdown)
        if key not in self._cache:
            metric = self.config.metrics[name]
            if isinstance(metric, DerivedMetric):
                self._cache[key] = self._derived(metric, period, breakdown)
            elif not all(self._has_records(part.entity) for part in _parts(metric)):
                # This CRM has none of these records at all (HubSpot has no leads or campaigns): no value,
                # rather than a count or sum of 0 that would read as a real result.
                self._cache[key] = {None: MetricValue(0.0, 0, defined=False)} if breakdown is None else {}
            else:
                self._cache[key] = evaluate_metric(
                    self.conn, metric, self.source, period, breakdown, self.config.segments, self.config.entities
                )
        return self._cache[key]

    def _has_records(self, entity: str) -> bool:
        """Whether the store holds any record of `entity` from this source (deleted ones included)."""
        if entity not in self._synced:
            table = self.config.entities[entity].table
            query = select(table.c.source_id).where(table.c.source == self.source).limit(1)
            self._synced[entity] = self.conn.execute(query).first() is not None
        return self._synced[entity]

    def _derived(self, metric: DerivedMetric, period: Period, breakdown: str | None) -> dict[GroupKey, MetricValue]:
        """The formula per group over its metrics' values (validation refused cycles and unknown names).

        A group one metric has no records for reads 0 from a count or sum and is undefined from an
        average or a ratio; any undefined operand, or a division by zero, leaves the result undefined.
        `rows` is the operands' rows added up.
        """
        formula = parse_formula(metric.derived)
        operands = {name: self.values(name, period, breakdown) for name in sorted(formula.names)}
        keys: set[GroupKey] = {None} if breakdown is None else {key for values in operands.values() for key in values}
        result: dict[GroupKey, MetricValue] = {}
        for key in keys:
            parts = {name: values.get(key, self._missing(name)) for name, values in operands.items()}
            value = None
            if all(part.defined for part in parts.values()):
                value = formula.evaluate({name: part.value for name, part in parts.items()})
            rows = sum(part.rows for part in parts.values())
            result[key] = MetricValue(value if value is not None else 0.0, rows, defined=value is not None)
        return result

    def _missing(self, name: str) -> MetricValue:
        """A group with no records of metric `name`: 0 for a count or a sum, undefined otherwise."""
        metric = self.config.metrics[name]
        counts = isinstance(metric, SimpleMetric) and parse_measure(metric.measure).defined_on_empty
        return MetricValue(0.0, 0, defined=counts and self._has_records(metric.entity))
