"""Holds (connectors.sandbox.holds): the chosen request waits unanswered until released; delivered, it is
applied even when its client is gone; dropped, it never is; and the served-record tally counts reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connectors.sandbox.holds import Request, okr_write
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox

OBJECTIVE = "OKR_Objective__c"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "holds", seed=5, deals=20, owners=3, accounts=5) as server:
        yield server


def _session(org: SandboxServer) -> requests.Session:
    session = requests.Session()
    session.trust_env, session.verify = False, str(org.ca_path)
    session.headers["Authorization"] = f"Bearer {org.token}"
    return session


def _query(org: SandboxServer, session: requests.Session, soql: str) -> requests.Response:
    return session.get(f"{org.salesforce_url}/services/data/v62.0/query/", params={"q": soql}, timeout=30)


def _upsert(org: SandboxServer, session: requests.Session, key: str, timeout: float = 30) -> requests.Response:
    return session.patch(f"{org.salesforce_url}/services/data/v62.0/composite/sobjects/{OBJECTIVE}/Key__c",
                         json={"allOrNone": False, "records": [{"attributes": {"type": OBJECTIVE}, "Key__c": key,
                                                                "Name": key}]}, timeout=timeout)


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except requests.RequestException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _keys(org: SandboxServer) -> set[str]:
    return {record["unique_key"] for record in org.state.custom_records("salesforce", OBJECTIVE)}


def test_the_request_after_n_waits_until_released_while_others_pass(org: SandboxServer) -> None:
    session = _session(org)
    hold = org.hold("salesforce", after_requests=1)
    assert _query(org, session, "SELECT Id FROM Account").status_code == 200  # the one let through
    thread, outcome = _in_thread(lambda: _query(org, session, "SELECT Id FROM Opportunity"))
    assert str(hold.wait(10)).startswith("GET /services/data/v62.0/query/?q=SELECT")
    assert _query(org, _session(org), "SELECT Id FROM Account").status_code == 200  # not held: one hold, one request
    assert thread.is_alive() and not outcome
    hold.release()
    thread.join(10)
    assert outcome[0].status_code == 200 and len(outcome[0].json()["records"]) == 20
    hold.join(10)


def test_a_write_delivered_after_its_client_gave_up_is_applied(org: SandboxServer) -> None:
    hold = org.hold("salesforce", on=okr_write)
    thread, outcome = _in_thread(lambda: _upsert(org, _session(org), "held-delivered", timeout=1))
    hold.wait(10)
    thread.join(10)
    assert isinstance(outcome[0], requests.Timeout)  # the client is gone before the CRM has the write
    assert "held-delivered" not in _keys(org)
    hold.release()
    hold.join(10)
    assert "held-delivered" in _keys(org)


def test_a_dropped_write_is_never_applied_and_its_client_sees_the_connection_close(org: SandboxServer) -> None:
    hold = org.hold("salesforce", after_requests=1, on=okr_write)
    assert _upsert(org, _session(org), "passed").status_code == 200
    thread, outcome = _in_thread(lambda: _upsert(org, _session(org), "held-dropped"))
    assert hold.wait(10).method == "PATCH"
    hold.release(deliver=False)
    thread.join(10)
    hold.join(10)
    assert isinstance(outcome[0], requests.ConnectionError)
    assert "passed" in _keys(org) and "held-dropped" not in _keys(org)


def test_the_served_records_are_tallied_per_object(org: SandboxServer) -> None:
    served = org.count_served("salesforce")
    session = _session(org)
    _query(org, session, "SELECT Id FROM Opportunity")
    _query(org, session, "SELECT Id FROM Account")
    _upsert(org, session, "not-a-read")
    assert dict(served.records) == {"Opportunity": 20, "Account": 5}


def test_writes_of_both_crms_are_told_from_reads() -> None:
    assert okr_write(Request("PATCH", "/services/data/v62.0/composite/sobjects/OKR_Check_In__c/Key__c"))
    assert okr_write(Request("POST", "/crm/v3/objects/2-1000002/batch/upsert"))
    assert okr_write(Request("POST", "/crm/v4/associations/2-1000001/2-1000002/batch/associate/default"))
    assert not okr_write(Request("POST", "/crm/v3/objects/deals/search"))
    assert not okr_write(Request("GET", "/services/data/v62.0/queryAll/"))


def test_stopping_the_server_lets_a_held_request_go(tmp_path_factory: pytest.TempPathFactory) -> None:
    with private_sandbox(tmp_path_factory, "holds-stop", seed=6, deals=5, owners=2, accounts=2) as short_lived:
        hold = short_lived.hold("salesforce")
        thread, outcome = _in_thread(lambda: _query(short_lived, _session(short_lived), "SELECT Id FROM Account"))
        hold.wait(10)
        started = time.monotonic()
    hold.join(10)  # dropped by stop(), which did not wait for it
    thread.join(10)
    assert time.monotonic() - started < 10 and isinstance(outcome[0], requests.ConnectionError)
