"""A run's problems and its artifact name alerts that could not be sent, as they name rejected records."""

from __future__ import annotations

from datetime import date

from connectors.alert_ledger import AlertResult
from flows.alerts import AlertsOutcome
from flows.nightly import SourceRun, SyncReport
from flows.render import markdown_report


def _report(sent: AlertResult) -> SyncReport:
    return SyncReport("config/okrs.yaml", date(2026, 11, 27),
                      runs=[SourceRun("hubspot", alerts=AlertsOutcome(sent=sent))])


def test_alerts_that_failed_are_a_problem_of_the_run_and_listed_in_its_artifact() -> None:
    report = _report(AlertResult("hubspot", created=2, failed=1, errors=["task for grow.revenue: 400 owner unknown"]))
    assert report.problems == ["hubspot: 1 alert(s) not sent (sent next run)"]
    text = markdown_report(report)
    assert "Alerts: 2 created, 0 recovered after a crash, 1 failed (sent next run)" in text
    assert "- not sent: task for grow.revenue: 400 owner unknown" in text


def test_alerts_all_sent_are_no_problem_and_a_quiet_night_says_nothing_of_them() -> None:
    assert _report(AlertResult("hubspot", created=3)).problems == []
    assert "Alerts: 3 created" in markdown_report(_report(AlertResult("hubspot", created=3)))
    assert "Alerts:" not in markdown_report(_report(AlertResult("hubspot")))
