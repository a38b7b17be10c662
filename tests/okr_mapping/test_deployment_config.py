"""The config's `schedule:` and `orgs:`: where and when a config runs, checked with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from okr_mapping import ConfigError, load_config, parse_config
from okr_mapping.deployment_config import DEFAULT_CRON, cron_problem
from okr_mapping.schema import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "config" / "examples" / "demo.yaml").read_text(encoding="utf-8")
BASE_LINES = DEMO.count("\n") + 1


def _config(extra: str):
    return parse_config(DEMO + "\n" + extra, "orgs.yaml")


def _errors(extra: str) -> list[tuple[int | None, str]]:
    with pytest.raises(ConfigError) as failure:
        _config(extra)
    return [(issue.line - BASE_LINES if issue.line else None, issue.message) for issue in failure.value.issues]


def test_defaults_one_org_from_the_environment_at_two_every_night() -> None:
    config = parse_config(DEMO, "demo.yaml")
    assert config.schedule.cron == DEFAULT_CRON == "0 2 * * *" and config.orgs == []


def test_the_multi_org_example_loads_and_names_no_secret() -> None:
    config = load_config(ROOT / "config" / "examples" / "multi-org.yaml")
    assert [org.name for org in config.orgs] == ["acme-emea", "acme-us", "globex"]
    assert config.schedule.cron == "30 1 * * *" and config.time_zone == "Europe/Berlin"
    us = config.org("acme-us")
    assert us is not None and us.sources == ["hubspot"] and us.store and us.store.secret_block == "acme-us-store-url"
    assert us.credentials.secret_blocks == {"HUBSPOT_ACCESS_TOKEN": "acme-us-hubspot-token"}
    assert config.org("nope") is None


def test_the_committed_schema_accepts_the_example_and_rejects_a_credential_value() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    data = yaml.safe_load((ROOT / "config" / "examples" / "multi-org.yaml").read_text(encoding="utf-8"))
    assert not list(validator.iter_errors(data))
    data["orgs"][0]["credentials"]["token"] = "pat-na1-123"
    assert list(validator.iter_errors(data))


@pytest.mark.parametrize(("extra", "line", "message"), [
    ('schedule: {cron: "0 2 * *"}', 1, "it has 4 field(s)"),
    ('schedule: {cron: "61 2 * * *"}', 1, "the minute field '61' must be 0-59, got 61"),
    ('schedule: {cron: "0 2 * * sunday"}', 1, "the day of week field 'sunday' has 'sunday', which is not a number"),
    ('schedule: {cron: "0 2 * * *", timezone: UTC}', 1, "unknown setting 'timezone'"),
    ("orgs:\n  - name: Acme EMEA", 2, "'Acme EMEA' is not an org name"),
    ("orgs:\n  - name: acme\n    sources: [salesforce, pipedrive]", 3, "'pipedrive' is not allowed here"),
    ("orgs:\n  - name: acme\n    credentials: {env_prefix: acme}", 3, "'acme' is not an environment variable prefix"),
    ("orgs:\n  - name: acme\n    credentials: {token: pat-na1-123}", 3, "unknown setting 'token'"),
    ("orgs:\n  - name: acme\n    credentials:\n      secret_blocks: {HUBSPOT_TOKEN: acme-token}", 4,
     "'HUBSPOT_TOKEN' is not a connection variable okr-sync reads; did you mean 'HUBSPOT_ACCESS_TOKEN'?"),
    ("orgs:\n  - name: acme\n    credentials:\n      secret_blocks: {HUBSPOT_ACCESS_TOKEN: Acme Token}", 4,
     "'Acme Token' is not a Prefect block name"),
    ("orgs:\n  - name: acme\n    store: {env: A_DB, secret_block: a-db}", 3, "name the store URL's place once"),
    ("orgs:\n  - name: acme\n    store: {url: 'postgresql://u:pw@h/db'}", 3, "unknown setting 'url'"),
])
def test_each_mistake_is_reported_at_its_line(extra: str, line: int, message: str) -> None:
    found = _errors(extra)
    assert any(at == line and message in text for at, text in found), found


def test_orgs_sharing_a_name_a_store_or_credentials_are_refused_at_the_second_one() -> None:
    found = _errors("orgs:\n"
                    "  - {name: east, store: {env: EAST_DB}, credentials: {env_prefix: EAST_}}\n"
                    "  - {name: east, store: {env: WEST_DB}, credentials: {env_prefix: WEST_}}\n"
                    "  - {name: north, store: {env: EAST_DB}, credentials: {env_prefix: NORTH_}}\n"
                    "  - {name: south, store: {env: SOUTH_DB}, credentials: {env_prefix: NORTH_}}\n"
                    "  - {name: west}\n")
    assert (3, "org 'east' is already defined (entry 1); give each org its own name") in found
    assert any(at == 4 and "uses the same store as org 'east' ($EAST_DB)" in text for at, text in found)
    assert any(at == 5 and "orgs 'north' and 'south' both have env_prefix NORTH_" in text for at, text in found)
    assert any(at == 6 and "org 'west' needs store:" in text for at, text in found)


def test_one_org_may_keep_the_default_store_and_the_unprefixed_environment() -> None:
    config = _config("orgs:\n  - name: solo\n    credentials:\n      secret_blocks: {SALESFORCE_PASSWORD: solo-pw}\n")
    (solo,) = config.orgs
    assert solo.store is None and solo.credentials.env_prefix is None and solo.sources is None


@pytest.mark.parametrize("expression", ["@daily", "0 2 * * *", "*/10 6-18 * * mon-fri", "0 0 1,15 jan-jun *",
                                        "0 2 * * 0,7"])
def test_valid_crons(expression: str) -> None:
    assert cron_problem(expression) is None
