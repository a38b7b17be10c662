"""Writing OKRs into the OKR custom objects: KR rows in the shared sandbox (keys unique to each test),
objectives, key results and check-ins in a private org (owners, ticks, injected rejections)."""

from __future__ import annotations

import gc
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from simple_salesforce import format_soql
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import ConnectorError
from connectors.ledger import open_rejections
from connectors.okr_records import OkrRecords
from connectors.results import Rejection
from connectors.salesforce import SalesforceSource
from connectors.salesforce import settings as sf_settings
from connectors.salesforce import writeback as sf_writeback
from connectors.salesforce.settings import KR_TEXT_FIELDS, OKR_OBJECT_SPECS, OWNER_FIELD
from connectors.salesforce.writeback import ledger_rows
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.ids import sf_id
from connectors.sandbox.rejections import BUSY_MESSAGES
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.tick import tick
from connectors.store import WritebackLedger
from tests.conftest import private_sandbox

KR = "OKR_Key_Result__c"
SHIPPED_WAITS = sf_settings.WRITE_RETRY_WAITS  # before any test sets them to 0


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records refused for a locked row are sent again at once here (as many times as shipped)."""
    monkeypatch.setattr(sf_settings, "WRITE_RETRY_WAITS", tuple(0.0 for _ in SHIPPED_WAITS))


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


# -- write_okrs: objectives, key results and check-ins (a private org: owners, ticks, rejections) ----
OBJECTIVE, CHECKIN = "OKR_Objective__c", "OKR_Check_In__c"
INACTIVE_USER = 17  # the generator makes every 17th user inactive


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-okr-writes", seed=5, deals=40, owners=INACTIVE_USER,
                         accounts=10, calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def okr_source(org: SandboxServer) -> Iterator[SalesforceSource]:
    org.clear_rejections("salesforce")
    with SalesforceSource.from_env(org.connection_env()) as connected:
        yield connected
    org.clear_rejections("salesforce")
    gc.collect()


def okr_records(prefix: str, krs: int = 2, as_of: str = "2026-11-15", owner: str | None = None) -> OkrRecords:
    """Two objectives (the second a child of the first), `krs` KRs under each, one check-in per KR."""
    objectives = [{
        "key": f"{prefix}-obj{index}:2026-Q4", "objective_id": f"{prefix}-obj{index}", "title": f"Objective {index}",
        "period": "2026-Q4", "period_start": "2026-10-01", "period_end": "2026-12-31", "progress": 0.25 * index,
        "score": 0.25 * index, "status": "at_risk", "weight": 1.0, "owner": None, "owner_id": None,
        "parent_key": None if index == 0 else f"{prefix}-obj0:2026-Q4",
    } for index in range(2)]
    key_results = []
    for objective in objectives:
        for row in kr_rows(f"{objective['objective_id']}-kr", krs):
            key_results.append({**row, "objective_key": objective["key"], "forecast": row["value"] * 1.5,
                                "forecast_confidence": 0.6, "pace": "linear",
                                "owner_id": owner if row["key"].endswith("-0") else None})
    checkins = [{
        "key": f"{kr['key']}@{as_of}", "kr_key": kr["key"], "as_of": as_of, "value": kr["value"],
        "target": kr["target"], "progress": kr["progress"], "score": kr["score"], "status": kr["status"],
        "expected_progress": kr["expected_progress"], "forecast": kr["forecast"], "forecast_confidence": 0.6,
        "note": None,
    } for kr in key_results]
    return OkrRecords(objectives, key_results, checkins)


def read_back(source: SalesforceSource, sobject: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The org's records of `sobject` whose key starts with `prefix`, read through the API."""
    spec = OKR_OBJECT_SPECS[{OBJECTIVE: "objective", KR: "key_result", CHECKIN: "checkin"}[sobject]]
    fields = ", ".join(["Id", *(field.name for field in spec.fields)])
    soql = format_soql(f"SELECT {fields} FROM {sobject} WHERE Key__c LIKE {{pattern}}", pattern=f"{prefix}%")
    return {record["Key__c"]: record for record in source.client.query_all(soql)["records"]}


