"""Which days of its period a key result measures: all of it, the part up to the run, or a trailing span.

A KR's period (a quarter, say) gives its label, its pace and its target; its window says which records
count. `to_date` stops at the as-of day, so a change target compares with the same stretch of the
earlier period (the first 40 days of this quarter against the first 40 days of the last).
`{trailing_days: N}` reads the N days up to the as-of day whatever the period, and compares with the N
days before them.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from okr_mapping.periods import Period

Window = Literal["period", "to_date"] | int  # an int: trailing days


def measured(period: Period, window: Window, day: date) -> Period:
    """The days counted for `period` as of `day` (never past the period's end for to_date)."""
    if window == "period":
        return period
    if window == "to_date":  # before the period starts: no day yet (the span ends before it begins)
        return Period(period.start, min(period.end, max(day, period.start - timedelta(days=1))), "custom")
    assert isinstance(window, int)
    return Period(day - timedelta(days=window - 1), day, "custom")


def earlier(window: Window, base: Period, before: Period, day: date, vs: str = "previous_period") -> Period:
    """The window a change target compares with: `before` is the earlier period of `base`.

    to_date: the same number of days from the start of `before`; trailing: the span just before
    (vs previous_period) or the same days a year earlier (vs same_period_last_year).
    """
    if window == "period":
        return before
    if window == "to_date":
        elapsed = measured(base, "to_date", day).end - base.start
        return Period(before.start, min(before.end, before.start + elapsed), "custom")
    assert isinstance(window, int)
    current = measured(base, window, day)
    if vs == "same_period_last_year":
        return Period(_year_earlier(current.start), _year_earlier(current.end), "custom")
    span = timedelta(days=window)
    return Period(current.start - span, current.end - span, "custom")


def expected_share(window: Window, period: Period, day: date, compares: bool) -> float | None:
    """The expected progress a window implies, or None to follow the period's calendar: a trailing
    window is always complete, and so is a to_date window whose target (a change) covers the same days."""
    if isinstance(window, int) or (window == "to_date" and compares):
        return 1.0
    return None


def _year_earlier(day: date) -> date:
    return day.replace(year=day.year - 1) if (day.month, day.day) != (2, 29) else date(day.year - 1, 2, 28)


def phased_share(period: Period, phases: list[float], day: date) -> float:
    """The share of a phased target due by the end of `day`: earlier months in full, the current one
    in proportion to its days gone by (0 before the period, 1 after it)."""
    total = sum(phases)
    if not total or day < period.start:
        return 0.0
    if day >= period.end:
        return 1.0
    due = 0.0
    month_start = period.start
    for amount in phases:
        following = date(month_start.year + month_start.month // 12, month_start.month % 12 + 1, 1)
        month_end = min(following - timedelta(days=1), period.end)
        if day >= month_end:
            due += amount
        else:
            days = (month_end - month_start).days + 1
            due += amount * ((day - month_start).days + 1) / days
            break
        month_start = following
    return min(due / total, 1.0)
