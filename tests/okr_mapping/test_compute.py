import json
import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import KrResult, compute_key_results, load_config, parse_config, rollup_objectives, slugify

from .conftest import Adder

AS_OF = date(2026, 11, 15)  # day 46 of 92 in 2026-Q4: expected progress 0.5
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, unit: USD}
  deal_size: {entity: deal, measure: avg(amount), where: {is_won: true}, unit: USD}
  cycle: {entity: deal, measure: avg(cycle_days), where: {is_won: true}, unit: days}
  calls: {entity: activity, measure: count, where: {kind: call}}
objectives:
  - id: grow
    title: Grow revenue
    owner: vp@acme.test
    key_results:
      - {id: revenue, metric: revenue, target: 1000}
      - {id: size, metric: deal_size, target: {change: "+10%", vs: previous_period}, weight: 2}
      - {id: plus, metric: revenue, target: {change: "+500"}}
      - {id: per-rep, metric: revenue, breakdown: owner, target: {each: 400}}
      - {id: per-team, metric: revenue, breakdown: team, target: {change: "+50%"}}
  - id: speed
    title: Sell faster
    period: previous
    key_results:
      - {id: cycle, title: Shorter cycle, metric: cycle, type: decrease, baseline: 60, target: 40}
      - {id: calls, metric: calls, target: 10}