def assert_org_holds(source: SalesforceSource, records: OkrRecords, prefix: str) -> None:
    """Every record of the org equals the payload of its row; lookups point at the parents' Ids."""
    objectives = read_back(source, OBJECTIVE, prefix)
    key_results = read_back(source, KR, prefix)
    checkins = read_back(source, CHECKIN, prefix)
    ids = {**{key: record["Id"] for key, record in objectives.items()},
           **{key: record["Id"] for key, record in key_results.items()}}
    for kind, found in (("objective", objectives), ("key_result", key_results), ("checkin", checkins)):
        rows = records.rows(kind)
        assert sorted(found) == sorted(row["key"] for row in rows), kind  # one record per key: no duplicate
        for row in ledger_rows(OKR_OBJECT_SPECS[kind], rows):
            record = found[row["key"]]
            for name, value in row.items():
                if name.endswith("__r"):  # a lookup: the parent's Id, found by its key
                    assert record[name[:-3] + "__c"] == ids[value["Key__c"]], (kind, name)
                elif name != "key":
                    assert record[name] == value, (kind, row["key"], name)


def sent_records(org_source: SalesforceSource) -> list[tuple[str, dict[str, Any]]]:
    """Spy on the HTTP traffic (a response hook): every upserted record, with its object."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def hook(response: Any, *_args: Any, **_kwargs: Any) -> None:
        request = response.request
        if request.method == "PATCH" and "/composite/sobjects/" in request.url and response.status_code == 200:
            sobject = request.url.rsplit("/", 2)[-2]
            sent.extend((sobject, record) for record in json.loads(request.body)["records"])

    org_source.client.session.hooks["response"].append(hook)
    return sent


def test_objectives_key_results_and_check_ins_with_lookups_owner_and_ledger(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str) -> None:
    owner = sf_id("User", 3)
    records = okr_records(prefix, owner=owner)
    first = okr_source.write_okrs(store, records)
    # three describes (once per object and source), then objectives in two calls (the parent is saved
    # before its child), one for the key results, one for the check-ins
    assert (first.created, first.updated, first.unchanged, first.failed, first.api_calls) == (10, 0, 0, 0, 3 + 4)
    assert_org_holds(okr_source, records, prefix)
    owned = read_back(okr_source, KR, prefix)[f"{prefix}-obj0-kr-0"]
    assert owned[OWNER_FIELD] == owner
    with Session(store) as session:
        ledger = Counter(entry.target for entry in session.exec(select(WritebackLedger))
                         if entry.key.startswith(prefix))
    assert ledger == {"salesforce:objective": 2, "salesforce": 4, "salesforce:checkin": 4}

    calls = org.calls("salesforce")
    again = okr_source.write_okrs(store, records)
    assert (again.unchanged, again.api_calls, org.calls("salesforce") - calls) == (10, 0, 0)

    for day, as_of in enumerate(("2026-11-16", "2026-11-17"), start=1):  # two more nightly runs
        tick(org.state, 1)
        records = okr_records(prefix, owner=owner, as_of=as_of)
        records.objectives[1]["progress"] = 0.5 + day / 10
        records.key_results[2]["value"] = 2500.0 + day
        records.key_results[0]["owner_id"] = None  # None leaves the owner as it is
        result = okr_source.write_okrs(store, records)
        # objective 1 and key result 2 updated, and on day 1 KR 0 (its payload lost OwnerId); new check-ins
        assert (result.created, result.updated, result.unchanged, result.failed) == (4, 4 - day, 2 + day, 0)
        assert result.api_calls == 3  # no describe again: one call per object
    checkins = read_back(okr_source, CHECKIN, prefix)
    assert len(checkins) == 12 and checkins[f"{prefix}-obj0-kr-1@2026-11-17"]["Name"] == "Check-in 2026-11-17"
    assert_org_holds(okr_source, OkrRecords(records.objectives, records.key_results,
                                            okr_records(prefix, as_of="2026-11-15").checkins
                                            + okr_records(prefix, as_of="2026-11-16").checkins
                                            + records.checkins), prefix)
    owners = {key: record[OWNER_FIELD] for key, record in read_back(okr_source, KR, prefix).items()}
    assert owners[f"{prefix}-obj0-kr-0"] == owner  # kept: None never clears an owner
    assert owners[f"{prefix}-obj0-kr-1"] == sf_id("User", 1)  # never owned: the integration user


def test_plan_okrs_is_what_write_okrs_sends(org: SandboxServer, store: Engine, okr_source: SalesforceSource,
                                            prefix: str) -> None:
    okr_source.write_okrs(store, okr_records(prefix))
    records = okr_records(prefix, as_of="2026-11-16")
    records.key_results[1]["status"] = "achieved"
    records.objectives[0]["parent_key"] = None
    calls = okr_source.api_calls
    plan = okr_source.plan_okrs(store, records)
    assert okr_source.api_calls == calls  # the ledger alone
    sent = sent_records(okr_source)
    result = okr_source.write_okrs(store, records)
    planned = {(change.object, change.key): {c.field: c.new for c in change.changes}
               for change in plan if change.action != "unchanged"}
    kinds = {OBJECTIVE: "objective", KR: "key_result", CHECKIN: "checkin"}
    written = {(kinds[sobject], record["Key__c"]): record for sobject, record in sent}
    assert set(planned) == set(written) and len(sent) == len(written) == result.created + result.updated
    for (kind, key), changes in planned.items():
        record = written[(kind, key)]
        assert all(record[name] == value for name, value in changes.items()), key  # old -> new, as sent
        if next(c.action for c in plan if (c.object, c.key) == (kind, key)) == "created":
            assert set(changes) == set(record) - {"attributes", "Last_Synced__c"}  # every field sent
    assert {change.action for change in plan if change.object == "checkin"} == {"created"}
    assert sum(change.action == "unchanged" for change in plan) == result.unchanged == 5


def test_a_crash_between_two_batches_leaves_no_duplicate(org: SandboxServer, store: Engine,
                                                         okr_source: SalesforceSource, prefix: str) -> None:
    records = okr_records(prefix, krs=225)  # 450 key results: three calls of at most 200
    restful = okr_source.client.restful
    upserts = []

    def dies_after_the_second_kr_call(path: str, *args: Any, **kwargs: Any) -> Any:
        answer = restful(path, *args, **kwargs)
        if path.startswith(f"composite/sobjects/{KR}/"):
            upserts.append(path)
            if len(upserts) == 2:  # the org saved batch 2, the process dies before the ledger knows
                raise KeyboardInterrupt("killed")
        return answer

    okr_source.client.restful = dies_after_the_second_kr_call  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        okr_source.write_okrs(store, records)
    okr_source.client.restful = restful  # type: ignore[method-assign]
    assert len(read_back(okr_source, KR, prefix)) == 400 and not read_back(okr_source, CHECKIN, prefix)
    rerun = okr_source.write_okrs(store, records)
    # batch 1 was confirmed; batch 2 goes again (the upsert by key updates it), then batch 3 and the check-ins
    assert (rerun.created, rerun.updated, rerun.unchanged, rerun.failed) == (50 + 450, 200, 2 + 200, 0)
    assert rerun.api_calls == 2 + 1 + 3  # KRs: two calls; check-ins: their describe (not reached before), three
    assert_org_holds(okr_source, records, prefix)


def test_rejected_records_are_reported_the_rest_written_and_retried(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str) -> None:
    records = okr_records(prefix, krs=3)
    org.reject("salesforce", KR, f"{prefix}-obj1-kr-2", "validation", "Target must be above the baseline")
    org.reject("salesforce", CHECKIN, f"{prefix}-obj0-kr-0@*", "row_lock",
               "unable to obtain exclusive access to this record")
    first = okr_source.write_okrs(store, records)
    refused_kr, locked = f"{prefix}-obj1-kr-2", f"{prefix}-obj0-kr-0@2026-11-15"
    orphan = f"{refused_kr}@2026-11-15"  # its key result is not in the org: the lookup fails
    assert (first.created, first.failed) == (2 + 5 + 4, 3)
    assert first.rejected == [
        Rejection("key_result", refused_kr, "FIELD_CUSTOM_VALIDATION_EXCEPTION: Target must be above the baseline"),
        Rejection("checkin", locked, "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record"),
        Rejection("checkin", orphan, f"INVALID_FIELD: Foreign key external ID: {refused_kr} not found for field "
                                     f"Key__c in entity {KR}")]
    assert first.errors[0] == f"key {refused_kr}: FIELD_CUSTOM_VALIDATION_EXCEPTION: Target must be above the baseline"
    assert first.errors[1].startswith(f"check-in key {locked}: UNABLE_TO_LOCK_ROW")
    assert sorted(read_back(okr_source, KR, prefix)) == sorted(row["key"] for row in records.key_results
                                                              if row["key"] != refused_kr)
    assert [(entry.object, entry.key, entry.attempts) for entry in open_rejections(store, "salesforce")] == [
        ("key_result", refused_kr, 1), ("checkin", locked, 1), ("checkin", orphan, 1)]  # oldest first

    second = okr_source.write_okrs(store, records)  # the cause is still there: only the three go again
    # one call per object, then the locked check-in alone once per retry round (the rule holds the lock)
    assert (second.failed, second.unchanged, second.api_calls) == (3, 11, 2 + len(SHIPPED_WAITS))
    assert [entry.attempts for entry in open_rejections(store, "salesforce")] == [2, 2, 2]

    org.clear_rejections("salesforce")
    third = okr_source.write_okrs(store, records)
    assert (third.created, third.failed, third.unchanged, third.api_calls) == (3, 0, 11, 2)
    assert open_rejections(store, "salesforce") == [] and okr_source.write_okrs(store, records).api_calls == 0
    assert_org_holds(okr_source, records, prefix)


def test_a_call_refused_as_a_whole_is_split_to_isolate_the_record(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str) -> None:
    records = OkrRecords(key_results=kr_rows(prefix, 8))
    bad = f"{prefix}-5"
    org.reject("salesforce", KR, bad, "malformed", "Cannot deserialize instance of double from VALUE_STRING")
    result = okr_source.write_okrs(store, records)
    # describe; 8 refused; 4 + 4 (one refused); 2 + 2 (one refused); 1 + 1 (one refused)
    assert (result.created, result.failed, result.api_calls) == (7, 1, 1 + 1 + 2 + 2 + 2)
    assert result.rejected == [Rejection("key_result", bad, "JSON_PARSER_ERROR: Cannot deserialize instance of "
                                                            "double from VALUE_STRING")]
    assert sorted(read_back(okr_source, KR, prefix)) == sorted(row["key"] for row in kr_rows(prefix, 8)
                                                              if row["key"] != bad)
    org.clear_rejections("salesforce")
    fixed = okr_source.write_okrs(store, records)
    assert (fixed.created, fixed.failed, fixed.unchanged, fixed.api_calls) == (1, 0, 7, 1)


def test_an_unknown_or_inactive_owner_fails_that_record_alone(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str) -> None:
    rows = kr_rows(prefix, 3)
    rows[0]["owner_id"] = sf_id("User", INACTIVE_USER)
    rows[1]["owner_id"] = sf_id("User", 999)
    rows[2]["owner_id"] = sf_id("User", 2)
    result = okr_source.write_key_results(store, rows)
    assert (result.created, result.failed) == (1, 2)
    assert [rejection.message.split(":")[0] for rejection in result.rejected] == [
        "INACTIVE_OWNER_OR_USER", "INVALID_CROSS_REFERENCE_KEY"]
    assert read_back(okr_source, KR, prefix)[f"{prefix}-2"][OWNER_FIELD] == sf_id("User", 2)


# -- records refused for a locked row are sent again within the run ---------------------------------
LOCKED = "UNABLE_TO_LOCK_ROW"


def upsert_calls(org_source: SalesforceSource) -> list[tuple[list[str], dict[str, str | None]]]:
    """Spy on the HTTP traffic (a response hook): each upsert call's keys, in order, and per key the
    first error code of its result (None: written)."""
    calls: list[tuple[list[str], dict[str, str | None]]] = []

    def hook(response: Any, *_args: Any, **_kwargs: Any) -> None:
        request = response.request
        if request.method == "PATCH" and "/composite/sobjects/" in request.url and response.status_code == 200:
            keys = [record["Key__c"] for record in json.loads(request.body)["records"]]
            codes = [None if outcome["success"] else outcome["errors"][0]["statusCode"] for outcome in response.json()]
            calls.append((keys, dict(zip(keys, codes, strict=True))))

    org_source.client.session.hooks["response"].append(hook)
    return calls


def retry_calls(calls: list[tuple[list[str], dict[str, str | None]]]) -> int:
    """How many calls were retry rounds; asserts that each call after one with locked rows sends
    exactly those rows again, up to len(WRITE_RETRY_WAITS) times, and then a batch goes on."""
    retries, locked, rounds = 0, [], 0
    for keys, codes in calls:
        assert len(keys) <= sf_settings.WRITE_BATCH_SIZE
        if locked and rounds < len(SHIPPED_WAITS):
            assert keys == locked, "a retry round sends only the rows refused for a locked row"
            retries, rounds = retries + 1, rounds + 1
        else:
            rounds = 0
        locked = [key for key in keys if codes[key] == LOCKED]
    return retries


def held_keys(org: SandboxServer, sobject: str, prefix: str) -> list[str]:
    """The keys of the org's records of `sobject` under `prefix`, one entry per record (duplicates kept)."""
    return sorted(row["unique_key"] for row in org.state.custom_records("salesforce", sobject)
                  if (row["unique_key"] or "").startswith(prefix))


