"""Expected-progress curves: linear, step (month by month) and seasonal (last year's shape)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import compute_key_results, parse_config
from okr_mapping.pace import same_day_last_year, step_share
from okr_mapping.periods import FiscalCalendar

from .conftest import Adder

Q4 = FiscalCalendar(1).resolve("2026-Q4", date(2026, 11, 15))


@pytest.mark.parametrize(("day", "share"), [
    (date(2026, 9, 30), 0.0), (date(2026, 10, 1), 0.0), (date(2026, 10, 30), 0.0), (date(2026, 10, 31), 1 / 3),
    (date(2026, 11, 15), 1 / 3), (date(2026, 11, 30), 2 / 3), (date(2026, 12, 30), 2 / 3),
    (date(2026, 12, 31), 1.0), (date(2027, 1, 5), 1.0),
])
def test_a_month_is_due_only_once_it_has_ended(day: date, share: float) -> None:
    assert step_share(Q4, day) == pytest.approx(share)


def test_the_same_day_last_year_is_as_far_into_the_period() -> None:
    last_year = FiscalCalendar(1).same_period_last_year(Q4)
    assert same_day_last_year(Q4, last_year, date(2026, 11, 15)) == date(2025, 11, 15)
    assert same_day_last_year(Q4, last_year, date(2027, 2, 1)) == date(2025, 12, 31)


def _config(pace: str, metric: str = "revenue", breakdown: str = "", target: str = "1000") -> str:
    return f"""\
metrics:
  revenue: {{entity: deal, measure: sum(amount), where: {{is_won: true}}}}
  size: {{entity: deal, measure: avg(amount), where: {{is_won: true}}}}
objectives:
  - id: grow
    title: Grow
    period: 2026-Q4
    key_results:
      - {{id: kr, metric: {metric}, target: {target}, pace: {pace}{breakdown}}}
"""


def _one(engine: Engine, text: str, day: date = date(2026, 11, 15)):
    [result] = compute_key_results(engine, parse_config(text), as_of=day)
    return result


def test_step_pace_keeps_an_early_month_on_track(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=100, close_date=date(2026, 10, 5))
    linear = _one(engine, _config("linear"), date(2026, 10, 20))
    step = _one(engine, _config("step"), date(2026, 10, 20))
    assert (linear.pace, linear.expected_progress, linear.status) == ("linear", pytest.approx(20 / 92, abs=1e-4),
                                                                       "off_track")
    assert (step.pace, step.expected_progress, step.status) == ("step", 0.0, "on_track")
    late = _one(engine, _config("step"), date(2026, 11, 1))  # October is over: a third is due
    assert (late.expected_progress, late.status) == (pytest.approx(1 / 3, abs=1e-4), "off_track")


def test_seasonal_pace_follows_last_years_quarter(engine: Engine, add_deal: Adder) -> None:
    # Last Q4 closed late: 200 of 1,000 by 15 November, the rest in December.
    add_deal(amount=200, close_date=date(2025, 10, 20))
    add_deal(amount=800, close_date=date(2025, 12, 20))
    add_deal(amount=190, close_date=date(2026, 11, 1))  # this year: 19% done by mid-quarter
    result = _one(engine, _config("seasonal"))
    assert (result.pace, result.expected_progress) == ("seasonal", 0.2)
    assert result.status == "on_track"  # 0.19 >= 0.95 x 0.2; linear pace (0.5) would say off track
    assert _one(engine, _config("linear")).status == "off_track"


def test_seasonal_pace_falls_back_to_linear_and_says_why(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=190, close_date=date(2026, 11, 1))
    no_history = _one(engine, _config("seasonal"))
    assert (no_history.pace, no_history.expected_progress) == ("linear: no last-year data",
                                                               pytest.approx(46 / 92, abs=1e-4))
    average = _one(engine, _config("seasonal", metric="size"))
    assert average.pace == "linear: seasonal needs a count or sum"


def test_a_rep_new_this_year_follows_the_teams_seasonal_shape(engine: Engine, add_deal: Adder,
                                                              add_owner: Adder) -> None:
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u2", "new@acme.test", "East")
    add_deal(owner_id="u1", amount=300, close_date=date(2025, 10, 10))
    add_deal(owner_id="u1", amount=700, close_date=date(2025, 12, 10))
    add_deal(owner_id="u2", amount=50, close_date=date(2026, 11, 2))
    results = compute_key_results(engine, parse_config(_config("seasonal", breakdown=", breakdown: owner",
                                                                          target="{each: 400}")),
                                  as_of=date(2026, 11, 15))
    assert {r.group: (r.pace, r.expected_progress) for r in results} == {"new@acme.test": ("seasonal", 0.3)}


def test_scoring_pace_is_the_default_of_every_key_result(engine: Engine, add_deal: Adder) -> None:
    text = _config("step").replace(", pace: step", "").replace("objectives:", "scoring: {pace: step}\nobjectives:")
    assert _one(engine, text, date(2026, 10, 20)).pace == "step"
