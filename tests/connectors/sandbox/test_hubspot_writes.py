"""The sandbox HubSpot portal's writes as hubspot-api-client sees them: injected rejections, owner
checks, the three pre-created OKR objects, custom associations (v4) and the schema/property writes
setup uses."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import hubspot
import pytest
from hubspot.crm.associations.v4 import (
    BatchInputPublicDefaultAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicDefaultAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
    PublicObjectId,
)
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationApiException
from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputUpsert, SimplePublicObjectBatchInputUpsert
from hubspot.crm.objects.exceptions import ApiException
from hubspot.crm.properties import BatchInputPropertyCreate, PropertyCreate
from hubspot.crm.schemas import AssociationDefinitionEgg

from connectors.sandbox.ids import hs_id
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox

pytestmark = pytest.mark.integration
OBJECTIVE, KR, CHECKIN = "2-1000002", "2-1000001", "2-1000003"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "hs-writes", seed=37, deals=10, owners=3, accounts=4,
                         calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def client(portal: SandboxServer) -> Iterator[hubspot.Client]:
    portal.clear_rejections("hubspot")
    yield hubspot.Client.create(access_token=portal.token, host=portal.hubspot_url, ssl_ca_cert=str(portal.ca_path))
    portal.clear_rejections("hubspot")


def upsert(client: hubspot.Client, object_type: str, rows: dict[str, dict[str, str]]) -> Any:
    return client.crm.objects.batch_api.upsert(object_type, BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        SimplePublicObjectBatchInputUpsert(id=key, id_property="okr_key", properties={"name": key, **props})
        for key, props in rows.items()]))


def keys(portal: SandboxServer, obj: str, prefix: str) -> list[str]:
    return sorted(row["unique_key"] for row in portal.state.custom_records("hubspot", obj)
                  if row["unique_key"].startswith(prefix))


def test_the_three_okr_objects_are_precreated_with_their_associations(client: hubspot.Client) -> None:
    schemas = {schema.name: schema for schema in client.crm.schemas.core_api.get_all().results}
    assert {name: schema.object_type_id for name, schema in schemas.items()} == {
        "okr_key_result": KR, "okr_objective": OBJECTIVE, "okr_checkin": CHECKIN}
    kr = schemas["okr_key_result"]
    assert {(d.from_object_type_id, d.to_object_type_id) for d in kr.associations} == {(KR, OBJECTIVE), (CHECKIN, KR)}
    props = {prop.name: prop for prop in kr.properties}
    assert props["forecast"].type == "number" and props["hubspot_owner_id"].type == "enumeration"
    assert {prop.name: prop.type for prop in schemas["okr_checkin"].properties}["as_of"] == "date"


def test_validation_and_malformed_rules_refuse_the_whole_batch(client: hubspot.Client, portal: SandboxServer) -> None:
    prefix = f"w-{uuid.uuid4().hex[:6]}"
    portal.reject("hubspot", "okr_key_result", f"{prefix}-bad", "validation", "Target must be positive")
    with pytest.raises(ApiException) as refused:
        upsert(client, KR, {f"{prefix}-ok": {}, f"{prefix}-bad": {}})
    body = json.loads(refused.value.body)
    assert refused.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["message"] == "Target must be positive" and keys(portal, "okr_key_result", prefix) == []
    portal.clear_rejections("hubspot")
    portal.reject("hubspot", "okr_checkin", f"{prefix}-*", "malformed", "Invalid input JSON on line 1")
    with pytest.raises(ApiException) as malformed:
        upsert(client, CHECKIN, {f"{prefix}-c": {}})
    assert malformed.value.status == 400 and keys(portal, "okr_checkin", prefix) == []
    assert upsert(client, KR, {f"{prefix}-ok": {}}).results[0].new  # other objects are not affected


def test_a_row_lock_rule_refuses_one_record_of_a_207(client: hubspot.Client, portal: SandboxServer) -> None:
    prefix = f"l-{uuid.uuid4().hex[:6]}"
    portal.reject("hubspot", "okr_objective", f"{prefix}-2", "row_lock", "Record is being updated")
    response = upsert(client, OBJECTIVE, {f"{prefix}-{index}": {} for index in range(3)})
    assert [record.properties["okr_key"] for record in response.results] == [f"{prefix}-0", f"{prefix}-1"]
    assert response.num_errors == 1 and response.errors[0].context == {"id": [f"{prefix}-2"]}
    assert (response.errors[0].category, response.errors[0].message) == ("CONFLICT", "Record is being updated")
    portal.clear_rejections("hubspot")
    assert upsert(client, OBJECTIVE, {f"{prefix}-2": {}}).results[0].new


def test_an_unknown_owner_fails_its_record_only(client: hubspot.Client, portal: SandboxServer) -> None:
    prefix = f"o-{uuid.uuid4().hex[:6]}"
    owner = hs_id("owners", 1)
    response = upsert(client, KR, {f"{prefix}-a": {"hubspot_owner_id": owner},
                                   f"{prefix}-b": {"hubspot_owner_id": "123"}})
    assert [record.properties["hubspot_owner_id"] for record in response.results] == [owner]
    assert response.errors[0].context == {"id": [f"{prefix}-b"]} and "INVALID_OWNER_ID" in response.errors[0].message


def test_custom_records_associate_and_read_back_both_ways(client: hubspot.Client) -> None:
    prefix = f"a-{uuid.uuid4().hex[:6]}"
    objective = upsert(client, OBJECTIVE, {f"{prefix}-o": {}}).results[0].id
    krs = [record.id for record in upsert(client, KR, {f"{prefix}-k{index}": {} for index in range(2)}).results]
    batch = client.crm.associations.v4.batch_api
    made = batch.create_default(KR, OBJECTIVE, BatchInputPublicDefaultAssociationMultiPost(inputs=[
        PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=kr), to=PublicObjectId(id=objective)) for kr in krs]))
    assert [(link._from.id, link.to.id) for link in made.results] == [(kr, objective) for kr in krs]
    assert made.results[0].association_spec.association_category == "USER_DEFINED"
    again = batch.create_default(KR, OBJECTIVE, BatchInputPublicDefaultAssociationMultiPost(inputs=[
        PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=krs[0]), to=PublicObjectId(id=objective))]))
    assert len(again.results) == 1  # associating twice changes nothing

    def read(source: str, target: str, ids: list[str]) -> dict[str, list[str]]:
        response = batch.get_page(source, target, BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in ids]))
        return {result._from.id: [str(to.to_object_id) for to in result.to] for result in response.results}

    assert read(KR, OBJECTIVE, krs) == {kr: [objective] for kr in krs}
    assert read("okr_objective", "okr_key_result", [objective]) == {objective: sorted(krs)}
    with pytest.raises(AssociationApiException) as undefined:  # objectives and check-ins have no definition
        batch.create_default(OBJECTIVE, CHECKIN, BatchInputPublicDefaultAssociationMultiPost(inputs=[
            PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=objective), to=PublicObjectId(id=krs[0]))]))
    assert undefined.value.status == 400


def test_setup_writes_properties_in_a_batch_and_association_definitions(client: hubspot.Client) -> None:
    name = f"extra_{uuid.uuid4().hex[:6]}"
    created = client.crm.properties.batch_api.create(OBJECTIVE, BatchInputPropertyCreate(inputs=[
        PropertyCreate(name=name, label="Extra", type="number", field_type="number", group_name="okr")]))
    assert [prop.name for prop in created.results] == [name]
    schema = client.crm.schemas.core_api.get_by_id("okr_objective")
    assert {prop.name: prop.type for prop in schema.properties}[name] == "number"
    definition = client.crm.schemas.core_api.create_association(CHECKIN, AssociationDefinitionEgg(
        from_object_type_id=CHECKIN, to_object_type_id=OBJECTIVE, name="okr_checkin_to_okr_objective"))
    assert (definition.from_object_type_id, definition.to_object_type_id) == (CHECKIN, OBJECTIVE)
    schema = client.crm.schemas.core_api.get_by_id("okr_objective")
    assert (CHECKIN, OBJECTIVE) in {(d.from_object_type_id, d.to_object_type_id) for d in schema.associations}
