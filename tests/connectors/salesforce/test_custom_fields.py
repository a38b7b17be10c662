"""Custom fields from config: names checked at construction, fields checked by describe, values in `custom`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import ConnectorConfigError
from connectors.incremental import field_set_digest
from connectors.salesforce import SalesforceSource
from connectors.salesforce.custom_fields import (
    CustomField,
    check_fields,
    custom_values,
    validate_custom_fields,
    with_custom_fields,
)
from connectors.salesforce.settings import STREAMS
from connectors.sandbox.server import SandboxServer
from connectors.store import Account, SyncState

ACCOUNT_DESCRIBE = {"name": "Account", "fields": [
    {"name": "Id", "type": "id"}, {"name": "Name", "type": "string"}, {"name": "Region__c", "type": "string"},
    {"name": "Seats__c", "type": "double"}, {"name": "BillingCountry", "type": "string"}]}


class NoNetwork(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        raise AssertionError(f"no request expected, got {request.method} {request.url}")


def offline_session() -> requests.Session:
    session = requests.Session()
    session.mount("https://", NoNetwork())
    session.mount("http://", NoNetwork())
    return session


def offline_client() -> Salesforce:
    return Salesforce(instance_url="https://example.my.salesforce.com", session_id="token",
                      session=offline_session())


# -- names, at construction -----------------------------------------------------------------------
@pytest.mark.parametrize("field", ["Region__c) FROM User --", "Owner.Name", "1Region__c", "Region c", "",
                                   "Région__c", "Region__c,Name", None, 5])
def test_a_field_that_is_not_an_api_name_is_refused_at_construction(field: Any) -> None:
    config = {"account": {"region": field}}
    with pytest.raises(ConnectorConfigError, match=r"custom field account\.region in the config .* not a field API"):
        SalesforceSource(offline_client(), custom_fields=config)


def test_from_env_refuses_a_bad_name_before_logging_in() -> None:
    env = {"SALESFORCE_USERNAME": "ops@example.com", "SALESFORCE_PASSWORD": "pw", "SALESFORCE_SECURITY_TOKEN": "t"}
    with pytest.raises(ConnectorConfigError, match="not a field API name"):  # NoNetwork: no login attempted
        SalesforceSource.from_env(env, session=offline_session(), custom_fields={"deal": {"x": "Bad-Name__c"}})


@pytest.mark.parametrize(("config", "message"), [
    ({"acount": {"region": "Region__c"}}, "unknown entity 'acount'; expected one of owner, account"),
    ({"account": ["Region__c"]}, "custom_fields.account must map a canonical name"),
    ({"account": {"": "Region__c"}}, "a canonical name must be non-empty"),
    (["account"], "custom_fields must map an entity name"),
])
def test_a_malformed_mapping_is_refused(config: Any, message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message):
        validate_custom_fields(config)


def test_plain_api_names_are_accepted() -> None:
    config = {"account": {"region": "Region__c", "tier": "ns__Tier__c"}, "deal": {}, "activity": {"x": "Type"}}
    source = SalesforceSource(offline_client(), custom_fields=config)
    assert source.custom_fields == {"account": {"region": "Region__c", "tier": "ns__Tier__c"},
                                    "activity": {"x": "Type"}}
    assert SalesforceSource(offline_client()).custom_fields == {}


# -- the describe check ---------------------------------------------------------------------------
def test_the_describe_check_names_the_object_field_and_mapping() -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        check_fields("Account", ACCOUNT_DESCRIBE, "account", {"region": "Regoin__c"})
    assert str(caught.value) == ("Salesforce Account has no field Regoin__c (custom field account.region in the "
                                 "config): check its API name in Setup > Object Manager")
    with pytest.raises(ConnectorConfigError, match=r"no field A__c \(custom field account\.a in the config\); "
                                                   r"no field B__c .*: check their API names"):
        check_fields("Account", ACCOUNT_DESCRIBE, "account", {"a": "A__c", "region": "Region__c", "b": "B__c"})


def test_fields_take_the_orgs_spelling_and_type_and_are_selected_once() -> None:
    fields = check_fields("Account", ACCOUNT_DESCRIBE, "account",
                          {"region": "region__C", "seats": "Seats__c", "country": "billingcountry"})
    assert fields == (CustomField("region", "Region__c", "string"), CustomField("seats", "Seats__c", "double"),
                      CustomField("country", "BillingCountry", "string"))
    spec = with_custom_fields(STREAMS["accounts"], fields)
    assert spec.fields == (*STREAMS["accounts"].fields, "Region__c", "Seats__c")  # BillingCountry: read already
    record = {"Id": "001", "Region__c": "EMEA", "Seats__c": 12.0, "BillingCountry": "Germany"}
    assert custom_values(record, fields) == {"region": "EMEA", "seats": 12.0, "country": "Germany"}


# -- against the sandbox --------------------------------------------------------------------------
REGION = {"account": {"region": "Region__c"}}


@pytest.fixture
def connect(sandbox: SandboxServer) -> Iterator[Any]:
    opened: list[SalesforceSource] = []

    def make(custom_fields: Any = None) -> SalesforceSource:
        source = SalesforceSource.from_env(sandbox.connection_env(), custom_fields=custom_fields)
        opened.append(source)
        return source

    yield make
    for source in opened:
        source.close()


def accounts(store: Engine) -> dict[str, Account]:
    with Session(store) as session:
        return {row.source_id: row for row in session.exec(select(Account))}


def region_of_accounts(sandbox: SandboxServer) -> dict[str, str]:
    from connectors.sandbox.generator import REGION_OF_COUNTRY
    from connectors.sandbox.ids import sf_id
    return {sf_id("Account", row["id"]): REGION_OF_COUNTRY[row["country"]]
            for row in sandbox.state.query("SELECT id, country FROM accounts")}


@pytest.mark.integration
def test_a_misspelt_field_stops_the_stream_before_its_query(sandbox: SandboxServer, store: Engine,
                                                            connect: Any) -> None:
    source = connect({"account": {"region": "Regoin__c"}})
    before = sandbox.calls("salesforce")
    with pytest.raises(ConnectorConfigError, match=r"^Salesforce Account has no field Regoin__c \(custom field "
                                                   r"account\.region in the config\): check its API name in "
                                                   r"Setup > Object Manager$"):
        source.extract(store, "accounts")
    assert sandbox.calls("salesforce") - before == 1  # the describe alone
    assert accounts(store) == {}
    with Session(store) as session:
        assert session.get(SyncState, ("salesforce", "accounts")) is None


@pytest.mark.integration
def test_custom_values_land_in_custom_with_one_describe_per_object(sandbox: SandboxServer, store: Engine,
                                                                   connect: Any) -> None:
    source = connect(REGION | {"activity": {"kind": "Subject"}})
    result = source.extract(store, "accounts")
    want = region_of_accounts(sandbox)
    assert result.records == len(want) and result.api_calls == 1 + max(1, -(-len(want) // 2000))
    assert {source_id: row.custom for source_id, row in accounts(store).items()} == {
        source_id: {"region": region} for source_id, region in want.items()}
    calls = source.extract(store, "calls")
    emails = source.extract(store, "emails")  # Task was described for calls: no second describe
    assert calls.api_calls == 1 + max(1, -(-calls.records // 2000))
    assert emails.api_calls == max(1, -(-emails.records // 2000))


@pytest.mark.integration
def test_a_changed_mapping_rereads_and_rewrites_every_record(sandbox: SandboxServer, store: Engine,
                                                             connect: Any) -> None:
    total = len(region_of_accounts(sandbox))
    assert connect().extract(store, "accounts").records == total
    assert connect().extract(store, "accounts").records == 0  # unchanged records are not rewritten
    with Session(store) as session:
        state = session.get(SyncState, ("salesforce", "accounts"))
        assert state is not None and state.field_set is None
    source = connect(REGION)
    reread = source.extract(store, "accounts")
    assert reread.records == total  # every record rewritten, though none changed in the org
    assert all(row.custom.get("region") for row in accounts(store).values())
    with Session(store) as session:
        state = session.get(SyncState, ("salesforce", "accounts"))
        assert state is not None and state.field_set == field_set_digest(REGION["account"])
    assert source.extract(store, "accounts").records == 0  # the same mapping next time: incremental again
    assert connect().extract(store, "accounts").records == total  # dropping it rereads too
    assert all(row.custom == {} for row in accounts(store).values())
