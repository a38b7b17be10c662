"""Alerts in HubSpot: a task for the KR's owner, a note on the KR record, both associated with it.

A task (status turned at_risk / off_track): hs_task_subject, hs_task_body, hs_task_status
NOT_STARTED, hs_task_priority (HIGH when off track), hs_timestamp (due: the day of the transition),
hubspot_owner_id (the owner's HubSpot owner id, when okr-sync knows one). A celebration (achieved):
a note, hs_note_body and hs_timestamp. Each is associated with the key result's okr_key_result
record (v4 default association), so it shows on the record's timeline.

Exactly once (connectors.alert_ledger: `pending` before the request, `sent` after): both carry the
alert key in the `okr_alert_key` property (created on tasks and notes by `okr-sync setup hubspot`).
HubSpot allows unique values on custom objects only, so there is no upsert on it: a `pending`
alert (the process died after maybe creating it) is first searched for by `okr_alert_key`
(EQ) and created only when none is found; one found is associated again (harmless when it is
already) and marked sent. A create retried by the client after a 5xx or a lost answer searches
first as well. Search has an index lag of seconds: a rerun started at once after a crash could
miss a record just made; the nightly cadence (and a retry's backoff) is far longer than that lag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from hubspot.crm.associations.v4 import (
    BatchInputPublicDefaultAssociationMultiPost,
    PublicDefaultAssociationMultiPost,
    PublicObjectId,
)
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputForCreate,
)
from sqlalchemy.engine import Engine

from connectors import alert_ledger
from connectors.alert_ledger import AlertResult
from connectors.errors import ConnectorError
from connectors.hubspot import helpers, settings
from connectors.hubspot.writeback import Writeback, ledger_ids
from connectors.okr_records import ledger_target

SOURCE = settings.SOURCE
ALERT_KEY_PROPERTY = "okr_alert_key"
OBJECTS = {"task": "tasks", "post": "notes"}  # alert kind -> HubSpot object
PRIORITY = {"off_track": "HIGH", "at_risk": "MEDIUM"}
ALERT_PROPERTY_SPEC = {"name": ALERT_KEY_PROPERTY, "label": "okr-sync alert key", "type": "string",
                       "fieldType": "text", "groupName": "okr_sync",
                       "description": "okr-sync's key of the alert this record is (key result, transition, day)"}


def alert_properties(row: Mapping[str, Any]) -> dict[str, str]:
    """The properties of one alert's task or note (wire strings)."""
    due = helpers.iso_ms(datetime.combine(date.fromisoformat(str(row["day"])), datetime.min.time(), tzinfo=UTC))
    props = {ALERT_KEY_PROPERTY: str(row["key"]), "hs_timestamp": due}
    if row["kind"] == "post":
        props["hs_note_body"] = str(row["body"])
    else:
        props.update(hs_task_subject=str(row["subject"]), hs_task_body=str(row["body"]),
                     hs_task_status="NOT_STARTED", hs_task_type="TODO",
                     hs_task_priority=PRIORITY.get(str(row["transition"]), "MEDIUM"))
    if row.get("owner_id"):
        props[settings.OWNER_PROPERTY] = str(row["owner_id"])
    return props


