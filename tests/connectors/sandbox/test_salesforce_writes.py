"""The sandbox's sObject Collections upserts into the OKR objects: lookups, owners, injected rejections.

Driven through simple-salesforce's `restful` (the calls okr-sync makes), against an org of this
module's own, so rejection rules never reach the shared sandbox.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.salesforce import SalesforceSource
from connectors.sandbox.ids import sf_id
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox

OBJECTIVE, KR, CHECKIN = "OKR_Objective__c", "OKR_Key_Result__c", "OKR_Check_In__c"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-writes", seed=9, deals=20, owners=17, accounts=5,
                         calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def client(org: SandboxServer) -> Iterator[Salesforce]:
    org.clear_rejections()
    with SalesforceSource.from_env(org.connection_env()) as source:
        yield source.client
    org.clear_rejections()
    gc.collect()


def upsert(client: Salesforce, sobject: str, *records: dict[str, Any], all_or_none: bool = False) -> list[dict]:
    return client.restful(f"composite/sobjects/{sobject}/Key__c", method="PATCH", json={
        "allOrNone": all_or_none, "records": [{"attributes": {"type": sobject}, **record} for record in records]})


def stored(org: SandboxServer, sobject: str) -> dict[str, dict[str, Any]]:
    return {row["unique_key"]: row for row in org.state.custom_records("salesforce", sobject)}


def failure(outcome: dict[str, Any]) -> tuple[str, str]:
    assert outcome["success"] is False and outcome["id"] is None
    [error] = outcome["errors"]
    return error["statusCode"], error["message"]


def test_lookups_resolve_through_the_parents_external_id(org: SandboxServer, client: Salesforce) -> None:
    [parent] = upsert(client, OBJECTIVE, {"Key__c": "lk-parent", "Name": "Parent"})
    # a parent in the same call is not found: lookups resolve against records saved before the call
    same_call = upsert(client, OBJECTIVE, {"Key__c": "lk-new", "Name": "New"},
                       {"Key__c": "lk-child", "Name": "Child", "Parent_Objective__r": {"Key__c": "lk-new"}})
    assert same_call[0]["success"] and failure(same_call[1]) == (
        "INVALID_FIELD", f"Foreign key external ID: lk-new not found for field Key__c in entity {OBJECTIVE}")
    [child] = upsert(client, OBJECTIVE, {"Key__c": "lk-child", "Name": "Child",
                                          "Parent_Objective__r": {"Key__c": "lk-parent"}})
    [kr] = upsert(client, KR, {"Key__c": "lk-kr", "Name": "KR", "Objective_Record__r": {"Key__c": "lk-child"}})
    [checkin] = upsert(client, CHECKIN, {"Key__c": "lk-kr@2026-11-15", "Name": "Check-in", "As_Of__c": "2026-11-15",
                                         "Key_Result__r": {"Key__c": "lk-kr"}})
    assert parent["created"] and child["created"] and kr["success"] and checkin["success"]
    [record] = client.query("SELECT Id, Objective_Record__c, OwnerId FROM OKR_Key_Result__c "
                            "WHERE Key__c = 'lk-kr'")["records"]
    assert (record["Id"], record["Objective_Record__c"], record["OwnerId"]) == (kr["id"], child["id"], sf_id("User", 1))
    [record] = client.query("SELECT Parent_Objective__c FROM OKR_Objective__c WHERE Key__c = 'lk-child'")["records"]
    assert record["Parent_Objective__c"] == parent["id"]
    [record] = client.query("SELECT Key_Result__c, As_Of__c FROM OKR_Check_In__c "
                            "WHERE Key__c = 'lk-kr@2026-11-15'")["records"]
    assert (record["Key_Result__c"], record["As_Of__c"]) == (kr["id"], "2026-11-15")
    assert kr["id"].startswith("a0K") and child["id"].startswith("a0J") and checkin["id"].startswith("a0L")
    # cleared with a null lookup; set by Id too
    upsert(client, KR, {"Key__c": "lk-kr", "Objective_Record__c": None})
    assert stored(org, KR)["lk-kr"]["fields"]["Objective_Record__c"] is None
    upsert(client, KR, {"Key__c": "lk-kr", "Objective_Record__c": parent["id"]})
    assert stored(org, KR)["lk-kr"]["fields"]["Objective_Record__c"] == 1
    [bad] = upsert(client, KR, {"Key__c": "lk-kr", "Objective_Record__r": {"Name": "Parent"}})
    assert failure(bad) == ("INVALID_FIELD", f"Field name provided, Name is not an External ID or indexed field "
                                             f"for {OBJECTIVE}")


def test_owner_ids_must_be_active_users(org: SandboxServer, client: Salesforce) -> None:
    outcomes = upsert(client, KR, *({"Key__c": f"ow-{index}", "Name": "KR", "OwnerId": owner} for index, owner in
                                    enumerate((sf_id("User", 2), sf_id("User", 17), sf_id("User", 999), "005bad",
                                               sf_id("Account", 1)))))
    assert outcomes[0]["success"] and stored(org, KR)["ow-0"]["fields"]["OwnerId"] == 2
    assert failure(outcomes[1]) == ("INACTIVE_OWNER_OR_USER", f"operation performed with inactive user "
                                                              f"[{sf_id('User', 17)}] as owner of {KR}")
    assert failure(outcomes[2]) == ("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {sf_id('User', 999)}")
    assert failure(outcomes[3]) == ("MALFORMED_ID", "Owner ID: id value of incorrect type: 005bad")
    assert failure(outcomes[4])[0] == "FIELD_INTEGRITY_EXCEPTION"
    assert set(stored(org, KR)) >= {"ow-0"} and not {"ow-1", "ow-2", "ow-3", "ow-4"} & set(stored(org, KR))


def test_injected_rejections_refuse_those_records_alone(org: SandboxServer, client: Salesforce) -> None:
    org.reject("salesforce", KR, "rj-1", "validation", "Target must be positive")
    org.reject("salesforce", KR, "rj-2*", "row_lock", "unable to obtain exclusive access to this record")
    org.reject("salesforce", OBJECTIVE, "rj-*", "validation")  # another object: not these records
    records = [{"Key__c": f"rj-{index}", "Name": f"KR {index}"} for index in range(4)]
    outcomes = upsert(client, KR, *records)
    assert [outcome["success"] for outcome in outcomes] == [True, False, False, True]
    assert failure(outcomes[1]) == ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Target must be positive")
    assert failure(outcomes[2]) == ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
    assert {"rj-0", "rj-3"} <= set(stored(org, KR)) and not {"rj-1", "rj-2"} & set(stored(org, KR))
    # allOrNone: one refused record rolls the call back
    rolled_back = upsert(client, KR, {"Key__c": "rj-5", "Name": "KR 5"}, records[1], all_or_none=True)
    assert failure(rolled_back[0])[0] == "ALL_OR_NONE_OPERATION_ROLLED_BACK" and "rj-5" not in stored(org, KR)
    org.clear_rejections("salesforce")
    assert all(outcome["success"] for outcome in upsert(client, KR, *records))


def test_a_malformed_record_refuses_the_whole_call(org: SandboxServer, client: Salesforce) -> None:
    org.reject("salesforce", CHECKIN, "mf-1", "malformed", "Cannot deserialize instance of double")
    records = [{"Key__c": f"mf-{index}", "Name": "Check-in"} for index in range(3)]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        upsert(client, CHECKIN, *records)
    assert refused.value.status == 400
    assert refused.value.content == [{"message": "Cannot deserialize instance of double",
                                      "errorCode": "JSON_PARSER_ERROR"}]
    assert not {"mf-0", "mf-1", "mf-2"} & set(stored(org, CHECKIN))  # nothing of the call was written
    assert all(outcome["success"] for outcome in upsert(client, CHECKIN, records[0], records[2]))
    rejected_before = org.state.rejections.rejected
    org.clear_rejections("salesforce")
    assert all(outcome["success"] for outcome in upsert(client, CHECKIN, *records))
    assert org.state.rejections.rejected == rejected_before
