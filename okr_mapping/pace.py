"""Expected-progress curves: how much of a key result should be done by a given day.

Status compares progress with this share (scoring.kr_status), so the curve decides when a KR
turns at risk. Three curves, chosen per key result (`pace:`) or for the whole file
(`scoring.pace`):

- linear (default): the share of the period's days gone by. Right for steady work (calls).
- step: month by month; a month's share is only due once the month has ended, so a team is not
  at risk on the 10th for a month it still has 20 days to finish. Right for monthly closes.
- seasonal: last year's shape for the same period, from the store: the share of last year's
  period total that was reached by the same day of last year's period. Right for quarters that
  close late (most sales quarters). It needs an additive metric (a count or sum that restarts
  each period) with records last year; otherwise the linear share stands, and the result says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta

from okr_mapping.config import Pace
from okr_mapping.metrics import GroupKey, MetricEvaluator, MetricValue, restarts_each_period
from okr_mapping.periods import FiscalCalendar, Period


def step_share(period: Period, day: date) -> float:
    """Months of the period fully gone by at the end of `day` over its months (a part month counts
    as a month); 0 before the period, 1 from its last day."""
    if day < period.start:
        return 0.0
    if day >= period.end:
        return 1.0
    months, done = 0, 0
    month_start = period.start
    while month_start <= period.end:
        following = date(month_start.year + month_start.month // 12, month_start.month % 12 + 1, 1)
        month_end = min(following - timedelta(days=1), period.end)
        months += 1
        done += day >= month_end
        month_start = following
    return done / months


def same_day_last_year(period: Period, last_year: Period, day: date) -> date:
    """The day of `last_year` as far into it as `day` is into `period` (clamped to its end)."""
    return min(last_year.start + (min(day, period.end) - period.start), last_year.end)


def seasonal_shares(to_day: Mapping[GroupKey, MetricValue],
                    whole: Mapping[GroupKey, MetricValue]) -> dict[GroupKey, float]:
    """Per group: last year's value up to the same day over last year's whole-period value, for
    the groups whose last-year total is above 0 (a share of nothing says nothing)."""
    shares = {}
    for key, total in whole.items():
        if total.defined and total.value > 0:
            reached = to_day.get(key, MetricValue(0.0, 0))
            shares[key] = min(max(reached.value / total.value, 0.0), 1.0) if reached.defined else 0.0
    return shares


Curve = Callable[[GroupKey], tuple[float | None, str]]


def curve(evaluator: MetricEvaluator, calendar: FiscalCalendar, metric: str | None, pace: Pace, period: Period,
          day: date, breakdown: str | None) -> Curve:
    """Per group: (expected progress, or None for the calendar's linear share; the curve used)."""
    if pace == "step":
        share = step_share(period, day)
        return lambda _key: (share, "step")
    if pace != "seasonal" or metric is None:
        return lambda _key: (None, "linear")
    if not restarts_each_period(evaluator.config.metrics[metric], evaluator.config.metrics):
        return lambda _key: (None, "linear: seasonal needs a count or sum")
    if day < period.start or day >= period.end:
        done = 0.0 if day < period.start else 1.0
        return lambda _key: (done, "seasonal")
    last_year = calendar.same_period_last_year(period)
    so_far = Period(last_year.start, same_day_last_year(period, last_year, day), "custom")
    shares = seasonal_shares(evaluator.values(metric, so_far, breakdown),
                             evaluator.values(metric, last_year, breakdown))
    overall = seasonal_shares(evaluator.values(metric, so_far), evaluator.values(metric, last_year)).get(None)

    def for_group(key: GroupKey) -> tuple[float | None, str]:
        if key in shares:
            return shares[key], "seasonal"
        if overall is not None:  # a group new since last year follows the whole team's shape
            return overall, "seasonal"
        return None, "linear: no last-year data"

    return for_group
