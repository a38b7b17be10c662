"""The sandbox's Bulk API 2.0 query jobs, driven by the real simple-salesforce client over HTTPS."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceError

from connectors.salesforce import SalesforceSource
from connectors.sandbox.ids import sf_id
from connectors.sandbox.salesforce_bulk import job_polls, set_polls_to_complete
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox

SOQL = ("SELECT Id, Name, Amount, IsClosed, IsWon, CloseDate, CreatedDate, LeadSource, SystemModstamp, "
        "IsDeleted FROM Opportunity")


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-bulk-api", seed=3, deals=250, owners=5, accounts=20,
                         calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def client(org: SandboxServer) -> Iterator[Salesforce]:
    set_polls_to_complete(org.state, 2)
    with SalesforceSource.from_env(org.connection_env()) as source:
        yield source.client


def bulk_url(client: Salesforce, path: str = "") -> str:
    return f"{client.bulk2_url}query{path}"


def headers(client: Salesforce) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.session_id}", "Content-Type": "application/json"}


def wire_text(value: Any) -> str:
    """What the CSV should hold for a REST JSON value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_a_job_completes_after_polls_and_refuses_results_before(org: SandboxServer, client: Salesforce) -> None:
    jobs = client.bulk2.Opportunity._client
    created = jobs.create_job(Operation.query_all, SOQL)
    assert created["state"] == "UploadComplete" and created["operation"] == "queryAll"
    assert (created["contentType"], created["columnDelimiter"], created["lineEnding"]) == ("CSV", "COMMA", "LF")
    with pytest.raises(SalesforceError) as refused:
        jobs.get_query_results(created["id"])
    assert refused.value.status == 412 and "JOB_NOT_COMPLETE" in str(refused.value.content)
    assert jobs.get_job(created["id"], True)["state"] == "InProgress"
    done = jobs.get_job(created["id"], True)
    assert done["state"] == "JobComplete" and done["numberRecordsProcessed"] > 0
    assert job_polls(org.state)[created["id"]] == 2


def test_results_page_by_locator_and_match_rest(org: SandboxServer, client: Salesforce) -> None:
    set_polls_to_complete(org.state, 0)  # straight to JobComplete on the first GET
    jobs = client.bulk2.Opportunity._client
    job_id = jobs.create_job(Operation.query_all, SOQL)["id"]
    assert jobs.get_job(job_id, True)["state"] == "JobComplete"
    seen: list[requests.Response] = []
    client.session.hooks["response"].append(lambda response, *_a, **_k: seen.append(response))
    chunks, locator = [], ""
    while True:
        result = jobs.get_query_results(job_id, locator, max_records=100)
        chunks.append(result)
        locator = result["locator"]
        if not locator:
            break
    assert [chunk["number_of_records"] for chunk in chunks] == [100, 100, 50]
    assert seen[-1].headers["Sforce-Locator"] == "null" and seen[0].headers["Sforce-Locator"] != "null"
    assert seen[0].headers["Content-Type"].startswith("text/csv")
    rows = [row for chunk in chunks for row in csv.DictReader(io.StringIO(chunk["records"]))]
    assert chunks[0]["records"].startswith('"Id","Name","Amount","IsClosed"')
    rest = client.query_all(SOQL + " ORDER BY Id", include_deleted=True)["records"]
    assert len(rows) == len(rest) == 250
    by_id = {row["Id"]: row for row in rows}
    for record in rest:
        row = by_id[record["Id"]]
        for name, value in record.items():
            if name != "attributes":
                assert row[name] == wire_text(value), (name, row[name], value)
    assert {row["IsDeleted"] for row in rows} <= {"true", "false"}
    assert any(row["LeadSource"] == "" for row in rows) or all(r["LeadSource"] for r in rest)


def test_results_come_from_the_snapshot_taken_at_creation(org: SandboxServer, client: Salesforce) -> None:
    set_polls_to_complete(org.state, 1)
    jobs = client.bulk2.Opportunity._client
    job_id = jobs.create_job(Operation.query, "SELECT Id, Amount FROM Opportunity WHERE Name != null")["id"]
    before = {row["id"]: row["amount"] for row in org.state.query("SELECT id, amount FROM deals WHERE id <= 3")}
    with org.state.transaction() as conn:
        conn.execute("UPDATE deals SET amount = amount + 1000 WHERE id <= 3")
    try:
        assert jobs.get_job(job_id, True)["state"] == "JobComplete"
        rows = list(csv.DictReader(io.StringIO(jobs.get_query_results(job_id)["records"])))
        amounts = {row["Id"]: row["Amount"] for row in rows}
        for number, amount in before.items():
            if amount is not None and sf_id("Opportunity", number) in amounts:
                assert float(amounts[sf_id("Opportunity", number)]) == pytest.approx(amount)
    finally:
        with org.state.transaction() as conn:
            conn.execute("UPDATE deals SET amount = amount - 1000 WHERE id <= 3")


def test_the_client_query_helper_reads_every_chunk(org: SandboxServer, client: Salesforce) -> None:
    set_polls_to_complete(org.state, 1)
    chunks = list(client.bulk2.Opportunity.query("SELECT Id FROM Opportunity", max_records=60, wait=0.01))
    live = client.query("SELECT COUNT() FROM Opportunity")["totalSize"]
    assert len(chunks) == -(-live // 60) >= 2
    assert sum(len(list(csv.DictReader(io.StringIO(chunk)))) for chunk in chunks) == live


def test_bad_jobs_are_refused_with_salesforce_codes(client: Salesforce) -> None:
    for body, code in (({"operation": "insert", "query": "SELECT Id FROM Opportunity"}, "INVALIDJOB"),
                       ({"operation": "query", "query": "SELECT COUNT() FROM Opportunity"}, "INVALIDJOB"),
                       ({"operation": "query", "query": "SELECT Nope FROM Opportunity"}, "INVALID_FIELD"),
                       ({"operation": "query", "query": "SELECT Id FROM Opportunity",
                         "columnDelimiter": "TAB"}, "INVALIDJOB")):
        response = client.session.post(bulk_url(client), json=body, headers=headers(client))
        assert response.status_code == 400 and response.json()[0]["errorCode"] == code, body
    missing = client.session.get(bulk_url(client, "/750SB9999999999AAA"), headers=headers(client))
    assert missing.status_code == 404


def test_a_job_can_be_aborted_and_then_has_no_results(org: SandboxServer, client: Salesforce) -> None:
    set_polls_to_complete(org.state, -1)  # never completes on its own
    jobs = client.bulk2.Opportunity._client
    job_id = jobs.create_job(Operation.query, "SELECT Id FROM Opportunity")["id"]
    assert jobs.get_job(job_id, True)["state"] == "InProgress"
    assert jobs.abort_job(job_id, True)["state"] == "Aborted"
    with pytest.raises(SalesforceError) as refused:
        jobs.get_query_results(job_id)
    assert refused.value.status == 400
    # DELETE answers 204 without a body, as Salesforce documents (simple-salesforce's delete_job
    # parses a JSON body, so it is called raw here)
    deleted = client.session.delete(bulk_url(client, f"/{job_id}"), headers=headers(client))
    assert deleted.status_code == 204 and not deleted.content
    assert client.session.get(bulk_url(client, f"/{job_id}"), headers=headers(client)).status_code == 404
