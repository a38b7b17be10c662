"""HubSpotSource.setup() and check_setup() on bare sandbox portals (no OKR objects to start with)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hubspot.crm.schemas import ObjectSchemaEgg, ObjectTypeDefinitionLabels, ObjectTypePropertyCreate
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.hubspot import HubSpotSource, settings
from connectors.okr_records import OkrRecords
from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.server import SandboxServer
from tests.conftest import TEST_ORG

pytestmark = pytest.mark.integration
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@pytest.fixture
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    spec = OrgSpec(anchor=TEST_ORG.anchor, seed=41, deals=10, owners=3, accounts=4, calls_per_deal=1.0)
    with SandboxServer(tmp_path_factory.mktemp("hs-bare"), spec, hubspot_objects=False) as server:
        yield server


def writes(server: SandboxServer) -> list[str]:
    return sorted(call for call in server.counters["hubspot"].counts if call.startswith(WRITES))


def test_setup_creates_the_three_objects_once_then_does_nothing(bare: SandboxServer, store: Engine) -> None:
    with HubSpotSource.from_env(bare.connection_env()) as source:
        missing = source.check_setup()
        assert missing == [f"HubSpot custom object {name} is missing: run `okr-sync setup hubspot` (custom objects"
                           " need an Enterprise portal)" for name in settings.OKR_OBJECT_NAMES.values()]
        with pytest.raises(ConnectorError, match="okr_key_result is missing"):
            source.write_key_results(store, [{"key": "k-1", "title": "KR"}])
        bare.reset_calls()

        done = source.setup()
        assert done == ["created custom object okr_objective (2-1000001) with 12 properties",
                        "created custom object okr_key_result (2-1000002) with 20 properties, associated with"
                        " 2-1000001",
                        "created custom object okr_checkin (2-1000003) with 15 properties, associated with"
                        " 2-1000002"]
        assert bare.calls("hubspot") == 1 + 3  # the schemas list, then one create per object
        assert source.check_setup() == []

        bare.reset_calls()
        assert source.setup() == [] and bare.calls("hubspot") == 1 and writes(bare) == []  # idempotent

        records = OkrRecords(
            [{"key": "grow:2026-Q4", "title": "Grow", "period": "2026-Q4", "period_start": "2026-10-01",
              "period_end": "2026-12-31", "progress": 0.5, "score": 0.5, "status": "on_track", "weight": 1.0,
              "objective_id": "grow", "owner_id": None, "parent_key": None}],
            [{"key": "grow:revenue", "title": "Revenue", "objective_key": "grow:2026-Q4", "value": 5.0,
              "target": 10.0, "progress": 0.5, "pace": "linear"}],
            [{"key": "grow:revenue@2026-11-15", "kr_key": "grow:revenue", "as_of": "2026-11-15", "value": 5.0}])
        result = source.write_okrs(store, records)
        assert (result.created, result.errors, result.api_calls) == (3, [], 1 + 3 + 2)
        stored = bare.state.custom_records("hubspot", "okr_checkin")
        assert [row["fields"]["as_of"] for row in stored] == ["2026-11-15"]


def test_check_setup_names_each_problem_and_setup_fixes_what_it_can(bare: SandboxServer) -> None:
    with HubSpotSource.from_env(bare.connection_env()) as source:
        # an admin made okr_key_result by hand: okr_key not unique, progress as text, most properties missing
        schemas = source._api.schemas
        schemas.create(ObjectSchemaEgg(
            name="okr_key_result", labels=ObjectTypeDefinitionLabels(singular="KR", plural="KRs"),
            primary_display_property="name", required_properties=["okr_key"], associated_objects=[],
            properties=[ObjectTypePropertyCreate(name="okr_key", label="Key", type="string", field_type="text"),
                        ObjectTypePropertyCreate(name="name", label="Name", type="string", field_type="text"),
                        ObjectTypePropertyCreate(name="progress", label="Progress", type="string",
                                                 field_type="text")]))
        problems = source.check_setup()
        assert problems[0].startswith("HubSpot custom object okr_objective is missing")
        assert "okr_key_result.current_value is missing: number" in problems
        assert "okr_key_result.last_synced is missing: datetime (date)" in problems
        assert "okr_key_result.progress must be a number property, is string" in problems
        assert any(problem.startswith("okr_key_result.okr_key must have unique values") for problem in problems)
        assert problems[-1].startswith("HubSpot custom object okr_checkin is missing")

        bare.reset_calls()
        done = source.setup()
        assert done[0] == "created custom object okr_objective (2-1000002) with 12 properties"
        assert done[1].startswith("added properties objective, period, group, metric, current_value")
        assert done[2].startswith("cannot fix: okr_key_result.okr_key must have unique values")
        assert done[3] == "cannot fix: okr_key_result.progress must be a number property, is string"
        assert done[4] == "created custom object okr_checkin (2-1000003) with 15 properties, associated with 2-1000001"
        assert done[5:] == ["created association okr_key_result -> okr_objective"]
        # schemas list, objective, one properties batch, check-in, one association definition
        assert bare.calls("hubspot") == 5
        assert source.check_setup() == [line.removeprefix("cannot fix: ") for line in done[2:4]]
        with pytest.raises(ConnectorError, match="okr_key_result.progress must be a number"):
            source.check_writeback_target()


def test_a_portal_missing_one_property_is_refused_before_any_write(bare: SandboxServer, store: Engine) -> None:
    with HubSpotSource.from_env(bare.connection_env()) as source:
        source.setup()
        assert source.check_setup() == []  # ready; now the writer expects a property HubSpot lacks
        bare.reset_calls()
        settings.CHECKIN_FIELDS["extra"] = "extra_property"
        try:
            with pytest.raises(ConnectorError, match="okr_checkin.extra_property is missing: string"):
                source.write_okrs(store, OkrRecords(checkins=[{"key": "a@2026-11-15", "kr_key": "a"}]))
        finally:
            del settings.CHECKIN_FIELDS["extra"]
        assert bare.calls("hubspot") == 1 and writes(bare) == []
