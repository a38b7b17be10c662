"""HubSpotSource.write_key_results against the sandbox's okr_key_result custom object."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.hubspot import HubSpotSource, settings
from connectors.sandbox.server import SandboxServer

pytestmark = pytest.mark.integration


@pytest.fixture
def source(sandbox: SandboxServer) -> Iterator[HubSpotSource]:
    with HubSpotSource.from_env(sandbox.connection_env()) as hubspot_source:
        yield hubspot_source


def kr_rows(prefix: str, count: int, value: float = 120_000.0) -> list[dict[str, Any]]:
    return [{
        "key": f"{prefix}-{index}", "objective_id": "grow-revenue",
        "objective_title": "Increase quarterly revenue",
        "kr_id": "revenue", "title": f"Revenue {index}", "group": None if index % 2 else "EMEA",
        "metric": "closed_won_revenue", "period": "2026-Q4", "period_start": "2026-10-01",
        "period_end": "2026-12-31", "kr_type": "increase", "value": value, "baseline": 0.0,
        "target": 500_000.0,
        "progress": value / 500_000, "score": min(value / 500_000, 1.0), "expected_progress": 0.5,
        "status": "at_risk", "unit": "USD"} for index in range(count)]


def records(sandbox: SandboxServer, prefix: str) -> dict[str, dict[str, Any]]:
    return {row["unique_key"]: row for row in sandbox.state.custom_records("hubspot", "okr_key_result")
            if (row["unique_key"] or "").startswith(prefix)}


def test_writeback_creates_once_then_sends_nothing_then_updates_in_place(
        source: HubSpotSource, store: Engine, sandbox: SandboxServer) -> None:
    prefix = f"test-hs-wb-{uuid.uuid4().hex[:8]}"
    rows = kr_rows(prefix, 3)
    first = source.write_key_results(store, rows)
    # one call to find the custom object, one upsert
    assert (first.created, first.updated, first.failed, first.api_calls) == (3, 0, 0, 2)
    created = records(sandbox, prefix)
    fields = created[f"{prefix}-0"]["fields"]
    assert fields["name"] == "Revenue 0" and fields["objective"] == "Increase quarterly revenue"
    assert float(fields["current_value"]) == 120_000 and float(fields["progress"]) == 0.24
    assert fields["group"] == "EMEA" and created[f"{prefix}-1"]["fields"]["group"] == ""
    assert fields["last_synced"].endswith("Z")

    before = sandbox.calls("hubspot")
    rerun = source.write_key_results(store, rows)
    assert (rerun.unchanged, rerun.created, rerun.updated, rerun.api_calls) == (3, 0, 0, 0)
    assert sandbox.calls("hubspot") == before

    changed = kr_rows(prefix, 3)
    changed[1]["value"] = 200_000.0
    third = source.write_key_results(store, changed)
    assert (third.updated, third.created, third.unchanged, third.api_calls) == (1, 0, 2, 1)
    after = records(sandbox, prefix)
    assert len(after) == 3 and after[f"{prefix}-1"]["id"] == created[f"{prefix}-1"]["id"]
    assert float(after[f"{prefix}-1"]["fields"]["current_value"]) == 200_000


def test_writeback_batches_by_100(source: HubSpotSource, store: Engine, sandbox: SandboxServer) -> None:
    prefix = f"test-hs-wb-{uuid.uuid4().hex[:8]}"
    result = source.write_key_results(store, kr_rows(prefix, 250))
    assert (result.created, result.api_calls) == (250, 1 + 3)
    assert len(records(sandbox, prefix)) == 250


def test_rejected_rows_are_reported_by_key_and_retried_next_run(source: HubSpotSource, store: Engine,
                                                              sandbox: SandboxServer) -> None:
    prefix = f"test-hs-wb-{uuid.uuid4().hex[:8]}"
    rows = kr_rows(prefix, 3)
    rows[2]["target"] = "half a million"  # HubSpot rejects a non-number for a number property
    result = source.write_key_results(store, rows)
    assert (result.created, result.failed) == (2, 1)
    assert len(result.errors) == 1 and result.errors[0].startswith(f"{prefix}-2: ")
    assert "target" in result.errors[0]
    retry = source.write_key_results(store, rows)  # only the rejected row is pending again
    assert (retry.unchanged, retry.failed, retry.api_calls) == (2, 1, 1)
    rows[2]["target"] = 500_000.0
    fixed = source.write_key_results(store, rows)
    assert (fixed.created, fixed.failed) == (1, 0) and len(records(sandbox, prefix)) == 3


def test_check_writeback_target_finds_the_object_or_says_what_is_missing(
        source: HubSpotSource, monkeypatch: pytest.MonkeyPatch) -> None:
    source.check_writeback_target()
    monkeypatch.setattr(settings, "KEY_RESULT_OBJECT", "okr_objective_not_there")
    with pytest.raises(ConnectorError, match="no custom object 'okr_objective_not_there'.*/crm/v3/schemas"):
        source.check_writeback_target()