class HubSpotAlerts:
    """Sends alerts through one HubSpotSource: `call` makes a counted, retried request, `api()` gives the
    generated APIs, `failure` words a fatal error, `writeback` knows the KR object's type id."""

    def __init__(self, call: Callable[..., Any], api: Callable[[], Any],
                 failure: Callable[[BaseException, str], ConnectorError], writeback: Writeback,
                 calls: Callable[[], int]) -> None:
        self._call, self._api, self._failure, self._writeback, self._calls = call, api, failure, writeback, calls

    @classmethod
    def of(cls, source: Any) -> HubSpotAlerts:
        """The sender of a HubSpotSource (its call layer and writeback)."""
        return cls(source._call, lambda: source._api, source._failure, source._writeback,
                   lambda: source.api_calls)

    def send(self, engine: Engine) -> AlertResult:
        """Send every alert queued for HubSpot (connectors.alert_ledger), this run's and older ones."""
        result = AlertResult(target=SOURCE)
        before = self._calls()
        try:
            self._send(engine, result)
        finally:
            result.api_calls = self._calls() - before
        return result

    def _send(self, engine: Engine, result: AlertResult) -> None:
        waiting = alert_ledger.outstanding(engine, SOURCE)
        if not waiting:
            return
        kr_type = self._writeback.object_types(["key_result"])["key_result"]
        records = ledger_ids(engine, ledger_target(SOURCE, "key_result"))
        for entry in waiting:
            row, key = entry.payload, entry.key
            kr_id = records.get(entry.kr_key)
            if not kr_id:
                result.skipped += 1
                result.errors.append(f"alert {key}: key result {entry.kr_key} is not in HubSpot yet "
                                     "(tried again next run)")
                continue
            object_type = OBJECTS[entry.kind]
            try:
                found = self._find(object_type, key) if entry.state == alert_ledger.PENDING else None
                if found is None:
                    alert_ledger.mark_pending(engine, SOURCE, key)
                    record_id = self._create(object_type, row)
                else:
                    record_id = found
                self._associate(object_type, record_id, kr_type, kr_id)
            except ConnectorError as error:
                result.failed += 1
                result.errors.append(f"alert {key}: {error}")
                continue
            alert_ledger.mark_sent(engine, SOURCE, key, record_id)
            if found is None:
                result.created += 1
            else:
                result.reconciled += 1

    # -- requests --------------------------------------------------------------------------------
    def _find(self, object_type: str, key: str) -> str | None:
        """The id of the task or note carrying alert `key`, when HubSpot has one (search, EQ)."""
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name=ALERT_KEY_PROPERTY, operator="EQ", value=key)])],
            properties=[ALERT_KEY_PROPERTY], limit=10)
        try:
            answer = self._call(self._api().search.do_search, object_type, request)
        except Exception as exc:
            raise self._problem(exc, f"searching {object_type} by {ALERT_KEY_PROPERTY}") from exc
        found = [str(record.id) for record in answer.results or []
                 if (record.properties or {}).get(ALERT_KEY_PROPERTY) == key]
        return min(found, key=int) if found else None

    def _create(self, object_type: str, row: Mapping[str, Any]) -> str:
        attempts = [0]
        create = self._api().batch.create

        def create_once(kind: str, body: Any, **options: Any) -> Any:
            """A retried create looks first: a 5xx or a lost answer may hide a record that was made."""
            attempts[0] += 1
            if attempts[0] > 1:
                found = self._find(object_type, str(row["key"]))
                if found is not None:
                    return _Found(found)
            return create(kind, body, **options)

        create_once.__name__ = "create"
        body = BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[SimplePublicObjectBatchInputForCreate(properties=alert_properties(row), associations=[])])
        try:
            answer = self._call(create_once, object_type, body)
        except Exception as exc:
            raise self._problem(exc, f"creating a {object_type[:-1]}") from exc
        if isinstance(answer, _Found):
            return answer.id
        results = list(answer.results or [])
        if not results:
            errors = getattr(answer, "errors", None) or []
            raise ConnectorError("; ".join(str(error.message) for error in errors) or "not confirmed by HubSpot")
        return str(results[0].id)

    def _associate(self, object_type: str, record_id: str, kr_type: str, kr_id: str) -> None:
        pair = PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=record_id), to=PublicObjectId(id=kr_id))
        try:
            answer = self._call(self._api().associations.create_default, object_type, kr_type,
                                BatchInputPublicDefaultAssociationMultiPost(inputs=[pair]))
        except Exception as exc:
            raise self._problem(exc, f"associating a {object_type[:-1]} with its key result") from exc
        if not list(getattr(answer, "results", None) or []):
            raise ConnectorError(f"the {object_type[:-1]}'s association with its key result was not confirmed")

    def _problem(self, exc: Exception, action: str) -> ConnectorError:
        """A refused request as this alert's failure; 401/403 and what is no API answer stop the run."""
        status = helpers.api_status(exc)
        if status is None and not helpers.is_transient(exc):
            raise exc
        if status in (401, 403):
            raise self._failure(exc, action) from exc
        return ConnectorError(f"HubSpot {action} failed: {helpers.api_message(exc)}")


class _Found:
    def __init__(self, record_id: str) -> None:
        self.id = record_id


def property_problems(call: Callable[..., Any], api: Any) -> list[str]:
    """What tasks and notes lack for alerts (one properties read each): [] when ready."""
    problems = []
    for object_type in OBJECTS.values():
        names = {prop.name for prop in call(api.properties.get_all, object_type).results or []}
        if ALERT_KEY_PROPERTY not in names:
            problems.append(f"{object_type}.{ALERT_KEY_PROPERTY} is missing: text property (run `okr-sync setup"
                            " hubspot`)")
    return problems


def setup_properties(call: Callable[..., Any], api: Any) -> list[str]:
    """Create `okr_alert_key` on tasks and notes where it is missing; returns what it did."""
    from hubspot.crm.properties import PropertyCreate

    done = []
    for object_type in OBJECTS.values():
        names = {prop.name for prop in call(api.properties.get_all, object_type).results or []}
        if ALERT_KEY_PROPERTY in names:
            continue
        spec = ALERT_PROPERTY_SPEC
        call(api.properties.create, object_type, PropertyCreate(
            name=spec["name"], label=spec["label"], type=spec["type"], field_type=spec["fieldType"],
            group_name="taskinformation" if object_type == "tasks" else "noteinformation",
            description=spec["description"]))
        done.append(f"added property {ALERT_KEY_PROPERTY} to {object_type}")
    return done
