"""`tick` simulates days of sales activity: deterministic, inside its window, with one tied burst."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.sandbox.generator import OPEN_STAGES, STAGES, OrgSpec, add_quarters, quarter_start, to_ms
from connectors.sandbox.state import ENTITY_TABLES, SandboxState, open_sandbox
from connectors.sandbox.tick import BURST_MIN, TickSummary, tick

ANCHOR = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SPEC = OrgSpec(seed=5, deals=2000, owners=12, accounts=200, anchor=ANCHOR)
Snapshot = dict[str, dict[int, tuple]]
NEW_TABLES = ("products", "line_items", "emails", "meetings", "leads", "cases", "campaigns")


@pytest.fixture
def org(tmp_path: Path) -> Iterator[SandboxState]:
    state = open_sandbox(tmp_path / "org", SPEC)
    yield state
    state.close()


def snapshot(state: SandboxState) -> Snapshot:
    return {table: {row["id"]: tuple(row) for row in state.query(f"SELECT * FROM {table} ORDER BY id")}
            for table in ENTITY_TABLES.values()}


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
    for table in ("deals", "calls", *NEW_TABLES):
        names = org.query(f"SELECT * FROM {table} LIMIT 1")[0].keys()
        for row_id, row in after[table].items():
            if before[table].get(row_id) == row:
                continue
            record = dict(zip(names, row, strict=True))
            assert low < record["modified_ms"] <= high, (table, record)
            if row_id not in before[table]:
                assert low < record["created_ms"] <= record["modified_ms"]
            if table in ("calls", "emails") and row_id not in before[table]:
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


def assert_line_items_sum_to_amounts(state: SandboxState) -> None:
    rows = state.query("SELECT d.id, d.amount, SUM(l.quantity * l.unit_price) AS total, COUNT(l.id) AS lines"
                       " FROM deals d LEFT JOIN line_items l ON l.deal_id = d.id AND l.deleted = 0"
                       " WHERE d.deleted = 0 GROUP BY d.id")
    for row in rows:
        assert row["lines"] >= 1 and row["total"] == row["amount"], dict(row)
    orphans = state.query("SELECT COUNT(*) FROM line_items l JOIN deals d ON d.id = l.deal_id"
                          " WHERE l.deleted = 0 AND d.deleted = 1")[0][0]
    assert orphans == 0


def test_a_month_touches_every_table_and_deletes_in_several(org: SandboxState) -> None:
    before, after, summary = ticked(org, 30, seed=4)
    for table in ("deals", "calls", *NEW_TABLES):
        changed = sum(1 for row_id, row in after[table].items() if before[table].get(row_id) != row)
        assert changed >= summary.changes[table] > 0, table  # the burst may touch deals and calls too
        flagged = org.query(f"SELECT COUNT(*) FROM {table} WHERE deleted = 1")[0][0]
        assert flagged == summary.deletions.get(table, 0), table
    assert all(summary.deletions[table] > 0 for table in ("deals", "line_items", "emails", "meetings", "leads",
                                                         "cases"))
    text = summary.describe()
    assert text.startswith(f"Simulated 30 day(s): {summary.created} deal(s) created")
    assert f"leads {summary.changes['leads']}" in text and "Org clock is now" in text


def test_line_items_keep_summing_to_deal_amounts(org: SandboxState) -> None:
    assert_line_items_sum_to_amounts(org)
    first_new = org.query("SELECT MAX(id) FROM deals")[0][0] + 1
    summary = tick(org, 20, seed=7)
    assert summary.changed > 0 and summary.deleted > 0
    assert_line_items_sum_to_amounts(org)
    new_lines = org.query("SELECT COUNT(*) FROM line_items WHERE deal_id >= ?", (first_new,))[0][0]
    assert new_lines >= summary.created > 0
    adjusted = org.query("SELECT COUNT(*) FROM line_items WHERE deal_id < ? AND deleted = 0 AND modified_ms > ?",
                         (first_new, to_ms(ANCHOR)))[0][0]
    assert adjusted > 0  # amount changes moved one line of the deal
    tick(org, 5)
    assert_line_items_sum_to_amounts(org)


def test_leads_cases_meetings_and_campaigns_move_consistently(org: SandboxState) -> None:
    anchor_ms = to_ms(ANCHOR)
    summary = tick(org, 30, seed=2)
    high = to_ms(summary.clock)
    converted = org.query("SELECT * FROM leads WHERE converted_ms > ?", (anchor_ms,))
    assert converted
    for lead in converted:
        assert lead["status"] == "Closed - Converted" and lead["lifecycle"] in ("opportunity", "customer")
        assert lead["created_ms"] < lead["converted_ms"] <= lead["modified_ms"] <= high
        assert org.query("SELECT COUNT(*) FROM accounts WHERE id = ?", (lead["account_id"],))[0][0] == 1
    unconverted = org.query("SELECT * FROM leads WHERE converted_ms IS NULL")
    assert all(lead["account_id"] is None and lead["status"] != "Closed - Converted" for lead in unconverted)
    assert org.query("SELECT COUNT(*) FROM leads WHERE created_ms > ? AND converted_ms IS NULL", (anchor_ms,))[0][0]
    assert org.query("SELECT COUNT(*) FROM leads WHERE converted_ms IS NULL AND created_ms < ? AND modified_ms > ?",
                     (anchor_ms, anchor_ms))[0][0]  # lifecycle or status moves of open leads
    for case in org.query("SELECT * FROM cases"):
        assert (case["closed_ms"] is not None) == (case["status"] == "Closed"), dict(case)
        if case["closed_ms"] is not None:
            assert case["created_ms"] < case["closed_ms"] <= case["modified_ms"] <= high
    new_cases = org.query("SELECT status, created_ms, closed_ms FROM cases WHERE created_ms > ?", (anchor_ms,))
    assert any(case["status"] == "Closed" for case in new_cases) and any(case["status"] != "Closed"
                                                                       for case in new_cases)
    settled = org.query("SELECT COUNT(*) FROM meetings WHERE created_ms <= ? AND modified_ms > ? AND outcome != "
                        "'Scheduled' AND deleted = 0", (anchor_ms, anchor_ms))[0][0]
    assert settled > 0
    assert org.query("SELECT COUNT(*) FROM meetings WHERE outcome = 'Scheduled' AND end_ms < ? AND deleted = 0",
                     (high - 86_400_000,))[0][0] == 0
    moved = org.query("SELECT COUNT(*) FROM campaigns WHERE modified_ms > ?", (anchor_ms,))[0][0]
    assert moved > 0


def test_an_org_from_an_older_generator_is_regenerated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    small = OrgSpec(seed=2, deals=150, owners=5, accounts=30, anchor=ANCHOR)
    state = open_sandbox(tmp_path / "old", small)
    token, fresh = state.token, snapshot(state)
    tick(state, 3)
    state.upsert_custom("salesforce", "OKR_Key_Result__c", "kr-1", {"Name": "x"})
    with state.transaction() as conn:  # what generator version 1 left: no version, empty new tables
        conn.execute("DELETE FROM meta WHERE key = 'generator_version'")
        for table in NEW_TABLES:
            conn.execute(f"DELETE FROM {table}")
    state.close()
    with caplog.at_level("WARNING", logger="connectors.sandbox.state"):
        state = open_sandbox(tmp_path / "old", OrgSpec(seed=9, deals=10, owners=2, accounts=3, anchor=ANCHOR))
    try:
        assert len([record for record in caplog.records if "regenerating" in record.getMessage()]) == 1
        assert snapshot(state) == fresh and state.token == token and state.spec == small
        assert state.clock == ANCHOR and state.get_meta("ticks") is None
        assert state.custom_records("salesforce", "OKR_Key_Result__c") == []
    finally:
        state.close()
    caplog.clear()
    open_sandbox(tmp_path / "old").close()  # now current: opened as it is
    assert not caplog.records
