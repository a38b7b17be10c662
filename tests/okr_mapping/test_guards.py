"""Safety gates: jumps and falls to zero since the last check-in, judged along the pace."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from okr_mapping import parse_config
from okr_mapping.compute import KrResult
from okr_mapping.guards import growing_keys, tripped
from okr_mapping.history import KrSnapshot

START, END = date(2026, 10, 1), date(2026, 12, 31)


def _result(key: str, value: float, expected: float = 0.5, metric: str = "revenue") -> KrResult:
    return KrResult(key=key, objective_id="o", objective_title="O", kr_id=key, title=key, group=None, metric=metric,
                    period="2026-Q4", period_start=START, period_end=END, kr_type="increase", value=value,
                    baseline=0.0, target=100.0, progress=0.0, score=0.0, expected_progress=expected,
                    status="on_track", sample_size=50)


def _before(key: str, value: float, expected: float = 0.5, sample: int = 50) -> KrSnapshot:
    return KrSnapshot(source="salesforce", key=key, as_of=date(2026, 11, 1), objective_id="o", kr_id=key,
                      period="2026-Q4", period_start=START, period_end=END, value=value, baseline=0.0,
                      target=100.0, progress=0.0, score=0.0, expected_progress=expected, status="on_track",
                      sample_size=sample, recorded_at=datetime(2026, 11, 1))


def test_a_sum_that_doubles_early_in_the_quarter_is_on_pace_not_a_jump() -> None:
    previous = {k: _before(k, 100.0, expected=0.02) for k in "abc"}
    results = [_result(k, 210.0, expected=0.04) for k in "abc"]
    assert tripped(previous, results, growing={"a", "b", "c"}) == []
    [jump] = tripped(previous, results, growing=set())  # as a level (an average), it is a jump
    assert jump.startswith("3 of 3 key results would move by more than 50%")


def test_a_few_jumps_pass_but_many_stop_the_writeback() -> None:
    previous = {k: _before(k, 100.0) for k in "abcdefghij"}
    few = [_result(k, 300.0 if k in "ab" else 101.0) for k in "abcdefghij"]
    assert tripped(previous, few, set()) == []
    many = [_result(k, 300.0 if k in "abcd" else 101.0) for k in "abcdefghij"]
    [problem] = tripped(previous, many, set())
    assert "4 of 10" in problem and "a 100 -> 300" in problem


def test_a_value_falling_to_zero_stops_it_unless_too_few_records_measured_it() -> None:
    problems = tripped({"rev": _before("rev", 1_250_000.0)}, [_result("rev", 0.0)], {"rev"})
    assert problems[-1] == "1 key result(s) would fall to zero: rev 1,250,000 -> 0"
    assert tripped({"rep": _before("rep", 4_000.0, sample=2)}, [_result("rep", 0.0)], {"rep"}) == []
    assert tripped({}, [_result("new", 0.0)], set()) == []  # nothing to compare with


def test_only_counts_and_sums_over_the_whole_period_grow() -> None:
    config = parse_config("""\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}
  size: {entity: deal, measure: avg(amount)}
objectives:
  - id: o
    title: O
    key_results:
      - {id: a, metric: revenue, target: 10}
      - {id: b, metric: size, target: 10}
      - {id: c, metric: revenue, target: 10, window: {trailing_days: 30}}
""")
    results = [replace(_result(kr, 1.0, metric=metric), kr_id=kr)
               for kr, metric in (("a", "revenue"), ("b", "size"), ("c", "revenue"))]
    assert growing_keys(config, results) == {"a"}
