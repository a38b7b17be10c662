"""Issue 7, bad data from the CRM: a clear error naming the stream and the record, nothing lost, nothing
written from incomplete data.

The sandbox serves one record of one stream wrong (connectors.sandbox.bad_data) while the nightly
flow runs through the real clients: an answer that is not JSON, a wrong type (an amount "abc", a
flag "yes", a call duration "long"), a date that is not one, a missing id. Then:
- the run fails with a message naming the CRM, the stream, the record (when it has an id) and the
  field (connectors.errors.BadRecord / BadPage);
- that stream stopped without moving its cursor past the record, while the CRM's other streams
  were still read;
- no key result of that CRM was computed, recorded or written back (they would miss the record),
  while the other CRM synced and wrote as usual;
- once the record is served right again (fixed in the CRM), the next run stores every record of
  the CRM exactly as the stream oracle (tests/connectors/stream_oracle.py) expects, and writes back.
Two kinds of odd data are stored, by design (connectors.row_checks, the mappers):
- a huge string (a 5 MB deal name) is cut to MAX_TEXT_CHARS with a warning naming the record: text
  never feeds a figure, so the key results stay right and are written;
- a picklist value or stage the org does not define is kept as it is (raw): admins add values
  before anyone updates a rule, won / closed come from the CRM's own flags, and a rule naming the
  label simply does not match it. Refusing would stop a CRM's key results for a new stage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, select

import connectors.salesforce as salesforce_source
from connectors.errors import BadRecord
from connectors.hubspot import settings as hubspot_settings
from connectors.hubspot.settings import STREAMS as HUBSPOT_STREAMS
from connectors.row_checks import MAX_TEXT_CHARS, BadValue, check_row, map_record
from connectors.salesforce.settings import STREAMS as SALESFORCE_STREAMS
from connectors.sandbox.ids import hs_id, sf_id
from connectors.sandbox.server import SandboxServer
from connectors.store import Deal, SyncState, make_engine
from flows import nightly
from flows.nightly import SyncFailed, SyncReport, nightly_sync
from okr_mapping import history
from tests.conftest import TEST_TIME_ZONE, private_sandbox
from tests.connectors.stream_oracle import differences, expected_rows, stored_rows
from tests.flows.conftest import DEMO
from tests.stores import store_url

pytestmark = pytest.mark.integration
CRMS = ("salesforce", "hubspot")
NAMES = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
SPEC: dict[str, Any] = {"seed": 43, "deals": 150, "owners": 6, "accounts": 30, "calls_per_deal": 3.0,
                        "time_zone": TEST_TIME_ZONE}
OKR_OBJECTS = {"salesforce": ("OKR_Objective__c", "OKR_Key_Result__c", "OKR_Check_In__c"),
               "hubspot": ("okr_objective", "okr_key_result", "okr_checkin")}
DEAL_STREAM = {"salesforce": "opportunities", "hubspot": "deals"}
ALL_STREAMS = {"salesforce": tuple(SALESFORCE_STREAMS), "hubspot": tuple(HUBSPOT_STREAMS)}
HUGE = "x" * 5_000_000


@dataclass(frozen=True)
class Case:
    """One record served wrong: which, how, and what the error must name besides CRM and stream."""

    crm: str
    stream: str  # the connector's stream: opportunities / deals / calls
    kind: str  # bad_data kind: malformed | value | missing
    field: str | None = None
    value: Any = None
    named: tuple[str, ...] = ()  # words the error must contain ("{id}" is the record's id)


CASES = {
    "salesforce malformed page": Case("salesforce", "opportunities", "malformed", named=("not valid JSON",)),
    "salesforce amount abc": Case("salesforce", "opportunities", "value", "Amount", "abc", ("{id}", "Amount", "'abc'")),
    "salesforce date not a date": Case("salesforce", "opportunities", "value", "CloseDate", "not-a-date",
                                       ("{id}", "CloseDate", "'not-a-date'")),
    "salesforce flag yes": Case("salesforce", "opportunities", "value", "IsWon", "yes", ("{id}", "IsWon", "'yes'")),
    "salesforce missing Id": Case("salesforce", "opportunities", "missing", "Id", named=("without an id", "Id")),
    "salesforce call duration on page 2": Case("salesforce", "calls", "value", "CallDurationInSeconds", "long",
                                               ("{id}", "CallDurationInSeconds")),
    "hubspot malformed page": Case("hubspot", "deals", "malformed", named=("not valid JSON",)),
    "hubspot amount abc": Case("hubspot", "deals", "value", "amount", "abc", ("{id}", "amount", "'abc'")),
    "hubspot date not a date": Case("hubspot", "deals", "value", "closedate", "not-a-date",
                                    ("{id}", "closedate", "'not-a-date'")),
    "hubspot missing id": Case("hubspot", "deals", "missing", "id", named=("{id}", "id is missing")),
    "hubspot call duration on page 2": Case("hubspot", "calls", "value", "hs_call_duration", "long",
                                            ("{id}", "hs_call_duration")),
}


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without waits (bad data is never retried, but the flow's other tasks share them), HubSpot's
    search limit lifted, Salesforce's smallest page (200) so that the calls span several pages."""
    monkeypatch.setattr(hubspot_settings, "SEARCH_RATE_LIMIT", 1000)
    monkeypatch.setattr(salesforce_source, "QUERY_BATCH_SIZE", 200)
    for task in (nightly.extract_stream, nightly.compute_results, nightly.write_back):
        monkeypatch.setattr(task, "retry_delay_seconds", [0])


