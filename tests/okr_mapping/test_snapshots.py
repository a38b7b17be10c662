"""Snapshot metrics: `time: all` with period_start / period_end in date filters (open pipeline, churn)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from connectors.store import Account
from okr_mapping import ConfigError, compute_key_results, parse_config

from .conftest import Adder

AS_OF = date(2026, 11, 15)
CONFIG = """\
metrics:
  open_pipeline_at_start:   # deals open on the first day of the period
    entity: deal
    measure: sum(amount)
    time: all
    where:
      created_date: {lte: period_start}
      any: [{is_closed: false}, {close_date: {gte: period_start}}]
  open_pipeline_now:        # the same, on the last day measured (the run's day with to_date)
    entity: deal
    measure: sum(amount)
    time: all
    where:
      created_date: {lte: period_end}
      any: [{is_closed: false}, {close_date: {gt: period_end}}]
  won_revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
  coverage:                 # open pipeline / what is left to the $10,000 target
    derived: open_pipeline_now / (10000 - won_revenue)
  churn_rate:               # customers lost in the period / customers at its start
    ratio:
      numerator: {entity: deal, measure: count, where: {deal_type: Renewal, is_closed: true, is_won: false}}
      denominator:
        entity: account
        measure: count
        time: all
        where: {account_type: Customer, created_date: {lt: period_start}}
    time: close_date
    unit: "%"
objectives:
  - id: pipe
    title: Keep the pipeline full
    period: 2026-Q4
    key_results:
      - {id: at-start, metric: open_pipeline_at_start, target: 1000}
      - {id: now, metric: open_pipeline_now, window: to_date, target: 1000}
      - {id: coverage, metric: coverage, window: to_date, target: 3}
      - {id: churn, metric: churn_rate, type: decrease, baseline: 10, target: 5}
      - {id: start-growth, metric: open_pipeline_at_start, target: {change: "+10%"}}
"""


@pytest.fixture
def org(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=1.0, created_date=date(2026, 8, 1), close_date=date(2026, 9, 1))  # closed in Q3
    add_deal(amount=2.0, created_date=date(2026, 8, 1), close_date=date(2026, 10, 5))  # open at Q4's start
    add_deal(amount=4.0, created_date=date(2026, 9, 1), close_date=date(2026, 12, 20), is_won=False,
             is_closed=False, stage="Negotiation")  # open all along
    add_deal(amount=8.0, created_date=date(2026, 11, 1), close_date=date(2026, 12, 1), is_won=False,
             is_closed=False, stage="Proposal")  # opened in Q4
    add_deal(amount=16.0, created_date=date(2026, 6, 1), close_date=date(2026, 10, 20), is_won=False,
             is_closed=True, stage="Closed Lost", deal_type="Renewal")  # a lost renewal: churn
    add_deal(amount=32.0, created_date=date(2026, 5, 1), close_date=date(2026, 7, 20))  # Q3 won, before Q3 start
    with engine.begin() as conn:
        conn.execute(insert(Account.__table__), [
            {"source": "salesforce", "source_id": f"A{n}", "is_deleted": False, "custom": {},
             "account_type": kind, "created_date": created}
            for n, (kind, created) in enumerate([("Customer", date(2025, 1, 1)), ("Customer", date(2026, 3, 1)),
                                                 ("Customer", date(2026, 11, 1)), ("Prospect", date(2025, 5, 5))])])


def _results(engine: Engine) -> dict[str, object]:
    config = parse_config(CONFIG, "rules.yaml")
    return {r.kr_id: r for r in compute_key_results(engine, config, source="salesforce", as_of=AS_OF)}


def test_open_pipeline_at_the_start_and_on_the_run_day(engine: Engine, org: None) -> None:
    results = _results(engine)
    assert results["at-start"].value == 2 + 4 + 16  # open on Oct 1 (closed later, in Q4)
    assert results["now"].value == 4 + 8  # open on Nov 15
    won_so_far = 2.0  # won in Q4 up to Nov 15
    assert results["coverage"].value == pytest.approx((4 + 8) / (10000 - won_so_far), abs=1e-4)  # results round


def test_churn_rate_and_a_snapshot_change_target(engine: Engine, org: None) -> None:
    results = _results(engine)
    assert results["churn"].value == pytest.approx(100 * 1 / 2)  # one lost renewal over two customers on Oct 1
    growth = results["start-growth"]
    # a snapshot carries over: its baseline is the previous period's snapshot (open on Jul 1: 16 and 32)
    assert (growth.baseline, growth.target) == pytest.approx((16 + 32, 1.1 * (16 + 32)))


@pytest.mark.parametrize(("old", "new", "message"), [
    ("{lte: period_start}", "{lte: period_begin}", "period_start / period_end"),
    ("measure: sum(amount)\n    time: all", "measure: count_first(account_id)\n    time: all", "count_first needs"),
])
def test_snapshot_mistakes_are_named(old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace(old, new, 1), "rules.yaml")
    assert any(message in error.message for error in caught.value.errors), [e.message for e in caught.value.errors]
