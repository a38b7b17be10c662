"""Alerts where people work: nights that take a key result from on track to at risk to achieved leave, in
both CRMs, one task for its owner and one celebration post, read back through the APIs; reruns and a
crash between sending and recording create nothing more, and `plan` shows an alert before it is sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors import alert_ledger
from connectors.sandbox import hubspot_activities, salesforce_activities
from connectors.sandbox.ids import HS_OFFSET, sf_id
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.tick import tick
from connectors.store import make_engine
from flows.nightly import SyncFailed, SyncReport, nightly_sync
from tests.conftest import TEST_TIME_ZONE, private_sandbox
from tests.stores import store_url

CRMS = ("salesforce", "hubspot")
NAME = "OKR alert test deal"  # the deals this test owns: the KR measures only them
TARGET = 100_000
CONFIG = """
time_zone: {zone}
metrics:
  test_revenue: {{entity: deal, measure: sum(amount), where: {{is_won: true, name: "{name}"}}, time: close_date,
                 unit: USD}}
objectives:
  - id: grow
    title: Grow revenue
    period: 2026-Q4
    owner: {owner}
    key_results:
      - {{id: revenue, title: Test revenue, metric: test_revenue, target: {target}}}
  - id: quiet
    title: Same numbers, no alerts
    period: 2026-Q4
    owner: {owner}
    alerts: off
    key_results:
      - {{id: revenue, title: Quiet revenue, metric: test_revenue, target: {target}}}
"""


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "alerts", seed=41, deals=200, owners=5, accounts=30,
                         time_zone=TEST_TIME_ZONE) as server:
        yield server


def _owner(org: SandboxServer) -> tuple[int, str]:
    row = org.state.query("SELECT id, email FROM owners WHERE deleted = 0 AND is_active = 1 ORDER BY id LIMIT 1")[0]
    return row["id"], row["email"]


def _add_deals(org: SandboxServer, owner: int, day: date, count: int = 3) -> list[int]:
    """`count` won deals of this test, closed in the quarter before `day` (fewer than the safety gates weigh)."""
    stamp = org.state.next_modstamp_ms()
    with org.state.transaction() as conn:
        first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM deals").fetchone()[0]
        account = conn.execute("SELECT MIN(id) FROM accounts").fetchone()[0]
        for number in range(first, first + count):
            conn.execute("INSERT INTO deals (id, name, account_id, owner_id, deal_type, stage, amount, probability,"
                         " created_date, close_date, lead_source, created_ms, modified_ms, deleted) VALUES"
                         " (?, ?, ?, ?, 'New Business', 'closed_won', 0, 100, ?, ?, NULL, ?, ?, 0)",
                         (number, NAME, account, owner, (day - timedelta(days=20)).isoformat(),
                          (day - timedelta(days=3)).isoformat(), stamp, stamp))
    return list(range(first, first + count))


def _set_total(org: SandboxServer, deals: list[int], total: float) -> None:
    stamp = org.state.next_modstamp_ms()
    with org.state.transaction() as conn:
        for number in deals:
            conn.execute("UPDATE deals SET amount = ?, modified_ms = ? WHERE id = ?",
                         (total / len(deals), stamp, number))


def _sync(org: SandboxServer, config: Path, url: str, day: date, plan: bool = False) -> SyncReport:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in org.connection_env().items():
            patch.setenv(name, value)
        try:
            return nightly_sync(str(config), sources=list(CRMS), database_url=url, as_of=day, plan=plan)
        except SyncFailed as failure:
            return failure.report


def _status(report: SyncReport, crm: str, objective: str = "grow") -> str:
    run = next(run for run in report.runs if run.source == crm)
    return next(result.status for result in run.results if result.objective_id == objective)


def _created(report: SyncReport) -> dict[str, tuple[int, int]]:
    """Per CRM: (alerts created, pending alerts found in the CRM and only marked sent)."""
    return {run.source: (run.alerts.sent.created, run.alerts.sent.reconciled) if run.alerts and run.alerts.sent
            else (0, 0) for run in report.runs}


def _in_crms(org: SandboxServer) -> dict[str, int]:
    return {"salesforce tasks": len(salesforce_activities.tasks(org.state)),
            "salesforce posts": len(salesforce_activities.feed_items(org.state)),
            "hubspot tasks": len(hubspot_activities.records(org.state, "tasks")),
            "hubspot notes": len(hubspot_activities.records(org.state, "notes"))}


def _salesforce(org: SandboxServer, path: str, **params: Any) -> Any:
    answer = requests.get(f"{org.salesforce_url}/services/data/v62.0/{path}", params=params,
                          headers={"Authorization": f"Bearer {org.token}"}, verify=str(org.ca_path), timeout=30)
    answer.raise_for_status()
    return answer.json()


def _hubspot(org: SandboxServer, path: str, body: dict[str, Any]) -> Any:
    answer = requests.post(f"{org.hubspot_url}{path}", json=body, headers={"Authorization": f"Bearer {org.token}"},
                           verify=str(org.ca_path), timeout=30)
    assert answer.status_code in (200, 207), answer.text
    return answer.json()


def _crash_after_sending(patch: pytest.MonkeyPatch) -> None:
    """The process dies between a CRM's answer and recording it in the alert ledger."""
    def dies(engine: Any, target: str, key: str, record_id: str | None) -> None:
        raise RuntimeError(f"process died after sending alert {key} to {target}")

    patch.setattr(alert_ledger, "mark_sent", dies)


