"""Nightly runs with simulated sales days between them: check-ins in both CRMs equal the store's
history, and a run whose numbers jump is stopped by the safety gates until it is forced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from connectors.sandbox.server import SandboxServer
from connectors.sandbox.tick import tick
from connectors.store import make_engine
from flows.nightly import SyncFailed, SyncReport, nightly_sync
from okr_mapping import history
from tests.conftest import TEST_TIME_ZONE, private_sandbox
from tests.flows.conftest import DEMO
from tests.stores import store_url

CRMS = ("salesforce", "hubspot")
CHECKIN = {"salesforce": ("OKR_Check_In__c", "Value__c"), "hubspot": ("okr_checkin", "value")}
KEY_RESULT = {"salesforce": ("OKR_Key_Result__c", "Current_Value__c"), "hubspot": ("okr_key_result", "current_value")}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "history", seed=31, deals=500, owners=8, accounts=60,
                         time_zone=TEST_TIME_ZONE) as server:
        yield server


def _sync(org: SandboxServer, url: str, day: date, sources: tuple[str, ...] = CRMS, force: bool = False
          ) -> SyncReport:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in org.connection_env().items():
            patch.setenv(name, value)
        try:
            return nightly_sync(str(DEMO), sources=list(sources), database_url=url, as_of=day, force=force)
        except SyncFailed as failure:
            return failure.report


def _records(org: SandboxServer, crm: str, kind: dict[str, tuple[str, str]]) -> dict[str, float]:
    obj, field = kind[crm]
    return {record["unique_key"]: float(record["fields"][field]) for record in org.state.custom_records(crm, obj)}


def test_check_ins_in_both_crms_equal_the_history_after_days_of_sales(prefect_harness: None, org: SandboxServer,
                                                                         tmp_path) -> None:
    url = store_url(tmp_path)
    start = org.state.local_clock.date()
    for offset in range(3):
        report = _sync(org, url, start + timedelta(days=offset))
        assert not report.problems, report.problems
        tick(org.state, days=1, seed=offset)
    engine = make_engine(url)
    for crm in CRMS:
        snapshots = history.snapshots(engine, crm)
        assert {s.as_of for s in snapshots} == {start + timedelta(days=n) for n in range(3)}
        expected = {f"{s.key}@{s.as_of.isoformat()}": s.value for s in snapshots}
        assert _records(org, crm, CHECKIN) == pytest.approx(expected), crm
        latest = {s.key: s.value for s in snapshots if s.as_of == start + timedelta(days=2)}
        assert _records(org, crm, KEY_RESULT) == pytest.approx(latest), crm
    assert any(s.forecast is not None for s in history.snapshots(engine, "salesforce"))


def test_numbers_that_collapse_stop_the_writeback_until_forced(prefect_harness: None,
                                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    with private_sandbox(tmp_path_factory, "guards", seed=32, deals=300, owners=6, accounts=40,
                         time_zone=TEST_TIME_ZONE) as org:
        url = store_url(tmp_path_factory.mktemp('guards'))
        day = org.state.local_clock.date()
        assert not _sync(org, url, day, ("salesforce",)).problems
        written = _records(org, "salesforce", KEY_RESULT)
        stamp = org.state.next_modstamp_ms()
        with org.state.transaction() as conn:  # a broken integration deletes every won deal
            conn.execute("UPDATE deals SET deleted = 1, modified_ms = ? WHERE stage = 'closed_won'", (stamp,))
        stopped = _sync(org, url, day + timedelta(days=1), ("salesforce",))
        [run] = stopped.runs
        assert run.blocked and run.writeback is None
        assert any("writeback stopped" in problem and "--force" in problem for problem in stopped.problems)
        assert _records(org, "salesforce", KEY_RESULT) == written  # nothing was written
        engine = make_engine(url)
        assert {s.as_of for s in history.snapshots(engine, "salesforce")} == {day}  # nor recorded
        forced = _sync(org, url, day + timedelta(days=1), ("salesforce",), force=True)
        assert not forced.problems and forced.runs[0].writeback is not None
        values = {result.key: result.value for result in forced.runs[0].results}
        assert _records(org, "salesforce", KEY_RESULT) == pytest.approx(values)  # reps without deals now read 0
        assert any(result.group and result.value == 0 for result in forced.runs[0].results)
        assert {s.as_of for s in history.snapshots(engine, "salesforce")} == {day, day + timedelta(days=1)}


@pytest.mark.parametrize(("crm", "obj"), [("salesforce", "OKR_Key_Result__c"), ("hubspot", "okr_key_result")])
def test_a_refused_record_is_reported_and_written_once_the_cause_is_gone(
        prefect_harness: None, org: SandboxServer, tmp_path, crm: str, obj: str) -> None:
    url = store_url(tmp_path)
    day = org.state.local_clock.date()
    org.reject(crm, obj, "grow-revenue.revenue.*", "validation", "Target must be approved by finance")
    try:
        refused = _sync(org, url, day, (crm,))
    finally:
        org.clear_rejections(crm)
    [run] = refused.runs
    key = next(r.key for r in run.results if r.kr_id == "revenue")
    refused_krs = [r for r in run.writeback.rejected if r.object == "key_result"]
    assert [r.key for r in refused_krs] == [key] and "Target must be approved by finance" in refused_krs[0].message
    # besides it, at most its check-in: its lookup (Salesforce) or association (HubSpot) has no key result yet
    assert run.writeback.failed - len(refused_krs) <= 1 and len(run.writeback.rejected) <= 2
    assert run.writeback.created + run.writeback.updated >= len(run.objectives) + len(run.results) - 1
    assert any("rejected (retried next run)" in problem for problem in refused.problems)
    written = _records(org, crm, KEY_RESULT)
    assert {r.key: written[r.key] for r in run.results if r.key != key} == pytest.approx(
        {r.key: r.value for r in run.results if r.key != key})
    again = _sync(org, url, day, (crm,))
    assert not again.problems and again.runs[0].writeback.created + again.runs[0].writeback.updated >= 1
    assert _records(org, crm, KEY_RESULT)[key] == pytest.approx(next(r.value for r in again.runs[0].results
                                                                    if r.key == key))


def test_a_check_in_refused_one_night_is_sent_the_next_and_a_past_day_only_adds_check_ins(
        prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    with private_sandbox(tmp_path_factory, "resend", seed=33, deals=200, owners=5, accounts=30,
                         time_zone=TEST_TIME_ZONE) as org:
        url = store_url(tmp_path_factory.mktemp('resend'))
        day = org.state.local_clock.date()
        org.reject("salesforce", "OKR_Check_In__c", f"*@{day.isoformat()}", "row_lock",
                   "unable to obtain exclusive access to this record")
        try:
            first = _sync(org, url, day, ("salesforce",))
        finally:
            org.clear_rejections("salesforce")
        assert {r.object for r in first.runs[0].writeback.rejected} == {"checkin"}
        assert len(first.runs[0].writeback.rejected) == len(first.runs[0].results)
        assert not _records(org, "salesforce", CHECKIN)
        tick(org.state, days=1, seed=5)
        second = _sync(org, url, day + timedelta(days=1), ("salesforce",))
        assert not second.problems, second.problems
        engine = make_engine(url)
        expected = {f"{s.key}@{s.as_of.isoformat()}": s.value for s in history.snapshots(engine, "salesforce")}
        assert {s.as_of for s in history.snapshots(engine, "salesforce")} == {day, day + timedelta(days=1)}
        assert _records(org, "salesforce", CHECKIN) == pytest.approx(expected)  # both nights' check-ins

        objectives = {"salesforce": ("OKR_Objective__c", "Score__c")}
        shown = (_records(org, "salesforce", KEY_RESULT), _records(org, "salesforce", objectives))
        past = _sync(org, url, day, ("salesforce",))  # the first day recomputed, after the second
        assert not past.problems and past.runs[0].writeback is not None
        assert (_records(org, "salesforce", KEY_RESULT), _records(org, "salesforce", objectives)) == shown
        recomputed = {f"{s.key}@{s.as_of.isoformat()}": s.value for s in history.snapshots(engine, "salesforce")}
        assert _records(org, "salesforce", CHECKIN) == pytest.approx(recomputed)  # its check-ins follow
