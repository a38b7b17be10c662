"""SOQL date literals: compiled to bound SQL and checked day by day against an independent model.

The model below never builds a range: it decides membership from calendar facts (ISO weeks shifted
by a day so they start on Sunday, month and quarter indexes, day differences), so it cannot share a
mistake with `soql.date_literal_range`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.sandbox import soql
from connectors.sandbox.salesforce_schema import SCHEMAS
from connectors.sandbox.state import SandboxState

FIRST_DAY, LAST_DAY = date(2024, 10, 1), date(2027, 12, 31)
DAY = timedelta(days=1)
OPS = ("=", "!=", "<", "<=", ">", ">=")


def _month(day: date) -> int:
    return day.year * 12 + day.month - 1


def _quarter(day: date) -> int:
    return day.year * 4 + (day.month - 1) // 3


def _week(day: date) -> tuple[int, int]:
    """(ISO year, ISO week) of the day after: a week running Sunday to Saturday."""
    iso = (day + DAY).isocalendar()
    return iso[0], iso[1]


def model(literal: str, today: date) -> Callable[[date], bool]:
    """Whether a day lies in a date literal's range, from Salesforce's documented definitions."""
    name, _, raw = literal.partition(":")
    n = int(raw) if raw else 0
    last_week = _week(today - 7 * DAY)
    return {
        "TODAY": lambda d: d == today,
        "YESTERDAY": lambda d: (today - d).days == 1,
        "TOMORROW": lambda d: (d - today).days == 1,
        "THIS_WEEK": lambda d: _week(d) == _week(today),
        "LAST_WEEK": lambda d: _week(d) == last_week,
        "THIS_MONTH": lambda d: _month(d) == _month(today),
        "LAST_MONTH": lambda d: _month(d) == _month(today) - 1,
        "THIS_QUARTER": lambda d: _quarter(d) == _quarter(today),
        "LAST_QUARTER": lambda d: _quarter(d) == _quarter(today) - 1,
        "NEXT_QUARTER": lambda d: _quarter(d) == _quarter(today) + 1,
        "THIS_YEAR": lambda d: d.year == today.year,
        "LAST_YEAR": lambda d: d.year == today.year - 1,
        "THIS_FISCAL_QUARTER": lambda d: _quarter(d) == _quarter(today),  # fiscal = calendar here
        "THIS_FISCAL_YEAR": lambda d: d.year == today.year,
        "LAST_N_DAYS": lambda d: 0 <= (today - d).days <= n,  # includes today
        "NEXT_N_DAYS": lambda d: 1 <= (d - today).days <= n,  # starts tomorrow
        "LAST_N_QUARTERS": lambda d: _quarter(today) - n <= _quarter(d) < _quarter(today),
    }[name]


LITERALS = ("TODAY", "YESTERDAY", "TOMORROW", "THIS_WEEK", "LAST_WEEK", "THIS_MONTH", "LAST_MONTH",
            "THIS_QUARTER", "LAST_QUARTER", "NEXT_QUARTER", "THIS_YEAR", "LAST_YEAR", "THIS_FISCAL_QUARTER",
            "THIS_FISCAL_YEAR", "LAST_N_DAYS:1", "LAST_N_DAYS:30", "NEXT_N_DAYS:7", "LAST_N_QUARTERS:1",
            "LAST_N_QUARTERS:4")


def expected_days(literal: str, op: str, today: date, days: list[date]) -> set[date]:
    inside = model(literal, today)
    members = [day for day in days if inside(day)]
    start, end = min(members), max(members)  # every range here lies within the org's days
    test = {"=": inside, "!=": lambda d: not inside(d), "<": lambda d: d < start,
            "<=": lambda d: d <= end, ">": lambda d: d > end, ">=": lambda d: d >= start}[op]
    return {day for day in days if test(day)}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> tuple[SandboxState, dict[int, date]]:
    """Two deals per day: created at 00:00:00 and at 23:59:59 UTC, closing that day."""
    state = SandboxState(Path(tmp_path_factory.mktemp("soql-dates")))
    rows, day_of = [], {}
    day, next_id = FIRST_DAY, 1
    while day <= LAST_DAY:
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        for offset_ms in (0, 86_399_000):
            rows.append((next_id, day.isoformat(), midnight + offset_ms))
            day_of[next_id] = day
            next_id += 1
        day += DAY
    with state.transaction() as conn:
        conn.executemany("INSERT INTO deals (id, name, stage, close_date, created_ms, modified_ms, deleted,"
                         " owner_id, account_id) VALUES (?, 'd', 'prospecting', ?, ?, 0, 0, 1, 1)", rows)
    return state, day_of


def selected_days(state: SandboxState, day_of: dict[int, date], text: str, now: datetime) -> list[date]:
    sql, params = soql.compile_soql(text, SCHEMAS, now=now).select()
    return [day_of[row[0]] for row in state.query(sql, params)]


# a Sunday (a week's first day), a Thursday on New Year's Day, a quarter's last day, a Saturday
@pytest.mark.parametrize("now", [datetime(2026, 11, 15, 12, 0, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
                                 datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC),
                                 datetime(2026, 11, 21, 8, 30, tzinfo=UTC)])
@pytest.mark.parametrize("field", ["CloseDate", "CreatedDate"])
def test_every_literal_and_operator_matches_the_model(org: tuple[SandboxState, dict[int, date]],
                                                      now: datetime, field: str) -> None:
    state, day_of = org
    days = sorted(set(day_of.values()))
    for literal in LITERALS:
        for op in OPS:
            got = selected_days(state, day_of, f"SELECT Id FROM Opportunity WHERE {field} {op} {literal}", now)
            want = expected_days(literal, op, now.date(), days)
            assert set(got) == want, (literal, op)
            assert len(got) == 2 * len(want), (literal, op)  # both 00:00:00 and 23:59:59 rows of each day


def test_literals_combine_with_other_filters(org: tuple[SandboxState, dict[int, date]]) -> None:
    state, day_of = org
    now = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
    text = ("SELECT Id FROM Opportunity WHERE (CloseDate = THIS_QUARTER OR CloseDate = last_n_quarters:1)"
            " AND NOT CreatedDate = THIS_MONTH")
    got = set(selected_days(state, day_of, text, now))
    assert got == {day for day in day_of.values() if date(2026, 7, 1) <= day < date(2027, 1, 1)
                   and (day.year, day.month) != (2026, 11)}


def test_literals_compile_to_bound_parameters() -> None:
    now = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
    sql, params = soql.compile_soql("SELECT Id FROM Opportunity WHERE CloseDate = THIS_QUARTER"
                                    " AND CreatedDate < LAST_N_DAYS:7", SCHEMAS, now=now).select()
    assert "2026" not in sql and "THIS_QUARTER" not in sql
    assert params[:3] == ["2026-10-01", "2027-01-01", int(datetime(2026, 11, 8, tzinfo=UTC).timestamp())]


def test_literals_are_evaluated_in_the_zone_of_the_orgs_clock() -> None:
    """Salesforce evaluates date literals in the user's time zone: 23:30 on the 31st of March at UTC-2
    is still March (Q1) there, though already April in UTC; datetime bounds are that zone's midnights."""
    from zoneinfo import ZoneInfo
    late = datetime(2026, 3, 31, 23, 30, tzinfo=ZoneInfo("America/Noronha"))  # UTC-2
    _sql, params = soql.compile_soql("SELECT Id FROM Opportunity WHERE CloseDate = THIS_QUARTER"
                                     " AND CreatedDate = TODAY", SCHEMAS, now=late).select()
    assert params[:2] == ["2026-01-01", "2026-04-01"]
    assert params[2:4] == [int(datetime(2026, 3, 31, 2, tzinfo=UTC).timestamp()),
                           int(datetime(2026, 4, 1, 2, tzinfo=UTC).timestamp())]
    _sql, params = soql.compile_soql("SELECT Id FROM Opportunity WHERE CloseDate = THIS_QUARTER", SCHEMAS,
                                     now=late.astimezone(UTC)).select()
    assert params[:2] == ["2026-04-01", "2026-07-01"]  # the same moment, in UTC


@pytest.mark.parametrize(("text", "code"), [
    ("SELECT Id FROM Opportunity WHERE Amount > TODAY", "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Opportunity WHERE Name = THIS_YEAR", "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_WEEKS:2", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = NEXT_YEAR_PLEASE", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE CloseDate IN (TODAY, TOMORROW)", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS", "MALFORMED_QUERY"),
])
def test_misused_literals_are_rejected(text: str, code: str) -> None:
    with pytest.raises(soql.SoqlError) as caught:
        soql.compile_soql(text, SCHEMAS, now=datetime(2026, 11, 15, tzinfo=UTC))
    assert caught.value.code == code
