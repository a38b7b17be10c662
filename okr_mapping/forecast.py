"""Where a key result will end its period: a forecast, and for revenue a confidence of reaching it.

Two methods, both plain arithmetic over the store:

- trend: a least-squares line through the KR's check-ins of this period (okr_mapping.history)
  and today's value, read at the period's last day. A count or sum starts the period at 0, so its
  line also passes through (period start, 0): with one check-in that is the run rate.
- pipeline (revenue KRs: a sum of amount over won deals dated by close date): what is won so far
  plus the open deals closing in the period, each weighted by its stage probability (an open deal
  whose close date has passed has slipped, usually into the days left, so it counts too). Each
  open deal is won or not independently, so the amount still to come has mean sum(amount x p) and
  variance sum(amount^2 x p x (1 - p)); the confidence is the chance that it
  covers what the target still needs, by the normal approximation of that sum.

A complete period's forecast is its value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.engine import Connection

from okr_mapping.config import KeyResult, OkrConfig, SimpleMetric
from okr_mapping.entities import EntitySpec, FieldSpec
from okr_mapping.metrics import UNASSIGNED, GroupKey, build_query, restarts_each_period
from okr_mapping.periods import Period
from okr_mapping.rules import RuleError, parse_measure

if TYPE_CHECKING:  # compute calls attach: no import cycle at run time
    from okr_mapping.compute import KrResult

Point = tuple[date, float]


@dataclass(frozen=True)
class Forecast:
    value: float | None
    confidence: float | None = None  # 0-1, pipeline forecasts only
    method: str | None = None  # trend | pipeline | final


def trend(points: Sequence[Point], period: Period, day: date, cumulative: bool) -> float | None:
    """The least-squares line through `points` (dated within the period, up to `day`) at the
    period's last day; None without a point."""
    inside = sorted({when: value for when, value in points if period.start <= when <= min(day, period.end)}.items())
    if not inside:
        return None
    latest = inside[-1][1]
    xs = [float((when - period.start).days + 1) for when, _ in inside]
    ys = [value for _, value in inside]
    if cumulative:  # it stood at 0 the day before the period began
        xs, ys = [0.0, *xs], [0.0, *ys]
    if len(xs) < 2:
        return latest
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0
    return latest + slope * (period.end - min(day, period.end)).days


def confidence(needed: float, mean: float, variance: float) -> float:
    """P(the amount still to come >= needed) for a sum of independent wins with this mean and variance."""
    if needed <= 0:
        return 1.0
    if variance <= 0:
        return 1.0 if mean >= needed else 0.0
    z = (mean - needed) / math.sqrt(variance)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def is_revenue(metric: Any) -> bool:
    """A sum of deal amounts over won deals, dated by close date (no segment: its filter could also
    say is_won, which the open pipeline must drop)."""
    if not isinstance(metric, SimpleMetric) or metric.entity != "deal" or metric.segment is not None:
        return False
    try:
        measure = parse_measure(metric.measure)
    except RuleError:
        return False
    return (measure.func, measure.field) == ("sum", "amount") and metric.time in (None, "close_date") \
        and (metric.where or {}).get("is_won") is True


def _open_side(metric: SimpleMetric, measure: str) -> SimpleMetric:
    """The same deals still open: the won filter replaced by is_closed false, measuring `measure`."""
    where = {name: value for name, value in (metric.where or {}).items() if name != "is_won"}
    return metric.model_copy(update={"measure": measure, "where": {**where, "is_closed": False}})


def _pipeline_entities(entities: Mapping[str, EntitySpec]) -> dict[str, EntitySpec]:
    """The config's entities with two private deal fields: the expected and the variance of a win."""
    deal = entities["deal"]

    def share(table: Any) -> Any:
        return table.c.amount * (table.c.probability / 100.0)

    def variance(table: Any) -> Any:
        p = table.c.probability / 100.0
        return table.c.amount * table.c.amount * p * (1.0 - p)

    fields = {**deal.fields, "pipeline_expected": FieldSpec("pipeline_expected", "number", share),
              "pipeline_variance": FieldSpec("pipeline_variance", "number", variance)}
    return {**entities, "deal": replace(deal, fields=fields)}


def pipeline(conn: Connection, config: OkrConfig, metric: SimpleMetric, source: str, period: Period, day: date,
             breakdown: str | None) -> dict[GroupKey, tuple[float, float]]:
    """Per group: (mean, variance) of the amount the period's open deals will add."""
    if day > period.end:
        return {}
    entities = _pipeline_entities(config.entities)
    deal = entities["deal"]
    query = build_query(_open_side(metric, "sum(pipeline_expected)"), metric.time, source, period, breakdown,
                        config.segments, entities)  # one scan: the variance rides along as a second sum
    query = query.add_columns(func.sum(deal.fields["pipeline_variance"].expr(deal.table)).label("variance"))
    return {(row["group_key"] if breakdown is not None else None): (float(row["metric_value"] or 0.0),
                                                                    float(row["variance"] or 0.0))
            for row in conn.execute(query).mappings()}


def forecast_for(conn: Connection, config: OkrConfig, kr: KeyResult, source: str, period: Period, day: date,
                 group: GroupKey, value: float, target: float, history: Sequence[Point],
                 cache: dict[Any, dict[GroupKey, tuple[float, float]]]) -> Forecast:
    """The forecast of one KR result (one group of a breakdown); `cache` keeps pipeline reads per KR."""
    if kr.metric is None or kr.type not in ("increase", "decrease"):
        return Forecast(None)
    if day >= period.end:
        return Forecast(value, None, "final")
    metric = config.metrics[kr.metric]
    plain_window = kr.window == "period"
    if plain_window and kr.type == "increase" and is_revenue(metric):
        assert isinstance(metric, SimpleMetric)
        key = (kr.metric, period, kr.breakdown)
        if key not in cache:
            cache[key] = pipeline(conn, config, metric, source, period, day, kr.breakdown)
        mean, variance = cache[key].get(group, (0.0, 0.0))
        return Forecast(value + mean, confidence(target - value, mean, variance), "pipeline")
    cumulative = plain_window and restarts_each_period(metric, config.metrics)
    projected = trend([*history, (day, value)], period, day, cumulative)
    return Forecast(projected, None, "trend" if projected is not None else None)


def attach(conn: Connection, config: OkrConfig, source: str, results: Sequence[KrResult], day: date,
           points: Mapping[str, Sequence[Point]]) -> list[KrResult]:
    """`results` with their forecasts; `points`: each key's earlier check-ins this period (history)."""
    krs = {(objective.id, kr.id): kr for objective in config.objectives for kr in objective.key_results}
    cache: dict[Any, dict[GroupKey, tuple[float, float]]] = {}
    attached = []
    for result in results:
        kr = krs[(result.objective_id, result.kr_id)]
        period = Period(result.period_start, result.period_end, "custom")
        group = None if result.group in (None, UNASSIGNED) else result.group
        made = forecast_for(conn, config, kr, source, period, day, group, result.value, result.target,
                            points.get(result.key, ()), cache)
        attached.append(replace(
            result, forecast=None if made.value is None else round(made.value, 4) + 0.0,
            forecast_confidence=None if made.confidence is None else round(made.confidence, 4),
            forecast_method=made.method))
    return attached
