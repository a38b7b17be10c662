"""The sandbox's Salesforce face, driven by the real simple-salesforce client over HTTPS."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.sandbox.ids import sf_id
from connectors.sandbox.salesforce_api import CONCURRENT_LIMIT_MESSAGE, DAILY_LIMIT_MESSAGE, inject_faults
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox

KR = "OKR_Key_Result__c"
UPSERT = f"composite/sobjects/{KR}/Key__c"


def https_session(ca_path: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_path)
    return session


_OPEN: list[requests.Session] = []


def client(server: SandboxServer, token: str | None = None) -> Salesforce:
    session = https_session(server.ca_path)
    _OPEN.append(session)
    return Salesforce(instance_url=server.salesforce_url, session_id=token or server.token, session=session,
                      version="62.0")


def _close_open_sessions() -> None:
    """Idle keep-alive connections hold up a sandbox's shutdown: close them first."""
    while _OPEN:
        _OPEN.pop().close()
    gc.collect()  # responses kept alive by reference cycles (e.g. tracebacks) still hold sockets


@pytest.fixture(scope="module", autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    _close_open_sessions()


@pytest.fixture(scope="module")
def sf(sandbox: SandboxServer) -> Salesforce:
    return client(sandbox)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A small org of this module's own, for tests that delete or fail records."""
    with private_sandbox(tmp_path_factory, "sf-api",
                         seed=11, deals=150, owners=5, accounts=20, calls_per_deal=1.0) as server:
        yield server


def kr(key: str, **fields: object) -> dict[str, object]:
    return {"attributes": {"type": KR}, "Key__c": key, "Name": f"KR {key}", **fields}


def test_query_more_pages_cover_every_record_once(sandbox: SandboxServer, sf: Salesforce) -> None:
    rows = sandbox.state.query("SELECT id FROM tasks WHERE deleted = 0")  # calls and emails
    expected = {sf_id("Task", row["id"]) for row in rows}
    headers = {"Sforce-Query-Options": "batchSize=200"}
    page = sf.query("SELECT Id, Subject FROM Task", headers=headers)
    assert page["totalSize"] == len(expected) and not page["done"] and len(page["records"]) == 200
    seen, pages = [], 0
    while True:
        pages += 1
        seen += [record["Id"] for record in page["records"]]
        if page["done"]:
            assert "nextRecordsUrl" not in page
            break
        assert page["nextRecordsUrl"].startswith("/services/data/v62.0/query/")
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True, headers=headers)
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert pages == -(-len(expected) // 200)
    first_of_last_page = seen[-len(page["records"])]
    assert page["records"][0]["attributes"] == {
        "type": "Task", "url": f"/services/data/v62.0/sobjects/Task/{first_of_last_page}"}


def test_batch_size_is_clamped_and_defaults_to_2000(sf: Salesforce) -> None:
    small = sf.query("SELECT Id FROM Task", headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(small["records"]) == 200
    assert len(sf.query("SELECT Id FROM Task")["records"]) == 2000 or sf.query("SELECT Id FROM Task")["done"]


def test_pages_are_a_snapshot_taken_when_the_query_ran(sf: Salesforce) -> None:
    prefix = f"test-sf-api-snap-{uuid.uuid4().hex[:8]}"
    records = [kr(f"{prefix}-{index:03d}", Current_Value__c=1.0) for index in range(250)]
    for start in (0, 200):
        assert all(result["success"] for result in sf.restful(UPSERT, method="PATCH", json={
            "allOrNone": True, "records": records[start:start + 200]}))
    text = f"SELECT Key__c, Current_Value__c FROM {KR} WHERE Key__c LIKE '{prefix}%' ORDER BY Key__c"
    first = sf.query(text, headers={"Sforce-Query-Options": "batchSize=200"})
    # between the pages: change a record of page two and add one more
    sf.restful(UPSERT, method="PATCH", json={"records": [kr(f"{prefix}-249", Current_Value__c=2.0),
                                                         kr(f"{prefix}-999", Current_Value__c=3.0)]})
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert first["totalSize"] == second["totalSize"] == 250 and second["done"]
    assert [record["Current_Value__c"] for record in second["records"]] == [1.0] * 50
    assert sf.query(text)["totalSize"] == 251


def test_query_all_includes_deleted_rows(private: SandboxServer) -> None:
    with private.state.transaction() as conn:
        conn.execute("UPDATE deals SET deleted = 1 WHERE id IN (3, 4)")
    sf = client(private)
    live = {record["Id"] for record in sf.query_all("SELECT Id FROM Opportunity")["records"]}
    every = sf.query_all("SELECT Id, IsDeleted FROM Opportunity", include_deleted=True)["records"]
    deleted = {record["Id"] for record in every if record["IsDeleted"]}
    assert deleted == {sf_id("Opportunity", 3), sf_id("Opportunity", 4)}
    assert live == {record["Id"] for record in every} - deleted and len(every) == 150


def test_records_render_the_sandbox_rows(sandbox: SandboxServer, sf: Salesforce) -> None:
    row = sandbox.state.query("SELECT * FROM deals WHERE stage = 'closed_won' ORDER BY id LIMIT 1")[0]
    record = sf.query(f"SELECT Id, Name, StageName, IsWon, IsClosed, Amount, CloseDate, OwnerId, CreatedDate"
                      f" FROM Opportunity WHERE Id = '{sf_id('Opportunity', row['id'])}'")["records"][0]
    created = datetime.fromtimestamp(row["created_ms"] // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert record == {**record, "Name": row["name"], "StageName": "Closed Won", "IsWon": True,
                      "IsClosed": True, "Amount": row["amount"], "CloseDate": row["close_date"],
                      "CreatedDate": created, "OwnerId": sf_id("User", row["owner_id"])}


def test_count_query(sandbox: SandboxServer, sf: Salesforce) -> None:
    expected = sandbox.state.query(
        "SELECT COUNT(*) FROM deals WHERE deleted = 0 AND stage = 'closed_won'")[0][0]
    result = sf.query("SELECT COUNT() FROM Opportunity WHERE IsWon = true")
    assert result == {"totalSize": expected, "done": True, "records": []}


def test_describe_and_describe_global(sf: Salesforce) -> None:
    describe = sf.restful(f"sobjects/{KR}/describe")
    fields = {field["name"]: field for field in describe["fields"]}
    assert describe["name"] == KR and describe["custom"] is True
    key = fields["Key__c"]
    assert key["externalId"] and key["unique"] and key["type"] == "string"
    assert fields["Current_Value__c"]["type"] == "double" and fields["Last_Synced__c"]["type"] == "datetime"
    assert not fields["SystemModstamp"]["updateable"]
    opportunity = {field["name"]: field for field in sf.Opportunity.describe()["fields"]}
    assert opportunity["OwnerId"]["referenceTo"] == ["User"] and opportunity["Amount"]["type"] == "currency"
    assert "Closed Won" in [value["value"] for value in opportunity["StageName"]["picklistValues"]]
    names = {entry["name"] for entry in sf.describe()["sobjects"]}
    assert {"User", "Account", "Opportunity", "Task", KR, "Product2", "OpportunityLineItem", "Event", "Lead",
            "Contact", "Case", "Campaign"} <= names
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("sobjects/Widget__c/describe")


def test_limits_and_usage_header(sf: Salesforce) -> None:
    before = sf.limits()["DailyApiRequests"]
    after = sf.limits()["DailyApiRequests"]
    assert before["Max"] == 15000 and after["Remaining"] == before["Remaining"] - 1
    usage = sf.api_usage["api-usage"]
    assert usage.total == 15000 and usage.used == 15000 - after["Remaining"]


def test_versions_list_needs_no_session(sandbox: SandboxServer) -> None:
    with https_session(sandbox.ca_path) as session:
        response = session.get(f"{sandbox.salesforce_url}/services/data/")
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in response.json()


def test_bad_session_is_a_401_list_body(sandbox: SandboxServer) -> None:
    with pytest.raises(SalesforceExpiredSession) as caught:
        client(sandbox, token="not-the-token").query("SELECT Id FROM User")
    assert caught.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_unknown_field_is_malformed_request_with_salesforce_message(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id, Foo__c FROM Opportunity")
    [error] = caught.value.content
    assert error["errorCode"] == "INVALID_FIELD"
    assert "ERROR at Row:1:Column:12\nNo such column 'Foo__c' on entity 'Opportunity'" in error["message"]


def test_unknown_path_is_404_list_body(sandbox: SandboxServer, sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.restful("no/such/thing")
    assert caught.value.content == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]


def test_upsert_creates_then_updates_by_external_id(sandbox: SandboxServer, sf: Salesforce) -> None:
    key = f"test-sf-api-upsert-{uuid.uuid4().hex[:8]}"
    [created] = sf.restful(UPSERT, method="PATCH", json={"allOrNone": False, "records": [
        kr(key, Current_Value__c=10, Last_Synced__c="2026-11-15T12:00:00.000+0000")]})
    [updated] = sf.restful(UPSERT, method="PATCH", json={"records": [kr(key, Current_Value__c=12.5)]})
    assert created["success"] and created["created"] is True and created["errors"] == []
    assert updated == {"id": created["id"], "success": True, "errors": [], "created": False}
    text = f"SELECT Id, Current_Value__c, Last_Synced__c FROM {KR} WHERE Key__c = '{key}'"
    [record] = sf.query(text)["records"]
    assert record["Current_Value__c"] == 12.5 and record["Last_Synced__c"] == "2026-11-15T12:00:00.000+0000"
    rows = [row for row in sandbox.state.custom_records("salesforce", KR) if row["unique_key"] == key]
    assert len(rows) == 1 and rows[0]["fields"]["Current_Value__c"] == 12.5


def test_per_record_errors_and_all_or_none(sf: Salesforce) -> None:
    prefix = f"test-sf-api-errors-{uuid.uuid4().hex[:8]}"
    good, bad = kr(f"{prefix}-good"), kr(f"{prefix}-bad", Foo__c=1)
    partial = sf.restful(UPSERT, method="PATCH", json={"allOrNone": False, "records": [good, bad]})
    assert partial[0]["success"] and not partial[1]["success"]
    assert partial[1]["errors"] == [{"statusCode": "INVALID_FIELD", "fields": ["Foo__c"],
                                     "message": f"No such column 'Foo__c' on sobject of type {KR}"}]
    rolled = sf.restful(UPSERT, method="PATCH", json={"allOrNone": True, "records": [
        kr(f"{prefix}-other"), kr(f"{prefix}-long", Status__c="x" * 41)]})
    assert [result["errors"][0]["statusCode"] for result in rolled] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK", "STRING_TOO_LONG"]
    assert sf.query(f"SELECT COUNT() FROM {KR} WHERE Key__c LIKE '{prefix}%'")["totalSize"] == 1


def test_more_than_200_records_are_rejected(sf: Salesforce) -> None:
    records = [kr(f"test-sf-api-limit-{index}") for index in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful(UPSERT, method="PATCH", json={"records": records})
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sf.query(f"SELECT COUNT() FROM {KR} WHERE Key__c LIKE 'test-sf-api-limit-%'")["totalSize"] == 0


def test_create_and_update_by_id_collections(sf: Salesforce) -> None:
    key = f"test-sf-api-crud-{uuid.uuid4().hex[:8]}"
    [created] = sf.restful("composite/sobjects", method="POST", json={"records": [kr(key, Target__c=5)]})
    [duplicate] = sf.restful("composite/sobjects", method="POST", json={"records": [kr(key)]})
    assert created["success"] and "created" not in created
    assert duplicate["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    [updated] = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": KR}, "id": created["id"], "Target__c": 6}]})
    [readonly] = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Opportunity"}, "Name": "nope"}]})
    assert updated == {"id": created["id"], "success": True, "errors": []}
    assert readonly["errors"][0]["statusCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    [record] = sf.query(f"SELECT Target__c FROM {KR} WHERE Id = '{created['id']}'")["records"]
    assert record["Target__c"] == 6.0


def test_injected_faults_fail_the_next_calls(private: SandboxServer) -> None:
    sf = client(private)
    inject_faults(private.state, status=503, count=1)
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT Id FROM User")
    assert caught.value.status == 503 and caught.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf.query("SELECT Id FROM User")["totalSize"] == 5


@pytest.mark.parametrize("message", [None, CONCURRENT_LIMIT_MESSAGE])
def test_both_request_limits_answer_403(private: SandboxServer, message: str | None) -> None:
    """As in a real org: the daily allocation (the default) and the concurrency limit share a 403."""
    sf = client(private)
    inject_faults(private.state, status=403, message=message)
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM User")
    assert caught.value.status == 403
    assert caught.value.content == [{"message": message or DAILY_LIMIT_MESSAGE,
                                     "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert sf.query("SELECT Id FROM User")["totalSize"] == 5


@pytest.mark.parametrize("form", [
    {"grant_type": "password", "client_id": "app", "client_secret": "s", "username": "u@x", "password": "p"},
    {"grant_type": "client_credentials", "client_id": "app", "client_secret": "s"},
    {"grant_type": "refresh_token", "client_id": "app", "refresh_token": "r"},
])
def test_oauth_token_endpoint(sandbox: SandboxServer, form: dict[str, str]) -> None:
    with https_session(sandbox.ca_path) as session:
        response = session.post(f"{sandbox.salesforce_url}/services/oauth2/token", data=form)
    body = response.json()
    assert response.status_code == 200 and body["token_type"] == "Bearer"
    assert body["access_token"] == sandbox.token and body["instance_url"] == sandbox.salesforce_url
    assert {"id", "issued_at", "signature"} <= set(body)


def test_oauth_token_rejects_a_missing_client(sandbox: SandboxServer) -> None:
    with https_session(sandbox.ca_path) as session:
        response = session.post(f"{sandbox.salesforce_url}/services/oauth2/token",
                                data={"grant_type": "client_credentials", "client_id": "app"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"
