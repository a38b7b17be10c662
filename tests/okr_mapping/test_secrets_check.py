"""A secret written into a config file is refused at load, at its line, without being repeated.

The other half of the contract: nothing legitimate is refused — every example config, every file of
the invalid corpus (for its own mistakes only), and every YAML snippet in the README and docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from okr_mapping import ConfigError, load_config, parse_config
from okr_mapping.secrets_check import HINT, find_secrets, secret_key, secret_shape

ROOT = Path(__file__).resolve().parents[2]
HUBSPOT_TOKEN = "pat-na1-5ec7e700-0b1d-4f7c-9a5e-2b8c4d6e8f01"
SF_SESSION = "00DSB0000000001!AQ0AQKnownSessionIdValue.x7f3a9c2"
SF_REFRESH = "5Aep861KnownRefreshTokenValueForTests.abcdefghijklmnop"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJva3Itc3luYyJ9.c2lnbmF0dXJlLXZhbHVl"
RANDOM = "Zq8XvN3kLm2Rt7YwB4pHs9Jd6Fc1Gx5E"

GOOD = """\
metrics:
  closed_won_revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
objectives:
  - id: grow
    title: Grow
    key_results:
      - {id: revenue, metric: closed_won_revenue, target: 500000}
"""


def _refused(text: str) -> list[str]:
    """The rendered errors of a config that must be refused; none may show a known secret."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config/x.yaml")
    rendered = [issue.render() for issue in caught.value.errors]
    for secret in (HUBSPOT_TOKEN, SF_SESSION, SF_REFRESH, JWT, RANDOM, "hunter2", "s3cr3t-pw"):
        assert all(secret not in line for line in rendered), rendered
    return rendered


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("addition", "needle"), [
    ("hubspot_token: hunter2\n", "hubspot_token"),
    ("password: hunter2\n", "password"),
    ("salesforce:\n  clientSecret: hunter2\n", "clientSecret"),
    ("api-key: 12345678\n", "api-key"),
    ("HUBSPOT_ACCESS_TOKEN: hunter2\n", "HUBSPOT_ACCESS_TOKEN"),
    ("settings:\n  - authorization: hunter2\n", "authorization"),
    ("db:\n  private_key: hunter2\n", "private_key"),
])
def test_a_value_under_a_credential_key_is_refused_at_its_line(addition: str, needle: str) -> None:
    text = GOOD + addition
    errors = _refused(text)
    hits = [line for line in errors if HINT in line]
    assert len(hits) == 1, errors
    assert hits[0].startswith(f"config/x.yaml:{_line_of(text, needle)}:")
    assert "must not hold secrets" in hits[0]


@pytest.mark.parametrize(("value", "kind"), [
    (HUBSPOT_TOKEN, "HubSpot private app token"),
    (SF_SESSION, "Salesforce session id"),
    (SF_REFRESH, "Salesforce refresh token"),
    (JWT, "JSON Web Token"),
    (f"Bearer {RANDOM}", "Authorization header"),
    ("postgresql+psycopg://okr:s3cr3t-pw@db.internal/okr", "URL with a password"),
    (RANDOM, "random-looking token"),
    (f"https://example.com/report?access_token={RANDOM}", "random-looking token"),
])
def test_a_value_shaped_like_a_token_is_refused_wherever_it_is(value: str, kind: str) -> None:
    text = GOOD.replace("title: Grow", f'title: "Grow {value}"')
    errors = _refused(text)
    assert any(kind in line and line.startswith(f"config/x.yaml:{_line_of(text, 'title:')}:")
               and "objectives[0].title" in line and HINT in line for line in errors), errors


@pytest.mark.parametrize("secret", ["1", "x", "12"])
def test_a_short_secret_is_refused_too(secret: str) -> None:
    """Messages showing the secret are left out, but never the one that names it."""
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD + f"password: '{secret}'\n", "config/x.yaml")
    assert any(HINT in issue.message and issue.line == 8 for issue in caught.value.errors), str(caught.value)


def test_a_token_pasted_where_a_secret_block_name_belongs_is_refused() -> None:
    """Block names pass their own check (lowercase, digits, dashes), and so would a HubSpot token:
    the run would then fail naming the 'block', token and all."""
    text = GOOD + ("orgs:\n  - name: acme\n    credentials:\n      secret_blocks:\n"
                   f"        HUBSPOT_ACCESS_TOKEN: {HUBSPOT_TOKEN}\n")
    errors = _refused(text)
    assert any("HubSpot private app token" in line and line.startswith(f"config/x.yaml:{len(text.splitlines())}:")
               for line in errors), errors


def test_a_secret_in_a_field_the_schema_also_refuses_is_not_quoted_by_the_schema_message() -> None:
    """The org name check would say "'<value>' is not an org name": that message is left out."""
    text = GOOD + f"orgs:\n  - name: {HUBSPOT_TOKEN}\n"
    errors = _refused(text)
    assert len(errors) == 1 and "HubSpot private app token" in errors[0]


def test_a_token_as_a_key_is_refused_on_the_key() -> None:
    text = GOOD + f"orgs:\n  - name: acme\n    credentials:\n      secret_blocks:\n        {SF_SESSION}: x\n"
    errors = _refused(text)
    assert any("Salesforce session id" in line for line in errors), errors


