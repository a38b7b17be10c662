"""Period close in the store: frozen results replace computed ones, bands per team, ambition flags."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from okr_mapping import compute_key_results, history, parse_config, period_close
from okr_mapping.errors import Issue
from okr_mapping.history import KrCorrection
from okr_mapping.owners import owner_teams

from .conftest import Adder

CONFIG = parse_config("""\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}
objectives:
  - id: grow
    title: Grow
    period: current
    key_results:
      - {id: revenue, metric: revenue, target: 1000, owner: ann@example.com}
      - {id: rep-revenue, metric: revenue, breakdown: owner, target: {each: 500}}
""")
Q3_END, Q4_DAY = date(2026, 9, 30), date(2026, 11, 10)


def _q3(engine: Engine, day: date = Q3_END) -> list:
    return [r for r in compute_key_results(engine, CONFIG, as_of=day) if r.period == "2026-Q3"]


def test_a_closed_period_keeps_its_final_values_whatever_arrives_later(engine: Engine, add_deal: Adder,
                                                                       add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    add_deal(amount=600, close_date=date(2026, 9, 10))
    before = _q3(engine)
    assert {r.kr_id: r.value for r in before} == {"revenue": 600.0, "rep-revenue": 600.0}
    assert not any(r.final for r in before)
    history.record(engine, history.compare(engine, "salesforce", before, Q3_END, "r1"))
    period_close.freeze(engine, "salesforce", before, "r1")
    add_deal(amount=900, close_date=date(2026, 9, 20))  # late data, dated inside the closed quarter
    add_deal(amount=900, close_date=date(2026, 9, 21), owner_id="u2")  # and a rep who was not there
    after = _q3(engine)
    assert [(r.key, r.value, r.score, r.final) for r in after] == [(r.key, r.value, r.score, True) for r in before]
    assert all(r.forecast_method == "final" and r.expected_progress == 1.0 for r in after)
    changes = history.compare(engine, "salesforce", after, date(2026, 10, 2), "r1")
    history.record(engine, changes)
    assert not changes.corrections
    with Session(engine) as session:
        assert not list(session.exec(select(KrCorrection)))
    q4 = [r for r in compute_key_results(engine, CONFIG, as_of=Q4_DAY) if r.period == "2026-Q4"]
    assert q4 and not any(r.final for r in q4)  # the next period is open


def test_reopen_forgets_the_frozen_values(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=600, close_date=date(2026, 9, 10))
    period_close.freeze(engine, "salesforce", _q3(engine), None)
    add_deal(amount=400, close_date=date(2026, 9, 11))
    assert {r.value for r in _q3(engine) if r.group is None} == {600.0}
    assert period_close.reopen(engine, "salesforce", "2026-Q3") == 2
    assert {r.value for r in _q3(engine) if r.group is None} == {1000.0}
    assert not period_close.closed(engine, "salesforce")


def test_distribution_per_team_in_the_google_bands(engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    add_owner("u2", "bob@example.com", "West")
    add_deal(amount=550, close_date=date(2026, 9, 10))  # ann: 550 of 500 (1.0); with bob 650 of 1000 (0.65)
    add_deal(amount=100, close_date=date(2026, 9, 10), owner_id="u2")  # bob: 100 of 500 (0.2)
    finals = period_close.freeze(engine, "salesforce", _q3(engine), None)
    with engine.connect() as conn:
        teams = owner_teams(conn, "salesforce")
    scores = {team.team: team for team in period_close.distribution(finals, teams)}
    assert scores["East"].bands == {"red": 0, "yellow": 0, "sweet spot": 1, "green": 1}
    assert scores["West"].bands == {"red": 1, "yellow": 0, "sweet spot": 0, "green": 0}
    assert scores["West"].mean == 0.2
    assert [period_close.band(s) for s in (0.0, 0.3, 0.4, 0.59, 0.6, 0.69, 0.7, 1.0)] == [
        "red", "red", "yellow", "yellow", "sweet spot", "sweet spot", "green", "green"]


def test_a_kr_at_one_in_two_closed_periods_in_a_row_is_not_ambitious(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=1200, close_date=date(2026, 6, 10))  # Q2: revenue 1.0, rep 1.0
    add_deal(amount=1000, close_date=date(2026, 9, 10))  # Q3: revenue 1.0, rep 1.0
    q2 = [r for r in compute_key_results(engine, CONFIG, as_of=date(2026, 6, 30)) if r.period == "2026-Q2"]
    assert period_close.not_ambitious(engine, "salesforce", period_close.freeze(engine, "salesforce", q2, None)) == []
    finals = period_close.freeze(engine, "salesforce", _q3(engine), None)
    flagged = period_close.not_ambitious(engine, "salesforce", finals)
    assert sorted(row.kr_id for row in flagged) == ["rep-revenue", "revenue"]
    assert all(row.period == "2026-Q3" for row in flagged)


BASELINE = """\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}
objectives:
  - id: grow
    title: Grow
    period: current
    key_results:
      - id: revenue
        metric: revenue
        target: {change: "+10%", vs: closed}
"""


def test_a_change_vs_closed_grows_from_the_value_the_previous_period_closed_with(engine: Engine,
                                                                                add_deal: Adder) -> None:
    config = parse_config(BASELINE, "okrs.yaml")
    add_deal(amount=1000, close_date=date(2026, 9, 10))
    warnings: list[Issue] = []
    [open_q4] = compute_key_results(engine, config, as_of=Q4_DAY, warnings=warnings)
    assert open_q4.target == 1100.0  # Q3 not closed: its live value, and a warning at the line of `vs`
    [warning] = [issue for issue in warnings if "not closed" in issue.message]
    assert warning.level == "warning" and "2026-Q3 is not closed for salesforce" in warning.render()
    assert warning.render().startswith("okrs.yaml:10:")  # the line of `target: {change: ..., vs: closed}`
    [q3] = compute_key_results(engine, config, as_of=Q3_END)
    period_close.freeze(engine, "salesforce", [q3], None)
    add_deal(amount=500, close_date=date(2026, 9, 12))  # late data: the live Q3 reads 1500, the closed one 1000
    warnings.clear()
    [q4] = compute_key_results(engine, config, as_of=Q4_DAY, warnings=warnings)
    assert q4.target == 1100.0 and not any("not closed" in issue.message for issue in warnings)
