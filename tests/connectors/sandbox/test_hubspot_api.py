"""The sandbox's HubSpot face, driven by hubspot-api-client over HTTPS (client-side validation on)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import hubspot
import pytest
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    BatchResponsePublicAssociationMultiWithLabel,
    BatchResponsePublicAssociationMultiWithLabelWithErrors,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.objects.exceptions import ApiException, ForbiddenException
from hubspot.crm.owners.exceptions import UnauthorizedException
from hubspot.crm.properties import PropertyCreate
from hubspot.crm.schemas import ObjectSchemaEgg, ObjectTypeDefinitionLabels, ObjectTypePropertyCreate
from hubspot.crm.schemas.exceptions import ApiException as SchemaApiException
from hubspot.discovery.discovery_base import DiscoveryBase

from connectors.sandbox.generator import STAGES
from connectors.sandbox.hubspot_api import SEARCH_CAP
from connectors.sandbox.hubspot_catalog import iso_from_ms
from connectors.sandbox.hubspot_search import tie_rank
from connectors.sandbox.ids import hs_id, hs_number
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox

pytestmark = pytest.mark.integration
KR_OBJECT = "2-1000001"


@pytest.fixture(scope="module")
def clients(sandbox: SandboxServer) -> Iterator[Callable[[str], hubspot.Client]]:
    """Clients whose connections are closed at the end (an idle TLS keep-alive delays server stop)."""
    made: list[Any] = []

    def factory(package: Any, api_name: str, config: dict[str, Any]) -> Any:
        made.append(DiscoveryBase._default_api_factory(package, api_name, config))
        return made[-1]

    def make(token: str) -> hubspot.Client:
        return hubspot.Client.create(access_token=token, host=sandbox.hubspot_url, api_factory=factory,
                                     ssl_ca_cert=str(sandbox.ca_path), client_side_validation=True)

    yield make
    for api in made:
        api.api_client.last_response = None
        api.api_client.rest_client.pool_manager.clear()


@pytest.fixture(scope="module")
def client(clients: Callable[[str], hubspot.Client], sandbox: SandboxServer) -> hubspot.Client:
    return clients(sandbox.token)


@pytest.fixture
def app_state(sandbox: SandboxServer) -> Any:
    return sandbox.counters["hubspot"].app.state


def search(client: hubspot.Client, object_type: str, **request: Any) -> Any:
    return client.crm.objects.search_api.do_search(object_type, PublicObjectSearchRequest(**request))


def flt(name: str, operator: str, value: Any = None, **extra: Any) -> Filter:
    return Filter(property_name=name, operator=operator, value=None if value is None else str(value), **extra)


def error_json(exc: Exception) -> dict[str, Any]:
    return json.loads(exc.body)  # type: ignore[attr-defined]


def upsert(client: hubspot.Client, inputs: list[dict[str, Any]]) -> Any:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        SimplePublicObjectBatchInputUpsert(id=item["id"], id_property="okr_key",
                                           properties=item["properties"])
        for item in inputs])
    return client.crm.objects.batch_api.upsert(KR_OBJECT, batch)


# -- reads ----------------------------------------------------------------------------------------
def test_owners_page_completely_and_split_by_archived(client: hubspot.Client, sandbox: SandboxServer) -> None:
    seen: dict[bool, list[str]] = {}
    for archived in (False, True):
        ids, after = [], None
        while True:
            page = client.crm.owners.owners_api.get_page(limit=5, after=after, archived=archived)
            ids += [owner.id for owner in page.results]
            assert all(owner.archived is archived for owner in page.results)
            if not page.paging:
                break
            after = page.paging.next.after
        seen[archived] = ids
    rows = sandbox.state.query("SELECT id, is_active FROM owners WHERE deleted = 0")
    assert sorted(seen[False]) == sorted(hs_id("owners", r["id"]) for r in rows if r["is_active"])
    assert sorted(seen[True]) == sorted(hs_id("owners", r["id"]) for r in rows if not r["is_active"])
    one = client.crm.owners.owners_api.get_by_id(seen[False][0])
    assert one.email and one.teams[0].primary and one.type == "PERSON"


def test_object_list_pages_at_100_without_gaps_or_duplicates(client: hubspot.Client,
                                                              sandbox: SandboxServer) -> None:
    ids, after, pages = [], None, 0
    while True:
        page = client.crm.objects.basic_api.get_page("deals", limit=100, after=after,
                                                     properties=["dealname", "amount"])
        pages += 1
        assert len(page.results) <= 100
        ids += [record.id for record in page.results]
        if not page.paging:
            break
        after = page.paging.next.after
    expected = [hs_id("deals", row["id"]) for row in sandbox.state.query(
        "SELECT id FROM deals WHERE deleted = 0 ORDER BY id")]
    assert ids == expected and len(set(ids)) == len(ids)
    assert pages == -(-len(expected) // 100)
    assert set(page_one_props := client.crm.objects.basic_api.get_page("deals").results[0].properties) >= {
        "dealname", "dealstage", "hs_lastmodifieddate"}, page_one_props
    with pytest.raises(ApiException) as refused:
        client.crm.objects.basic_api.get_page("deals", limit=101)
    assert refused.value.status == 400


def test_read_one_object_by_each_name_of_its_type(client: hubspot.Client) -> None:
    deal = client.crm.objects.basic_api.get_by_id("0-3", hs_id("deals", 1), properties=["dealname"])
    assert deal.id == hs_id("deals", 1) and deal.properties["dealname"]
    for name in ("okr_key_result", KR_OBJECT, "p24681357_okr_key_result"):
        assert client.crm.objects.basic_api.get_page(name, limit=1).results is not None
    with pytest.raises(ApiException) as missing:
        client.crm.objects.basic_api.get_by_id("deals", "999")
    assert missing.value.status == 404 and error_json(missing.value)["category"] == "OBJECT_NOT_FOUND"


def test_search_filters_match_sql(client: hubspot.Client, sandbox: SandboxServer) -> None:
    def count(sql: str, *params: Any) -> int:
        return sandbox.state.query(f"SELECT COUNT(*) FROM deals WHERE deleted = 0 AND {sql}", params)[0][0]

    won = search(client, "deals", filter_groups=[FilterGroup(filters=[flt("dealstage", "EQ", "closedwon")])])
    assert won.total == count("stage = 'closed_won'")
    between = search(client, "deals", filter_groups=[FilterGroup(filters=[
        flt("amount", "BETWEEN", 20000, high_value="50000"),
        flt("dealtype", "IN", values=["renewal", "upsell"])])])
    assert between.total == count("amount BETWEEN 20000 AND 50000 AND deal_type IN ('Renewal', 'Upsell')")
    ored = search(client, "deals", filter_groups=[FilterGroup(filters=[flt("dealstage", "EQ", "closedlost")]),
                                                  FilterGroup(filters=[flt("lead_source", "EQ", "Web")])])
    assert ored.total == count("(stage = 'closed_lost' OR lead_source = 'Web')")
    neq = search(client, "deals", filter_groups=[FilterGroup(filters=[flt("hs_is_closed", "NEQ", "true"),
                                                                      flt("closedate", "HAS_PROPERTY")])])
    assert neq.total == count("stage NOT IN ('closed_won', 'closed_lost')")
    cutoff = sandbox.state.query("SELECT modified_ms FROM deals ORDER BY modified_ms LIMIT 1 OFFSET 99")[0][0]
    as_iso = search(client, "deals", filter_groups=[FilterGroup(filters=[
        flt("hs_lastmodifieddate", "LTE", iso_from_ms(cutoff))])])
    as_ms = search(client, "deals",
                   filter_groups=[FilterGroup(filters=[flt("hs_lastmodifieddate", "LTE", cutoff)])])
    assert as_iso.total == as_ms.total == count("modified_ms <= ?", cutoff)


def _search_all(client: hubspot.Client, sorts: list[dict[str, str]], **request: Any) -> list[Any]:
    """Every result of one search, paged with `after`."""
    results, after = [], None
    while True:
        page = search(client, "deals", sorts=sorts, limit=200, after=after, **request)
        results += page.results
        if not page.paging:
            return results
        after = page.paging.next.after


def test_search_sorts_pages_and_breaks_ties_in_an_order_that_is_not_id_order(client: hubspot.Client,
                                                                              sandbox: SandboxServer) -> None:
    """HubSpot documents no tie order: the sandbox's must not be id order, or connector tests would miss
    any reliance on it."""
    results = _search_all(client, [{"propertyName": "amount", "direction": "DESCENDING"}], properties=["amount"])
    rows = sandbox.state.query("SELECT id, amount FROM deals WHERE deleted = 0")
    expected = sorted(rows, key=lambda row: (-row["amount"], tie_rank(row["id"]), row["id"]))
    assert [record.id for record in results] == [hs_id("deals", row["id"]) for row in expected]
    groups: dict[str, list[int]] = {}
    for record in results:
        groups.setdefault(record.properties["amount"], []).append(hs_number("deals", record.id))
    ties = [numbers for numbers in groups.values() if len(numbers) > 1]
    assert ties and any(numbers != sorted(numbers) for numbers in ties)


def test_search_sorted_by_object_id_is_in_id_order(client: hubspot.Client, sandbox: SandboxServer) -> None:
    stamp = sandbox.state.query("SELECT modified_ms FROM deals WHERE deleted = 0 ORDER BY id LIMIT 1")[0][0]
    results = _search_all(client, [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                          filter_groups=[FilterGroup(filters=[flt("hs_lastmodifieddate", "GTE", stamp)])])
    expected = [hs_id("deals", row["id"]) for row in sandbox.state.query(
        "SELECT id FROM deals WHERE deleted = 0 AND modified_ms >= ? ORDER BY id", (stamp,))]
    assert [record.id for record in results] == expected
    everything = search(client, "deals", filter_groups=[FilterGroup(filters=[flt("hs_object_id", "GT", "9")])])
    assert everything.total == len(sandbox.state.query("SELECT id FROM deals WHERE deleted = 0"))  # as numbers


def test_search_limits_and_cap(client: hubspot.Client, app_state: Any) -> None:
    with pytest.raises(ApiException) as too_big:
        search(client, "deals", limit=201)
    assert too_big.value.status == 400
    with pytest.raises(ApiException) as groups:
        search(client, "deals", filter_groups=[FilterGroup(filters=[flt("amount", "GT", 1)])] * 6)
    assert groups.value.status == 400
    app_state.search_cap = 300
    try:
        page = search(client, "deals", limit=200, after="200")
        assert page.paging.next.after == "400"
        with pytest.raises(ApiException) as capped:
            search(client, "deals", limit=200, after="400")
    finally:
        app_state.search_cap = SEARCH_CAP
    body = error_json(capped.value)
    assert capped.value.status == 400 and body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"] and body["message"]


# -- batch writes -----------------------------------------------------------------------------------
def test_batch_upsert_creates_then_updates(client: hubspot.Client, sandbox: SandboxServer) -> None:
    key = f"test-hs-api-{uuid.uuid4().hex[:8]}"
    first = upsert(client, [{"id": key, "properties": {"name": "Revenue", "current_value": "10"}}])
    assert [record.new for record in first.results] == [True] and first.status == "COMPLETE"
    second = upsert(client, [{"id": key, "properties": {"name": "Revenue", "current_value": "12.5"}}])
    assert [record.new for record in second.results] == [False]
    assert second.results[0].id == first.results[0].id
    stored = [r for r in sandbox.state.custom_records("hubspot", "okr_key_result") if r["unique_key"] == key]
    assert len(stored) == 1 and stored[0]["fields"]["current_value"] == "12.5"
    found = search(client, KR_OBJECT, filter_groups=[FilterGroup(filters=[flt("okr_key", "EQ", key)])],
                   properties=["current_value", "okr_key"])
    assert found.total == 1 and found.results[0].properties["current_value"] == "12.5"


def test_batch_upsert_reports_a_bad_property_as_207(client: hubspot.Client) -> None:
    good, bad = (f"test-hs-api-{uuid.uuid4().hex[:8]}" for _ in range(2))
    response = upsert(client, [{"id": good, "properties": {"name": "ok"}},
                               {"id": bad, "properties": {"name": "bad", "no_such_property": "1"}}])
    assert type(response).__name__ == "BatchResponseSimplePublicUpsertObjectWithErrors"
    assert [record.properties["okr_key"] for record in response.results] == [good]
    assert response.num_errors == 1 and response.errors[0].context == {"id": [bad]}
    assert response.errors[0].category == "VALIDATION_ERROR"
    assert "no_such_property" in response.errors[0].message


def test_batch_rejects_more_than_100_inputs_and_writes_to_standard_objects(client: hubspot.Client) -> None:
    inputs = [{"id": f"test-hs-api-many-{index}", "properties": {"name": "x"}} for index in range(101)]
    with pytest.raises(ApiException) as refused:
        upsert(client, inputs)
    body = error_json(refused.value)
    assert refused.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["message"] == "The maximum number of inputs supported in a batch is 100"
    with pytest.raises(ForbiddenException):
        client.crm.objects.batch_api.upsert("deals", BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
            SimplePublicObjectBatchInputUpsert(id="1", id_property="dealname", properties={"amount": "1"})]))


# -- metadata ---------------------------------------------------------------------------------------
def test_pipelines_parse_with_stage_labels_and_metadata(client: hubspot.Client) -> None:
    pipelines = client.crm.pipelines.pipelines_api.get_all("deals").results
    assert [pipeline.id for pipeline in pipelines] == ["default"]
    stages = {stage.label: stage.metadata for stage in pipelines[0].stages}
    assert list(stages) == [label for label, *_ in STAGES.values()]
    assert stages["Closed Won"] == {"isClosed": "true", "probability": "1.0"}
    assert stages["Prospecting"] == {"isClosed": "false", "probability": "0.1"}
    one = client.crm.pipelines.pipelines_api.get_by_id("deals", "default")
    assert one.label == "Sales Pipeline"


def test_properties_parse_and_can_be_created(client: hubspot.Client) -> None:
    deal_type = client.crm.properties.core_api.get_by_name("deals", "dealtype")
    assert {option.value: option.label for option in deal_type.options} == {
        "newbusiness": "New Business", "renewal": "Renewal", "upsell": "Upsell"}
    names = {prop.name for prop in client.crm.properties.core_api.get_all("deals").results}
    assert {"lead_source", "hs_lastmodifieddate", "dealstage"} <= names
    name = f"test_hs_prop_{uuid.uuid4().hex[:6]}"
    created = client.crm.properties.core_api.create(KR_OBJECT, PropertyCreate(
        name=name, label="Test", type="string", field_type="text", group_name="okr"))
    assert created.name == name
    key = f"test-hs-api-{uuid.uuid4().hex[:8]}"
    written = upsert(client, [{"id": key, "properties": {"name": "n", name: "v"}}])
    assert written.results[0].properties[name] == "v"


def test_schemas_list_the_precreated_key_result_object(client: hubspot.Client) -> None:
    schemas = client.crm.schemas.core_api.get_all().results
    schema = next(item for item in schemas if item.name == "okr_key_result")
    assert schema.object_type_id == KR_OBJECT and schema.fully_qualified_name.endswith("_okr_key_result")
    props = {prop.name: prop for prop in schema.properties}
    assert props["okr_key"].has_unique_value and props["current_value"].type == "number"
    assert client.crm.schemas.core_api.get_by_id("okr_key_result").object_type_id == KR_OBJECT


def test_a_schema_created_through_the_api_takes_records(client: hubspot.Client) -> None:
    name = f"test_hs_obj_{uuid.uuid4().hex[:6]}"
    created = client.crm.schemas.core_api.create(ObjectSchemaEgg(
        name=name, labels=ObjectTypeDefinitionLabels(singular="Thing", plural="Things"),
        primary_display_property="title", required_properties=["code"], associated_objects=[],
        properties=[ObjectTypePropertyCreate(name="code", label="Code", type="string", field_type="text",
                                             has_unique_value=True),
                    ObjectTypePropertyCreate(name="title", label="Title", type="string", field_type="text"),
                    ObjectTypePropertyCreate(name="size", label="Size", type="number", field_type="number")]))
    assert created.object_type_id.startswith("2-") and created.fully_qualified_name.endswith(name)
    batch = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[SimplePublicObjectBatchInputUpsert(
        id="A-1", id_property="code", properties={"title": "first", "size": "3"})])
    assert client.crm.objects.batch_api.upsert(created.object_type_id, batch).results[0].new is True
    found = search(client, name, filter_groups=[FilterGroup(filters=[flt("size", "GTE", 2)])],
                   properties=["code", "title"])
    assert [record.properties["code"] for record in found.results] == ["A-1"]
    with pytest.raises(SchemaApiException) as duplicate:
        client.crm.schemas.core_api.create(ObjectSchemaEgg(
            name=name, labels=ObjectTypeDefinitionLabels(singular="T", plural="Ts"), required_properties=[],
            associated_objects=[], properties=[
                ObjectTypePropertyCreate(name="x", label="X", type="string", field_type="text")]))
    assert duplicate.value.status == 409


# -- auth and headers -------------------------------------------------------------------------------
def test_wrong_token_gets_hubspots_401_body(clients: Callable[[str], hubspot.Client]) -> None:
    intruder = clients("not-the-token")
    with pytest.raises(UnauthorizedException) as denied:
        intruder.crm.owners.owners_api.get_page()
    body = error_json(denied.value)
    assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found") and body["correlationId"]


def test_responses_carry_rate_limit_headers_and_injected_faults(client: hubspot.Client,
                                                                app_state: Any) -> None:
    _data, status, headers = client.crm.owners.owners_api.get_page_with_http_info(limit=1)
    assert status == 200
    assert int(headers["X-HubSpot-RateLimit-Max"]) >= int(headers["X-HubSpot-RateLimit-Remaining"])
    app_state.faults.append(429)  # a POST: urllib3 does not retry it behind our back
    with pytest.raises(ApiException) as limited:
        search(client, "deals", limit=1)
    assert limited.value.status == 429 and limited.value.headers["Retry-After"] == "0"
    assert error_json(limited.value)["policyName"] == "TEN_SECONDLY_ROLLING"


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A small org of this module's own, for tests that delete records."""
    with private_sandbox(tmp_path_factory, "hs-api", seed=17, deals=120, owners=5, accounts=15,
                         calls_per_deal=1.0) as server:
        yield server


