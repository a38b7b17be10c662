"""The weekly digest from the check-in history: moved, turned at risk, achieved, per team and per owner."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.engine import Engine

from okr_mapping import history, parse_config
from okr_mapping.digest import weekly_digest
from okr_mapping.history import HistoryChanges, KrSnapshot

from .conftest import Adder

CONFIG = parse_config("""\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}
objectives:
  - id: grow
    title: Grow
    period: current
    owner: lea@example.com
    key_results:
      - {id: revenue, title: Won revenue, metric: revenue, target: 1000, owner: ann@example.com}
      - {id: rep-revenue, metric: revenue, breakdown: owner, target: {each: 500}}
      - {id: calls, metric: revenue, target: 10}
      - {id: deals, metric: revenue, target: 10}
""")
DAY = date(2026, 11, 10)  # the week: 11-04 to 11-10


def _record(engine: Engine, *snapshots: KrSnapshot) -> None:
    history.ensure_tables(engine)
    history.record(engine, HistoryChanges(snapshots=list(snapshots)))


def _snap(kr_id: str, as_of: date, value: float, progress: float, status: str, group: str | None = None
          ) -> KrSnapshot:
    key = f"grow.{kr_id}.2026-Q4" + (f".{group}" if group else "")
    return KrSnapshot(source="salesforce", key=key, as_of=as_of, objective_id="grow", kr_id=kr_id, group=group,
                      period="2026-Q4", period_start=date(2026, 10, 1), period_end=date(2026, 12, 31), value=value,
                      baseline=0, target=1000, progress=progress, score=min(progress, 1), expected_progress=0.4,
                      status=status, recorded_at=datetime.now(UTC))


def test_the_week_per_team_and_owner(engine: Engine, add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    add_owner("u2", "bob@example.com", "West")
    _record(engine, *[
        _snap("revenue", date(2026, 11, 1), 100, 0.1, "on_track"),
        _snap("revenue", date(2026, 11, 8), 300, 0.3, "at_risk"),  # moved and turned at risk
        _snap("rep-revenue", date(2026, 10, 30), 400, 0.8, "on_track", "bob@example.com"),
        _snap("rep-revenue", date(2026, 11, 9), 500, 1.0, "achieved", "bob@example.com"),  # moved, achieved
        _snap("calls", date(2026, 11, 2), 5, 0.5, "on_track"),  # nothing this week
        _snap("deals", date(2026, 11, 3), 5, 0.5, "on_track"),
        _snap("deals", date(2026, 11, 10), 5, 0.5, "on_track"),  # a check-in, but nothing changed
        _snap("revenue", date(2026, 11, 11), 900, 0.9, "on_track"),  # after the day: not in this digest
    ])
    digest = weekly_digest(engine, CONFIG, "salesforce", DAY)
    assert (digest.start, digest.end) == (date(2026, 11, 4), DAY)
    teams = {section.name: section for section in digest.teams}
    assert sorted(teams) == ["East", "West"]
    assert [c.title for c in teams["East"].moved] == [c.title for c in teams["East"].at_risk] == ["Won revenue"]
    assert not teams["East"].achieved
    [moved] = teams["East"].moved
    assert (moved.before.value, moved.after.value) == (100, 300)
    assert [c.group for c in teams["West"].achieved] == [c.group for c in teams["West"].moved] == ["bob@example.com"]
    assert not teams["West"].at_risk
    assert [section.name for section in digest.owners] == ["ann@example.com", "bob@example.com"]


def test_a_kr_new_this_week_counts_as_achieved_and_teamless_owners_are_grouped(engine: Engine) -> None:
    _record(engine, *[
        _snap("calls", date(2026, 11, 6), 10, 1.0, "achieved"),  # first check-in, achieved already
        _snap("deals", date(2026, 11, 7), 2, 0.2, "off_track"),  # first check-in: did not "turn"
    ])
    digest = weekly_digest(engine, CONFIG, "salesforce", DAY)
    [team] = digest.teams
    assert team.name == "(no team)"
    assert [c.key for c in team.achieved] == ["grow.calls.2026-Q4"] and not team.moved and not team.at_risk
    assert [section.name for section in digest.owners] == ["lea@example.com"]  # the objective's owner


def test_an_empty_history_gives_an_empty_digest(engine: Engine) -> None:
    digest = weekly_digest(engine, CONFIG, "salesforce", DAY)
    assert digest.empty and digest.teams == [] and digest.owners == []
