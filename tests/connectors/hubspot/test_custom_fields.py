"""Custom fields from config: names checked when the source is built, properties checked against the
portal before a stream's first search, values in `custom`, a changed field set re-reads the stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import ConnectorConfigError
from connectors.hubspot import HubSpotSource, settings
from connectors.sandbox.server import SandboxServer
from connectors.store import Account, Campaign, Lead, SyncState
from tests.conftest import private_sandbox
from tests.connectors.stream_oracle import REGION_OF


@pytest.mark.parametrize("fields, message", [
    ({"account": {"region": "Region__c"}}, "custom field account.region: 'Region__c' is not a HubSpot property"),
    ({"account": {"region": "region; drop"}}, "is not a HubSpot property internal name"),
    ({"account": {"region": "1region"}}, "is not a HubSpot property internal name"),
    ({"acount": {"region": "region"}}, "unknown entity 'acount'"),
    ({"lead": {"score": "Score"}}, "custom field lead.score: 'Score' is not a HubSpot property"),
    ({"owner": {"desk": "desk"}}, "owners"),
])
def test_bad_custom_fields_are_refused_when_the_source_is_built(fields: Any, message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message.replace("(", r"\(")):
        HubSpotSource("pat-x", custom_fields=fields)
    with pytest.raises(ConnectorConfigError, match=message.replace("(", r"\(")):
        HubSpotSource.from_env({settings.TOKEN_ENV: "pat-x"}, custom_fields=fields)


def test_good_custom_fields_are_kept() -> None:
    source = HubSpotSource.from_env({settings.TOKEN_ENV: "pat-x"},
                                    custom_fields={"account": {"region": "region"}, "activity": {}})
    assert source.custom_fields == {"account": {"region": "region"}}
    both = {"lead": {"score": "lead_score"}, "campaign": {"channel": "channel"}}  # HubSpot has both streams now
    assert HubSpotSource("pat-x", custom_fields=both).custom_fields == both


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "hs-custom", seed=29, deals=60, owners=4, accounts=30,
                         calls_per_deal=1.0) as server:
        yield server


def accounts(store: Engine) -> dict[str, dict[str, Any]]:
    with Session(store) as session:
        return {row.source_id: row.custom for row in session.exec(select(Account))}


@pytest.mark.integration
def test_a_missing_property_stops_the_stream_before_its_search(org: SandboxServer, store: Engine) -> None:
    with HubSpotSource.from_env(org.connection_env(), custom_fields={"account": {"region": "regoin"}}) as source:
        with pytest.raises(ConnectorConfigError) as failure:
            source.extract(store, "companies")
        assert source.api_calls == 1  # GET /crm/v3/properties/companies, nothing else
        assert str(failure.value) == (
            "HubSpot companies has no property regoin (custom field account.region in the config):"
            " check its internal name in Settings > Data Management > Properties")
        with pytest.raises(ConnectorConfigError):
            source.extract(store, "companies")
        assert source.api_calls == 1  # checked once per type and source
        assert source.extract(store, "deals").records == 60  # other streams are not concerned
    assert accounts(store) == {}
    with Session(store) as session:
        assert session.get(SyncState, ("hubspot", "companies")) is None


@pytest.mark.integration
def test_custom_values_are_stored_and_a_new_field_set_rereads_the_stream(org: SandboxServer,
                                                                          store: Engine) -> None:
    countries = {str(10_000_000 + row["id"]): row["country"]
                 for row in org.state.query("SELECT id, country FROM accounts WHERE deleted = 0")}
    with HubSpotSource.from_env(org.connection_env()) as source:
        assert source.extract(store, "companies").records == len(countries)
    assert all(value == {} for value in accounts(store).values())
    env = org.connection_env()
    with HubSpotSource.from_env(env, custom_fields={"account": {"region": "region"}}) as source:
        reread = source.extract(store, "companies")
        assert reread.records == len(countries)  # unchanged records rewritten: they lacked the field
        assert accounts(store) == {record_id: {"region": REGION_OF[country]}
                                   for record_id, country in countries.items()}
        quiet = source.extract(store, "companies")
        assert (quiet.records, quiet.api_calls) == (0, 2)  # the check was made once: one search, one archive page
    with HubSpotSource.from_env(env, custom_fields={"account": {"region": "region"}}) as source:
        again = source.extract(store, "companies")
        assert (again.records, again.api_calls) == (0, 3)  # a new source checks once more


@pytest.mark.integration
def test_lead_and_campaign_custom_fields(org: SandboxServer, store: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Leads are checked against GET /crm/v3/properties/leads; campaigns, whose properties a portal may not
    list (the sandbox answers 400, as for any type it does not know), are read unchecked, with a warning."""
    fields = {"lead": {"where": "country"}, "campaign": {"forecast": "expected_revenue", "typo": "expected_revenu"}}
    with HubSpotSource.from_env(org.connection_env(), custom_fields=fields) as source:
        leads = source.extract(store, "leads")
        campaigns = source.extract(store, "campaigns")
        again = source.extract(store, "campaigns")
    live = org.state.query("SELECT id, expected_revenue FROM campaigns WHERE deleted = 0")
    assert campaigns.records == len(live) and campaigns.api_calls == 1 + max(1, -(-len(live) // 100))
    assert (again.records, again.api_calls) == (0, max(1, -(-len(live) // 100)))  # not asked twice
    assert "campaign custom fields ['expected_revenu', 'expected_revenue'] are read unchecked" in caplog.text
    with Session(store) as session:
        lead_custom = {row.custom["where"] for row in session.exec(select(Lead))}
        campaign_custom = sorted(row.custom["forecast"] for row in session.exec(select(Campaign)))
        assert all(row.custom["typo"] is None for row in session.exec(select(Campaign)))
    assert leads.records > 0 and lead_custom == {row[0] for row in org.state.query(
        "SELECT country FROM leads WHERE deleted = 0")}
    assert sorted(float(value) for value in campaign_custom) == sorted(row["expected_revenue"] for row in live)
    typo = {"lead": {"where": "countri"}}
    with HubSpotSource.from_env(org.connection_env(), custom_fields=typo) as source, \
            pytest.raises(ConnectorConfigError, match="HubSpot leads has no property countri"):
        source.extract(store, "leads")