@pytest.fixture(scope="module")
def private_client(private: SandboxServer) -> Iterator[hubspot.Client]:
    made: list[Any] = []

    def factory(package: Any, api_name: str, config: dict[str, Any]) -> Any:
        made.append(DiscoveryBase._default_api_factory(package, api_name, config))
        return made[-1]

    yield hubspot.Client.create(access_token=private.token, host=private.hubspot_url, api_factory=factory,
                                ssl_ca_cert=str(private.ca_path), client_side_validation=True)
    for api in made:
        api.api_client.last_response = None
        api.api_client.rest_client.pool_manager.clear()


def read_links(client: hubspot.Client, from_type: str, to_type: str, ids: list[str]) -> Any:
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=record_id) for record_id in ids])
    return client.crm.associations.v4.batch_api.get_page(from_type, to_type, request)


def test_archived_records_are_listed_only_with_archived_true(private_client: hubspot.Client,
                                                            private: SandboxServer) -> None:
    stamp = private.state.next_modstamp_ms()
    with private.state.transaction() as conn:
        conn.execute("UPDATE deals SET deleted = 1, modified_ms = ? WHERE id IN (3, 4)", (stamp,))
    objects = private_client.crm.objects
    archived = objects.basic_api.get_page("deals", limit=100, archived=True, properties=["dealname"])
    assert [record.id for record in archived.results] == [hs_id("deals", 3), hs_id("deals", 4)]
    assert all(record.archived and record.archived_at == record.updated_at for record in archived.results)
    assert iso_from_ms(stamp) == archived.results[0].archived_at.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
    assert archived.results[0].properties["dealname"] and archived.paging is None
    live = objects.basic_api.get_page("deals", limit=100)
    assert not {hs_id("deals", 3), hs_id("deals", 4)} & {record.id for record in live.results}
    assert all(not record.archived and record.archived_at is None for record in live.results)
    found = search(private_client, "deals", filter_groups=[FilterGroup(filters=[
        flt("hs_object_id", "IN", values=[hs_id("deals", 3), hs_id("deals", 5)])])], limit=10)
    assert [record.id for record in found.results] == [hs_id("deals", 5)]
    # an archived deal has no associations: a 207 with the id in errors, as HubSpot answers
    partial = read_links(private_client, "deals", "companies", [hs_id("deals", 3), hs_id("deals", 5)])
    assert isinstance(partial, BatchResponsePublicAssociationMultiWithLabelWithErrors)
    assert [result._from.id for result in partial.results] == [hs_id("deals", 5)]
    assert partial.num_errors == 1 and partial.errors[0].context == {"fromObjectId": [hs_id("deals", 3)]}


