"""Fiscal periods: the spans of time key results are measured over.

Sales orgs rarely run on calendar quarters, so quarters, halves and years are always *fiscal*
ones of a fiscal year that starts in `fiscal_year_start_month`. Like Salesforce, a fiscal year
is named by the calendar year in which it ends: with a February start, Feb 2025 – Jan 2026 is
FY2026. With the default January start the fiscal year is simply the calendar year.

Specs an objective may name: `current` / `previous` / `next` (quarters), `current_half`,
`current_year`, `2026-Q4`, `2026-H1`, `FY2026`, or custom dates `{start: ..., end: ...}`.
Labels (they appear in KR keys): `2026-Q4`, `2026-H1`, `FY2026`, `2026-10-01_2026-12-15`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, Protocol

from okr_mapping.scoring import expected_progress

PeriodKind = Literal["quarter", "half", "year", "custom"]
RELATIVE_PERIODS = ("current", "previous", "next", "current_half", "current_year")
PERIOD_HELP = (
    "use current, previous, next, current_half, current_year, a fiscal quarter like 2026-Q4, "
    "a half like 2026-H1, a year like FY2026, or custom dates {start: 2026-10-01, end: 2026-12-15}"
)
_LABEL = re.compile(r"^\s*(?:FY)?(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)
_HALF = re.compile(r"^\s*(?:FY)?(\d{4})\s*-?\s*H([12])\s*$", re.IGNORECASE)
_YEAR = re.compile(r"^\s*FY\s*-?\s*(\d{4})\s*$", re.IGNORECASE)
_MONTHS: dict[PeriodKind, int] = {"quarter": 3, "half": 6, "year": 12}


class DateSpan(Protocol):
    """Anything with inclusive `start` and `end` dates (the config's custom period)."""

    @property
    def start(self) -> date: ...

    @property
    def end(self) -> date: ...


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    """(year, month) moved by `months`, month 1-12."""
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _year_earlier(day: date) -> date:
    """The same day a year earlier; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


@dataclass(frozen=True, order=True)
class Period:
    """A fiscal quarter, half or year, or a custom span; `end` is inclusive so it reads the way people say it.

    `number` is the quarter (1-4) or half (1-2) within `fiscal_year`; None for years and custom spans
    (a custom span has no fiscal year either).
    """

    start: date
    end: date
    kind: PeriodKind = "quarter"
    fiscal_year: int | None = None
    number: int | None = None

    @property
    def quarter(self) -> int | None:
        """The quarter 1-4 for a quarter, else None."""
        return self.number if self.kind == "quarter" else None

    @property
    def label(self) -> str:
        if self.kind == "quarter":
            return f"{self.fiscal_year}-Q{self.number}"
        if self.kind == "half":
            return f"{self.fiscal_year}-H{self.number}"
        if self.kind == "year":
            return f"FY{self.fiscal_year}"
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

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
    """Maps dates to fiscal quarters, halves and years for one fiscal-year start month."""

    start_month: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.start_month <= 12:
            raise ValueError(f"fiscal_year_start_month must be 1-12, got {self.start_month}")

    def _fiscal(self, kind: PeriodKind, fiscal_year: int, number: int | None) -> Period:
        months = _MONTHS[kind]
        first_year = fiscal_year if self.start_month == 1 else fiscal_year - 1
        start_year, start_month = _add_months(first_year, self.start_month, months * ((number or 1) - 1))
        next_year, next_month = _add_months(start_year, start_month, months)
        return Period(
            start=date(start_year, start_month, 1),
            end=date(next_year, next_month, 1) - timedelta(days=1),
            kind=kind,
            fiscal_year=fiscal_year,
            number=number,
        )

    def quarter(self, fiscal_year: int, quarter: int) -> Period:
        """The period for a fiscal year (named by the year it ends in) and quarter 1-4."""
        if not 1 <= quarter <= 4:
            raise ValueError(f"quarter must be 1-4, got {quarter}")
        return self._fiscal("quarter", fiscal_year, quarter)

    def half(self, fiscal_year: int, half: int) -> Period:
        """H1 = fiscal quarters 1-2, H2 = quarters 3-4."""
        if half not in (1, 2):
            raise ValueError(f"half must be 1 or 2, got {half}")
        return self._fiscal("half", fiscal_year, half)

    def year(self, fiscal_year: int) -> Period:
        """The whole fiscal year named by the calendar year it ends in."""
        return self._fiscal("year", fiscal_year, None)

    def custom(self, start: date, end: date) -> Period:
        """A span of dates, both inclusive."""
        if end < start:
            raise ValueError(f"a period cannot end ({end}) before it starts ({start})")
        return Period(start=start, end=end, kind="custom")

    def period_of(self, day: date) -> Period:
        """The fiscal quarter containing `day`."""
        offset = (day.month - self.start_month) % 12
        first_year = day.year if day.month >= self.start_month else day.year - 1
        fiscal_year = first_year if self.start_month == 1 else first_year + 1
        return self.quarter(fiscal_year, offset // 3 + 1)

    def half_of(self, day: date) -> Period:
        quarter = self.period_of(day)
        assert quarter.fiscal_year is not None and quarter.number is not None
        return self.half(quarter.fiscal_year, (quarter.number + 1) // 2)

    def year_of(self, day: date) -> Period:
        quarter = self.period_of(day)
        assert quarter.fiscal_year is not None
        return self.year(quarter.fiscal_year)

    def shift(self, period: Period, steps: int) -> Period:
        """The period `steps` of its own length away (negative = earlier).

        Quarters move by quarters (-4 is the same quarter last year), halves by halves, years by
        years; a custom span moves by its own number of days (-1: the same number of days before it starts).
        """
        if period.kind == "custom":
            delta = timedelta(days=period.days * steps)
            return self.custom(period.start + delta, period.end + delta)
        assert period.fiscal_year is not None
        per_year = 12 // _MONTHS[period.kind]
        index = period.fiscal_year * per_year + ((period.number or 1) - 1) + steps
        number = index % per_year + 1 if period.kind != "year" else None
        return self._fiscal(period.kind, index // per_year, number)

    def same_period_last_year(self, period: Period) -> Period:
        """The matching period one year earlier (a custom span: the same dates a year earlier)."""
        if period.kind == "custom":
            return self.custom(_year_earlier(period.start), _year_earlier(period.end))
        return self.shift(period, -(12 // _MONTHS[period.kind]))

    def resolve(self, spec: str | DateSpan, as_of: date) -> Period:
        """Turn a period spec into a period; ValueError if unreadable.

        `spec` is a string (see the module docstring) or a custom span with `start` and `end` dates.
        """
        if not isinstance(spec, str):
            return self.custom(spec.start, spec.end)
        relative = spec.strip().lower()
        if relative == "current":
            return self.period_of(as_of)
        if relative == "previous":
            return self.shift(self.period_of(as_of), -1)
        if relative == "next":
            return self.shift(self.period_of(as_of), 1)
        if relative == "current_half":
            return self.half_of(as_of)
        if relative == "current_year":
            return self.year_of(as_of)
        half = _HALF.match(spec)
        if half:
            return self.half(int(half.group(1)), int(half.group(2)))
        year = _YEAR.match(spec)
        if year:
            return self.year(int(year.group(1)))
        fiscal_year, quarter = parse_period_label(spec)
        return self.quarter(fiscal_year, quarter)


def parse_period_label(spec: str) -> tuple[int, int]:
    """("2026", 4) from "2026-Q4" (also accepts "FY2026-Q4", "2026Q4"); ValueError otherwise."""
    match = _LABEL.match(spec)
    if not match:
        raise ValueError(f"'{spec}' is not a period; {PERIOD_HELP}")
    return int(match.group(1)), int(match.group(2))


def is_valid_period_spec(spec: str) -> bool:
    """True when `resolve` can read the string `spec` (used by config validation)."""
    if spec.strip().lower() in RELATIVE_PERIODS:
        return True
    return bool(_LABEL.match(spec) or _HALF.match(spec) or _YEAR.match(spec))
