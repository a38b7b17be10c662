"""Derived metrics: arithmetic over other metrics, parsed against an allow-list, never evaluated as code."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import ConfigError, compute_key_results, parse_config
from okr_mapping.derived import FormulaError, parse_formula
from okr_mapping.errors import Issue

from .conftest import Adder

AS_OF = date(2026, 11, 25)
CONFIG = """\
metrics:
  won_revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
  won_deals: {entity: deal, measure: count, where: {is_won: true}, time: close_date}
  avg_won: {entity: deal, measure: avg(amount), where: {is_won: true}, time: close_date}
  revenue_per_deal:
    derived: won_revenue / won_deals
    unit: USD
  margin_like:
    derived: (won_revenue - 1000) / won_revenue * 100
    unit: "%"
  avg_gap:
    derived: avg_won - revenue_per_deal
objectives:
  - id: money
    title: Make money
    period: 2026-Q4
    key_results:
      - {id: per-deal, metric: revenue_per_deal, target: 2000}
      - {id: per-rep, metric: revenue_per_deal, breakdown: owner, target: {each: 2000}}
      - {id: margin, metric: margin_like, target: 90}
      - {id: gap, metric: avg_gap, type: stay_below, target: 1}
      - {id: growth, metric: revenue_per_deal, target: {change: "+10%", vs: previous_period}}
