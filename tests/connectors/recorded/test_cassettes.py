"""The cassettes themselves: no credentials, the pinned ports, and search pages told apart by body."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from vcr.errors import CannotOverwriteExistingCassetteException

from connectors.hubspot import HubSpotSource
from connectors.salesforce import SalesforceSource
from tests.connectors.recorded.record import (
    CASSETTES,
    CUSTOM_FIELDS,
    HS_EXTRACT_STREAMS,
    HS_STREAMS,
    HUBSPOT_PORT,
    SALESFORCE_PORT,
    SCENARIOS,
    SF_EXTRACT_STREAMS,
    SF_STREAMS,
    TOKEN,
    cassette,
    json_body,
    make_vcr,
)

FILES = sorted(CASSETTES.glob("*.yaml"))


def interactions(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text())["interactions"]


def test_every_scenario_has_a_small_cassette() -> None:
    assert [path.stem for path in FILES] == sorted(SCENARIOS)
    assert all(path.stat().st_size < 250_000 for path in FILES)


def test_every_stream_of_both_connectors_is_recorded_exactly_once() -> None:
    recorded = {"salesforce": SF_EXTRACT_STREAMS + SF_STREAMS, "hubspot": HS_EXTRACT_STREAMS + HS_STREAMS}
    for crm, source in (("salesforce", SalesforceSource), ("hubspot", HubSpotSource)):
        assert sorted(recorded[crm]) == sorted(source.STREAMS) and len(set(recorded[crm])) == len(recorded[crm])
    assert CUSTOM_FIELDS == {"salesforce_streams": {"account": {"region": "Region__c"}},
                             "hubspot_streams": {"account": {"region": "region"}}}


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_no_token_in_any_cassette(path: Path) -> None:
    text = path.read_text()
    assert TOKEN not in text
    assert not re.search(r"bearer", text, re.IGNORECASE)
    assert not re.search(r"access_token\W+\w", text)  # no access_token with a value
    for interaction in interactions(path):
        assert not {name.lower() for name in interaction["request"]["headers"]} & {"authorization", "cookie"}


def test_ports_are_pinned_and_kept_in_matching() -> None:
    """Choice: the port stays in match_on and record.py pins it (the replay env uses the same URLs)."""
    assert "port" in make_vcr("none").match_on
    ports = {crm: {re.match(r"https://127\.0\.0\.1:(\d+)/", interaction["request"]["uri"]).group(1)
                   for path in FILES if path.stem.startswith(crm) for interaction in interactions(path)}
             for crm in ("salesforce", "hubspot")}
    assert ports == {"salesforce": {str(SALESFORCE_PORT)}, "hubspot": {str(HUBSPOT_PORT)}}


def test_hubspot_search_pages_differ_only_in_body_and_are_matched_on_it() -> None:
    searches = [interaction["request"] for interaction in interactions(CASSETTES / "hubspot_extract.yaml")
                if interaction["request"]["uri"].endswith("/calls/search")]
    assert len(searches) == 2 and searches[0]["uri"] == searches[1]["uri"]
    bodies = [json.loads(request["body"]) for request in searches]
    assert bodies[0]["filterGroups"] == [] and bodies[1]["filterGroups"] != []
    assert "json_body" in make_vcr("none").match_on
    with pytest.raises(AssertionError):
        json_body(*(type("Request", (), {"body": request["body"]})() for request in searches))


def test_a_request_not_in_the_cassette_fails_instead_of_reaching_the_network(
        replay_env: dict[str, str]) -> None:
    with (cassette("hubspot_writeback", "none"), HubSpotSource.from_env(replay_env) as source,
          pytest.raises(CannotOverwriteExistingCassetteException)):
        source._api.owners.get_page(limit=1)  # recorded only in another cassette
