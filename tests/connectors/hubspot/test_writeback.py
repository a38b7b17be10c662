"""HubSpot writeback: write_key_results against the shared sandbox's okr_key_result object, then
write_okrs / plan_okrs with the three OKR objects, rejections and crashes on a private sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from sqlalchemy.engine import Engine

from connectors.hubspot import HubSpotSource, settings
from connectors.hubspot import writeback as hs_writeback
from connectors.hubspot.writeback import payloads
from connectors.ledger import open_rejections
from connectors.okr_records import OkrRecords
from connectors.results import Rejection
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.ids import hs_id
from connectors.sandbox.rejections import BUSY_MESSAGES
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.tick import tick
from tests.conftest import private_sandbox

pytestmark = pytest.mark.integration
SHIPPED_WAITS = settings.WRITE_RETRY_WAITS  # before any test sets them to 0


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs refused as busy (CONFLICT) are sent again at once here (as many times as shipped)."""
    monkeypatch.setattr(settings, "WRITE_RETRY_WAITS", tuple(0.0 for _ in SHIPPED_WAITS))


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


def test_check_writeback_target_passes_on_the_precreated_portal(source: HubSpotSource) -> None:
    source.check_writeback_target()  # the bare-portal cases: tests/connectors/hubspot/test_setup.py
    assert source.check_setup() == []


# -- write_okrs: three objects, owners, associations, rejections (a private sandbox) ---------------
@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "hs-okrs", seed=31, deals=40, owners=4, accounts=10,
                         calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def hs(org: SandboxServer) -> Iterator[HubSpotSource]:
    org.clear_rejections("hubspot")
    with HubSpotSource.from_env(org.connection_env()) as hubspot_source:
        yield hubspot_source
    org.clear_rejections("hubspot")


def okr_records(prefix: str, krs: int = 3, checkins_per_kr: int = 1, value: float = 100.0,
                owner: str | None = None, as_of: str = "2026-11-15") -> OkrRecords:
    objectives = [
        {"key": f"{prefix}-grow:2026-Q4", "objective_id": f"{prefix}-grow", "title": "Grow revenue",
         "period": "2026-Q4", "period_start": "2026-10-01", "period_end": "2026-12-31", "progress": 0.4,
         "score": 0.4, "status": "at_risk", "weight": 1.0, "owner": "a@example.com", "owner_id": owner,
         "parent_key": None},
        {"key": f"{prefix}-emea:2026-Q4", "objective_id": f"{prefix}-emea", "title": "Grow EMEA",
         "period": "2026-Q4", "period_start": "2026-10-01", "period_end": "2026-12-31", "progress": 0.5,
         "score": 0.5, "status": "on_track", "weight": 2.0, "owner": None, "owner_id": None,
         "parent_key": f"{prefix}-grow:2026-Q4"}]
    results = []
    for index, row in enumerate(kr_rows(prefix, krs, value)):
        results.append({**row, "objective_key": objectives[index % 2]["key"], "forecast": value * 2,
                        "forecast_confidence": 0.8 if index % 2 else None, "pace": "linear",
                        "owner_id": owner if index == 0 else None})
    checkins = [{"key": f"{kr['key']}@{as_of}", "kr_key": kr["key"], "as_of": as_of, "value": kr["value"],
                 "target": kr["target"], "progress": kr["progress"], "score": kr["score"], "status": kr["status"],
                 "expected_progress": 0.5, "forecast": kr["forecast"], "forecast_confidence": None,
                 "note": "corrects the 11-14 value" if number else None}
                for kr in results for number in range(checkins_per_kr)][:len(results)]
    return OkrRecords(objectives, results, checkins)


