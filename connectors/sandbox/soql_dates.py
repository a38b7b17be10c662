"""SOQL date literals (TODAY, THIS_QUARTER, LAST_N_DAYS:n...) and the days each one covers.

Kept apart from the parser and the compiler because it is calendar arithmetic, not syntax: the
parser (connectors.sandbox.soql_parser) only needs the literal names, the compiler
(connectors.sandbox.soql) the range of days a literal means. A date literal is a range of days
[start, end) relative to the org's clock (UTC; weeks start on Sunday, the en_US locale; fiscal
year = calendar year).
"""

from __future__ import annotations

from datetime import date, timedelta

# Date literals: a range of days [start, end) around the org's "today" (see date_literal_range)
DATE_LITERALS = frozenset({"TODAY", "YESTERDAY", "TOMORROW", "THIS_WEEK", "LAST_WEEK", "THIS_MONTH",
                           "LAST_MONTH", "THIS_QUARTER", "LAST_QUARTER", "NEXT_QUARTER", "THIS_YEAR",
                           "LAST_YEAR", "THIS_FISCAL_QUARTER", "THIS_FISCAL_YEAR"})
N_DATE_LITERALS = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS", "LAST_N_QUARTERS"})


def _month_start(day: date, months: int = 0) -> date:
    """The first day of the month `months` months after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def date_literal_range(name: str, n: int | None, today: date) -> tuple[date, date]:
    """The days [start, end) a date literal covers when the org's date is `today`."""
    day = timedelta(days=1)
    week = today - timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday (en_US)
    month = _month_start(today)
    quarter = _month_start(today, -((today.month - 1) % 3))
    year = date(today.year, 1, 1)
    ranges = {
        "TODAY": (today, today + day),
        "YESTERDAY": (today - day, today),
        "TOMORROW": (today + day, today + 2 * day),
        "THIS_WEEK": (week, week + 7 * day),
        "LAST_WEEK": (week - 7 * day, week),
        "THIS_MONTH": (month, _month_start(month, 1)),
        "LAST_MONTH": (_month_start(month, -1), month),
        "THIS_QUARTER": (quarter, _month_start(quarter, 3)),
        "LAST_QUARTER": (_month_start(quarter, -3), quarter),
        "NEXT_QUARTER": (_month_start(quarter, 3), _month_start(quarter, 6)),
        "THIS_YEAR": (year, date(today.year + 1, 1, 1)),
        "LAST_YEAR": (date(today.year - 1, 1, 1), year),
        "THIS_FISCAL_QUARTER": (quarter, _month_start(quarter, 3)),  # the sandbox's fiscal year is
        "THIS_FISCAL_YEAR": (year, date(today.year + 1, 1, 1)),      # the calendar year
    }
    if name in ranges:
        return ranges[name]
    count = n or 0
    if name == "LAST_N_DAYS":  # today and the n days before it
        return today - count * day, today + day
    if name == "NEXT_N_DAYS":  # the n days after today
        return today + day, today + (count + 1) * day
    if name == "LAST_N_QUARTERS":  # the n whole quarters before this one
        return _month_start(quarter, -3 * count), quarter
    raise KeyError(name)
