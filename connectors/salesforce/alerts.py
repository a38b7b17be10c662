"""Alerts in Salesforce: a Task for the KR's owner, a Chatter post (FeedItem) on the KR record.

A task (status turned at_risk / off_track) is a Task assigned to the owner (OwnerId; the
integration user when okr-sync knows no CRM user for the owner), related to the key result's
OKR_Key_Result__c record (WhatId: the object ships with activities and feeds enabled), due on the
day of the transition. A celebration (achieved) is a FeedItem (TextPost) on that record.

Exactly once (connectors.alert_ledger holds the protocol: `pending` before the request, `sent`
after). What makes a `pending` alert safe to finish after a crash differs per object:

- Task: the custom External ID `OKR_Alert_Key__c` (Unique, on Activity, shipped in
  connectors/salesforce/metadata) holds the alert key, and the task is written with an upsert by
  it (`PATCH sobjects/Task/OKR_Alert_Key__c/<key>`), so even a blind repeat cannot make a second
  task. A pending alert is first read by that key (`GET` the same path): a task already there is
  only marked sent, never written again (the owner may have closed it meanwhile).
- FeedItem: it takes no custom field and no upsert. Its body ends with the line
  `okr-sync alert <key>`; a pending post is looked for among the KR record's feed items
  (`SELECT Id, Body FROM FeedItem WHERE ParentId = ...`, Body cannot be filtered in SOQL, so the
  marker is matched here) and posted only when none carries it.

An alert whose key result has no record in the org yet (the writeback refused it) is skipped and
tried again next run; a refused alert (an inactive owner, say) stays pending and is retried too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from simple_salesforce import format_soql
from simple_salesforce.exceptions import SalesforceError, SalesforceResourceNotFound
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors import alert_ledger
from connectors.alert_ledger import AlertResult
from connectors.errors import ConnectorError
from connectors.okr_records import ledger_target
from connectors.store import WritebackLedger

if TYPE_CHECKING:
    from connectors.salesforce import SalesforceSource

SOURCE = "salesforce"
ALERT_KEY_FIELD = "OKR_Alert_Key__c"
TASK_PRIORITY = {"off_track": "High", "at_risk": "Normal"}
SUBJECT_LENGTH = 255  # Task.Subject
BODY_LENGTH = 10_000  # FeedItem.Body
DESCRIPTION_LENGTH = 32_000  # Task.Description


def marker(key: str) -> str:
    return f"okr-sync alert {key}"


def kr_record_ids(engine: Engine) -> dict[str, str]:
    """KR key -> its OKR_Key_Result__c id, from the writeback ledger (confirmed writes only)."""
    with Session(engine) as session:
        query = select(WritebackLedger.key, WritebackLedger.record_id).where(
            WritebackLedger.target == ledger_target(SOURCE, "key_result"))
        return {key: record_id for key, record_id in session.exec(query) if record_id}


class SalesforceAlerts:
    """Sends alerts through one SalesforceSource (its client, counted and retried call layer)."""

    def __init__(self, source: SalesforceSource) -> None:
        self.source = source

    def send(self, engine: Engine) -> AlertResult:
        """Send every alert queued for Salesforce (connectors.alert_ledger), this run's and older ones."""
        result = AlertResult(target=SOURCE)
        before = self.source.api_calls
        waiting = alert_ledger.outstanding(engine, SOURCE)
        records = kr_record_ids(engine) if waiting else {}
        try:
            for entry in waiting:
                row, key = entry.payload, entry.key
                kr_id = records.get(entry.kr_key)
                if kr_id is None:
                    result.skipped += 1
                    result.errors.append(f"alert {key}: key result {entry.kr_key} is not in Salesforce yet "
                                         "(tried again next run)")
                    continue
                try:
                    found = self._find(row, kr_id) if entry.state == alert_ledger.PENDING else None
                    if found is None:
                        alert_ledger.mark_pending(engine, SOURCE, key)
                        record_id = self._create(row, kr_id)
                except ConnectorError as error:
                    result.failed += 1
                    result.errors.append(f"alert {key}: {error}")
                    continue
                alert_ledger.mark_sent(engine, SOURCE, key, found or record_id)
                if found is None:
                    result.created += 1
                else:
                    result.reconciled += 1
        finally:
            result.api_calls = self.source.api_calls - before
        return result

    # -- one alert -------------------------------------------------------------------------------
    def _create(self, row: Mapping[str, Any], kr_id: str) -> str | None:
        if row["kind"] == "post":
            client, attempts = self.source.client, [0]

            def post_once(path: str, **options: Any) -> Any:
                """A retried post looks first: a 5xx or a lost answer may hide a post that was made."""
                attempts[0] += 1
                if attempts[0] > 1:
                    soql = format_soql("SELECT Id, Body FROM FeedItem WHERE ParentId = {}", kr_id)
                    found = _with_marker(client.restful("query", params={"q": soql}), str(row["key"]))
                    if found is not None:
                        return {"id": found, "success": True, "errors": []}
                return client.restful(path, **options)

            answer = self._request("posting a FeedItem", "sobjects/FeedItem", "POST", {
                "ParentId": kr_id, "Type": "TextPost", "Body": str(row["body"])[:BODY_LENGTH]}, call=post_once)
        else:
            fields = {"Subject": str(row["subject"])[:SUBJECT_LENGTH],
                      "Description": str(row["body"])[:DESCRIPTION_LENGTH], "WhatId": kr_id,
                      "ActivityDate": row["day"], "Status": "Not Started",
                      "Priority": TASK_PRIORITY.get(str(row["transition"]), "Normal")}
            if row.get("owner_id"):
                fields["OwnerId"] = row["owner_id"]
            answer = self._request("upserting a Task", _task_path(str(row["key"])), "PATCH", fields)
        if isinstance(answer, Mapping) and answer.get("success") is False:
            raise ConnectorError("; ".join(str(error.get("message")) for error in answer.get("errors") or []))
        return str(answer["id"]) if isinstance(answer, Mapping) and answer.get("id") else None

    def _find(self, row: Mapping[str, Any], kr_id: str) -> str | None:
        """The id of the alert's record when the org has it already (a pending alert), else None."""
        if row["kind"] == "post":
            soql = format_soql("SELECT Id, Body FROM FeedItem WHERE ParentId = {}", kr_id)
            answer = self._request("reading the KR record's feed", "query", "GET", params={"q": soql})
            return _with_marker(answer, str(row["key"]))
        try:
            answer = self._request("reading a Task by its alert key", _task_path(str(row["key"])), "GET",
                                   missing_ok=True)
        except _Missing:
            return None
        return str(answer["Id"]) if isinstance(answer, Mapping) and answer.get("Id") else None

    def _request(self, operation: str, path: str, method: str, body: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, missing_ok: bool = False,
                 call: Any = None) -> Any:
        source = self.source
        options: dict[str, Any] = {"method": method}
        if body is not None:
            options["json"] = dict(body)
        if params is not None:
            options["params"] = dict(params)
        try:
            return source._call(operation, call or source.client.restful, path, **options)
        except SalesforceResourceNotFound:
            if missing_ok:
                raise _Missing from None
            raise source._failure(SalesforceResourceNotFound("", 404, path, b""), operation) from None
        except SalesforceError as error:
            if error.status in (401, 403) or error.status >= 500:
                raise source._failure(error, operation) from None  # not the alert's fault: stop here
            raise ConnectorError(f"Salesforce refused {operation}: {_messages(error)}") from None
        except requests.RequestException as error:
            raise source._transport_failure(error, operation) from None


