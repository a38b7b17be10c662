"""Forecasts: the trend of check-ins, and for revenue the open pipeline with a confidence."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import compute_key_results, parse_config
from okr_mapping.forecast import confidence, is_revenue, trend
from okr_mapping.periods import Period

from .conftest import Adder

Q4 = Period(date(2026, 10, 1), date(2026, 12, 31), "quarter")
MID = date(2026, 11, 15)  # day 46 of 92


def test_a_count_with_one_check_in_runs_at_its_rate() -> None:
    assert trend([(MID, 46.0)], Q4, MID, cumulative=True) == pytest.approx(92.0)


def test_a_straight_line_of_check_ins_is_continued_exactly() -> None:
    points = [(Q4.start + timedelta(days=n - 1), 3.0 * n) for n in (10, 20, 30, 46)]
    assert trend(points, Q4, MID, cumulative=True) == pytest.approx(3.0 * 92)
    rate = [(Q4.start + timedelta(days=n - 1), 50.0 - 0.1 * n) for n in (10, 20, 46)]
    assert trend(rate, Q4, MID, cumulative=False) == pytest.approx(50.0 - 0.1 * 92)


def test_a_level_metric_with_one_check_in_stays_where_it_is() -> None:
    assert trend([(MID, 0.42)], Q4, MID, cumulative=False) == 0.42
    assert trend([], Q4, MID, cumulative=True) is None
    assert trend([(date(2026, 9, 1), 5.0)], Q4, MID, cumulative=True) is None  # another period's


def test_confidence_is_the_normal_tail_of_the_wins_to_come() -> None:
    assert confidence(0.0, 0.0, 0.0) == 1.0 and confidence(-5.0, 0.0, 0.0) == 1.0
    assert confidence(100.0, 100.0, 0.0) == 1.0 and confidence(100.0, 99.0, 0.0) == 0.0
    assert confidence(100.0, 100.0, 25.0) == pytest.approx(0.5)
    assert confidence(90.0, 100.0, 25.0) == pytest.approx(0.5 * (1 + math.erf(2 / math.sqrt(2))))


def test_the_normal_confidence_is_close_to_simulated_wins() -> None:
    rng = random.Random(5)
    deals = [(rng.uniform(5_000, 60_000), rng.choice((0.1, 0.3, 0.6, 0.9))) for _ in range(80)]
    mean = sum(a * p for a, p in deals)
    variance = sum(a * a * p * (1 - p) for a, p in deals)
    needed = mean * 0.9
    wins = sum(sum(a for a, p in deals if rng.random() < p) >= needed for _ in range(4000))
    assert confidence(needed, mean, variance) == pytest.approx(wins / 4000, abs=0.03)


CONFIG = """\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true, deal_type: New Business}}
  calls: {entity: activity, measure: count, where: {kind: call}}
objectives:
  - id: grow
    title: Grow
    period: 2026-Q4
    key_results:
      - {id: revenue, metric: revenue, target: 3000}
      - {id: calls, metric: calls, target: 100}
      - {id: rep, metric: revenue, breakdown: owner, target: {each: 1500}}
"""


def test_revenue_forecasts_from_the_weighted_open_pipeline(engine: Engine, add_deal: Adder, add_owner: Adder,
                                                           add_call: Adder) -> None:
    add_owner("u1", "ann@acme.test", "East")
    add_deal(amount=1000, close_date=date(2026, 11, 1))  # won so far
    open_deal = {"is_won": False, "is_closed": False, "stage": "Negotiation"}
    add_deal(amount=2000, probability=50, close_date=date(2026, 12, 1), **open_deal)
    add_deal(amount=1000, probability=80, close_date=date(2026, 11, 20), **open_deal)
    add_deal(amount=500, probability=20, close_date=date(2026, 11, 2), **open_deal)  # slipped: still counts
    add_deal(amount=9000, probability=90, close_date=date(2027, 1, 10), **open_deal)  # next quarter
    add_deal(amount=9000, probability=90, close_date=date(2026, 12, 1), deal_type="Renewal", **open_deal)
    add_deal(amount=500, is_won=False, close_date=date(2026, 11, 3))  # lost: not pipeline
    for day in (1, 2, 3):
        add_call(activity_date=date(2026, 10, day))
    results = {r.kr_id: r for r in compute_key_results(engine, parse_config(CONFIG), as_of=MID)}
    revenue = results["revenue"]
    assert (revenue.value, revenue.forecast_method, revenue.forecast) == (1000.0, "pipeline", 1000 + 1000 + 800 + 100)
    mean, variance = 1900.0, 2000 ** 2 * 0.25 + 1000 ** 2 * 0.16 + 500 ** 2 * 0.16
    assert revenue.forecast_confidence == pytest.approx(confidence(2000.0, mean, variance), abs=1e-4)
    assert 0.3 < revenue.forecast_confidence < 0.5
    rep = results["rep"]
    assert (rep.group, rep.forecast, rep.forecast_confidence) == (
        "ann@acme.test", 2900.0, pytest.approx(confidence(500.0, mean, variance), abs=1e-4))
    calls = results["calls"]  # 3 calls by day 46: the run rate gives 6 by the end
    assert (calls.forecast_method, calls.forecast, calls.forecast_confidence) == ("trend", 6.0, None)


def test_a_finished_period_forecasts_its_value(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=1000, close_date=date(2026, 11, 1))
    results = {r.kr_id: r for r in compute_key_results(engine, parse_config(CONFIG), as_of=date(2027, 1, 3))}
    assert (results["revenue"].forecast, results["revenue"].forecast_method) == (1000.0, "final")


def test_only_won_amount_sums_by_close_date_are_revenue() -> None:
    metrics = parse_config(CONFIG.replace("\n  calls:", "\n  size: {entity: deal, measure: avg(amount),"
                                          " where: {is_won: true}}\n  calls:")).metrics
    assert is_revenue(metrics["revenue"]) and not is_revenue(metrics["calls"]) and not is_revenue(metrics["size"])