"""


@pytest.fixture
def org(add_deal: Adder, add_owner: Adder, add_call: Adder) -> None:
    add_owner("u1", "Ann.Lee@acme.test", "East")
    add_owner("u2", "bob@acme.test", "West")
    # 2026-Q4 (current): Ann 300 + 200, Bob 250 -> 750; average 250.
    add_deal(owner_id="u1", amount=300)
    add_deal(owner_id="u1", amount=200)
    add_deal(owner_id="u2", amount=250)
    add_deal(owner_id="u2", amount=999, is_won=False)
    # 2026-Q3 (previous): Ann 100, Bob 300 -> 400; average 200; cycles 50 and 30 days.
    add_deal(owner_id="u1", amount=100, created_date=date(2026, 7, 1), close_date=date(2026, 8, 20))
    add_deal(owner_id="u2", amount=300, created_date=date(2026, 7, 1), close_date=date(2026, 7, 31))
    for _ in range(4):
        add_call(activity_date=date(2026, 8, 1))


def _by_key(results: list[KrResult]) -> dict[str, KrResult]:
    return {result.key: result for result in results}


@pytest.mark.usefixtures("org")
def test_plain_target(engine: Engine) -> None:
    results = _by_key(compute_key_results(engine, parse_config(CONFIG), as_of=AS_OF))
    revenue = results["grow.revenue.2026-Q4"]
    assert (revenue.value, revenue.baseline, revenue.target) == (750, 0, 1000)
    assert revenue.progress == 0.75 and revenue.score == 0.75
    assert revenue.expected_progress == 0.5
    assert revenue.status == "on_track"
    assert (revenue.period_start, revenue.period_end) == (date(2026, 10, 1), date(2026, 12, 31))
    assert revenue.unit == "USD" and revenue.title == "Revenue" and revenue.owner == "vp@acme.test"
    assert revenue.sample_size == 3 and revenue.source == "salesforce"


@pytest.mark.usefixtures("org")
def test_change_vs_previous_period(engine: Engine) -> None:
    results = _by_key(compute_key_results(engine, parse_config(CONFIG), as_of=AS_OF))
    size = results["grow.size.2026-Q4"]
    assert (size.value, size.baseline, size.target) == (250, 200, 220)
    assert size.progress == pytest.approx(2.5)
    assert size.score == 1.0 and size.status == "achieved"
    plus = results["grow.plus.2026-Q4"]
    # A sum restarts at 0 each quarter: progress runs from 0 to last quarter's 400 + 500.
    assert (plus.value, plus.baseline, plus.target) == (750, 0, 900)
    assert plus.progress == pytest.approx(750 / 900, abs=1e-4)
    assert plus.status == "on_track"  # 0.83 >= 0.95 * 0.5


@pytest.mark.usefixtures("org")
def test_breakdown_by_owner(engine: Engine) -> None:
    results = compute_key_results(engine, parse_config(CONFIG), as_of=AS_OF)
    reps = [result for result in results if result.kr_id == "per-rep"]
    assert [(rep.key, rep.group, rep.value) for rep in reps] == [
        ("grow.per-rep.2026-Q4.ann.lee-acme.test", "Ann.Lee@acme.test", 500),
        ("grow.per-rep.2026-Q4.bob-acme.test", "bob@acme.test", 250),
    ]
    assert [rep.status for rep in reps] == ["achieved", "on_track"]  # 0.625 >= 0.475
    assert [rep.owner for rep in reps] == ["Ann.Lee@acme.test", "bob@acme.test"]


@pytest.mark.usefixtures("org")
def test_breakdown_by_team_with_change(engine: Engine) -> None:
    results = compute_key_results(engine, parse_config(CONFIG), as_of=AS_OF)
    teams = {result.group: result for result in results if result.kr_id == "per-team"}
    assert set(teams) == {"East", "West"}
    east, west = teams["East"], teams["West"]
    # Targets come from each team's own last quarter (100, 300); progress runs from 0.
    assert (east.value, east.baseline, east.target) == (500, 0, 150)
    assert (west.value, west.baseline, west.target) == (250, 0, 450)
    assert west.progress == pytest.approx(250 / 450, abs=1e-4)  # results are rounded to 4 places
    assert west.status == "on_track" and west.score == pytest.approx(0.5556)
    assert west.key == "grow.per-team.2026-Q4.west"


@pytest.mark.usefixtures("org")
def test_previous_period_objective_and_decrease(engine: Engine) -> None:
    results = _by_key(compute_key_results(engine, parse_config(CONFIG), as_of=AS_OF))
    cycle = results["speed.cycle.2026-Q3"]
    assert cycle.value == 40 and cycle.kr_type == "decrease"
    assert cycle.progress == 1.0 and cycle.status == "achieved"
    assert cycle.expected_progress == 1.0
    calls = results["speed.calls.2026-Q3"]
    assert calls.progress == 0.4 and calls.status == "off_track"


def test_empty_store_never_reads_achieved(engine: Engine) -> None:
    results = _by_key(compute_key_results(engine, parse_config(CONFIG), as_of=AS_OF))
    assert results["speed.cycle.2026-Q3"].progress == 0.0  # average of nothing: undefined, not 0 days
    assert results["grow.size.2026-Q4"].progress == 0.0
    assert not any(result.kr_id.startswith("per-") for result in results.values())  # no groups, no rows


@pytest.mark.usefixtures("org")
def test_source_override_and_unknown_source(engine: Engine) -> None:
    results = compute_key_results(engine, parse_config(CONFIG), source="hubspot", as_of=AS_OF)
    assert all(result.value == 0 for result in results)
    assert {result.source for result in results} == {"hubspot"}
    with pytest.raises(ValueError, match="unknown source"):
        compute_key_results(engine, parse_config(CONFIG), source="pipedrive", as_of=AS_OF)


@pytest.mark.usefixtures("org")
def test_keys_are_unique_safe_and_rows_are_json(engine: Engine) -> None:
    results = compute_key_results(engine, parse_config(CONFIG), as_of=AS_OF)
    keys = [result.key for result in results]
    assert len(keys) == len(set(keys))
    assert all(re.fullmatch(r"[A-Za-z0-9._:-]+", key) for key in keys)
    row = results[0].as_row()
    assert row["period_start"] == "2026-10-01"
    assert json.loads(json.dumps(row))["key"] == results[0].key


def test_fiscal_year_start_month_shapes_periods(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=100, close_date=date(2026, 1, 20))  # FY2026-Q4 with a February start
    add_deal(amount=900, close_date=date(2026, 2, 1))  # FY2027-Q1
    text = CONFIG.replace("metrics:", "fiscal_year_start_month: 2\nmetrics:", 1)
    results = _by_key(compute_key_results(engine, parse_config(text), as_of=date(2026, 1, 31)))
    revenue = results["grow.revenue.2026-Q4"]
    assert (revenue.period_start, revenue.period_end) == (date(2025, 11, 1), date(2026, 1, 31))
    assert revenue.value == 100
    assert revenue.expected_progress == 1.0


def test_slugify_and_colliding_group_keys() -> None:
    assert slugify("Ann.Lee@Acme.test") == "ann.lee-acme.test"
    assert slugify("  EMEA / North  ") == "emea-north"
    assert slugify("@@@") == "none"
    assert len(slugify("x" * 300)) <= 80


def test_rollup_weights_and_breakdowns(engine: Engine, org: None) -> None:
    config = parse_config(CONFIG)
    results = compute_key_results(engine, config, as_of=AS_OF)
    rolled = {objective.objective_id: objective for objective in rollup_objectives(results, config)}
    grow = rolled["grow"]
    # revenue 0.75 (w1), size 1.0 (w2), plus 0.8333 (w1), per-rep mean(1, 0.625) (w1),
    # per-team mean(1, 0.5556) (w1)
    expected = (0.75 + 2 * 1.0 + 750 / 900 + 0.8125 + (1 + 250 / 450) / 2) / 6
    assert grow.score == pytest.approx(expected, abs=1e-4)
    assert grow.key == "grow.2026-Q4" and grow.key_results == 5
    assert grow.status == "on_track"
    speed = rolled["speed"]
    assert speed.score == pytest.approx(0.7)  # (1 + 0.4) / 2
    assert speed.status == "off_track"  # the quarter is over: 0.7 < 0.75 x 1.0


def test_demo_config_computes_against_a_small_org(engine: Engine, org: None) -> None:
    config = load_config(ROOT / "config" / "examples" / "demo.yaml")
    results = compute_key_results(engine, config, as_of=AS_OF)
    assert {result.kr_id for result in results} >= {"revenue", "win-rate", "calls", "cycle", "rep-revenue"}
    assert all(0.0 <= result.score <= 1.0 for result in results)


def test_a_team_named_unassigned_never_shares_a_key_with_deals_without_a_team(
    engine: Engine, add_deal: Adder, add_owner: Adder
) -> None:
    add_owner("t1", "t1@acme.test", "unassigned")
    add_owner("t2", "t2@acme.test", None)
    add_deal(owner_id="t1", amount=100.0)
    add_deal(owner_id="t2", amount=200.0)
    config = parse_config("""
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
objectives:
  - id: grow
    title: Grow
    period: 2026-Q4
    key_results:
      - {id: per-team, metric: revenue, breakdown: team, target: {each: 1000}}
""")
    results = compute_key_results(engine, config, as_of=AS_OF)
    assert sorted((r.group, r.value) for r in results) == [("(unassigned)", 200.0), ("unassigned", 100.0)]
    assert len({r.key for r in results}) == 2
