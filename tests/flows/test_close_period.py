"""`close-period` on a sandbox org: final scores written back marked final, which later runs do not change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from connectors.sandbox.server import SandboxServer
from connectors.store import make_engine
from flows.close_period import CloseReport, PeriodNotEnded, close_period, print_report
from flows.nightly import SyncFailed, SyncReport, nightly_sync
from okr_mapping import history, load_config, period_close
from tests.conftest import TEST_TIME_ZONE, private_sandbox
from tests.flows.conftest import DEMO, okr_sync
from tests.stores import store_url

CRMS = ("salesforce", "hubspot")
Q3_END = date(2026, 9, 30)
KEY_RESULT = {"salesforce": ("OKR_Key_Result__c", "Current_Value__c", "Score__c", "Final__c"),
              "hubspot": ("okr_key_result", "current_value", "score", "okr_final")}
CHECKIN = {"salesforce": ("OKR_Check_In__c", "Value__c", "Score__c", "Final__c"),
           "hubspot": ("okr_checkin", "value", "score", "okr_final")}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "close", seed=41, deals=400, owners=6, accounts=40,
                         time_zone=TEST_TIME_ZONE) as server:
        yield server


def _sync(org: SandboxServer, url: str, day: date, force: bool = False) -> SyncReport:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in org.connection_env().items():
            patch.setenv(name, value)
        try:
            return nightly_sync(str(DEMO), sources=list(CRMS), database_url=url, as_of=day, force=force)
        except SyncFailed as failure:
            return failure.report


def _records(org: SandboxServer, crm: str, kind: dict, period: str) -> dict[str, tuple[float, float, bool]]:
    """Key -> (value, score, final) of the CRM's records of one period."""
    obj, value, score, final = kind[crm]
    return {record["unique_key"]: (float(record["fields"][value]), float(record["fields"][score]),
                                   record["fields"].get(final) in (True, 1, "true"))
            for record in org.state.custom_records(crm, obj) if f".{period}" in record["unique_key"]}


def _close(org: SandboxServer, url: str, crm: str, **options: bool) -> CloseReport:
    return close_period(make_engine(url), load_config(DEMO), DEMO, "2026-Q3", crm, today=org.state.local_clock.date(),
                        env=org.connection_env(), **options)


def test_close_period_writes_final_scores_that_later_runs_do_not_change(
        prefect_harness: None, org: SandboxServer, tmp_path, capsys: pytest.CaptureFixture) -> None:
    url = store_url(tmp_path)
    assert not _sync(org, url, Q3_END).problems
    engine = make_engine(url)
    for crm in CRMS:
        report = _close(org, url, crm)
        assert not report.already_closed and report.finals and not report.writeback.failed
        written = _records(org, crm, KEY_RESULT, "2026-Q3")
        finals = {row.key: row.value for row in report.finals}
        assert {key: value for key, (value, _score, _final) in written.items()} == pytest.approx(finals), crm
        assert {key: score for key, (_value, score, _final) in written.items()} == pytest.approx(
            {row.key: row.score for row in report.finals}), crm
        assert all(final for _value, _score, final in written.values()), crm
        checkins = _records(org, crm, CHECKIN, "2026-Q3")
        assert {key.split("@")[0] for key, (*_, final) in checkins.items()
                if final and key.endswith(Q3_END.isoformat())} == set(finals), crm
        assert sum(team.count for team in report.teams) == len(finals)
        again = _close(org, url, crm)  # idempotent: nothing frozen anew, nothing sent
        assert again.already_closed and again.writeback.created + again.writeback.updated == 0
        assert {row.key: (row.value, row.score, row.closed_at) for row in again.finals} == \
            {row.key: (row.value, row.score, row.closed_at) for row in report.finals}
        print_report(report)
        print_report(again)
        printed = capsys.readouterr().out
        assert f"2026-Q3 ({crm}) closed: {len(finals)} key result(s) frozen" in printed
        assert f"2026-Q3 ({crm}) is already closed" in printed and "sweet spot" in printed
    before = {crm: _records(org, crm, KEY_RESULT, "2026-Q3") for crm in CRMS}
    stamp = org.state.next_modstamp_ms()
    with org.state.transaction() as conn:  # late changes: every won deal of the quarter is deleted
        conn.execute("UPDATE deals SET deleted = 1, modified_ms = ? WHERE stage = 'closed_won' AND "
                     "close_date BETWEEN '2026-07-01' AND '2026-09-30'", (stamp,))
    rerun = _sync(org, url, Q3_END)  # the closed quarter's own day, recomputed from the changed data
    assert not rerun.problems, rerun.problems
    assert all(result.final for run in rerun.runs for result in run.results)
    next_quarter = _sync(org, url, Q3_END + timedelta(days=3), force=True)
    assert all(run.error is None for run in next_quarter.runs)
    for crm in CRMS:
        assert _records(org, crm, KEY_RESULT, "2026-Q3") == before[crm], crm
        finals = {row.key: row.value for row in period_close.closed(engine, crm, "2026-Q3")}
        stored = {s.key: s.value for s in history.snapshots(engine, crm) if s.as_of == Q3_END}
        assert stored == pytest.approx(finals), crm
    with engine.connect() as conn:
        assert not conn.exec_driver_sql("SELECT count(*) FROM kr_correction").scalar()


def test_an_open_period_is_refused_unless_forced(prefect_harness: None, org: SandboxServer, tmp_path) -> None:
    url = store_url(tmp_path)
    assert not _sync(org, url, org.state.local_clock.date()).problems
    config = load_config(DEMO)
    with pytest.raises(PeriodNotEnded, match="2026-Q4 has not ended"):
        close_period(make_engine(url), config, DEMO, "2026-Q4", "salesforce", today=date(2026, 11, 15), write=False)
    assert not period_close.closed(make_engine(url), "salesforce")
    forced = close_period(make_engine(url), config, DEMO, "2026-Q4", "salesforce", today=date(2026, 11, 15),
                          write=False, force=True)
    assert forced.finals and not forced.already_closed


def test_the_command_refuses_an_open_period_with_exit_code_2(cli_env: dict[str, str], tmp_path) -> None:
    done = okr_sync(cli_env, "close-period", "2099-Q1", "--config", str(DEMO),
                    "--database-url", f"sqlite:///{tmp_path / 'store.db'}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "2099-Q1 has not ended" in done.stderr and "--force" in done.stderr
