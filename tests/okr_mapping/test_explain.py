"""explain_key_result: the records listed are exactly those the metric measures, and the numbers are the run's."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import compute_key_results, parse_config
from okr_mapping.explain import ExplainError, explain_key_result, find_key_result
from okr_mapping.metrics import evaluate_metric
from okr_mapping.periods import FiscalCalendar

from .conftest import Adder

AS_OF = date(2026, 11, 15)  # day 46 of 92 of 2026-Q4
Q4 = FiscalCalendar().quarter(2026, 4)

CONFIG = parse_config("""\
segments:
  big: {entity: deal, where: {amount: {gte: 250}}}
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, unit: USD}
  big_revenue: {entity: deal, measure: sum(amount), segment: big, where: {is_won: true, owner.team: East}}
  deal_size: {entity: deal, measure: avg(amount), where: {is_won: true}, unit: USD}
  median_size: {entity: deal, measure: median(amount), where: {is_won: true}}
  won: {entity: deal, measure: count, where: {is_won: true}}
  calls: {entity: activity, measure: count, where: {kind: call}}
  win_rate:
    ratio:
      numerator: {entity: deal, measure: count, where: {is_won: true}}
      denominator: {entity: deal, measure: count, where: {is_closed: true}}
    unit: "%"
objectives:
  - id: grow
    title: Grow revenue
    key_results:
      - {id: revenue, metric: revenue, target: 1000}
      - {id: big, metric: big_revenue, target: 500}
      - {id: size, metric: deal_size, target: {change: "+10%", vs: previous_period}}
      - {id: median, metric: median_size, target: 400}
      - {id: won, metric: won, target: {change: "+2"}}
      - {id: per-rep, metric: revenue, breakdown: owner, target: {each: 400, overrides: {"bob@acme.test": 300}}}
      - {id: win-rate, metric: win_rate, baseline: 40, target: 60}
  - id: speed
    title: Sell faster
    key_results:
      - {id: calls, metric: calls, type: decrease, baseline: 10, target: 4}
      - {id: revenue, metric: revenue, type: stay_above, target: 100}
