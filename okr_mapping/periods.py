"""Fiscal quarters: the periods key results are measured over.

Sales orgs rarely run on calendar quarters, so a quarter is always a *fiscal* quarter of a
fiscal year that starts in `fiscal_year_start_month`. Like Salesforce, a fiscal year is named
by the calendar year in which it ends: with a February start, Feb 2025 – Jan 2026 is FY2026.
With the default January start the fiscal year is simply the calendar year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from okr_mapping.scoring import expected_progress

RELATIVE_PERIODS = ("current", "previous", "next")
_LABEL = re.compile(r"^\s*(?:FY)?(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    """(year, month) moved by `months`, month 1-12."""
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


@dataclass(frozen=True, order=True)
class Period:
    """One fiscal quarter; `end` is inclusive so it reads the way people say it."""

    fiscal_year: int
    quarter: int
    start: date
    end: date

    @property
    def label(self) -> str:
        return f"{self.fiscal_year}-Q{self.quarter}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def elapsed_share(self, as_of: date) -> float:
        """Share of the period gone by at the end of `as_of` (0 before it starts, 1 after it ends)."""
        return expected_progress(self.start, self.end, as_of)

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class FiscalCalendar:
    """Maps dates to fiscal quarters for one fiscal-year start month."""

    start_month: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.start_month <= 12:
            raise ValueError(f"fiscal_year_start_month must be 1-12, got {self.start_month}")

    def quarter(self, fiscal_year: int, quarter: int) -> Period:
        """The period for a fiscal year (named by the year it ends in) and quarter 1-4."""
        if not 1 <= quarter <= 4:
            raise ValueError(f"quarter must be 1-4, got {quarter}")
        first_year = fiscal_year if self.start_month == 1 else fiscal_year - 1
        start_year, start_month = _add_months(first_year, self.start_month, 3 * (quarter - 1))
        next_year, next_month = _add_months(start_year, start_month, 3)
        return Period(
            fiscal_year=fiscal_year,
            quarter=quarter,
            start=date(start_year, start_month, 1),
            end=date(next_year, next_month, 1) - timedelta(days=1),
        )

    def period_of(self, day: date) -> Period:
        """The fiscal quarter containing `day`."""
        offset = (day.month - self.start_month) % 12
        first_year = day.year if day.month >= self.start_month else day.year - 1
        fiscal_year = first_year if self.start_month == 1 else first_year + 1
        return self.quarter(fiscal_year, offset // 3 + 1)

    def shift(self, period: Period, quarters: int) -> Period:
        """The quarter `quarters` away (negative = earlier); -4 is the same quarter last year."""
        index = period.fiscal_year * 4 + (period.quarter - 1) + quarters
        return self.quarter(index // 4, index % 4 + 1)

    def resolve(self, spec: str, as_of: date) -> Period:
        """Turn "current" / "previous" / "next" / "2026-Q4" into a period; ValueError if unreadable."""
        current = self.period_of(as_of)
        relative = spec.strip().lower()
        if relative == "current":
            return current
        if relative == "previous":
            return self.shift(current, -1)
        if relative == "next":
            return self.shift(current, 1)
        fiscal_year, quarter = parse_period_label(spec)
        return self.quarter(fiscal_year, quarter)


def parse_period_label(spec: str) -> tuple[int, int]:
    """("2026", 4) from "2026-Q4" (also accepts "FY2026-Q4", "2026Q4"); ValueError otherwise."""
    match = _LABEL.match(spec)
    if not match:
        raise ValueError(
            f"'{spec}' is not a period; use current, previous, next, or a fiscal quarter like 2026-Q4"
        )
    return int(match.group(1)), int(match.group(2))


def is_valid_period_spec(spec: str) -> bool:
    """True when `resolve` can read `spec` (used by config validation)."""
    if spec.strip().lower() in RELATIVE_PERIODS:
        return True
    try:
        parse_period_label(spec)
    except ValueError:
        return False
    return True