def stored(org: SandboxServer, kind: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Records of one OKR object whose key starts with `prefix`, from the sandbox's own state."""
    return {row["unique_key"]: row for row in org.state.custom_records("hubspot", settings.OKR_OBJECT_NAMES[kind])
            if (row["unique_key"] or "").startswith(prefix)}


def holds(fields: dict[str, Any], name: str, value: Any) -> bool:
    """HubSpot holds `value` (a wire string) in property `name` (numbers compared as numbers)."""
    if settings.property_type(name)[0] == "number" and value not in ("", None):
        return float(fields[name]) == pytest.approx(float(value))
    return fields.get(name, "") == value


def assert_crm_holds(org: SandboxServer, records: OkrRecords, prefix: str) -> None:
    """Every record in HubSpot equals what okr-sync sends for its row, property by property."""
    for kind in ("objective", "key_result", "checkin"):
        held = stored(org, kind, prefix)
        sent = payloads(kind, records.rows(kind))
        assert sorted(held) == sorted(payload["key"] for payload in sent)
        for payload in sent:
            fields = held[payload["key"]]["fields"]
            assert [name for name, value in payload.items() if name != "key" and not holds(fields, name, value)] == []
            assert fields["last_synced"].endswith("Z")


def associated(client_source: HubSpotSource, from_kind: str, to_kind: str, ids: list[str]) -> dict[str, list[str]]:
    """Read associations back through the v4 batch read API (as another integration would)."""
    types = client_source._writeback.object_types([from_kind, to_kind])
    response = client_source._api.associations.get_page(
        types[from_kind], types[to_kind],
        BatchInputPublicFetchAssociationsBatchRequest(inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in ids]))
    return {result._from.id: [str(to.to_object_id) for to in result.to] for result in response.results or []}


def test_write_okrs_writes_three_objects_with_owner_and_associations_then_only_changes(
        org: SandboxServer, hs: HubSpotSource, store: Engine) -> None:
    prefix = f"okr-{uuid.uuid4().hex[:6]}"
    owner = hs_id("owners", 2)
    records = okr_records(prefix, krs=3, owner=owner)
    planned = hs.plan_okrs(store, records)
    assert [(change.object, change.action) for change in planned] == (
        [("objective", "created")] * 2 + [("key_result", "created")] * 3 + [("checkin", "created")] * 3)

    before = org.calls("hubspot")
    first = hs.write_okrs(store, records)
    # schemas once, one upsert per object, one association call for KRs and one for check-ins
    assert (first.created, first.updated, first.failed, first.errors, first.api_calls) == (8, 0, 0, [], 6)
    assert org.calls("hubspot") - before == 6
    assert_crm_holds(org, records, prefix)
    objectives, krs, checkins = (stored(org, kind, prefix) for kind in ("objective", "key_result", "checkin"))
    assert objectives[f"{prefix}-grow:2026-Q4"]["fields"]["hubspot_owner_id"] == owner
    assert "hubspot_owner_id" not in objectives[f"{prefix}-emea:2026-Q4"]["fields"]  # None: default owner
    assert krs[f"{prefix}-0"]["fields"]["hubspot_owner_id"] == owner
    assert objectives[f"{prefix}-emea:2026-Q4"]["fields"]["parent_objective_key"] == f"{prefix}-grow:2026-Q4"
    assert checkins[f"{prefix}-1@2026-11-15"]["fields"]["name"] == f"{prefix}-1@2026-11-15"
    for change in planned:  # plan_okrs said exactly what HubSpot now holds
        fields = stored(org, change.object, prefix)[change.key]["fields"]
        assert all(holds(fields, c.field, c.new) for c in change.changes) and len(change.changes) >= 11

    offset = 30_000_000_000
    kr_ids = {key: str(row["id"] + offset) for key, row in krs.items()}
    objective_ids = {key: str(row["id"] + offset) for key, row in objectives.items()}
    links = associated(hs, "key_result", "objective", list(kr_ids.values()))
    assert links == {kr_ids[f"{prefix}-0"]: [objective_ids[f"{prefix}-grow:2026-Q4"]],
                     kr_ids[f"{prefix}-1"]: [objective_ids[f"{prefix}-emea:2026-Q4"]],
                     kr_ids[f"{prefix}-2"]: [objective_ids[f"{prefix}-grow:2026-Q4"]]}
    back = associated(hs, "objective", "key_result", [objective_ids[f"{prefix}-grow:2026-Q4"]])
    assert sorted(back[objective_ids[f"{prefix}-grow:2026-Q4"]]) == sorted(
        [kr_ids[f"{prefix}-0"], kr_ids[f"{prefix}-2"]])
    checkin_links = associated(hs, "checkin", "key_result", [str(row["id"] + offset) for row in checkins.values()])
    assert sorted(target for targets in checkin_links.values() for target in targets) == sorted(kr_ids.values())

    before = org.calls("hubspot")
    again = hs.write_okrs(store, records)
    assert (again.unchanged, again.created, again.updated, again.api_calls) == (8, 0, 0, 0)
    assert org.calls("hubspot") == before and hs.plan_okrs(store, records) == [
        change for change in hs.plan_okrs(store, records) if change.action == "unchanged"]

    tick(org.state, 1)  # a day of sales activity; the next run has a new value and a new check-in
    later = okr_records(prefix, krs=3, value=150.0, owner=owner, as_of="2026-11-16")
    later.objectives = records.objectives
    later.checkins = records.checkins + later.checkins[:1]
    plan = {(change.object, change.key): change for change in hs.plan_okrs(store, later)
            if change.action != "unchanged"}
    assert set(plan) == {("key_result", f"{prefix}-{index}") for index in range(3)} | {
        ("checkin", f"{prefix}-0@2026-11-16")}
    assert {c.field: (c.old, c.new) for c in plan[("key_result", f"{prefix}-1")].changes} == {
        "current_value": ("100", "150"), "progress": ("0.0002", "0.0003"), "score": ("0.0002", "0.0003"),
        "forecast": ("200", "300")}
    third = hs.write_okrs(store, later)
    # KR upsert, check-in upsert, one association call for the new check-in (schemas known)
    assert (third.created, third.updated, third.unchanged, third.errors, third.api_calls) == (1, 3, 5, [], 3)
    assert_crm_holds(org, later, prefix)
    assert stored(org, "key_result", prefix)[f"{prefix}-1"]["id"] == krs[f"{prefix}-1"]["id"]  # updated in place
    new_checkin = stored(org, "checkin", prefix)[f"{prefix}-0@2026-11-16"]
    assert associated(hs, "checkin", "key_result", [str(new_checkin["id"] + offset)]) == {
        str(new_checkin["id"] + offset): [kr_ids[f"{prefix}-0"]]}
    assert hs.write_okrs(store, later).api_calls == 0


