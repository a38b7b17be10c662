"""The generator is deterministic, streams, and produces a plausible org around its anchor."""

from __future__ import annotations

import itertools
import tracemalloc
from collections import Counter
from datetime import UTC, date, datetime

from connectors.sandbox.generator import OrgSpec, add_quarters, generate_org, quarter_start

ANCHOR = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SMALL = OrgSpec(seed=3, deals=400, owners=10, accounts=80, anchor=ANCHOR)


def test_same_seed_same_records_other_seed_other_records() -> None:
    first = list(generate_org(SMALL))
    assert first == list(generate_org(SMALL))
    other = list(generate_org(OrgSpec(seed=4, deals=400, owners=10, accounts=80, anchor=ANCHOR)))
    assert first != other


def test_counts_and_ids() -> None:
    kinds = Counter(kind for kind, _ in generate_org(SMALL))
    assert kinds["owner"] == 10 and kinds["account"] == 80 and kinds["deal"] == 400
    assert 800 < kinds["call"] < 1600  # ~3 calls per deal


def test_deals_span_previous_current_and_next_quarter() -> None:
    deals = [row for kind, row in generate_org(SMALL) if kind == "deal"]
    first_day, end = add_quarters(quarter_start(ANCHOR.date()), -1), add_quarters(quarter_start(ANCHOR.date()), 2)
    closes = [date.fromisoformat(deal["close_date"]) for deal in deals]
    assert min(closes) >= first_day and max(closes) < end
    quarters = Counter(quarter_start(day) for day in closes)
    assert len(quarters) == 3
    assert {deal["deal_type"] for deal in deals} == {"New Business", "Renewal", "Upsell"}
    for deal in deals:
        closed = deal["stage"] in ("closed_won", "closed_lost")
        assert closed == (date.fromisoformat(deal["close_date"]) < ANCHOR.date())
        assert deal["created_date"] <= deal["close_date"] or not closed


def test_nothing_is_modified_after_the_anchor() -> None:
    limit = int(ANCHOR.timestamp() * 1000)
    for kind, row in generate_org(SMALL):
        assert row["modified_ms"] <= limit + 1000, (kind, row["id"])
        assert row["created_ms"] <= row["modified_ms"] + 1000


def test_generation_streams_in_flat_memory() -> None:
    """Pulling thousands more records after warm-up keeps only a small working set alive."""
    big = OrgSpec(seed=1, deals=1_000_000, owners=200, accounts=2_000, anchor=ANCHOR)
    records = generate_org(big)
    tracemalloc.start()
    for _ in itertools.islice(records, 3_000):
        pass
    baseline, _ = tracemalloc.get_traced_memory()
    for _ in itertools.islice(records, 12_000):
        pass
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current - baseline < 200_000
