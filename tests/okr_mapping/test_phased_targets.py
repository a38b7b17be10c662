"""Phased targets: a count's or sum's target month by month, with a pace that follows the phases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import ConfigError, compute_key_results, parse_config
from okr_mapping.explain import explain_key_result
from okr_mapping.periods import FiscalCalendar
from okr_mapping.windows import phased_share

from .conftest import Adder

Q4 = FiscalCalendar(1).quarter(2026, 4)
CONFIG = """\
metrics:
  won_revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
  avg_won: {entity: deal, measure: avg(amount), where: {is_won: true}, time: close_date}
objectives:
  - id: money
    title: Make money
    period: 2026-Q4
    key_results:
      - {id: revenue, metric: won_revenue, target: {phased: [1000, 1000, 2000]}}
"""


@pytest.mark.parametrize(("day", "share"), [
    (date(2026, 9, 30), 0.0),
    (date(2026, 10, 31), 0.25),  # October done: 1000 of 4000
    (date(2026, 11, 15), (1000 + 1000 * 15 / 30) / 4000),
    (date(2026, 12, 1), (2000 + 2000 * 1 / 31) / 4000),
    (date(2026, 12, 31), 1.0),
    (date(2027, 2, 1), 1.0),
])
def test_the_expected_share_follows_the_phases(day: date, share: float) -> None:
    assert phased_share(Q4, [1000, 1000, 2000], day) == pytest.approx(share)


def test_a_back_loaded_quarter_is_not_behind_in_its_first_month(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=800.0, close_date=date(2026, 10, 20))
    config = parse_config(CONFIG, "rules.yaml")
    (result,) = compute_key_results(engine, config, source="salesforce", as_of=date(2026, 10, 31))
    assert (result.target, result.value, result.progress) == pytest.approx((4000, 800, 0.2))
    assert result.expected_progress == pytest.approx(0.25)  # linear would be 31/92 = 0.337: at risk, not on track
    assert result.status == "at_risk"  # 0.2 >= 0.75 * 0.25
    explanation = explain_key_result(engine, config, "revenue", "salesforce", date(2026, 10, 31))
    assert "phased by month: 1000 + 1000 + 2000 = 4000" in explanation.target_how


@pytest.mark.parametrize(("old", "new", "message"), [
    ("[1000, 1000, 2000]", "[1000, 3000]", "the period has 3 month(s) but the phased target gives 2"),
    ("metric: won_revenue,", "metric: avg_won,", "phased targets are monthly amounts of a count or a sum"),
    ("target: {phased", "breakdown: owner, target: {phased", "a phased target is one total"),
    ("target: {phased", "window: to_date, target: {phased", "remove the window"),
    ("metric: won_revenue,", "type: manual,", "phased targets are for increase key results"),
    ("{phased: [1000, 1000, 2000]}", "{phases: [1000, 1000, 2000]}", "unknown setting 'phases'"),
])
def test_phased_target_mistakes_are_named(old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace(old, new), "rules.yaml")
    matching = [error for error in caught.value.errors if message in error.message]
    assert matching and matching[0].line == 9, [(error.key_path, error.message) for error in caught.value.errors]
    if "phases" in message:
        assert matching[0].suggestion == "phased"