def _with_marker(answer: Any, key: str) -> str | None:
    """The id of the feed item (of a query answer) whose body carries the alert's marker."""
    wanted = marker(key)
    return next((str(record["Id"]) for record in (answer or {}).get("records", [])
                 if wanted in str(record.get("Body") or "")), None)


class _Missing(Exception):
    """A 404 where absence is an answer (the alert is not in the org)."""


def _task_path(key: str) -> str:
    return f"sobjects/Task/{ALERT_KEY_FIELD}/{quote(key, safe='')}"


def _messages(error: SalesforceError) -> str:
    content = error.content
    if isinstance(content, list):
        return "; ".join(f"{item.get('errorCode')}: {item.get('message')}" for item in content
                         if isinstance(item, Mapping)) or str(content)
    return str(content)[:500]


def setup_problems(describe_task: Mapping[str, Any] | None) -> list[str]:
    """What the org's Task lacks for alerts (its describe; None: not readable)."""
    if describe_task is None:
        return ["Task cannot be described: give the integration user access to Tasks"]
    field = next((each for each in describe_task.get("fields") or [] if each.get("name") == ALERT_KEY_FIELD), None)
    if field is None:
        return [f"Task.{ALERT_KEY_FIELD} is missing: Text(255), External ID, Unique (on Activity; deploy "
                "connectors/salesforce/metadata)"]
    if not (field.get("externalId") and field.get("unique")) or field.get("type") != "string":
        return [f"Task.{ALERT_KEY_FIELD} must be a Text(255) External ID marked Unique"]
    return []