def test_on_track_then_at_risk_then_achieved_alerts_once_per_transition_in_both_crms(
        prefect_harness: None, org: SandboxServer, tmp_path: Path) -> None:
    owner_number, owner_email = _owner(org)
    config = tmp_path / "alerts.yaml"
    config.write_text(CONFIG.format(zone=TEST_TIME_ZONE, name=NAME, owner=owner_email, target=TARGET))
    url = store_url(tmp_path)
    day = org.state.local_clock.date()
    deals = _add_deals(org, owner_number, day)

    _set_total(org, deals, 0.60 * TARGET)  # about 49% of the quarter gone: on track
    first = _sync(org, config, url, day)
    assert not first.problems, first.problems
    assert {_status(first, crm) for crm in CRMS} == {"on_track"}
    assert _in_crms(org) == dict.fromkeys(_in_crms(org), 0)  # a first check-in has no transition

    tick(org.state, days=1, seed=1)
    _set_total(org, deals, 0.45 * TARGET)  # 0.45 of ~0.50 expected: at risk
    planned = _sync(org, config, url, day + timedelta(days=1), plan=True)
    for run in planned.runs:
        assert run.alerts is not None
        assert run.alerts.lines() == [f"would create task for {owner_email}: "
                                      "'Test revenue is at risk: 45,000 USD of 100,000 USD'"]
    assert _in_crms(org) == dict.fromkeys(_in_crms(org), 0)  # a plan sends nothing

    with pytest.MonkeyPatch.context() as patch:  # the tasks are made, the process dies before the ledger
        _crash_after_sending(patch)
        crashed = _sync(org, config, url, day + timedelta(days=1))
    assert all("process died after sending alert" in (run.error or "") for run in crashed.runs)
    assert _in_crms(org)["salesforce tasks"] == 1 and _in_crms(org)["hubspot tasks"] == 1
    engine = make_engine(url)
    assert {entry.state for crm in CRMS for entry in alert_ledger.entries(engine, crm)} == {alert_ledger.PENDING}

    second = _sync(org, config, url, day + timedelta(days=1))  # the rerun finds them and records them
    assert not second.problems, second.problems
    assert {_status(second, crm) for crm in CRMS} == {"at_risk"}
    assert _created(second) == {"salesforce": (0, 1), "hubspot": (0, 1)}
    assert _in_crms(org) == {"salesforce tasks": 1, "salesforce posts": 0, "hubspot tasks": 1, "hubspot notes": 0}

    tick(org.state, days=1, seed=2)
    _set_total(org, deals, 1.05 * TARGET)
    third = _sync(org, config, url, day + timedelta(days=2))
    assert not third.problems, third.problems
    assert {_status(third, crm) for crm in CRMS} == {"achieved"}
    assert {_status(third, crm, "quiet") for crm in CRMS} == {"achieved"}  # the same numbers, alerts off
    assert _created(third) == {"salesforce": (1, 0), "hubspot": (1, 0)}
    again = _sync(org, config, url, day + timedelta(days=2))  # a rerun of the night
    assert _created(again) == {"salesforce": (0, 0), "hubspot": (0, 0)} and not again.problems
    assert _in_crms(org) == {"salesforce tasks": 1, "salesforce posts": 1, "hubspot tasks": 1, "hubspot notes": 1}

    # -- read back through the APIs: each ledger entry is one record, for the owner, on the KR record ------
    for crm in CRMS:
        entries = alert_ledger.entries(engine, crm)
        assert [(entry.kind, entry.state) for entry in sorted(entries, key=lambda e: e.created_at)] == [
            ("task", "sent"), ("post", "sent")]
        assert all(entry.key.startswith(entry.kr_key + "|") and entry.kr_key.startswith("grow.") for entry in entries)
    [sf_task, sf_post] = sorted(alert_ledger.entries(engine, "salesforce"), key=lambda e: e.created_at)
    kr = _salesforce(org, "query", q="SELECT Id, Key__c FROM OKR_Key_Result__c WHERE Key__c LIKE 'grow.%'")
    [kr_id] = [record["Id"] for record in kr["records"]]
    task = _salesforce(org, f"sobjects/Task/OKR_Alert_Key__c/{requests.utils.quote(sf_task.key, safe='')}")
    assert (task["Id"], task["OwnerId"], task["WhatId"]) == (sf_task.record_id, sf_id("User", owner_number), kr_id)
    assert task["Subject"].startswith("Test revenue is at risk") and "per week" in task["Description"]
    posts = _salesforce(org, "query", q=f"SELECT Id, Body FROM FeedItem WHERE ParentId = '{kr_id}'")["records"]
    assert [post["Id"] for post in posts] == [sf_post.record_id] and "Value: 105,000 USD" in posts[0]["Body"]
    assert f"okr-sync alert {sf_post.key}" in posts[0]["Body"]

    [hs_task, hs_note] = sorted(alert_ledger.entries(engine, "hubspot"), key=lambda e: e.created_at)
    for object_type, entry in (("tasks", hs_task), ("notes", hs_note)):
        found = _hubspot(org, f"/crm/v3/objects/{object_type}/search", {
            "filterGroups": [{"filters": [{"propertyName": "okr_alert_key", "operator": "EQ", "value": entry.key}]}],
            "properties": ["okr_alert_key", "hubspot_owner_id", "hs_task_subject", "hs_note_body"]})
        assert [record["id"] for record in found["results"]] == [entry.record_id]
        assert found["results"][0]["properties"]["hubspot_owner_id"] == str(HS_OFFSET["owners"] + owner_number)
        linked = _hubspot(org, f"/crm/v4/associations/{object_type}/okr_key_result/batch/read",
                          {"inputs": [{"id": entry.record_id}]})
        assert len(linked["results"]) == 1 and len(linked["results"][0]["to"]) == 1


