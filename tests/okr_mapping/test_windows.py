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