def test_records_refused_for_a_locked_row_are_written_within_the_run(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str) -> None:
    records = okr_records(prefix, krs=3)  # 2 objectives (a parent and its child), 6 key results, 6 check-ins
    calls = upsert_calls(okr_source)
    org.set_faults("salesforce", FaultPlan(partial_failure=0.3, seed=7))
    try:
        result = okr_source.write_okrs(store, records)
        struck = org.faults["salesforce"].injected.get("partial_failure", 0)
    finally:
        org.set_faults("salesforce", None)
    assert struck == sum(code == LOCKED for _keys, codes in calls for code in codes.values()) > 0
    retries = retry_calls(calls)
    assert retries >= 1
    # a clean run: 3 describes, objectives in 2 calls (parent first), key results, check-ins; then one
    # call per batch and round that had locked rows
    assert result.api_calls == 3 + 4 + retries
    assert (result.created, result.updated, result.failed, result.rejected, result.errors) == (14, 0, 0, [], [])
    for sobject, kind in ((OBJECTIVE, "objective"), (KR, "key_result"), (CHECKIN, "checkin")):
        assert held_keys(org, sobject, prefix) == sorted(row["key"] for row in records.rows(kind))  # once each
    assert_org_holds(okr_source, records, prefix)
    assert open_rejections(store, "salesforce") == []
    assert okr_source.write_okrs(store, records).api_calls == 0  # every record is in the ledger