def test_associations_batch_read_gives_the_logical_links(client: hubspot.Client, sandbox: SandboxServer) -> None:
    deals = sandbox.state.query("SELECT id, account_id FROM deals WHERE deleted = 0 ORDER BY id LIMIT 250")
    response = read_links(client, "deals", "0-2", [hs_id("deals", row["id"]) for row in deals])
    assert isinstance(response, BatchResponsePublicAssociationMultiWithLabel) and response.status == "COMPLETE"
    assert response.started_at and response.completed_at
    assert {result._from.id: [target.to_object_id for target in result.to] for result in response.results} == {
        hs_id("deals", row["id"]): [hs_id("companies", row["account_id"])] for row in deals}
    kinds = {(spec.type_id, spec.label, spec.category) for spec in response.results[0].to[0].association_types}
    assert kinds == {(5, "Primary", "HUBSPOT_DEFINED"), (341, None, "HUBSPOT_DEFINED")}
    calls = sandbox.state.query("SELECT id, deal_id FROM calls WHERE deleted = 0 ORDER BY id LIMIT 20")
    response = read_links(client, "calls", "deals", [hs_id("calls", row["id"]) for row in calls])
    assert {result._from.id: result.to[0].to_object_id for result in response.results} == {
        hs_id("calls", row["id"]): hs_id("deals", row["deal_id"]) for row in calls}
    assert response.results[0].to[0].association_types[0].type_id == 206
    with pytest.raises(AssociationsApiException) as refused:
        read_links(client, "deals", "companies", [str(number) for number in range(1001)])
    assert refused.value.status == 400 and "1000" in error_json(refused.value)["message"]