def test_rejected_records_are_reported_kept_and_sent_again_until_the_cause_is_gone(
        org: SandboxServer, hs: HubSpotSource, store: Engine) -> None:
    prefix = f"rej-{uuid.uuid4().hex[:6]}"
    rows = kr_rows(prefix, 10)
    org.reject("hubspot", "okr_key_result", f"{prefix}-3", "validation", "Target must be positive")
    org.reject("hubspot", "okr_key_result", f"{prefix}-7", "row_lock", "Record is being updated")
    first = hs.write_key_results(store, rows)
    # schemas + the batch of 10 (400), split: [0-4] 400 -> [0,1] ok, [2-4] 400 -> [2] ok, [3,4] 400 ->
    # [3] 400 (rejected), [4] ok; [5-9] 207 (7 refused alone, CONFLICT): 9 upserts; then [7] once per
    # retry round (the rule keeps it busy)
    assert (first.created, first.failed, first.api_calls) == (8, 2, 1 + 9 + len(SHIPPED_WAITS))
    assert sorted(first.rejected, key=lambda r: r.key) == [
        Rejection("key_result", f"{prefix}-3", "HTTP 400 VALIDATION_ERROR: Target must be positive"),
        Rejection("key_result", f"{prefix}-7", "Record is being updated")]
    assert sorted(first.errors) == [f"{prefix}-3: HTTP 400 VALIDATION_ERROR: Target must be positive",
                                    f"{prefix}-7: Record is being updated"]
    assert sorted(stored(org, "key_result", prefix)) == sorted(
        f"{prefix}-{index}" for index in range(10) if index not in (3, 7))
    assert [(entry.object, entry.key, entry.attempts) for entry in open_rejections(store, "hubspot")] == [
        ("key_result", f"{prefix}-3", 1), ("key_result", f"{prefix}-7", 1)]

    again = hs.write_key_results(store, rows)  # only the two refused rows are pending: [3,7] 400 -> [3], [7]
    assert (again.unchanged, again.created, again.failed, again.api_calls) == (8, 0, 2, 3 + len(SHIPPED_WAITS))
    assert [entry.attempts for entry in open_rejections(store, "hubspot")] == [2, 2]

    org.clear_rejections("hubspot")
    fixed = hs.write_key_results(store, rows)
    assert (fixed.created, fixed.failed, fixed.rejected, fixed.api_calls) == (2, 0, [], 1)
    assert open_rejections(store, "hubspot") == [] and len(stored(org, "key_result", prefix)) == 10


