"""Windows (whole period, period to date, trailing days) and the reporting lag."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import ConfigError, compute_key_results, parse_config

from .conftest import Adder

AS_OF = date(2026, 11, 15)  # day 46 of 2026-Q4
CONFIG = """\
reporting_lag_days: {lag}
metrics:
  won_revenue: {{entity: deal, measure: sum(amount), where: {{is_won: true}}, time: close_date}}
objectives:
  - id: money
    title: Make money
    period: 2026-Q4
    key_results:
      - {{id: quarter, metric: won_revenue, target: 1000}}
      - {{id: so-far, metric: won_revenue, window: to_date, target: {{change: "+10%", vs: previous_period}}}}
      - {{id: last-30, metric: won_revenue, window: {{trailing_days: 30}}, target: {{change: "+0%"}}}}
"""


@pytest.fixture
def deals(add_deal: Adder) -> None:
    for day, amount in ((date(2026, 7, 10), 1.0), (date(2026, 8, 20), 2.0),  # Q3: first 46 days, then later
                        (date(2026, 10, 10), 4.0), (date(2026, 10, 20), 8.0),  # Q4 before the trailing 30 days
                        (date(2026, 11, 1), 16.0), (date(2026, 11, 14), 32.0), (date(2026, 11, 15), 64.0),
                        (date(2026, 12, 20), 128.0)):  # Q4, after the as-of day (a planned close date)
        add_deal(close_date=day, amount=amount)


def _results(engine: Engine, lag: int = 0) -> dict[str, tuple[float, float, float]]:
    config = parse_config(CONFIG.format(lag=lag), "rules.yaml")
    return {r.kr_id: (r.value, r.baseline, r.target)
            for r in compute_key_results(engine, config, source="salesforce", as_of=AS_OF)}


def test_the_whole_period_to_date_and_trailing_days(engine: Engine, deals: None) -> None:
    results = _results(engine)
    assert results["quarter"][0] == 4 + 8 + 16 + 32 + 64 + 128
    # Q4 up to Nov 15 (46 days) against Q3's first 46 days (Jul 1 - Aug 15): 1, then +10%
    assert results["so-far"] == pytest.approx((4 + 8 + 16 + 32 + 64, 0.0, 1.1))
    # Oct 17 - Nov 15 against the 30 days before (Sep 17 - Oct 16)
    assert results["last-30"] == pytest.approx((8 + 16 + 32 + 64, 0.0, 4.0))


def test_a_reporting_lag_measures_as_of_days_before_the_run(engine: Engine, deals: None) -> None:
    results = _results(engine, lag=2)  # as of Nov 13
    assert results["so-far"][0] == 4 + 8 + 16
    assert results["last-30"][0] == 8 + 16  # Oct 15 - Nov 13


@pytest.mark.parametrize(("window", "message"), [
    ("to-date", "window"), ("{trailing_days: 0}", "greater than or equal to 1"), ("{trailing: 30}", "trailing"),
])
def test_bad_windows_are_named(window: str, message: str) -> None:
    text = CONFIG.format(lag=0).replace("window: to_date", f"window: {window}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "rules.yaml")
    assert any(message in error.message or message in error.key_path for error in caught.value.errors), [
        (error.key_path, error.message) for error in caught.value.errors]
    assert all(error.line == 10 for error in caught.value.errors)


def test_today_is_the_day_in_the_configs_time_zone() -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"):  # +14 h and -11 h: different days at times
        config = parse_config(CONFIG.format(lag=0).replace("reporting_lag_days: 0", f"time_zone: {zone}"),
                              "rules.yaml")
        assert config.today() in {datetime.now(ZoneInfo(zone)).date(),
                                  (datetime.now(ZoneInfo(zone)) - timedelta(seconds=5)).date()}
        assert abs((config.today() - datetime.now(UTC).date()).days) <= 1


def test_an_unknown_time_zone_is_named_with_a_suggestion() -> None:
    text = CONFIG.format(lag=0).replace("reporting_lag_days: 0", "time_zone: Europe/Berln")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "rules.yaml")
    (error,) = caught.value.errors
    assert "'Europe/Berln' is not a time zone name; did you mean Europe/Berlin?" in error.message and error.line == 1


def test_a_complete_window_is_judged_on_its_whole_target_not_the_quarters_pace(engine: Engine, deals: None) -> None:
    """Trailing days are always complete; a to_date change target covers the same days: pace 100%."""
    config = parse_config(CONFIG.format(lag=0), "rules.yaml")
    results = {r.kr_id: r for r in compute_key_results(engine, config, source="salesforce", as_of=AS_OF)}
    assert results["quarter"].expected_progress == pytest.approx(46 / 92, abs=1e-4)  # the calendar's pace
    assert results["so-far"].expected_progress == 1.0 and results["last-30"].expected_progress == 1.0
    assert results["so-far"].status == "achieved"  # 124 against a target of 1.1


def test_trailing_days_against_the_same_days_last_year(engine: Engine, add_deal: Adder) -> None:
    add_deal(close_date=date(2025, 11, 1), amount=500.0)  # inside Oct 17 - Nov 15, 2025
    add_deal(close_date=date(2026, 10, 1), amount=7.0)  # the 30 days before this year's window: not compared
    add_deal(close_date=date(2026, 11, 10), amount=40.0)
    text = CONFIG.format(lag=0).replace('{change: "+0%"}', '{change: "+0%", vs: same_period_last_year}')
    config = parse_config(text, "rules.yaml")
    result = next(r for r in compute_key_results(engine, config, source="salesforce", as_of=AS_OF)
                  if r.kr_id == "last-30")
    assert (result.value, result.target) == pytest.approx((40.0, 500.0))


def test_explain_measures_the_same_window_and_lag_as_a_run(engine: Engine, deals: None) -> None:
    from okr_mapping.explain import explain_key_result

    config = parse_config(CONFIG.format(lag=2), "rules.yaml")
    results = {r.kr_id: r for r in compute_key_results(engine, config, source="salesforce", as_of=AS_OF)}
    for kr_id in ("so-far", "last-30"):
        explanation = explain_key_result(engine, config, kr_id, "salesforce", AS_OF)
        (side,) = explanation.sides
        assert side.value == pytest.approx(results[kr_id].value)
        assert sum(record.value or 0 for record in side.records) == pytest.approx(results[kr_id].value)
        assert any("reporting lag is 2 day(s)" in note for note in explanation.notes)
