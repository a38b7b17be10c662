"""`tick` simulates days of sales activity: deterministic, inside its window, with one tied burst."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.sandbox.generator import OPEN_STAGES, STAGES, OrgSpec, add_quarters, quarter_start, to_ms
from connectors.sandbox.state import SandboxState, open_sandbox
from connectors.sandbox.tick import BURST_MIN, TickSummary, tick

ANCHOR = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SPEC = OrgSpec(seed=5, deals=2000, owners=12, accounts=200, anchor=ANCHOR)
Snapshot = dict[str, dict[int, tuple]]


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxState]:
    state = open_sandbox(tmp_path / "org", SPEC)
    yield state
    state.close()


def snapshot(state: SandboxState) -> Snapshot:
    return {table: {row["id"]: tuple(row) for row in state.query(f"SELECT * FROM {table} ORDER BY id")}
            for table in ("owners", "accounts", "deals", "calls")}


def ticked(state: SandboxState, days: int, seed: int | None = None) -> tuple[Snapshot, Snapshot, TickSummary]:
    before = snapshot(state)
    summary = tick(state, days, seed)
    return before, snapshot(state), summary


def test_same_org_and_seed_same_changes_other_seed_other_changes(org: SandboxState, tmp_path: Path) -> None:
    twin, other = open_sandbox(tmp_path / "twin", SPEC), open_sandbox(tmp_path / "other", SPEC)
    try:
        assert snapshot(twin) == snapshot(org)
        for state in (org, twin):
            tick(state, 5, seed=3)
            tick(state, 2, seed=3)
        tick(other, 5, seed=4)
        tick(other, 2, seed=4)
        assert snapshot(twin) == snapshot(org)
        assert snapshot(other) != snapshot(org)
    finally:
        twin.close()
        other.close()


def test_every_change_lies_in_the_ticked_window(org: SandboxState) -> None:
    tick(org, 3)  # a second tick starts where the first one ended
    start = org.clock
    before, after, summary = ticked(org, 10, seed=1)
    assert summary.clock == org.clock == start + timedelta(days=10)
    low, high = to_ms(start), to_ms(summary.clock)
    changes = 0
    for table in ("deals", "calls"):
        names = org.query(f"SELECT * FROM {table} LIMIT 1")[0].keys()
        for row_id, row in after[table].items():
            if before[table].get(row_id) == row:
                continue
            record = dict(zip(names, row, strict=True))
            assert low < record["modified_ms"] <= high, (table, record)
            if row_id not in before[table]:
                assert low < record["created_ms"] <= record["modified_ms"]
            if table == "calls" and row_id not in before["calls"]:
                assert low < record["ts_ms"] < high
            changes += 1
    assert before["owners"] == after["owners"] and before["accounts"] == after["accounts"]
    assert changes >= summary.created + summary.calls_added + summary.closed
    assert org.next_modstamp_ms() > high


def test_counts_are_proportional_to_the_org(org: SandboxState) -> None:
    before, after, summary = ticked(org, 14, seed=2)
    assert summary.created > 0 and summary.changed > 0 and summary.closed > 0 and summary.calls_added > 0
    assert len(after["deals"]) - len(before["deals"]) == summary.created
    assert len(after["calls"]) - len(before["calls"]) == summary.calls_added
    assert summary.created < SPEC.deals * 14 / 270 * 1.5  # ~ deals per day of close dates


def test_burst_shares_one_modified_time(org: SandboxState) -> None:
    summary = tick(org, 1, seed=9)
    ties = sum(org.query(f"SELECT COUNT(*) FROM {table} WHERE modified_ms = ?",
                         (summary.burst_modified_ms,))[0][0] for table in ("deals", "calls"))
    assert ties == summary.burst >= BURST_MIN
    assert summary.burst_modified_ms == to_ms(summary.clock)


def test_burst_spills_into_calls_in_a_small_org(tmp_path: Path) -> None:
    state = open_sandbox(tmp_path / "small", OrgSpec(seed=1, deals=120, owners=5, accounts=30, anchor=ANCHOR))
    try:
        summary = tick(state, 1)
        stamp = (summary.burst_modified_ms,)
        deals = state.query("SELECT COUNT(*) FROM deals WHERE modified_ms = ?", stamp)[0][0]
        calls = state.query("SELECT COUNT(*) FROM calls WHERE modified_ms = ?", stamp)[0][0]
        assert deals > 0 and calls > 0 and deals + calls == summary.burst >= BURST_MIN
    finally:
        state.close()


def test_deleted_rows_are_flagged_not_removed(org: SandboxState) -> None:
    before, after, summary = ticked(org, 30, seed=4)
    assert summary.deleted > 0
    assert set(before["deals"]) <= set(after["deals"]) and set(before["calls"]) <= set(after["calls"])
    flagged = org.query("SELECT COUNT(*) FROM deals WHERE deleted = 1 AND modified_ms > ?",
                        (to_ms(ANCHOR),))[0][0]
    assert flagged == summary.deleted


def test_closed_deals_are_exactly_those_whose_close_date_passed(org: SandboxState) -> None:
    summary = tick(org, 20, seed=6)
    today = summary.clock.date()
    rows = org.query("SELECT stage, probability, close_date FROM deals WHERE deleted = 0")
    for row in rows:
        closed = STAGES[row["stage"]][2]
        assert closed == (row["close_date"] < today.isoformat()), dict(row)
        assert row["probability"] == STAGES[row["stage"]][1]


def test_new_deals_are_open_and_close_this_quarter_or_next(org: SandboxState) -> None:
    first_new = org.query("SELECT MAX(id) FROM deals")[0][0] + 1
    summary = tick(org, 10, seed=8)
    today = summary.clock.date()
    last = add_quarters(quarter_start(today), 2)
    new = org.query("SELECT stage, close_date, created_date FROM deals WHERE id >= ?", (first_new,))
    assert len(new) == summary.created > 0
    for row in new:
        assert row["stage"] in OPEN_STAGES
        assert today.isoformat() <= row["close_date"] < last.isoformat()
        assert ANCHOR.date().isoformat() <= row["created_date"] <= today.isoformat()


def test_a_tick_needs_at_least_one_day(org: SandboxState) -> None:
    with pytest.raises(ValueError):
        tick(org, 0)
    assert org.clock == ANCHOR
