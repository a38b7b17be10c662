from datetime import date

import pytest

from okr_mapping.periods import FiscalCalendar, is_valid_period_spec, parse_period_label


def test_calendar_year_quarters() -> None:
    calendar = FiscalCalendar(1)
    q4 = calendar.period_of(date(2026, 11, 27))
    assert (q4.label, q4.start, q4.end) == ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
    assert q4.days == 92
    assert calendar.period_of(date(2026, 1, 1)).label == "2026-Q1"


def test_february_start_names_the_year_it_ends_in() -> None:
    calendar = FiscalCalendar(2)
    # FY2026 runs Feb 2025 – Jan 2026.
    q1 = calendar.quarter(2026, 1)
    assert (q1.start, q1.end) == (date(2025, 2, 1), date(2025, 4, 30))
    q4 = calendar.quarter(2026, 4)
    assert (q4.start, q4.end) == (date(2025, 11, 1), date(2026, 1, 31))
    assert calendar.period_of(date(2026, 1, 31)).label == "2026-Q4"
    assert calendar.period_of(date(2026, 2, 1)).label == "2027-Q1"
    assert calendar.period_of(date(2026, 11, 27)).label == "2027-Q4"


def test_shift_crosses_fiscal_years() -> None:
    calendar = FiscalCalendar(2)
    q1 = calendar.quarter(2027, 1)
    previous = calendar.shift(q1, -1)
    assert previous.label == "2026-Q4"
    assert previous.end == date(2026, 1, 31)
    assert calendar.shift(q1, -4).label == "2026-Q1"
    assert calendar.shift(previous, 1) == q1


def test_resolve_relative_and_explicit() -> None:
    calendar = FiscalCalendar(1)
    as_of = date(2026, 11, 27)
    assert calendar.resolve("current", as_of).label == "2026-Q4"
    assert calendar.resolve("previous", as_of).label == "2026-Q3"
    assert calendar.resolve("next", as_of).label == "2027-Q1"
    assert calendar.resolve("2025-Q2", as_of).start == date(2025, 4, 1)
    assert calendar.resolve("FY2025-q2", as_of).label == "2025-Q2"


def test_labels_and_bad_specs() -> None:
    assert parse_period_label("2026-Q4") == (2026, 4)
    with pytest.raises(ValueError, match="not a period"):
        parse_period_label("2026-Q5")
    assert not is_valid_period_spec("last quarter")
    assert is_valid_period_spec("Current")


def test_elapsed_share_counts_as_of_day() -> None:
    period = FiscalCalendar(1).quarter(2026, 4)
    assert period.elapsed_share(date(2026, 9, 30)) == 0.0
    assert period.elapsed_share(date(2026, 10, 1)) == pytest.approx(1 / 92)
    assert period.elapsed_share(date(2026, 11, 15)) == pytest.approx(46 / 92)
    assert period.elapsed_share(date(2026, 12, 31)) == 1.0
    assert period.elapsed_share(date(2027, 3, 1)) == 1.0


def test_bad_start_month() -> None:
    with pytest.raises(ValueError):
        FiscalCalendar(13)
