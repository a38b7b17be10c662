"""An independent computation of the demo KRs, straight from the sandbox's own tables.

It shares no code with okr_mapping or the connectors: plain Python over the rows the
sandbox serves, so a bug in extraction, mapping or SQL compilation shows up as a mismatch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from statistics import mean
from typing import Any

from connectors.sandbox.state import SandboxState


def _org_day(state: SandboxState) -> Callable[[int | None], date | None]:
    """The calendar day of a ms timestamp in the org's time zone (the configs measure in the same)."""
    return lambda ms: None if ms is None else datetime.fromtimestamp(ms / 1000, state.zone).date()


def _quarter(day: date, offset: int = 0) -> tuple[date, date]:
    index = day.year * 4 + (day.month - 1) // 3 + offset
    year, quarter = divmod(index, 4)
    start = date(year, 3 * quarter + 1, 1)
    end_index = index + 1
    end_year, end_quarter = divmod(end_index, 4)
    end = date.fromordinal(date(end_year, 3 * end_quarter + 1, 1).toordinal() - 1)
    return start, end


Expected = dict[tuple[str, str | None], tuple[float, float, float | None]]


def demo_values(state: SandboxState, as_of: date) -> Expected:
    """(kr_id, group) -> (value, baseline, target or None where the config fixes it) for
    config/examples/demo.yaml, as of `as_of`."""
    _day = _org_day(state)  # the org's calendar day, as the configured time zone sees it
    owners = {row["id"]: dict(row) for row in state.query("SELECT * FROM owners")}
    deals = [dict(row) for row in state.query("SELECT * FROM deals WHERE deleted = 0")]
    calls = [dict(row) for row in state.query("SELECT * FROM calls WHERE deleted = 0")]
    meetings = [dict(row) for row in state.query("SELECT * FROM meetings WHERE deleted = 0")]
    cases = [dict(row) for row in state.query("SELECT * FROM cases WHERE deleted = 0 AND closed_ms IS NOT NULL")]

    def won_in(period: tuple[date, date]) -> list[dict[str, Any]]:
        return [d for d in deals if d["stage"] == "closed_won"
                and period[0] <= date.fromisoformat(d["close_date"]) <= period[1]]

    current, previous = _quarter(as_of), _quarter(as_of, -1)
    won, won_before = won_in(current), won_in(previous)
    closed = [d for d in deals if d["stage"] in ("closed_won", "closed_lost")
              and current[0] <= date.fromisoformat(d["close_date"]) <= current[1]]

    def grouped(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        for row in rows:
            sums[key(row)] += row["amount"]
        return sums

    def by_email(deal: dict[str, Any]) -> str:
        return owners[deal["owner_id"]]["email"]

    def by_team(deal: dict[str, Any]) -> str:
        return owners[deal["owner_id"]]["team"]

    size_before = mean(d["amount"] for d in won_before)
    values: Expected = {
        ("revenue", None): (sum(d["amount"] for d in won), 0.0, None),
        ("new-deals", None): (float(sum(d["deal_type"] == "New Business" for d in won)), 0.0, None),
        # An average carries over: it starts from last quarter's and aims 10% above it.
        ("deal-size", None): (mean(d["amount"] for d in won), size_before, 1.1 * size_before),
        ("win-rate", None): (100.0 * len(won) / len(closed), 45.0, None),
        ("calls", None): (float(sum(current[0] <= _day(c["ts_ms"]) <= current[1] for c in calls)), 0.0,
                          None),
        ("cycle", None): (mean((date.fromisoformat(d["close_date"]) - _day(d["created_ms"])).days
                               for d in won), 60.0, None),
    }
    closed_cases = [c for c in cases if current[0] <= _day(c["closed_ms"]) <= current[1]]
    fast = [c for c in closed_cases if c["closed_ms"] - c["created_ms"] <= 24 * 3600 * 1000]
    values[("meetings", None)] = (float(sum(current[0] <= _day(m["start_ms"]) <= current[1] for m in meetings)),
                                  0.0, None)
    values[("fast-support", None)] = (100.0 * len(fast) / len(closed_cases), 40.0, None)
    for email, amount in grouped(won, by_email).items():
        values[("rep-revenue", email)] = (amount, 0.0, None)
    # A sum restarts each quarter: it starts from 0 and aims 10% above the team's last quarter.
    before = grouped(won_before, by_team)
    for team, amount in grouped(won, by_team).items():
        values[("team-revenue", team)] = (amount, 0.0, 1.1 * before.get(team, 0.0))
    return values
