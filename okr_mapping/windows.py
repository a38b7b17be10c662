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
    if window == "to_date":
        return Period(period.start, max(period.start, min(period.end, day)), "custom")
    assert isinstance(window, int)
    return Period(day - timedelta(days=window - 1), day, "custom")


def earlier(window: Window, base: Period, before: Period, day: date) -> Period:
    """The window a change target compares with: `before` is the earlier period of `base`.

    to_date: the same number of days from the start of `before`; trailing: the span just before.
    """
    if window == "period":
        return before
    if window == "to_date":
        elapsed = measured(base, "to_date", day).end - base.start
        return Period(before.start, min(before.end, before.start + elapsed), "custom")
    assert isinstance(window, int)
    current = measured(base, window, day)
    span = timedelta(days=window)
    return Period(current.start - span, current.end - span, "custom")