"""


@pytest.mark.parametrize("text", [
    "won_revenue / won_deals", "-won_revenue", "(a + b) * 2.5 - c / 4", "1e3 * rate",
])
def test_allowed_formulas_parse(text: str) -> None:
    assert parse_formula(text).names <= {"won_revenue", "won_deals", "a", "b", "c", "rate"}


@pytest.mark.parametrize(("text", "column"), [
    ("__import__('os').system('id')", 1),
    ("won_revenue.real", 1),
    ("won_revenue ** 2", 1),
    ("won_revenue % 7", 1),
    ("won_revenue > 3", 1),
    ("'text' + won_revenue", 1),
    ("won_revenue if won_deals else 0", 1),
    ("not won_revenue", 1),
    ("True * won_revenue", 1),
    ("won_revenue / ", None),
    ("", None),
])
def test_anything_else_is_refused(text: str, column: int | None) -> None:
    with pytest.raises(FormulaError) as caught:
        parse_formula(text)
    if column is not None:
        assert caught.value.column == column


def test_formulas_evaluate_exactly() -> None:
    formula = parse_formula("(a + b) * 2 - c / 4")
    assert formula.evaluate({"a": 1, "b": 2, "c": 8}) == 4
    assert parse_formula("a / (b - b)").evaluate({"a": 1, "b": 2}) is None


def _results(engine: Engine) -> dict[tuple[str, str | None], object]:
    config = parse_config(CONFIG, "rules.yaml")
    return {(r.kr_id, r.group): r for r in compute_key_results(engine, config, source="salesforce", as_of=AS_OF)}


def test_derived_values_per_period_and_per_group(engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    add_owner("u2", "bob@example.com", "West")
    add_deal(owner_id="u1", amount=1000.0)
    add_deal(owner_id="u1", amount=3000.0)
    add_deal(owner_id="u2", amount=5000.0)
    add_deal(owner_id="u2", amount=9000.0, is_won=False, stage="Closed Lost")  # not won: not counted
    add_deal(owner_id="u1", amount=500.0, close_date=date(2026, 8, 1))  # Q3: the change baseline
    results = _results(engine)
    assert results[("per-deal", None)].value == pytest.approx(3000.0)
    assert results[("per-rep", "ann@example.com")].value == pytest.approx(2000.0)
    assert results[("per-rep", "bob@example.com")].value == pytest.approx(5000.0)
    assert results[("margin", None)].value == pytest.approx((9000 - 1000) / 9000 * 100)
    assert results[("gap", None)].value == pytest.approx(0.0)  # an average of won deals is revenue per deal
    growth = results[("growth", None)]
    assert (growth.baseline, growth.target, growth.value) == pytest.approx((500.0, 550.0, 3000.0))


def test_nothing_to_divide_by_is_undefined_not_zero_progress_towards_achieved(engine: Engine,
                                                                               add_deal: Adder) -> None:
    add_deal(amount=1000.0, is_won=False, stage="Closed Lost")
    result = _results(engine)[("per-deal", None)]
    assert result.value == 0 and result.progress == 0 and result.status != "achieved"


def _errors(text: str) -> list[Issue]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "rules.yaml")
    return caught.value.errors


def test_an_unknown_metric_in_a_formula_is_named_with_a_suggestion() -> None:
    errors = _errors(CONFIG.replace("derived: won_revenue / won_deals", "derived: won_revenue / won_deal"))
    (error,) = [e for e in errors if "won_deal'" in e.message]
    assert (error.line, error.suggestion) == (6, "won_deals")


def test_a_formula_that_is_code_is_refused_at_its_line() -> None:
    errors = _errors(CONFIG.replace("derived: won_revenue / won_deals", "derived: won_revenue.__class__"))
    (error,) = [e for e in errors if "not allowed" in e.message]
    assert error.line == 6 and "Traceback" not in error.message


def test_a_metric_reading_itself_through_another_is_refused() -> None:
    text = CONFIG.replace("derived: won_revenue / won_deals", "derived: avg_gap * 2")
    messages = [e.message for e in _errors(text)]
    assert any("'revenue_per_deal' reads itself" in message for message in messages)
    assert any("'avg_gap' reads itself" in message for message in messages)


def test_metrics_read_only_by_a_formula_are_not_unused() -> None:
    config = parse_config(CONFIG, "rules.yaml")
    assert not [w for w in config.warnings if "won_deals" in w.message or "avg_won" in w.message]


def test_a_breakdown_of_a_derived_metric_is_checked_against_the_metrics_it_reads() -> None:
    errors = _errors(CONFIG.replace("breakdown: owner", "breakdown: regoin"))
    assert any("'regoin' is not a field of deal" in e.message for e in errors)


def test_a_crm_without_any_such_records_has_no_value_rather_than_zero(engine: Engine, add_deal: Adder) -> None:
    """HubSpot has no campaigns: a sum over them there is undefined, never a real-looking 0."""
    from sqlalchemy import insert

    from connectors.store import Campaign

    add_deal(source="hubspot", amount=100.0)
    with engine.begin() as conn:
        conn.execute(insert(Campaign.__table__), [{"source": "salesforce", "source_id": "C1", "is_deleted": False,
                                                   "custom": {}, "actual_cost": 50.0, "start_date": date(2026, 10, 5)}])
    text = CONFIG.replace("objectives:", "  spend: {entity: campaign, measure: sum(actual_cost), time: start_date}\n"
                          "  return_on_spend: {derived: won_revenue / spend}\nobjectives:").replace(
        "      - {id: per-deal,", "      - {id: spend, metric: spend, type: stay_below, target: 1000}\n"
        "      - {id: roi, metric: return_on_spend, target: 3}\n      - {id: per-deal,")
    config = parse_config(text, "rules.yaml")
    results = {(r.source, r.kr_id): r for source in ("salesforce", "hubspot")
               for r in compute_key_results(engine, config, source=source, as_of=AS_OF)}
    assert results[("salesforce", "spend")].value == 50 and results[("salesforce", "spend")].status == "achieved"
    hubspot_spend = results[("hubspot", "spend")]
    assert (hubspot_spend.value, hubspot_spend.progress, hubspot_spend.status) == (0, 0, "off_track")
    assert results[("hubspot", "roi")].progress == 0 and results[("hubspot", "roi")].status != "achieved"


def test_a_sum_scaled_by_a_number_restarts_each_period_but_a_ratio_of_metrics_does_not(
        engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=1000.0, close_date=date(2026, 8, 1))  # Q3
    add_deal(amount=300.0)  # Q4
    text = CONFIG.replace("objectives:", "  revenue_per_rep: {derived: won_revenue / 2}\nobjectives:").replace(
        "      - {id: per-deal,", '      - {id: rep, metric: revenue_per_rep, target: {change: "+10%"}}\n'
        "      - {id: per-deal,")
    results = {r.kr_id: r for r in compute_key_results(engine, parse_config(text, "rules.yaml"),
                                                        source="salesforce", as_of=AS_OF)}
    rep, growth = results["rep"], results["growth"]
    assert (rep.value, rep.baseline, rep.target) == pytest.approx((150.0, 0.0, 550.0))  # from 0 to Q3's 500 + 10%
    assert rep.progress == pytest.approx(150 / 550, abs=1e-4)
    assert (growth.baseline, growth.target) == pytest.approx((1000.0, 1100.0))  # a ratio carries over


def test_a_group_of_a_metric_over_records_the_crm_lacks_is_undefined(
        engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    add_deal(owner_id="u1", amount=80.0)  # no campaign records at all in this store
    text = CONFIG.replace("objectives:", "  spend: {entity: campaign, measure: sum(actual_cost), time: start_date}\n"
                          "  net: {derived: won_revenue - spend}\nobjectives:").replace(
        "      - {id: per-deal,", "      - {id: net, metric: net, target: 100}\n"
        "      - {id: net-rep, metric: net, breakdown: owner, target: {each: 100}}\n      - {id: per-deal,")
    results = {(r.kr_id, r.group): r for r in compute_key_results(engine, parse_config(text, "rules.yaml"),
                                                                   source="salesforce", as_of=AS_OF)}
    for key in (("net", None), ("net-rep", "ann@example.com")):
        assert (results[key].value, results[key].progress, results[key].status) == (0, 0, "off_track"), key


def test_formula_positions_count_leading_spaces_and_huge_numbers_are_refused() -> None:
    with pytest.raises(FormulaError) as caught:
        parse_formula("   won_revenue.real")
    assert caught.value.column == 4
    with pytest.raises(FormulaError, match="too large"):
        parse_formula("won_revenue / 1" + "0" * 400)