""")


@pytest.fixture
def org(add_deal: Adder, add_owner: Adder, add_call: Adder) -> None:
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u2", "bob@acme.test", "West")
    add_deal(source_id="A1", owner_id="u1", amount=300)
    add_deal(source_id="A2", owner_id="u1", amount=200)
    add_deal(source_id="B1", owner_id="u2", amount=250)
    add_deal(source_id="N1", owner_id=None, amount=50, close_date=date(2026, 12, 31))  # last day counts
    add_deal(source_id="E1", owner_id="u1", amount=None)  # won, no amount: not in a sum or average
    add_deal(source_id="L1", owner_id="u2", amount=999, is_won=False)
    add_deal(source_id="X1", amount=777, is_deleted=True)
    add_deal(source_id="H1", amount=888, source="hubspot")
    add_deal(source_id="O1", amount=666, close_date=date(2027, 1, 1))
    add_deal(source_id="P1", owner_id="u1", amount=100, close_date=date(2026, 8, 20))  # 2026-Q3
    add_deal(source_id="P2", owner_id="u2", amount=300, close_date=date(2026, 7, 31))
    for day in (1, 2, 3):
        add_call(source_id=f"C{day}", activity_date=date(2026, 11, day))
    add_call(source_id="M1", kind="meeting")


def _value(engine: Engine, name: str, breakdown: str | None = None) -> dict:
    with engine.connect() as conn:
        return evaluate_metric(conn, CONFIG.metrics[name], "salesforce", Q4, breakdown, CONFIG.segments,
                               CONFIG.entities)


@pytest.mark.parametrize(("ref", "metric", "ids"), [
    ("grow.revenue", "revenue", {"A1", "A2", "B1", "N1"}),
    ("big", "big_revenue", {"A1"}),
    ("size", "deal_size", {"A1", "A2", "B1", "N1"}),
    ("median", "median_size", {"A1", "A2", "B1", "N1"}),
    ("won", "won", {"A1", "A2", "B1", "N1", "E1"}),
    ("calls", "calls", {"C1", "C2", "C3"}),
])
def test_the_records_listed_are_exactly_those_the_metric_measures(
        engine: Engine, org: None, ref: str, metric: str, ids: set[str]) -> None:
    explained = explain_key_result(engine, CONFIG, ref, "salesforce", AS_OF)
    (side,) = explained.sides
    assert {record.id for record in side.records} == ids
    assert side.total_records == len(ids)
    expected = _value(engine, metric)[None].value
    values = [record.value for record in side.records]
    measure = CONFIG.metrics[metric].measure
    if measure == "count":
        assert values == [None] * len(ids) and side.total_records == expected
    elif measure.startswith("sum"):
        assert sum(values) == pytest.approx(expected)
    elif measure.startswith("avg"):
        assert sum(values) / len(values) == pytest.approx(expected)
    else:  # median of 300, 250, 200, 50
        assert sorted(values)[1:3] == [200, 250] and expected == pytest.approx(225)
    assert side.value == pytest.approx(expected)
    assert explained.result is not None and explained.result.value == pytest.approx(round(expected, 4))


def test_the_numbers_are_those_of_the_run(engine: Engine, org: None) -> None:
    run = {result.key: result for result in compute_key_results(engine, CONFIG, "salesforce", AS_OF)}
    for objective in CONFIG.objectives:
        for kr in objective.key_results:
            explained = explain_key_result(engine, CONFIG, f"{objective.id}.{kr.id}", "salesforce", AS_OF)
            assert explained.result == run[explained.result.key]


def test_sql_shows_the_store_dialect_with_values_inline(engine: Engine, org: None) -> None:
    (side,) = explain_key_result(engine, CONFIG, "big", "salesforce", AS_OF).sides
    assert side.parameters is None
    assert "sum(deal.amount)" in side.sql and "deal.source = 'salesforce'" in side.sql
    assert "'2026-10-01'" in side.sql and "'2026-12-31'" in side.sql and "LEFT OUTER JOIN owner" in side.sql
    assert "deal.amount >= 250" in side.sql and "owner.team = 'East'" in side.sql
    assert side.filters == ["amount ≥ 250 (segment big)", "is_won is true", "owner.team is East"]
    assert side.measure_words == "total amount of deals" and side.time_field == "close_date"


def test_ratio_lists_both_sides(engine: Engine, org: None) -> None:
    explained = explain_key_result(engine, CONFIG, "win-rate", "salesforce", AS_OF)
    numerator, denominator = explained.sides
    assert (numerator.name, denominator.name) == ("numerator", "denominator")
    assert {r.id for r in numerator.records} == {"A1", "A2", "B1", "N1", "E1"}
    assert {r.id for r in denominator.records} == {"A1", "A2", "B1", "N1", "E1", "L1"}
    value = _value(engine, "win_rate")[None].value
    assert numerator.total_records / denominator.total_records * 100 == pytest.approx(value)
    assert explained.formula == "numerator / denominator × 100"
    assert explained.value_how == "5 / 6 × 100"
    assert explained.baseline_how == "given in the config"
    assert "(83.3333 − 40) / (60 − 40)" in explained.progress_formula


def test_breakdown_lists_groups_and_explains_the_chosen_one(engine: Engine, org: None) -> None:
    first = explain_key_result(engine, CONFIG, "per-rep", "salesforce", AS_OF)
    assert [g.label for g in first.groups] == ["(unassigned)", "ann@acme.test", "bob@acme.test"]
    assert first.group == "(unassigned)" and {r.id for r in first.sides[0].records} == {"N1"}
    bob = explain_key_result(engine, CONFIG, "per-rep", "salesforce", AS_OF, group="bob@acme.test")
    assert {r.id for r in bob.sides[0].records} == {"B1"}
    assert bob.result is not None and bob.result.target == 300 and "override" in bob.target_how
    values = _value(engine, "revenue", "owner")
    for group in first.groups:
        key = None if group.label == "(unassigned)" else group.label
        records = explain_key_result(engine, CONFIG, "per-rep", "salesforce", AS_OF, group=group.label).sides[0]
        assert sum(r.value for r in records.records) == pytest.approx(values[key].value)
    with pytest.raises(ExplainError, match="did you mean bob@acme.test"):
        explain_key_result(engine, CONFIG, "per-rep", "salesforce", AS_OF, group="bob@acme.tst")
    with pytest.raises(ExplainError, match="no breakdown"):
        explain_key_result(engine, CONFIG, "grow.revenue", "salesforce", AS_OF, group="x")


def test_limit_keeps_the_total(engine: Engine, org: None) -> None:
    (side,) = explain_key_result(engine, CONFIG, "grow.revenue", "salesforce", AS_OF, limit=2).sides
    assert [r.id for r in side.records] == ["A1", "B1"]  # largest first
    assert side.total_records == 4


def test_how_baseline_and_target_were_obtained(engine: Engine, org: None) -> None:
    size = explain_key_result(engine, CONFIG, "size", "salesforce", AS_OF)
    assert size.result is not None and size.result.baseline == 200 and size.result.target == pytest.approx(220)
    assert "2026-Q3" in size.baseline_how and "200" in size.baseline_how
    assert "200 × (1 + 10%) = 220" in size.target_how
    won = explain_key_result(engine, CONFIG, "won", "salesforce", AS_OF)
    assert won.baseline_how.startswith("0: counts and sums restart")
    assert "2 +2 = 4" in won.target_how
    calls = explain_key_result(engine, CONFIG, "calls", "salesforce", AS_OF)
    assert calls.progress_formula == "(baseline − value) / (baseline − target) = (10 − 3) / (10 − 4) = 1.167"
    assert calls.expected_how.startswith("46 of 92 days of 2026-Q4")
    assert calls.result is not None and calls.result.status == "achieved"
    guard = explain_key_result(engine, CONFIG, "speed.revenue", "salesforce", AS_OF)
    assert "800 ≥ 100 is true" in guard.progress_formula and "no pace" in guard.status_how
    revenue = explain_key_result(engine, CONFIG, "grow.revenue", "salesforce", AS_OF)
    assert "0.95 × 50.0% = 47.5%" in revenue.status_how and "0.75 × 50.0% = 37.5%" in revenue.status_how


def test_kr_lookup(engine: Engine) -> None:
    assert find_key_result(CONFIG, "calls")[1].id == "calls"
    assert find_key_result(CONFIG, "speed.revenue")[0].id == "speed"
    with pytest.raises(ExplainError, match="several objectives: grow.revenue, speed.revenue"):
        find_key_result(CONFIG, "revenue")
    with pytest.raises(ExplainError, match="did you mean .*grow.per-rep"):
        find_key_result(CONFIG, "grow.per-reps")


def test_an_empty_store_explains_without_records(engine: Engine) -> None:
    explained = explain_key_result(engine, CONFIG, "per-rep", "hubspot", AS_OF)
    assert explained.result is None and explained.groups == []
    assert explained.sides[0].store_rows == 0 and explained.sides[0].records == []


def test_a_snapshot_metric_is_explained_with_its_records(engine: Engine, add_deal: Adder) -> None:
    """`time: all` has no time field of its own: records are listed by the entity's default date."""
    add_deal(amount=5.0, is_won=False, is_closed=False, stage="Proposal", created_date=date(2026, 9, 1),
             close_date=date(2027, 1, 15))
    add_deal(amount=7.0, created_date=date(2026, 10, 2), close_date=date(2026, 10, 20))  # opened in Q4
    config = parse_config("""\
metrics:
  open_at_start:
    entity: deal
    measure: sum(amount)
    time: all
    where: {created_date: {lte: period_start}, any: [{is_closed: false}, {close_date: {gte: period_start}}]}
objectives:
  - id: pipe
    title: Pipeline
    period: 2026-Q4
    key_results:
      - {id: start, metric: open_at_start, target: 10}
""", "rules.yaml")
    explanation = explain_key_result(engine, config, "start", "salesforce", date(2026, 11, 1))
    (side,) = explanation.sides
    assert side.value == 5.0 and [record.value for record in side.records] == [5.0]
