"""check_setup: one describe per OKR object, and messages an admin can act on.

The org's deployment is changed the way an admin could get it wrong: the sandbox's schema of an
object is replaced for one test (a field missing, of another type, read-only; an object missing).
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.salesforce import SalesforceSource
from connectors.sandbox import salesforce_schema
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.soql import FieldSpec
from tests.connectors.salesforce.test_writeback import kr_rows

KR, OBJECTIVE, CHECKIN = "OKR_Key_Result__c", "OKR_Objective__c", "OKR_Check_In__c"


@pytest.fixture
def source(sandbox: SandboxServer) -> Iterator[SalesforceSource]:
    with SalesforceSource.from_env(sandbox.connection_env()) as connected:
        yield connected
    gc.collect()


def deploy(monkeypatch: pytest.MonkeyPatch, sobject: str,
           changes: dict[str, Callable[[FieldSpec], FieldSpec | None]]) -> None:
    """The org's `sobject` as deployed with the named fields changed (a change giving None: not deployed)."""
    schema = salesforce_schema.SCHEMAS[sobject.lower()]
    fields = tuple(changed for field in schema.fields
                   if (changed := changes.get(field.name, lambda same: same)(field)) is not None)
    monkeypatch.setitem(salesforce_schema.SCHEMAS, sobject.lower(), replace(schema, fields=fields))


def dropped(_field: FieldSpec) -> None:
    return None


def test_the_shipped_deployment_is_ready(sandbox: SandboxServer, source: SalesforceSource) -> None:
    calls = sandbox.calls("salesforce")
    assert source.check_setup() == []
    assert source.api_calls == sandbox.calls("salesforce") - calls == 3  # one describe per object


def test_every_problem_is_named_with_the_type_needed(monkeypatch: pytest.MonkeyPatch,
                                                     source: SalesforceSource) -> None:
    monkeypatch.delitem(salesforce_schema.SCHEMAS, OBJECTIVE.lower())  # never deployed
    deploy(monkeypatch, KR, {
        "Forecast__c": dropped,
        "Objective_Record__c": lambda field: replace(field, type="string", reference_to=None, length=255),
        "Key__c": lambda field: replace(field, unique=False),
        "Metric__c": lambda field: replace(field, length=80),
    })
    deploy(monkeypatch, CHECKIN, {
        "Forecast__c": dropped, "As_Of__c": lambda field: replace(field, type="datetime"),
        "Progress__c": lambda field: replace(field, updateable=False),
        "Value__c": lambda field: replace(field, type="percent", scale=2),
    })
    problems = source.check_setup()
    assert problems == [
        "OKR_Objective__c is missing: deploy connectors/salesforce/metadata (see its README.md)",
        "OKR_Key_Result__c.Metric__c must be a Text(255), is Text(80)",
        "OKR_Key_Result__c.Forecast__c is missing: Number(18, 4)",
        "OKR_Key_Result__c.Objective_Record__c must be a Lookup(OKR_Objective__c), is Text(255)",
        "OKR_Key_Result__c.Key__c must be an External ID marked Unique",
        "OKR_Check_In__c.As_Of__c must be a Date, is DateTime",
        "OKR_Check_In__c.Value__c must be a Number(18, 4), is Percent(18, 2)",
        "OKR_Check_In__c.Progress__c is not writable by this user: give the integration user edit access to it "
        "(field-level security, e.g. a permission set)",
        "OKR_Check_In__c.Forecast__c is missing: Number(18, 4)",
    ]
    assert source.api_calls == 3


def test_a_write_stops_before_sending_a_field_the_org_lacks(monkeypatch: pytest.MonkeyPatch, store: Engine,
                                                            sandbox: SandboxServer,
                                                            source: SalesforceSource) -> None:
    deploy(monkeypatch, KR, {"Forecast__c": dropped})
    prefix = f"test-sf-setup-{uuid.uuid4().hex[:10]}"
    rows = [{**row, "forecast": 1.0} for row in kr_rows(prefix, 2)]
    with pytest.raises(ConnectorError) as failure:
        source.write_key_results(store, rows)
    assert str(failure.value) == (
        "Salesforce object OKR_Key_Result__c is not ready for writeback: OKR_Key_Result__c.Forecast__c is "
        "missing: Number(18, 4); deploy connectors/salesforce/metadata (see its README.md).")
    assert source.api_calls == 1  # the describe: nothing was sent
    # rows of the older shape (no forecast) need only the fields they carry: written with no new describe
    result = source.write_key_results(store, kr_rows(prefix, 2))
    assert (result.created, result.api_calls) == (2, 1)


def test_a_missing_object_stops_the_write_with_the_deploy_hint(monkeypatch: pytest.MonkeyPatch, store: Engine,
                                                               source: SalesforceSource) -> None:
    monkeypatch.delitem(salesforce_schema.SCHEMAS, KR.lower())
    with pytest.raises(ConnectorError, match=r"^Salesforce object OKR_Key_Result__c does not exist in this org: "
                                             r"deploy connectors/salesforce/metadata"):
        source.write_key_results(store, kr_rows(f"test-sf-setup-{uuid.uuid4().hex[:10]}", 1))
    assert source.api_calls == 1