def test_rows_still_locked_after_the_last_round_are_reported_and_sent_again_next_run(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rows = kr_rows(prefix, 250)  # two batches: 200 and 50
    waits: list[float] = []
    monkeypatch.setattr(sf_settings, "WRITE_RETRY_WAITS", SHIPPED_WAITS)
    monkeypatch.setattr(sf_writeback, "time", SimpleNamespace(sleep=waits.append))
    calls = upsert_calls(okr_source)
    org.set_faults("salesforce", FaultPlan(partial_failure=1.0, seed=3))
    try:
        result = okr_source.write_key_results(store, rows)
    finally:
        org.set_faults("salesforce", None)
    assert SHIPPED_WAITS == (1.0, 3.0) and waits == [*SHIPPED_WAITS] * 2  # per batch, then it gives up
    rounds = 1 + len(SHIPPED_WAITS)
    assert [len(keys) for keys, _codes in calls] == [200] * rounds + [50] * rounds
    assert retry_calls(calls) == 2 * len(SHIPPED_WAITS)
    assert (result.created, result.failed, result.api_calls) == (0, 250, 1 + 2 * rounds)
    busy = f"{LOCKED}: {BUSY_MESSAGES['salesforce']}"
    assert result.rejected == [Rejection("key_result", row["key"], busy) for row in rows]  # as without retries
    assert not held_keys(org, KR, prefix)
    assert {(entry.key, entry.attempts) for entry in open_rejections(store, "salesforce")} == {
        (row["key"], 1) for row in rows}  # one run, one attempt

    again = okr_source.write_key_results(store, rows)  # the locks are gone the next night
    assert (again.created, again.failed, again.api_calls) == (250, 0, 2)
    assert held_keys(org, KR, prefix) == sorted(row["key"] for row in rows)
    assert open_rejections(store, "salesforce") == [] and waits == [*SHIPPED_WAITS] * 2


def test_a_record_refused_for_its_content_is_not_sent_again_within_the_run(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str) -> None:
    rows = kr_rows(prefix, 3)
    refused = f"{prefix}-1"
    org.reject("salesforce", KR, refused, "validation", "Target must be above the baseline")
    calls = upsert_calls(okr_source)
    result = okr_source.write_key_results(store, rows)
    assert (result.created, result.failed, result.api_calls) == (2, 1, 1 + 1)  # describe, one upsert: no retry
    assert [keys for keys, _codes in calls] == [[row["key"] for row in rows]]
    assert result.rejected == [Rejection("key_result", refused, "FIELD_CUSTOM_VALIDATION_EXCEPTION: Target must"
                                                                " be above the baseline")]


@pytest.mark.parametrize(("errors", "transient"), [
    ([{"statusCode": LOCKED, "message": "unable to obtain exclusive access to this record"}], True),
    ([{"statusCode": LOCKED, "message": "locked"}, {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                                    "message": "Target must be positive"}], False),
    ([{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Target must be positive"}], False),
    ([], False),
])
def test_only_a_refusal_for_a_locked_row_alone_is_retried(errors: list[dict[str, str]], transient: bool) -> None:
    assert sf_writeback._transient({"id": None, "success": False, "errors": errors}) is transient


def test_a_retry_call_that_fails_keeps_what_the_first_call_wrote_and_reports_the_locked_row(
        org: SandboxServer, store: Engine, okr_source: SalesforceSource, prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rows = kr_rows(prefix, 3)
    locked = f"{prefix}-1"
    org.reject("salesforce", KR, locked, "row_lock", BUSY_MESSAGES["salesforce"])
    upsert = okr_source._upsert
    sent: list[int] = []

    def fails_on_the_retry(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        sent.append(len(args[1]))
        if len(sent) == 2:
            raise ConnectorError("Salesforce upsert failed: HTTP 503 SERVER_UNAVAILABLE")
        return upsert(*args, **kwargs)

    monkeypatch.setattr(okr_source, "_upsert", fails_on_the_retry)
    with pytest.raises(ConnectorError, match="503"):
        okr_source.write_key_results(store, rows)
    assert sent == [3, 1]
    assert [(entry.key, entry.attempts) for entry in open_rejections(store, "salesforce")] == [(locked, 1)]
    monkeypatch.undo()
    org.clear_rejections("salesforce")
    again = okr_source.write_key_results(store, rows)  # the two written by the first call are in the ledger
    assert (again.created, again.unchanged, again.failed) == (1, 2, 0)
    assert held_keys(org, KR, prefix) == sorted(row["key"] for row in rows)