def test_a_malformed_checkin_is_isolated_and_objectives_and_krs_still_written(
        org: SandboxServer, hs: HubSpotSource, store: Engine) -> None:
    prefix = f"mal-{uuid.uuid4().hex[:6]}"
    records = okr_records(prefix, krs=4)
    org.reject("hubspot", "okr_checkin", f"{prefix}-2@*", "malformed", "Invalid input JSON on line 1")
    result = hs.write_okrs(store, records)
    # schemas, objectives, KRs + association, check-ins: 4 (400) -> [0,1] ok, [2,3] 400 -> [2] 400, [3] ok;
    # one association call per successful check-in upsert group: once for the batch
    assert (result.created, result.failed) == (2 + 4 + 3, 1)
    assert result.rejected == [Rejection("checkin", f"{prefix}-2@2026-11-15",
                                         "HTTP 400 VALIDATION_ERROR: Invalid input JSON on line 1")]
    assert result.api_calls == 1 + 1 + 2 + 5 + 1
    assert f"{prefix}-2@2026-11-15" not in stored(org, "checkin", prefix)
    org.clear_rejections("hubspot")
    retry = hs.write_okrs(store, records)
    assert (retry.created, retry.unchanged, retry.api_calls) == (1, 9, 2)  # upsert + its association
    assert_crm_holds(org, records, prefix)


