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


def test_halves_and_years_follow_the_fiscal_start() -> None:
    calendar = FiscalCalendar(2)  # FY2027 runs Feb 2026 – Jan 2027
    h2 = calendar.resolve("current_half", date(2026, 11, 27))
    assert (h2.label, h2.start, h2.end) == ("2027-H2", date(2026, 8, 1), date(2027, 1, 31))
    year = calendar.resolve("current_year", date(2026, 11, 27))
    assert (year.label, year.start, year.end) == ("FY2027", date(2026, 2, 1), date(2027, 1, 31))
    assert calendar.resolve("2027-h1", date(2020, 1, 1)).end == date(2026, 7, 31)
    assert calendar.resolve("fy2027", date(2020, 1, 1)) == year
    assert calendar.resolve("2026-Q4", date(2020, 1, 1)).label == "2026-Q4"  # quarter labels unchanged


def test_previous_period_shifts_by_own_length() -> None:
    calendar = FiscalCalendar(1)
    h1 = calendar.half(2026, 1)
    assert calendar.shift(h1, -1).label == "2025-H2"
    assert calendar.shift(calendar.half(2026, 2), -1) == h1
    assert calendar.shift(calendar.year(2026), -1) == calendar.year(2025)
    assert calendar.same_period_last_year(h1).label == "2025-H1"
    assert calendar.same_period_last_year(calendar.quarter(2026, 4)).label == "2025-Q4"
    custom = calendar.custom(date(2026, 10, 1), date(2026, 12, 15))  # 76 days
    before = calendar.shift(custom, -1)
    assert (before.start, before.end, before.days) == (date(2026, 7, 17), date(2026, 9, 30), 76)
    assert before.label == "2026-07-17_2026-09-30"
    leap = calendar.same_period_last_year(calendar.custom(date(2028, 2, 29), date(2028, 3, 31)))
    assert (leap.start, leap.end) == (date(2027, 2, 28), date(2027, 3, 31))
    with pytest.raises(ValueError, match="before it starts"):
        calendar.custom(date(2026, 2, 1), date(2026, 1, 1))


def test_new_period_specs_are_valid() -> None:
    for spec in ("current_half", "CURRENT_YEAR", "2026-H2", "FY2026", "2026Q1"):
        assert is_valid_period_spec(spec), spec
    for spec in ("2026-H3", "FY26", "2026", "current-half"):
        assert not is_valid_period_spec(spec), spec