def test_a_crash_after_posting_the_celebration_does_not_post_it_twice(
        prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    with private_sandbox(tmp_path_factory, "alerts-crash", seed=42, deals=120, owners=4, accounts=20,
                         time_zone=TEST_TIME_ZONE) as org:
        owner_number, owner_email = _owner(org)
        config = tmp_path_factory.mktemp("alerts-crash") / "alerts.yaml"
        config.write_text(CONFIG.format(zone=TEST_TIME_ZONE, name=NAME, owner=owner_email, target=TARGET))
        url = store_url(tmp_path_factory.mktemp("alerts-crash-store"))
        day = org.state.local_clock.date()
        deals = _add_deals(org, owner_number, day)
        _set_total(org, deals, 0.60 * TARGET)
        assert not _sync(org, config, url, day).problems
        _set_total(org, deals, 1.2 * TARGET)
        with pytest.MonkeyPatch.context() as patch:
            _crash_after_sending(patch)
            _sync(org, config, url, day + timedelta(days=1))
        assert _in_crms(org)["salesforce posts"] == 1 and _in_crms(org)["hubspot notes"] == 1
        rerun = _sync(org, config, url, day + timedelta(days=1))
        assert not rerun.problems, rerun.problems
        assert _created(rerun) == {"salesforce": (0, 1), "hubspot": (0, 1)}
        assert _in_crms(org) == {"salesforce tasks": 0, "salesforce posts": 1, "hubspot tasks": 0, "hubspot notes": 1}
