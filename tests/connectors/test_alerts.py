"""Alert tasks and posts written into both CRM sandboxes through the real clients: once each, whatever
reruns and crashes happen (connectors.alert_ledger, connectors.salesforce.alerts, connectors.hubspot.alerts)."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine

from connectors import alert_ledger
from connectors.hubspot import HubSpotSource
from connectors.hubspot.alerts import HubSpotAlerts, property_problems, setup_properties
from connectors.salesforce import SalesforceSource
from connectors.salesforce.alerts import SalesforceAlerts, setup_problems
from connectors.sandbox import hubspot_activities, salesforce_activities
from connectors.sandbox.ids import HS_OFFSET, sf_id
from connectors.sandbox.server import SandboxServer

CRMS = ("salesforce", "hubspot")


@pytest.fixture(params=CRMS)
def crm(request: pytest.FixtureRequest, sandbox: SandboxServer) -> Iterator[tuple[str, Any, Any]]:
    """(crm, source, alert sender) over the shared sandbox."""
    if request.param == "salesforce":
        with SalesforceSource.from_env(sandbox.connection_env()) as source:
            yield "salesforce", source, SalesforceAlerts(source)
    else:
        with HubSpotSource.from_env(sandbox.connection_env()) as source:
            yield "hubspot", source, HubSpotAlerts.of(source)
    gc.collect()


def _kr_row(key: str) -> dict[str, Any]:
    return {"key": key, "objective_id": "grow", "objective_title": "Grow revenue", "kr_id": "revenue",
            "title": "Revenue", "group": None, "metric": "closed_won_revenue", "period": "2026-Q4",
            "period_start": "2026-10-01", "period_end": "2026-12-31", "kr_type": "increase", "value": 40_000.0,
            "baseline": 0.0, "target": 100_000.0, "progress": 0.4, "score": 0.4, "expected_progress": 0.5,
            "status": "at_risk", "unit": "USD"}


def _alert(kr_key: str, transition: str, owner_id: str | None) -> dict[str, Any]:
    key = f"{kr_key}||{transition}|2026-12-31|2026-11-16"
    return {"key": key, "kr_key": kr_key, "kind": "post" if transition == "achieved" else "task",
            "transition": transition, "day": "2026-11-16", "owner": "rep@example.com", "owner_id": owner_id,
            "subject": f"Revenue {transition}", "body": f"Revenue: 40,000 of 100,000\nokr-sync alert {key}"}


def _owner_id(crm: str, sandbox: SandboxServer) -> str:
    number = sandbox.state.query("SELECT id FROM owners WHERE deleted = 0 AND is_active = 1 ORDER BY id LIMIT 1")[0][0]
    return sf_id("User", number) if crm == "salesforce" else str(HS_OFFSET["owners"] + number)


def _made(crm: str, sandbox: SandboxServer, kr_key: str) -> list[dict[str, Any]]:
    """The tasks and posts in the CRM about `kr_key` (by the key their alert carries)."""
    if crm == "salesforce":
        tasks = [task for task in salesforce_activities.tasks(sandbox.state)
                 if task["OKR_Alert_Key__c"].startswith(kr_key)]
        posts = [post for post in salesforce_activities.feed_items(sandbox.state)
                 if f"alert {kr_key}|" in post["Body"]]
        return tasks + posts
    return [record for name in ("tasks", "notes") for record in hubspot_activities.records(sandbox.state, name)
            if record["okr_alert_key"].startswith(kr_key)]


def _setup(crm: str, source: Any, store: Engine, sandbox: SandboxServer) -> tuple[str, list[dict[str, Any]]]:
    kr_key = f"test-alerts-{uuid.uuid4().hex[:10]}"
    written = source.write_key_results(store, [_kr_row(kr_key)])
    assert written.created == 1
    owner = _owner_id(crm, sandbox)
    return kr_key, [_alert(kr_key, "at_risk", owner), _alert(kr_key, "achieved", owner)]


def test_a_queued_alert_is_created_once_then_never_again(crm: tuple[str, Any, Any], sandbox: SandboxServer,
                                                         store: Engine) -> None:
    name, source, sender = crm
    kr_key, rows = _setup(name, source, store, sandbox)
    assert alert_ledger.queue(store, name, rows) == 2
    assert alert_ledger.queue(store, name, rows) == 0  # a rerun finds the same transitions
    first = sender.send(store)
    assert (first.created, first.reconciled, first.failed, first.skipped) == (2, 0, 0, 0), first.errors
    assert {entry.state for entry in alert_ledger.entries(store, name)} == {"sent"}
    again = sender.send(store)
    assert (again.created, again.api_calls) == (0, 0)
    made = _made(name, sandbox, kr_key)
    assert len(made) == 2
    ids = {entry.key: entry.record_id for entry in alert_ledger.entries(store, name)}
    if name == "salesforce":
        [task] = [record for record in made if "OKR_Alert_Key__c" in record]
        assert task["Id"] == ids[rows[0]["key"]] and task["OwnerId"] == rows[0]["owner_id"]
        assert task["Status"] == "Not Started" and task["ActivityDate"] == "2026-11-16"
    else:
        [task] = [record for record in made if "hs_task_subject" in record]
        assert task["id"] == ids[rows[0]["key"]] and task["hubspot_owner_id"] == rows[0]["owner_id"]
        assert task["hs_task_status"] == "NOT_STARTED" and task["hs_timestamp"].startswith("2026-11-16")


def test_an_alert_sent_before_a_crash_is_found_not_sent_again(crm: tuple[str, Any, Any], sandbox: SandboxServer,
                                                             store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    name, source, sender = crm
    kr_key, rows = _setup(name, source, store, sandbox)
    alert_ledger.queue(store, name, rows)
    with monkeypatch.context() as patch:
        patch.setattr(alert_ledger, "mark_sent", _dies)
        with pytest.raises(RuntimeError, match="process died"):
            sender.send(store)
    assert [entry.state for entry in alert_ledger.entries(store, name)].count("pending") == 1
    assert len(_made(name, sandbox, kr_key)) == 1
    rerun = sender.send(store)
    assert (rerun.created, rerun.reconciled, rerun.failed) == (1, 1, 0), rerun.errors
    assert len(_made(name, sandbox, kr_key)) == 2


def test_a_pending_alert_the_crm_never_got_is_created(crm: tuple[str, Any, Any], sandbox: SandboxServer,
                                                      store: Engine) -> None:
    name, source, sender = crm
    kr_key, rows = _setup(name, source, store, sandbox)
    alert_ledger.queue(store, name, rows)
    for row in rows:  # the process died after recording them pending, before any request
        alert_ledger.mark_pending(store, name, row["key"])
    result = sender.send(store)
    assert (result.created, result.reconciled) == (2, 0), result.errors
    assert len(_made(name, sandbox, kr_key)) == 2


def test_an_alert_whose_key_result_is_not_in_the_crm_waits_for_it(crm: tuple[str, Any, Any], sandbox: SandboxServer,
                                                                  store: Engine) -> None:
    name, _source, sender = crm
    kr_key = f"test-alerts-missing-{uuid.uuid4().hex[:10]}"
    alert_ledger.queue(store, name, [_alert(kr_key, "off_track", None)])
    result = sender.send(store)
    assert (result.created, result.skipped) == (0, 1) and "not in" in result.errors[0]
    assert [entry.state for entry in alert_ledger.entries(store, name)] == ["queued"]


def test_a_refused_task_is_reported_and_tried_again(sandbox: SandboxServer, store: Engine) -> None:
    with SalesforceSource.from_env(sandbox.connection_env()) as source:
        kr_key, rows = _setup("salesforce", source, store, sandbox)
        bad = {**rows[0], "owner_id": sf_id("User", 99_999)}  # no such user
        alert_ledger.queue(store, "salesforce", [bad])
        refused = SalesforceAlerts(source).send(store)
        assert (refused.created, refused.failed) == (0, 1) and "INVALID_CROSS_REFERENCE_KEY" in refused.errors[0]
        assert not _made("salesforce", sandbox, kr_key)
        assert SalesforceAlerts(source).send(store).failed == 1  # pending: looked up (absent), sent again


def test_setup_names_what_alerts_need(sandbox: SandboxServer) -> None:
    assert setup_problems({"fields": [{"name": "Subject", "type": "string"}]}) == [
        "Task.OKR_Alert_Key__c is missing: Text(255), External ID, Unique (on Activity; deploy "
        "connectors/salesforce/metadata)"]
    with SalesforceSource.from_env(sandbox.connection_env()) as source:
        assert setup_problems(source._describe_okr_object("Task", fresh=True)) == []
    with HubSpotSource.from_env(sandbox.connection_env()) as source:
        assert property_problems(source._call, source._api) == []
        assert setup_properties(source._call, source._api) == []  # present: nothing to do


def test_the_sandbox_serves_a_task_by_its_alert_key(sandbox: SandboxServer, store: Engine) -> None:
    with SalesforceSource.from_env(sandbox.connection_env()) as source:
        _kr_key, rows = _setup("salesforce", source, store, sandbox)
        alert_ledger.queue(store, "salesforce", rows[:1])
        assert SalesforceAlerts(source).send(store).created == 1
    key = requests.utils.quote(rows[0]["key"], safe="")
    answer = requests.get(f"{sandbox.salesforce_url}/services/data/v62.0/sobjects/Task/OKR_Alert_Key__c/{key}",
                          headers={"Authorization": f"Bearer {sandbox.token}"}, verify=str(sandbox.ca_path), timeout=30)
    assert answer.status_code == 200 and answer.json()["OKR_Alert_Key__c"] == rows[0]["key"]
    missing = requests.get(f"{sandbox.salesforce_url}/services/data/v62.0/sobjects/Task/OKR_Alert_Key__c/nope",
                           headers={"Authorization": f"Bearer {sandbox.token}"}, verify=str(sandbox.ca_path),
                           timeout=30)
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"


def _dies(engine: Any, target: str, key: str, record_id: str | None) -> None:
    raise RuntimeError(f"process died after sending {key} to {target}")


def test_the_alert_key_field_is_shipped_as_a_unique_external_id_and_the_kr_takes_tasks_and_posts() -> None:
    from xml.etree import ElementTree

    metadata = Path(__file__).resolve().parents[2] / "connectors" / "salesforce" / "metadata" / "objects"
    namespace = {"md": "http://soap.sforce.com/2006/04/metadata"}
    field = ElementTree.parse(metadata / "Activity" / "fields" / "OKR_Alert_Key__c.field-meta.xml").getroot()
    facts = {tag: field.findtext(f"md:{tag}", namespaces=namespace) for tag in
             ("fullName", "type", "length", "externalId", "unique")}
    assert facts == {"fullName": "OKR_Alert_Key__c", "type": "Text", "length": "255", "externalId": "true",
                     "unique": "true"}
    kr = ElementTree.parse(metadata / "OKR_Key_Result__c" / "OKR_Key_Result__c.object-meta.xml").getroot()
    assert kr.findtext("md:enableActivities", namespaces=namespace) == "true"
    assert kr.findtext("md:enableFeeds", namespaces=namespace) == "true"