@pytest.fixture
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "bad-data", **SPEC) as server:
        yield server


def _sync(org: SandboxServer, url: str, crms: tuple[str, ...]) -> SyncReport:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in org.connection_env().items():
            patch.setenv(name, value)
        try:
            return nightly_sync(str(DEMO), sources=list(crms), database_url=url, as_of=org.state.local_clock.date())
        except SyncFailed as failure:
            return failure.report


def _target(org: SandboxServer, case: Case) -> tuple[str, int]:
    """(the CRM's id, its modification time in ms) of the record to serve wrong: a deal, or the call three
    quarters down the stream's order (on its second page of 200)."""
    if case.stream in ("opportunities", "deals"):
        row = org.state.query("SELECT id, modified_ms FROM deals WHERE deleted = 0 ORDER BY id LIMIT 1 OFFSET 40")[0]
        return (sf_id("Opportunity", row["id"]) if case.crm == "salesforce" else hs_id("deals", row["id"])), \
            row["modified_ms"]
    calls = org.state.query("SELECT id, modified_ms FROM calls WHERE deleted = 0")
    if case.crm == "salesforce":  # SystemModstamp is in whole seconds, ties ordered by Id
        calls = sorted(calls, key=lambda row: (row["modified_ms"] // 1000, sf_id("Task", row["id"])))
    else:
        calls = sorted(calls, key=lambda row: (row["modified_ms"], row["id"]))
    assert len(calls) > 250  # two pages at least
    row = calls[len(calls) * 3 // 4]
    return (sf_id("Task", row["id"]) if case.crm == "salesforce" else hs_id("calls", row["id"])), row["modified_ms"]


def _okr_records(org: SandboxServer, crm: str) -> int:
    return sum(len(org.state.custom_records(crm, obj)) for obj in OKR_OBJECTS[crm])


def _watermark(url: str, crm: str, stream: str) -> datetime | None:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            state = session.get(SyncState, (crm, stream))
            mark = state.watermark if state else None
    finally:
        engine.dispose()
    return mark if mark is None or mark.tzinfo else mark.replace(tzinfo=UTC)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_record_served_wrong_stops_its_stream_and_its_crms_writeback_then_is_read_once_fixed(
        prefect_harness: None, org: SandboxServer, tmp_path, case: Case) -> None:
    other = next(crm for crm in CRMS if crm != case.crm)
    record_id, modified_ms = _target(org, case)
    org.serve_bad_data(case.crm, record_id, case.kind, case.field, case.value)  # type: ignore[arg-type]
    url = store_url(tmp_path)
    # The other CRM syncs alongside in the amount cases: it must not be held back
    crms = (case.crm, other) if case.field in ("Amount", "amount") else (case.crm,)
    report = _sync(org, url, crms)
    assert org.bad_data[case.crm].served >= 1, "the sandbox never served the bad record"
    runs = {run.source: run for run in report.runs}
    bad = runs[case.crm]
    assert bad.error is not None, "the run did not notice"
    for words in (NAMES[case.crm], case.stream, *case.named):
        assert words.replace("{id}", record_id) in bad.error, (words, bad.error)
    assert HUGE[:100] not in bad.error and len(bad.error) < 2_000
    # The other streams of the CRM were read; this one stopped before the record
    assert {result.stream for result in bad.streams} == set(ALL_STREAMS[case.crm]) - {case.stream}
    mark = _watermark(url, case.crm, case.stream)
    assert mark is None or mark <= datetime.fromtimestamp(modified_ms / 1000, UTC), (mark, modified_ms)
    # Nothing computed, recorded nor written for that CRM
    assert not bad.results and bad.writeback is None and _okr_records(org, case.crm) == 0
    assert not history.snapshots(make_engine(url), case.crm)
    if other in runs:
        assert runs[other].error is None and runs[other].writeback is not None and runs[other].writeback.created
        assert _okr_records(org, other) > 0

    org.clear_bad_data(case.crm)  # the record is fixed in the CRM
    fixed = _sync(org, url, (case.crm,))
    assert not fixed.problems, fixed.problems
    stored, expected = stored_rows(make_engine(url), case.crm), expected_rows(org.state, case.crm)
    assert not differences(stored, expected), differences(stored, expected)
    assert fixed.runs[0].writeback is not None and _okr_records(org, case.crm) == fixed.runs[0].writeback.created


@pytest.mark.parametrize("crm", CRMS)
def test_a_huge_string_is_cut_with_a_warning_and_an_unknown_picklist_value_kept_raw(
        prefect_harness: None, org: SandboxServer, tmp_path, caplog: pytest.LogCaptureFixture, crm: str) -> None:
    rows = org.state.query("SELECT id FROM deals WHERE deleted = 0 ORDER BY id LIMIT 2 OFFSET 10")
    huge, odd = ((sf_id("Opportunity", row["id"]) if crm == "salesforce" else hs_id("deals", row["id"]))
                 for row in rows)
    org.serve_bad_data(crm, huge, "value", "Name" if crm == "salesforce" else "dealname", HUGE)
    if crm == "salesforce":
        org.serve_bad_data(crm, odd, "value", "StageName", "Negotiation (EMEA pilot)")
    else:
        org.serve_bad_data(crm, odd, "value", "dealstage", "stage-the-portal-does-not-define")
        org.serve_bad_data(crm, odd, "value", "dealtype", "partner_referral")
    url = store_url(tmp_path)
    with caplog.at_level(logging.WARNING, logger="connectors.row_checks"):
        report = _sync(org, url, (crm,))
    assert not report.problems, report.problems
    assert report.runs[0].writeback is not None and _okr_records(org, crm) > 0  # the key results were written
    with Session(make_engine(url)) as session:
        deals = {deal.source_id: deal for deal in session.exec(select(Deal).where(Deal.source == crm))}
    assert deals[huge].name == HUGE[:MAX_TEXT_CHARS]
    assert any(huge in message and "5,000,000 characters" in message for message in caplog.messages), caplog.messages
    if crm == "salesforce":
        assert deals[odd].stage == "Negotiation (EMEA pilot)"
    else:
        assert (deals[odd].stage, deals[odd].deal_type) == ("stage-the-portal-does-not-define", "partner_referral")
    assert len(deals) == SPEC["deals"]


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("amount", float("nan"), "a finite number"), ("amount", "12.5", "a finite number"),
    ("is_won", "false", "true or false"), ("name", 42, "text"), ("close_date", datetime(2026, 11, 1), "a date"),
    ("modified_at", "2026-11-01", "a date and time"), ("source_id", None, "set")])
def test_a_value_that_does_not_fit_its_column_never_reaches_the_store(column: str, value: Any, expected: str) -> None:
    row = {"source": "salesforce", "source_id": "006A", "name": "Acme", "amount": 10.0, "is_won": True,
           "close_date": datetime(2026, 11, 1).date(), "modified_at": datetime(2026, 11, 1, tzinfo=UTC)}
    assert check_row(Deal, row) == (row, [])
    with pytest.raises(BadValue, match=expected):
        check_row(Deal, row | {column: value})
    with pytest.raises(BadRecord, match=f"Salesforce opportunities: record 006A: {column} "):
        map_record("salesforce", "opportunities", Deal, "006A", {}, lambda _fields: row | {column: value})
