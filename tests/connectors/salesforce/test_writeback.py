"""Writing KR rows into OKR_Key_Result__c in the shared sandbox (keys unique to each test)."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from connectors.salesforce import SalesforceSource
from connectors.salesforce.settings import KR_TEXT_FIELDS
from connectors.sandbox.ids import sf_id
from connectors.sandbox.server import SandboxServer

KR = "OKR_Key_Result__c"


@pytest.fixture
def source(sandbox: SandboxServer) -> Iterator[SalesforceSource]:
    with SalesforceSource.from_env(sandbox.connection_env()) as connected:
        yield connected
    gc.collect()


@pytest.fixture
def prefix() -> str:
    return f"test-sf-wb-{uuid.uuid4().hex[:10]}"


def kr_rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{
        "key": f"{prefix}-{index}", "objective_id": "grow", "objective_title": "Grow revenue",
        "kr_id": "revenue",
        "title": f"Closed-won revenue #{index}", "group": None if index % 2 else f"owner-{index}",
        "metric": "closed_won_revenue", "period": "2026-Q4", "period_start": "2026-10-01",
        "period_end": "2026-12-31", "kr_type": "increase", "value": 1000.0 * index, "baseline": 0.0,
        "target": 5000.0, "progress": 0.2 * index, "score": min(0.2 * index, 1.0), "expected_progress": 0.5,
        "status": "on_track", "unit": "USD",
    } for index in range(count)]


def records(sandbox: SandboxServer, prefix: str) -> dict[str, dict[str, Any]]:
    return {row["unique_key"]: row for row in sandbox.state.custom_records("salesforce", KR)
            if (row["unique_key"] or "").startswith(prefix)}


def test_the_sandbox_org_is_ready_for_writeback(source: SalesforceSource) -> None:
    source.check_writeback_target()


def test_create_once_then_nothing_then_update_in_place(sandbox: SandboxServer, store: Engine,
                                                       source: SalesforceSource, prefix: str) -> None:
    rows = kr_rows(prefix, 3)
    first = source.write_key_results(store, rows)
    # the target object is described once, before the first row is sent; then one upsert
    assert (first.created, first.updated, first.unchanged, first.failed, first.api_calls) == (3, 0, 0, 0, 2)
    written = records(sandbox, prefix)
    fields = written[f"{prefix}-2"]["fields"]
    assert fields["Name"] == "Closed-won revenue #2" and fields["Objective__c"] == "Grow revenue"
    assert fields["Current_Value__c"] == 2000.0 and fields["Progress__c"] == 0.4
    assert fields["Unit__c"] == "USD"
    assert fields["Group__c"] == "owner-2" and written[f"{prefix}-1"]["fields"]["Group__c"] is None
    assert isinstance(fields["Last_Synced__c"], int)  # the sandbox stores datetimes as ms

    calls_before = sandbox.calls("salesforce")
    again = source.write_key_results(store, rows)
    assert (again.unchanged, again.api_calls, sandbox.calls("salesforce") - calls_before) == (3, 0, 0)

    rows[1]["value"] = 1234.5
    changed = source.write_key_results(store, rows)
    assert (changed.created, changed.updated, changed.unchanged, changed.api_calls) == (0, 1, 2, 1)
    after = records(sandbox, prefix)
    assert len(after) == 3 and after[f"{prefix}-1"]["id"] == written[f"{prefix}-1"]["id"]
    assert after[f"{prefix}-1"]["fields"]["Current_Value__c"] == 1234.5


def test_rejected_rows_are_reported_and_sent_again(sandbox: SandboxServer, store: Engine,
                                                   source: SalesforceSource, prefix: str) -> None:
    rows = kr_rows(prefix, 3)
    rows[0]["key"] = long_key = f"{prefix}-" + "k" * 255  # keys are never cut: the org rejects this one
    first = source.write_key_results(store, rows)
    assert (first.created, first.failed) == (2, 1)
    assert first.errors == [f"key {long_key}: STRING_TOO_LONG: Key: data value too large: "
                            f"{long_key[:40]} (max length=255)"]
    retry = source.write_key_results(store, rows)
    assert (retry.failed, retry.unchanged, retry.api_calls) == (1, 2, 1)
    rows[0]["key"] = f"{prefix}-0"
    fixed = source.write_key_results(store, rows)
    assert (fixed.created, fixed.failed, fixed.unchanged) == (1, 0, 2)
    assert records(sandbox, prefix)[f"{prefix}-0"]["fields"]["Status__c"] == "on_track"


def test_every_text_field_is_cut_to_its_length(sandbox: SandboxServer, store: Engine,
                                               source: SalesforceSource, prefix: str) -> None:
    """A long unit (or status, period...) in config must not get the KR rejected on every run."""
    rows = kr_rows(prefix, 1)
    long_values = {key: key[0].upper() * 300 for key in KR_TEXT_FIELDS}
    rows[0].update(long_values)
    result = source.write_key_results(store, rows)
    assert (result.created, result.failed, result.errors) == (1, 0, [])
    fields = records(sandbox, prefix)[f"{prefix}-0"]["fields"]
    for key, (field, length) in KR_TEXT_FIELDS.items():
        assert fields[field] == long_values[key][:length], field
    assert fields["Unit__c"] == "U" * 40


def test_batches_of_200_and_long_titles(sandbox: SandboxServer, store: Engine, source: SalesforceSource,
                                        prefix: str) -> None:
    rows = kr_rows(prefix, 401)
    rows[0]["title"] = "T" * 120
    result = source.write_key_results(store, rows)
    assert (result.created, result.failed, result.api_calls) == (401, 0, 1 + 3)  # describe + 3 batches
    written = records(sandbox, prefix)
    assert len(written) == 401 and written[f"{prefix}-0"]["fields"]["Name"] == "T" * 80


def test_written_records_are_queryable_by_key(store: Engine, source: SalesforceSource, prefix: str) -> None:
    rows = kr_rows(prefix, 1)
    source.write_key_results(store, rows)
    [record] = source.client.query(f"SELECT Id, Target__c, Status__c FROM {KR} WHERE Key__c = '{prefix}-0'")[
        "records"]
    assert record["Target__c"] == 5000.0 and record["Status__c"] == "on_track"
    assert record["Id"].startswith("a0K") and record["Id"] != sf_id(KR, 0)


def test_duplicate_keys_are_refused_before_any_call(store: Engine, source: SalesforceSource,
                                                    prefix: str) -> None:
    rows = kr_rows(prefix, 2)
    rows[1]["key"] = rows[0]["key"]
    with pytest.raises(ValueError, match="duplicate key result keys"):
        source.write_key_results(store, rows)
    assert source.api_calls == 0


def test_the_target_object_is_described_before_the_first_write_only(store: Engine, source: SalesforceSource,
                                                                     sandbox: SandboxServer, prefix: str) -> None:
    def describes() -> int:
        return sum(n for request, n in sandbox.counters["salesforce"].counts.items()
                   if request.endswith("/sobjects/OKR_Key_Result__c/describe"))

    before = describes()
    source.write_key_results(store, [])  # nothing to send: no call at all
    assert describes() == before
    source.write_key_results(store, kr_rows(prefix, 2))
    source.write_key_results(store, kr_rows(prefix, 3))
    assert describes() == before + 1