def test_names_of_where_secrets_live_are_accepted() -> None:
    text = GOOD + ("orgs:\n  - name: acme\n    store: {secret_block: acme-store-url}\n    credentials:\n"
                   "      env_prefix: ACME_\n      secret_blocks:\n"
                   "        HUBSPOT_ACCESS_TOKEN: acme-hubspot-token\n"
                   "        SALESFORCE_CLIENT_SECRET: acme-sf-client-secret\n"
                   "        SALESFORCE_REFRESH_TOKEN: acme-sf-refresh-token\n"
                   "  - name: globex\n    store: {env: GLOBEX_DATABASE_URL}\n")
    config = parse_config(text, "config/x.yaml")
    assert config.orgs[0].credentials.secret_blocks["HUBSPOT_ACCESS_TOKEN"] == "acme-hubspot-token"


def test_a_secret_in_a_checkin_note_is_refused_at_the_checkin_files_line(tmp_path: Path) -> None:
    config = tmp_path / "okrs.yaml"
    manual = "      - {id: calls, type: manual, target: 10}\n      - {id: revenue"
    config.write_text(GOOD.replace("      - {id: revenue", manual) + "checkins: checkins.yaml\n")
    (tmp_path / "checkins.yaml").write_text(
        f"- {{kr: grow.calls, value: 3, date: 2026-11-20}}\n- {{kr: grow.calls, value: 4, date: 2026-11-21, "
        f"note: 'token {HUBSPOT_TOKEN}'}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    (issue,) = caught.value.errors
    assert issue.file == str(tmp_path / "checkins.yaml") and issue.line == 2 and HINT in issue.message
    assert HUBSPOT_TOKEN not in str(caught.value)


def test_validate_exits_2_with_the_hint_and_without_the_secret(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + f"hubspot:\n  access_token: {HUBSPOT_TOKEN}\n")
    result = CliRunner().invoke(app, ["validate", "--config", str(bad)])
    assert result.exit_code == 2
    assert f"bad.yaml:{len(bad.read_text().splitlines())}:" in result.output
    assert "environment variable or a Prefect Secret block" in result.output
    assert HUBSPOT_TOKEN not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("key", ["token", "access_token", "refresh_token", "clientSecret", "client-secret",
                                 "password", "db_passwd", "api_key", "apiKey", "hapikey", "Authorization",
                                 "session_id", "SALESFORCE_SECURITY_TOKEN", "credentials", "private_key"])
def test_credential_key_names(key: str) -> None:
    assert secret_key(key)


@pytest.mark.parametrize("key", ["token_count", "password_reset", "key_results", "okr_key", "secret_blocks",
                                 "secret_block", "env", "env_prefix", "monkey", "tokenizer", "keyword",
                                 "description", "title", "unique_key", "session_length"])
def test_other_key_names(key: str) -> None:
    assert not secret_key(key)


@pytest.mark.parametrize("text", [
    "Close $28M in won revenue", "ClosedWonRevenueQ42026ByAccountExecutive", "Forecast_Confidence_Score_2026__c",
    "https://acme.my.salesforce.com/lightning/r/Report/00O5e000008xYzAEAU/view", "acme-us-hubspot-token",
    "(revenue - cost) / cost * 100", "percentile(amount, 90)", "jane.doe@example.com", "2026-Q4",
    "LAST_N_DAYS:90", "Opportunity_Line_Item_Revenue_2026_Q4__c", "' OR Name != '",
    "See https://docs.google.com/document/d/1aBcD3fGhIjK7lMnOpQ2rStUvWxYz0123456789/edit for the plan",
])
def test_ordinary_config_text_is_not_a_secret(text: str) -> None:
    assert secret_shape(text) is None


def _repository_yaml() -> list[tuple[str, object]]:
    """Every YAML document of the repository's configs, test corpus and documentation snippets."""
    found: list[tuple[str, object]] = []
    files = [*ROOT.glob("config/**/*.yaml"), *ROOT.glob("tests/okr_mapping/**/*.yaml"), ROOT / "prefect.yaml"]
    for path in files:
        if path.is_file():
            try:
                found.append((str(path.relative_to(ROOT)), yaml.safe_load(path.read_text(encoding="utf-8"))))
            except (yaml.YAMLError, ValueError):
                continue  # the corpus holds broken YAML on purpose
    for doc in [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]:
        for number, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
            try:
                found.append((f"{doc.relative_to(ROOT)} snippet {number}", yaml.safe_load(block)))
            except (yaml.YAMLError, ValueError):
                continue
    return found


def test_no_config_test_file_or_documented_snippet_is_taken_for_a_secret() -> None:
    documents = _repository_yaml()
    assert len(documents) > 100
    flagged = {name: [finding.message for finding in find_secrets(data)] for name, data in documents}
    assert {name: found for name, found in flagged.items() if found} == {}


def test_every_example_config_still_validates() -> None:
    for path in sorted((ROOT / "config" / "examples").glob("*.yaml")):
        if "checkins" in path.name:
            continue  # a check-in file, read through the config naming it
        result = CliRunner().invoke(app, ["validate", "--config", str(path)])
        assert result.exit_code == 0, result.output