def test_a_crash_between_batches_then_a_rerun_leaves_no_duplicate(
        org: SandboxServer, hs: HubSpotSource, store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"crash-{uuid.uuid4().hex[:6]}"
    rows = kr_rows(prefix, 250)
    real = hs._api.batch.upsert
    sent: list[int] = []

    def upsert_then_crash(*args: Any, **kwargs: Any) -> Any:
        response = real(*args, **kwargs)
        sent.append(len(args[1].inputs))
        if len(sent) == 2:  # batch 2 reached HubSpot, then the worker died before the ledger knew
            raise RuntimeError("worker killed")
        return response

    wrapped: Callable[..., Any] = upsert_then_crash
    monkeypatch.setattr(hs._api.batch, "upsert", wrapped)
    with pytest.raises(RuntimeError, match="worker killed"):
        hs.write_key_results(store, rows)
    monkeypatch.undo()
    assert sent == [100, 100] and len(stored(org, "key_result", prefix)) == 200

    rerun = hs.write_key_results(store, rows)  # batch 1 is in the ledger; batch 2 is upserted again
    assert (rerun.unchanged, rerun.updated, rerun.created, rerun.api_calls) == (100, 100, 50, 2)
    held = stored(org, "key_result", prefix)
    assert len(held) == 250 and len({row["id"] for row in held.values()}) == 250
    assert hs.write_key_results(store, rows).api_calls == 0


def test_a_checkin_whose_key_result_was_refused_is_associated_once_the_key_result_is_written(
        org: SandboxServer, hs: HubSpotSource, store: Engine) -> None:
    prefix = f"link-{uuid.uuid4().hex[:6]}"
    records = okr_records(prefix, krs=2)
    refused_kr = records.key_results[1]["key"]
    org.reject("hubspot", "okr_key_result", refused_kr, "row_lock", "Record is being updated")
    first = hs.write_okrs(store, records)
    checkin = next(row["key"] for row in records.checkins if row["kr_key"] == refused_kr)
    assert any(error.startswith(f"{checkin}: not associated with its") for error in first.errors), first.errors
    assert first.failed == 2  # the key result (refused) and its check-in (written, but unlinked)
    org.clear_rejections("hubspot")
    second = hs.write_okrs(store, records)  # the key result now, then its check-in again, associated
    assert (second.failed, second.created, second.updated) == (0, 1, 1), second.errors
    offset = 30_000_000_000
    checkin_id = str(stored(org, "checkin", prefix)[checkin]["id"] + offset)
    kr_id = str(stored(org, "key_result", prefix)[refused_kr]["id"] + offset)
    assert associated(hs, "checkin", "key_result", [checkin_id]) == {checkin_id: [kr_id]}
    assert hs.write_okrs(store, records).api_calls == 0  # all confirmed now


# -- inputs refused as busy (207 CONFLICT) are sent again within the run ----------------------------
BUSY = "CONFLICT"
Calls = list[tuple[list[str], dict[str, str | None]]]


def upsert_calls(hs: HubSpotSource, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Spy on batch upserts that HubSpot answered: each call's keys, in order, and per key the
    category of its error (None: written)."""
    real = hs._api.batch.upsert
    calls: Calls = []

    def spying(*args: Any, **kwargs: Any) -> Any:
        response = real(*args, **kwargs)
        keys = [item.id for item in args[1].inputs]
        categories: dict[str, str | None] = dict.fromkeys(keys)
        for error in getattr(response, "errors", None) or []:
            categories.update(dict.fromkeys((error.context or {}).get("id", []), error.category))
        calls.append((keys, categories))
        return response

    wrapped: Callable[..., Any] = spying
    monkeypatch.setattr(hs._api.batch, "upsert", wrapped)
    return calls


def retry_calls(calls: Calls) -> int:
    """How many calls were retry rounds; asserts that each call after one with busy inputs sends
    exactly those again, up to len(WRITE_RETRY_WAITS) times, and then a batch goes on."""
    retries, busy, rounds = 0, [], 0
    for keys, categories in calls:
        assert len(keys) <= settings.BATCH_SIZE
        if busy and rounds < len(SHIPPED_WAITS):
            assert keys == busy, "a retry round sends only the inputs refused as busy"
            retries, rounds = retries + 1, rounds + 1
        else:
            rounds = 0
        busy = [key for key in keys if categories[key] == BUSY]
    return retries


def held_keys(org: SandboxServer, kind: str, prefix: str) -> list[str]:
    """The keys of HubSpot's records of one OKR object under `prefix`, one entry per record (duplicates kept)."""
    return sorted(row["unique_key"] for row in org.state.custom_records("hubspot", settings.OKR_OBJECT_NAMES[kind])
                  if (row["unique_key"] or "").startswith(prefix))


def test_inputs_refused_as_busy_are_written_and_associated_within_the_run(
        org: SandboxServer, hs: HubSpotSource, store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"busy-{uuid.uuid4().hex[:6]}"
    records = okr_records(prefix, krs=4)  # 2 objectives, 4 key results, 4 check-ins
    calls = upsert_calls(hs, monkeypatch)
    org.set_faults("hubspot", FaultPlan(partial_failure=0.3, seed=7))
    try:
        result = hs.write_okrs(store, records)
        struck = org.faults["hubspot"].injected.get("partial_failure", 0)
    finally:
        org.set_faults("hubspot", None)
    assert struck == sum(category == BUSY for _keys, categories in calls for category in categories.values()) > 0
    retries = retry_calls(calls)
    assert retries >= 1
    # a clean run: schemas, one upsert per object, one association call for KRs and one for check-ins
    # (made once the batch's retries are done); then one upsert per batch and round that had busy inputs
    assert result.api_calls == 6 + retries
    assert (result.created, result.updated, result.failed, result.rejected, result.errors) == (10, 0, 0, [], [])
    for kind in ("objective", "key_result", "checkin"):
        assert held_keys(org, kind, prefix) == sorted(row["key"] for row in records.rows(kind))  # once each
    assert_crm_holds(org, records, prefix)
    offset = 30_000_000_000
    ids = {key: str(row["id"] + offset) for kind in ("objective", "key_result")
           for key, row in stored(org, kind, prefix).items()}
    kr_links = associated(hs, "key_result", "objective", [ids[row["key"]] for row in records.key_results])
    assert kr_links == {ids[row["key"]]: [ids[row["objective_key"]]] for row in records.key_results}
    checkin_ids = [str(row["id"] + offset) for row in stored(org, "checkin", prefix).values()]
    checkin_links = associated(hs, "checkin", "key_result", checkin_ids)
    assert sorted(target for targets in checkin_links.values() for target in targets) == sorted(
        ids[row["key"]] for row in records.key_results)
    assert open_rejections(store, "hubspot") == []
    assert hs.write_okrs(store, records).api_calls == 0  # every record is in the ledger


def test_inputs_still_busy_after_the_last_round_are_reported_and_sent_again_next_run(
        org: SandboxServer, hs: HubSpotSource, store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"busy-{uuid.uuid4().hex[:6]}"
    rows = kr_rows(prefix, 150)  # two batches: 100 and 50
    waits: list[float] = []
    monkeypatch.setattr(settings, "WRITE_RETRY_WAITS", SHIPPED_WAITS)
    monkeypatch.setattr(hs_writeback, "time", SimpleNamespace(sleep=waits.append))
    calls = upsert_calls(hs, monkeypatch)
    org.set_faults("hubspot", FaultPlan(partial_failure=1.0, seed=3))
    try:
        result = hs.write_key_results(store, rows)
    finally:
        org.set_faults("hubspot", None)
    assert SHIPPED_WAITS == (1.0, 3.0) and waits == [*SHIPPED_WAITS] * 2  # per batch, then it gives up
    rounds = 1 + len(SHIPPED_WAITS)
    assert [len(keys) for keys, _categories in calls] == [100] * rounds + [50] * rounds
    assert retry_calls(calls) == 2 * len(SHIPPED_WAITS)
    assert (result.created, result.failed, result.api_calls) == (0, 150, 1 + 2 * rounds)
    assert sorted(result.rejected, key=lambda rejection: rejection.key) == sorted(
        (Rejection("key_result", row["key"], BUSY_MESSAGES["hubspot"]) for row in rows),
        key=lambda rejection: rejection.key)  # as without retries
    assert not held_keys(org, "key_result", prefix)
    assert {(entry.key, entry.attempts) for entry in open_rejections(store, "hubspot")} == {
        (row["key"], 1) for row in rows}  # one run, one attempt

    again = hs.write_key_results(store, rows)  # nothing busy the next night
    assert (again.created, again.failed, again.api_calls) == (150, 0, 2)
    assert held_keys(org, "key_result", prefix) == sorted(row["key"] for row in rows)
    assert open_rejections(store, "hubspot") == [] and waits == [*SHIPPED_WAITS] * 2


def test_inputs_refused_for_their_content_are_not_sent_again_within_the_run(
        org: SandboxServer, hs: HubSpotSource, store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"bad-{uuid.uuid4().hex[:6]}"
    rows = kr_rows(prefix, 4)
    rows[1]["target"] = "half a million"  # refused alone: 207 VALIDATION_ERROR
    org.reject("hubspot", "okr_key_result", f"{prefix}-2", "validation", "Target must be positive")  # 400
    calls = upsert_calls(hs, monkeypatch)
    result = hs.write_key_results(store, rows)
    # schemas; [0-3] 400 -> [0,1] 207 (1 refused), [2,3] 400 -> [2] 400 (refused), [3] ok: no retry round
    assert (result.created, result.failed, result.api_calls) == (2, 2, 1 + 5)
    assert calls == [([f"{prefix}-0", f"{prefix}-1"], {f"{prefix}-0": None, f"{prefix}-1": "VALIDATION_ERROR"}),
                     ([f"{prefix}-3"], {f"{prefix}-3": None})]  # the upserts answered (a 400 raises)
    assert sorted(rejection.key for rejection in result.rejected) == [f"{prefix}-1", f"{prefix}-2"]
