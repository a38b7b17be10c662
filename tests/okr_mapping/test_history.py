"""Check-in history: snapshots per day, corrections of reported values, audited target changes."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from okr_mapping import compute_key_results, history, parse_config
from okr_mapping.history import KrCorrection, KrTargetChange

from .conftest import Adder

CONFIG = """\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}
objectives:
  - id: grow
    title: Grow
    period: 2026-Q4
    key_results:
      - {id: revenue, metric: revenue, target: TARGET}
"""


def _run(engine: Engine, day: date, target: int = 1000, revision: str = "r1") -> history.HistoryChanges:
    results = compute_key_results(engine, parse_config(CONFIG.replace("TARGET", str(target))), as_of=day)
    changes = history.compare(engine, "salesforce", results, day, revision)
    history.record(engine, changes)
    return changes


def _rows(engine: Engine, model: type) -> list:
    with Session(engine) as session:
        return list(session.exec(select(model)))


def test_each_run_day_keeps_one_snapshot_and_the_trend_reads_them(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=100, close_date=date(2026, 10, 5))
    _run(engine, date(2026, 10, 10))
    add_deal(amount=200, close_date=date(2026, 10, 15))
    _run(engine, date(2026, 10, 20))
    _run(engine, date(2026, 10, 20))  # a rerun the same day: still one snapshot, no correction
    stored = history.snapshots(engine, "salesforce")
    assert [(s.as_of, s.value) for s in stored] == [(date(2026, 10, 10), 100.0), (date(2026, 10, 20), 300.0)]
    assert not _rows(engine, KrCorrection) and not _rows(engine, KrTargetChange)
    [result] = compute_key_results(engine, parse_config(CONFIG.replace("TARGET", "1000")), as_of=date(2026, 10, 30))
    assert history.trend_points(engine, "salesforce", [result], date(2026, 10, 30)) == {
        result.key: [(date(2026, 10, 10), 100.0), (date(2026, 10, 20), 300.0)]}
    assert result.forecast_method == "pipeline" and result.forecast == 300.0  # no open deals
    assert {key: s.value for key, s in history.previous_snapshots(engine, "salesforce", date(2026, 10, 30)).items()} \
        == {result.key: 300.0}


def test_recomputing_a_past_day_records_a_correction(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=100, close_date=date(2026, 10, 5))
    _run(engine, date(2026, 10, 10))
    add_deal(amount=50, close_date=date(2026, 10, 8))  # entered late, dated before that day
    _run(engine, date(2026, 10, 10))  # the same day it was recorded: the day is not over, no correction
    assert not _rows(engine, KrCorrection)
    with engine.begin() as conn:  # as if that snapshot had been recorded yesterday
        conn.exec_driver_sql("UPDATE kr_snapshot SET recorded_at = '2020-01-01 00:00:00'")
    add_deal(amount=50, close_date=date(2026, 10, 9))
    changes = _run(engine, date(2026, 10, 10))  # recomputed on a later date
    [correction] = _rows(engine, KrCorrection)
    assert (correction.as_of, correction.old_value, correction.new_value) == (date(2026, 10, 10), 150.0, 200.0)
    assert changes.note(correction.key) == "corrects 2026-10-10: 150 -> 200 (recomputed later)"
    note = changes.note(correction.key)
    assert [(s.value, s.note) for s in history.snapshots(engine, "salesforce")] == [(200.0, note)]


def test_late_data_after_a_period_ended_is_a_correction_once(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=100, close_date=date(2026, 12, 20))
    _run(engine, date(2026, 12, 31))  # its last day: the day is not over yet
    add_deal(amount=10, close_date=date(2026, 12, 31))  # closed that evening: no correction
    _run(engine, date(2027, 1, 2))  # the quarter is over: 110 is its final value
    add_deal(amount=40, close_date=date(2026, 12, 30))  # a deal booked late into the old quarter
    _run(engine, date(2027, 1, 9))
    _run(engine, date(2027, 1, 16))  # nothing new: no second correction
    [correction] = _rows(engine, KrCorrection)
    assert (correction.as_of, correction.old_value, correction.new_value, correction.reason) == (
        date(2027, 1, 2), 110.0, 150.0, "late data after the period ended")


def test_a_target_changed_mid_cycle_is_audited_with_both_revisions(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=100, close_date=date(2026, 10, 5))
    _run(engine, date(2026, 10, 10), target=1000, revision="abc123")
    _run(engine, date(2026, 10, 17), target=1200, revision="def456")
    _run(engine, date(2026, 10, 24), target=1200, revision="def456")
    _run(engine, date(2026, 10, 25), target=1300, revision="def456")  # a baseline that moved: not an edit
    [change] = _rows(engine, KrTargetChange)
    assert (change.as_of, change.old_target, change.new_target, change.old_revision, change.new_revision) == (
        date(2026, 10, 17), 1000.0, 1200.0, "abc123", "def456")


def test_a_group_whose_records_are_gone_reads_empty_instead_of_staying_stale(engine: Engine, add_deal: Adder,
                                                                              add_owner: Adder) -> None:
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u2", "bob@acme.test", "West")
    add_deal(owner_id="u1", amount=300, close_date=date(2026, 10, 5))
    add_deal(owner_id="u2", amount=200, close_date=date(2026, 10, 6), source_id="BOB-1")
    text = CONFIG.replace("{id: revenue, metric: revenue, target: TARGET}",
                          "{id: rep, metric: revenue, breakdown: owner, target: {each: 500}}")
    first = compute_key_results(engine, parse_config(text), as_of=date(2026, 10, 10))
    history.record(engine, history.compare(engine, "salesforce", first, date(2026, 10, 10), None))
    with engine.begin() as conn:  # Bob's only deal is deleted in the CRM
        conn.exec_driver_sql("UPDATE deal SET is_deleted = true WHERE source_id = 'BOB-1'")
    later = {r.group: r.value for r in compute_key_results(engine, parse_config(text), as_of=date(2026, 10, 11))}
    assert later == {"ann@acme.test": 300.0, "bob@acme.test": 0.0}
    next_quarter = compute_key_results(engine, parse_config(text.replace("2026-Q4", "2027-Q1")),
                                       as_of=date(2027, 1, 11))
    assert next_quarter == []  # groups carry over within their period only
