"""Security (issue 7): secrets stay out of every output, configs cannot carry secrets nor inject
queries, writes stay within okr-sync's own objects, and the sandbox is reachable from this host only.

One sandbox org of this module's own accepts a known access token; the `okr-sync` commands run as
real processes with DEBUG logging everywhere (Prefect, the root logger, urllib3, simple-salesforce,
hubspot), logging in to Salesforce each way it can (session, password + security token, refresh
token, client credentials), then every output is searched for each known secret as it is and in
its usual encodings: stdout and stderr, Prefect's logs, artifacts, flow and task runs (parameters,
state messages) and its database file, the HTML report, every row of every table of the store,
every file the commands left, and every request body the CRMs received apart from the logins.
"""

from __future__ import annotations

import ast
import base64
import html
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.engine import make_url

from connectors.hubspot import settings as hubspot_settings
from connectors.hubspot.alerts import ALERT_KEY_PROPERTY
from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.request_log import LoggedRequest
from connectors.sandbox.server import SandboxServer
from connectors.store import make_engine
from okr_mapping import ConfigError, parse_config
from tests.conftest import TEST_ORG, TEST_TIME_ZONE
from tests.stores import on_postgres, store_url

ROOT = Path(__file__).resolve().parents[2]
AS_OF = TEST_ORG.anchor.date().isoformat()

# The known secrets. The sandbox has one access token for both faces: the Salesforce session every
# login hands out and the HubSpot private app token.
ACCESS_TOKEN = "00DSB0000000001!AQ0AQ.KnownAccessToken-7f3a9c2e+b4d1/5e8a"
SF_USERNAME = "integration@okr-sync.example.com"  # not a secret: an identity
SF_PASSWORD = "Kn0wn&Passw0rd<sf>"
SF_SECURITY_TOKEN = "KnownSecTok9Q3xZ7"
SF_CLIENT_ID = "3MVG9KnownClientIdIsNotSecret"  # not a secret either
SF_CLIENT_SECRET = "known-client-secret-1F2E3D4C5B6A"
SF_REFRESH_TOKEN = "5Aep861KnownRefreshToken.9zQ=="
WRONG_TOKEN = "pat-na1-0wrong00-know-n0to-ken0-000000000000"
STORE_PASSWORD = "st0re-Known-pw"  # the store URL's password (PostgreSQL stores only)
SECRETS = {"access token": ACCESS_TOKEN, "Salesforce password": SF_PASSWORD,
           "Salesforce security token": SF_SECURITY_TOKEN, "Salesforce client secret": SF_CLIENT_SECRET,
           "Salesforce refresh token": SF_REFRESH_TOKEN, "wrong token": WRONG_TOKEN}

DEBUG_ENV = {
    "PREFECT_LOGGING_LEVEL": "DEBUG", "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG",
    "PREFECT_INTERNAL_LOGGING_LEVEL": "DEBUG",
    # records of these loggers also go to Prefect's API (the flow run's logs), as an admin debugging would set
    "PREFECT_LOGGING_EXTRA_LOGGERS": "urllib3,requests,simple_salesforce,hubspot,connectors,flows,okr_mapping",
}

# `okr-sync` with the root logger at DEBUG on stderr (commands that never start a flow get no Prefect
# logging set up), and Salesforce's login hosts sent to the sandbox (the client always logs in at
# https://<domain>.salesforce.com), so the password, refresh-token and client-credentials logins run.
LAUNCHER = """
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s [%(threadName)s] %(message)s")
# hubspot-api-client's Configuration puts the urllib3 and hubspot loggers at WARNING: keep them at DEBUG
_set_level = logging.Logger.setLevel
logging.Logger.setLevel = lambda self, level: _set_level(
    self, logging.DEBUG if self.name.split(".")[0] in ("urllib3", "hubspot") else level)
from urllib.parse import urlsplit, urlunsplit
from requests.adapters import HTTPAdapter
import connectors.salesforce as salesforce

class ForwardTo(HTTPAdapter):
    def __init__(self, base_url):
        super().__init__()
        self.target = urlsplit(base_url)

    def send(self, request, **kwargs):
        parts = urlsplit(request.url or "")
        request.url = urlunsplit((self.target.scheme, self.target.netloc, parts.path, parts.query, ""))
        return super().send(request, **kwargs)

_make_session = salesforce.make_session

def make_session(ca_bundle=None):
    session = _make_session(ca_bundle)
    for host in ("https://login.salesforce.com", "https://okr-sandbox.my.salesforce.com"):
        session.mount(host, ForwardTo(os.environ["SECURITY_TEST_LOGIN_URL"]))
    return session

salesforce.make_session = make_session
"""
COMMAND = LAUNCHER + 'from flows.cli import app\napp(sys.argv[1:], prog_name="okr-sync")\n'
# A scheduled run of the config's org (what a deployment starts): credentials and store URL from Secret blocks.
ORG_RUN = LAUNCHER + ("from datetime import date\nfrom flows.nightly import nightly_sync\n"
                      "nightly_sync(sys.argv[1], org='acme', as_of=date.fromisoformat(sys.argv[2]))\n")
TOKEN_BLOCK, STORE_BLOCK = "security-test-hubspot-token", "security-test-store-url"

# Config values that would change a query if they were pasted into SOQL, a HubSpot search or SQL.
INJECTIONS = {
    "soql_quote": "' OR Name != '",
    "soql_escaped_quote": "\\' OR IsWon = true OR Name = \\'",
    "soql_paren": "x') OR (IsWon = true",
    "soql_limit": "New Business' LIMIT 1",
    "sql_drop": "'; DROP TABLE deal; --",
    "sql_tautology": "x' OR '1'='1",
    "hubspot_json": '{"propertyName": "dealname", "operator": "HAS_PROPERTY"}',
    "hubspot_filter_groups": '"}]}, {"filters": [{"propertyName": "amount", "operator": "GT", "value": "0',
}
INJECTED_TITLE = "Robert'); DROP TABLE deal; -- ' OR Name != '\" \"operator\": \"HAS_PROPERTY"
INJECTED_OWNER = "x' OR '1'='1@example.com"


def _config() -> str:
    metrics = "\n".join(f"  {name}: {{entity: deal, measure: count, where: {{deal_type: {json.dumps(value)}}}}}"
                        for name, value in INJECTIONS.items())
    listed = json.dumps(["New Business", *INJECTIONS.values()])
    key_results = "\n".join(f"      - {{id: {name.replace('_', '-')}, metric: {name}, target: 10}}"
                            for name in [*INJECTIONS, "in_list", "injected_segment", "new_business"])
    segment = (f"{{any: [{{deal_type: {json.dumps(INJECTIONS['soql_paren'])}}}, "
               f"{{lead_source: {json.dumps(INJECTIONS['sql_drop'])}}}]}}")
    return f"""\
time_zone: {TEST_TIME_ZONE}
source: salesforce
segments:
  injected:
    entity: deal
    where: {segment}
metrics:
{metrics}
  in_list: {{entity: deal, measure: count, where: {{deal_type: {{in: {listed}}}}}}}
  injected_segment: {{entity: deal, measure: count, segment: injected}}
  new_business: {{entity: deal, measure: count, where: {{deal_type: New Business}}}}
orgs:
  - name: acme
    sources: [hubspot]
    store: {{secret_block: {STORE_BLOCK}}}
    credentials:
      secret_blocks: {{HUBSPOT_ACCESS_TOKEN: {TOKEN_BLOCK}}}
objectives:
  - id: injected
    title: {json.dumps(INJECTED_TITLE)}
    owner: {json.dumps(INJECTED_OWNER)}
    key_results:
{key_results}
"""


@dataclass
class Command:
    name: str
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Session:
    """What the module's commands left behind."""

    org: SandboxServer
    work: Path
    config: Path
    database_url: str
    org_database_url: str
    commands: dict[str, Command] = field(default_factory=dict)
    writes: dict[str, list[LoggedRequest]] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    soql: list[str] = field(default_factory=list)
    searches: list[Any] = field(default_factory=list)


def _run(session: Session, name: str, env: dict[str, str], *args: str, code: str = COMMAND) -> Command:
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=session.work,
                            capture_output=True, text=True, timeout=300)
    command = Command(name, list(args), result.returncode, result.stdout, result.stderr)
    session.commands[name] = command
    return command


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    spec = OrgSpec(seed=23, deals=90, owners=4, accounts=15, calls_per_deal=1.0, anchor=TEST_ORG.anchor,
                   time_zone=TEST_TIME_ZONE)
    with SandboxServer(tmp_path_factory.mktemp("security-sandbox"), spec, token=ACCESS_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def session(org: SandboxServer, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Session:
    """Every command once, against the module's org, with the known secrets and DEBUG logging."""
    from prefect.blocks.system import Secret

    work = tmp_path_factory.mktemp("security-work")
    config = work / "injection.yaml"
    config.write_text(_config(), encoding="utf-8")
    url, org_url = store_url(work), store_url(work, "org-store")
    if on_postgres():  # store URLs with a password (the test server trusts local connections)
        url, org_url = (make_url(each).set(password=STORE_PASSWORD).render_as_string(hide_password=False)
                        for each in (url, org_url))
    Secret(value=ACCESS_TOKEN).save(TOKEN_BLOCK, overwrite=True)
    Secret(value=org_url).save(STORE_BLOCK, overwrite=True)
    found = Session(org, work, config, url, org_url)
    base = {**cli_env, **DEBUG_ENV, "OKR_SYNC_CA_BUNDLE": str(org.ca_path), "HUBSPOT_HOST": org.hubspot_url,
            "HUBSPOT_ACCESS_TOKEN": ACCESS_TOKEN, "SECURITY_TEST_LOGIN_URL": org.salesforce_url,
            "PYTHONPATH": str(ROOT)}
    session_login = {**base, "SALESFORCE_INSTANCE_URL": org.salesforce_url, "SALESFORCE_ACCESS_TOKEN": ACCESS_TOKEN}
    password_login = {**base, "SALESFORCE_USERNAME": SF_USERNAME, "SALESFORCE_PASSWORD": SF_PASSWORD,
                      "SALESFORCE_SECURITY_TOKEN": SF_SECURITY_TOKEN}
    refresh_login = {**base, "SALESFORCE_CLIENT_ID": SF_CLIENT_ID, "SALESFORCE_CLIENT_SECRET": SF_CLIENT_SECRET,
                     "SALESFORCE_REFRESH_TOKEN": SF_REFRESH_TOKEN}
    client_login = {**base, "SALESFORCE_CLIENT_ID": SF_CLIENT_ID, "SALESFORCE_CLIENT_SECRET": SF_CLIENT_SECRET,
                    "SALESFORCE_DOMAIN": "okr-sandbox.my"}
    wrong = {**session_login, "SALESFORCE_ACCESS_TOKEN": WRONG_TOKEN, "HUBSPOT_ACCESS_TOKEN": WRONG_TOKEN}
    both = ["--source", "salesforce", "--source", "hubspot", "--as-of", AS_OF, "--database-url", url]
    org.request_log.start()
    try:
        _run(found, "run", session_login, "run", "--config", str(config), *both, "--output", "json")
        _run(found, "plan", password_login, "plan", "--config", str(config), *both)
        _run(found, "setup --check (refresh token)", refresh_login, "setup", "--check")
        _run(found, "setup --check (client credentials)", client_login, "setup", "--check")
        _run(found, "report", session_login, "report", "--config", str(config), "--as-of", AS_OF,
             "--database-url", url, "--output", str(work / "report.html"))
        _run(found, "explain", session_login, "explain", "injected.soql-quote", "--config", str(config),
             "--as-of", AS_OF, "--database-url", url)
        _run(found, "failing run", wrong, "run", "--config", str(config), *both)
        blocks_only = {name: value for name, value in base.items() if name != "HUBSPOT_ACCESS_TOKEN"}
        _run(found, "org run (Secret blocks)", blocks_only, str(config), AS_OF, code=ORG_RUN)
    finally:
        org.request_log.stop()
    found.requests = list(org.request_log.entries)
    found.writes = {crm: org.request_log.writes(crm) for crm in ("salesforce", "hubspot")}
    found.soql = org.request_log.soql()
    found.searches = org.request_log.searches()
    return found


# -- the known secrets, searched for everywhere -------------------------------------------------------
def _base64_forms(secret: bytes) -> set[str]:
    """The secret's base64 (standard and URL-safe) at each of the three alignments it can have inside
    a longer encoded text (as in Basic auth `id:secret`), less the characters its neighbours change."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).decode()
        core = encoded[(0, 2, 3)[offset]:-4]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= 8}


def encodings(secret: str) -> set[str]:
    """The secret as it is and as URL, form, HTML, JSON or base64 encoding would show it."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), html.escape(secret),
             html.escape(secret, quote=False), json.dumps(secret)[1:-1]}
    return forms | _base64_forms(secret.encode())


def _secrets() -> dict[str, str]:
    return {**SECRETS, "store password": STORE_PASSWORD} if on_postgres() else dict(SECRETS)


def _leaks(outputs: dict[str, str]) -> list[str]:
    found = []
    for what, secret in _secrets().items():
        forms = encodings(secret)
        for where, text in outputs.items():
            for form in forms:
                if form in text:
                    at = text.index(form)
                    found.append(f"{what} ({form!r}) in {where}: ...{text[max(at - 120, 0):at + 40]!r}...")
                    break
    return found


def _prefect_outputs() -> dict[str, str]:
    """Everything Prefect's API holds: every flow run (parameters, state), task run, log and artifact."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    def paged(read: Any) -> list[Any]:
        items, offset = [], 0
        while True:
            page = read(limit=200, offset=offset)
            items.extend(page)
            if len(page) < 200:
                return items
            offset += len(page)

    outputs: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for run in paged(lambda **kw: client.read_flow_runs(**kw)):
            outputs[f"Prefect flow run {run.name}"] = run.model_dump_json()
            if run.state is not None:
                outputs[f"Prefect flow run {run.name} state"] = json.dumps(
                    [run.state.message, str(run.state.data)], default=str)
        for task in paged(lambda **kw: client.read_task_runs(**kw)):
            outputs[f"Prefect task run {task.name}"] = task.model_dump_json()
        outputs["Prefect logs"] = "\n".join(f"{log.name} {log.level} {log.message}"
                                            for log in paged(lambda **kw: client.read_logs(**kw)))
        outputs["Prefect artifacts"] = "\n".join(artifact.model_dump_json()
                                                 for artifact in paged(lambda **kw: client.read_artifacts(**kw)))
    database = make_url(str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())).database
    for suffix in ("", "-wal"):
        path = Path(f"{database}{suffix}") if database else None
        if path is not None and path.is_file():
            outputs[f"Prefect database file {path.name}"] = path.read_bytes().decode("latin-1")
    return outputs


def _store_rows(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return {f"store table {name}": "\n".join(repr(tuple(row)) for row in conn.execute(select(table)))
                    for name, table in metadata.tables.items()}
    finally:
        engine.dispose()


def test_the_commands_did_their_work_with_the_known_credentials(session: Session) -> None:
    """Without this the search below would prove nothing: each login used its secrets and succeeded."""
    for name, command in session.commands.items():
        expected = 1 if name == "failing run" else 0
        assert command.returncode == expected, f"{name}: {command.stdout}\n{command.stderr}"
    logins = [entry.raw.decode() for entry in session.requests if "/services/oauth2/" in entry.path
              or "/services/Soap/" in entry.path]
    assert any(html.escape(SF_PASSWORD, quote=False) + SF_SECURITY_TOKEN in body for body in logins)
    assert any(quote_plus(SF_REFRESH_TOKEN) in body for body in logins)
    assert any(quote_plus(SF_CLIENT_SECRET) in body for body in logins)  # the client-credentials
    # login sends it in a Basic Authorization header, which the request log does not keep
    failing = session.commands["failing run"]
    assert "INVALID_SESSION_ID" in failing.stderr and "401" in failing.stderr, failing.stderr
    assert "DEBUG" in session.commands["run"].stderr  # the DEBUG logging was on
    org_run = session.commands["org run (Secret blocks)"].stderr
    assert f"HUBSPOT_ACCESS_TOKEN from Secret block '{TOKEN_BLOCK}'" in org_run
    assert "hubspot deals: 90 record(s) extracted" in org_run


def test_no_secret_in_any_output(session: Session) -> None:
    outputs: dict[str, str] = {}
    for name, command in session.commands.items():
        outputs[f"`okr-sync {name}` stdout"] = command.stdout
        outputs[f"`okr-sync {name}` stderr"] = command.stderr
    outputs.update(_prefect_outputs())
    outputs["HTML report"] = (session.work / "report.html").read_text(encoding="utf-8")
    outputs.update(_store_rows(session.database_url))
    outputs.update({f"org {name}": rows for name, rows in _store_rows(session.org_database_url).items()})
    for path in session.work.rglob("*"):
        if path.is_file():
            outputs[f"file {path.relative_to(session.work)}"] = path.read_bytes().decode("latin-1")
    for entry in session.requests:  # what the CRMs were sent, logins aside (they carry credentials by design)
        if "/services/oauth2/" not in entry.path and "/services/Soap/" not in entry.path:
            outputs[f"request {entry.method} {entry.path}"] = entry.raw.decode("latin-1") + json.dumps(entry.query)
    assert len(outputs) > 20 and any("flow run" in name for name in outputs)
    leaks = _leaks(outputs)
    assert not leaks, "\n".join(leaks)


def test_the_store_url_is_a_masked_flow_run_parameter(session: Session) -> None:
    """`--database-url` may carry a password: Prefect keeps the flow run's parameter masked (SecretStr)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:  # the latest runs: this module's are among them
        runs = [run for run in client.read_flow_runs(limit=200, sort=FlowRunSort.EXPECTED_START_TIME_DESC)
                if run.parameters.get("config_path") == str(session.config)]
    assert len(runs) == 4  # run, plan, the failing run and the org's run
    given = [run.parameters["database_url"] for run in runs if run.parameters.get("org") is None]
    assert given == ["**********"] * 3


def test_the_leak_search_finds_each_encoding() -> None:
    """The search itself: a secret URL-encoded, HTML-escaped or inside Basic auth's base64 is found."""
    basic = base64.b64encode(f"{SF_CLIENT_ID}:{SF_CLIENT_SECRET}".encode()).decode()
    for text in (f"q={quote_plus(SF_PASSWORD)}", html.escape(SF_PASSWORD), f"Authorization: Basic {basic}",
                 json.dumps({"token": ACCESS_TOKEN}), quote(ACCESS_TOKEN, safe="")):
        assert _leaks({"sample": text}), text
    assert _leaks({"sample": "nothing secret here: 00DSB0000000001 pat-na1"}) == []


# -- configs cannot inject queries ---------------------------------------------------------------------
INJECTION_FRAGMENTS = ("OR Name", "IsWon = true", "DROP TABLE", "LIMIT 1", "1'='1", "HAS_PROPERTY", "Robert",
                       "filterGroups\": [{\"filters\": [{\"propertyName\": \"amount\"")
SEARCH_OPERATORS = {"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN", "IN"}


def _values(session: Session) -> dict[str, dict[str, float]]:
    """source -> KR id -> value, from `run --output json`."""
    document = json.loads(session.commands["run"].stdout)
    found: dict[str, dict[str, float]] = {}
    for row in document["key_results"]:
        found.setdefault(row["source"], {})[row["kr_id"]] = row["value"]
    return found


def test_filter_values_are_compared_literally_on_both_crms(session: Session) -> None:
    values = _values(session)
    assert set(values) == {"salesforce", "hubspot"}
    for source, by_kr in values.items():
        assert by_kr["new-business"] > 0, source
        for name in INJECTIONS:  # each would match every deal (or break the query) if it were pasted in
            assert by_kr[name.replace("_", "-")] == 0, (source, name)
        assert by_kr["in-list"] == by_kr["new-business"], source  # the injected alternatives match nothing
        assert by_kr["injected-segment"] == 0, source
    assert values["salesforce"] == values["hubspot"]


def test_no_config_value_reaches_a_crm_query(session: Session) -> None:
    """Config values never go into SOQL or a HubSpot search: the CRMs received only okr-sync's own."""
    from connectors.salesforce.settings import STREAMS

    assert len(session.soql) >= 11 and len(session.searches) >= 9
    sobjects = {spec.sobject for spec in STREAMS.values()}
    for soql in session.soql:
        assert not any(fragment in soql for fragment in INJECTION_FRAGMENTS), soql
        assert re.fullmatch(r"SELECT [\w., ]+ FROM (\w+)( WHERE .+)?( ORDER BY SystemModstamp, Id)?", soql), soql
        assert re.search(r" FROM (\w+)", soql)[1] in sobjects, soql  # type: ignore[index]
    for body in session.searches:
        if body is None:
            continue  # refused before its body was read (the failing run's wrong token)
        assert not any(fragment in json.dumps(body) for fragment in INJECTION_FRAGMENTS), body
        for group in body.get("filterGroups", []):
            for item in group["filters"]:
                assert item["operator"] in SEARCH_OPERATORS, body
                assert item["propertyName"] in {"hs_lastmodifieddate", "lastmodifieddate", "hs_object_id"}, body


def test_injected_text_is_written_and_stored_as_plain_text(session: Session) -> None:
    """A title full of SOQL, SQL and JSON goes into each CRM's objective record as it is; the store
    keeps every table and its records; an owner email of SQL is an unknown email, said as it is."""
    for crm, obj, title_field in (("salesforce", "OKR_Objective__c", "Name"), ("hubspot", "okr_objective", "name")):
        records = [record["fields"] for record in session.org.state.custom_records(crm, obj)]
        assert [fields[title_field] for fields in records] == [INJECTED_TITLE], (crm, records)
    tables = _store_rows(session.database_url)
    assert {"store table deal", "store table activity", "store table owner"} <= set(tables)
    engine = make_engine(session.database_url)
    try:
        with engine.connect() as conn:
            deal = MetaData()
            deal.reflect(engine, only=["deal"])
            sources = [row.source for row in conn.execute(select(deal.tables["deal"].c.source))]
    finally:
        engine.dispose()
    live = session.org.state.query("SELECT COUNT(*) AS n FROM deals")[0]["n"]
    assert sources.count("salesforce") == sources.count("hubspot") == live
    assert f"no salesforce user has the email '{INJECTED_OWNER}'" in session.commands["run"].stderr


@pytest.mark.parametrize(("change", "expected"), [
    ("custom_fields: {deal: {region: {salesforce: 'Region__c, (SELECT Id FROM User)'}}}\n",
     "is not a salesforce field name"),
    ("custom_fields: {deal: {region: {hubspot: 'region\", \"operator\": \"HAS_PROPERTY'}}}\n",
     "is not a hubspot field name"),
    ("orgs: [{name: \"acme'; DROP TABLE deal; --\"}]\n", "is not an org name"),
])
def test_names_that_would_go_into_a_query_are_refused(change: str, expected: str) -> None:
    text = "objectives:\n  - {id: o, title: O, key_results: [{id: k, type: milestone, done: true}]}\n" + change
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config/x.yaml")
    assert any(expected in issue.message and issue.line == 3 for issue in caught.value.errors), str(caught.value)


@pytest.mark.parametrize(("metric", "kr"), [
    ("{entity: deal, measure: count, where: {\"amount) OR (1=1\": 5}}", "{id: k, metric: m, target: 1}"),
    ("{entity: deal, measure: \"sum(amount); DROP TABLE deal\"}", "{id: k, metric: m, target: 1}"),
    ("{entity: deal, measure: count, time: \"close_date OR 1=1\"}", "{id: k, metric: m, target: 1}"),
    ("{entity: \"deal; DROP TABLE deal\", measure: count}", "{id: k, metric: m, target: 1}"),
    ("{derived: \"__import__('os').system('id')\"}", "{id: k, metric: m, target: 1}"),
    ("{entity: deal, measure: count}", "{id: \"k' OR '1'='1\", metric: m, target: 1}"),
    ("{entity: deal, measure: count}", "{id: k, metric: m, target: 1, breakdown: \"owner' OR 1=1\"}"),
    ("{entity: deal, measure: count}", "{id: k, metric: \"m; DROP TABLE deal\", target: 1}"),
])
def test_rule_text_that_is_not_the_rule_language_is_refused(metric: str, kr: str) -> None:
    """Fields, measures, dates, entities, formulas, ids and breakdowns are names from fixed lists or
    patterns: anything else is a validation error at its line, never a query."""
    text = f"metrics:\n  m: {metric}\nobjectives:\n  - id: o\n    title: O\n    key_results:\n      - {kr}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config/x.yaml")
    assert any(issue.line in (2, 7) for issue in caught.value.errors), str(caught.value)


_SOQL_WORDS = re.compile(r"\b(SELECT|FROM|WHERE)\b")


def _built_text(node: ast.AST) -> str | None:
    """The constant text of an f-string, a `+` / `%` of strings or a `.format()` call (None: none of them)."""
    if isinstance(node, ast.JoinedStr) and any(isinstance(value, ast.FormattedValue) for value in node.values):
        return "".join(value.value for value in node.values
                       if isinstance(value, ast.Constant) and isinstance(value.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        parts = [side for side in (node.left, node.right) if isinstance(side, ast.Constant)
                 and isinstance(side.value, str)]
        if parts and not all(isinstance(side, ast.Constant) for side in (node.left, node.right)):
            return "".join(part.value for part in parts)  # type: ignore[misc]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str):
        return node.func.value.value
    return None


# Where SOQL pieces are joined: incremental_where ANDs the stream's constant filter (settings.py) with
# conditions format_soql built; nothing from a config can reach it.
JOINS_FORMAT_SOQL_PIECES = {("helpers.py", "incremental_where")}


def _soql_problems(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    owner = {id(inner): function.name for function in functions for inner in ast.walk(function)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "format_soql":
            template = node.args[0] if node.args else None
            if not (isinstance(template, ast.Constant) and isinstance(template.value, str)):
                yield f"{path.name}:{node.lineno}: format_soql with a template that is not constant"
            continue
        text = _built_text(node)
        if text is not None and _SOQL_WORDS.search(text) \
                and (path.name, owner.get(id(node))) not in JOINS_FORMAT_SOQL_PIECES:
            yield f"{path.name}:{node.lineno}: SOQL built from pieces: {ast.unparse(node)[:80]}"


def test_the_soql_scan_finds_soql_built_from_pieces(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def read(sf, name, template):\n"
                   "    sf.query(f\"SELECT Id FROM Account WHERE Name = '{name}'\")\n"
                   "    sf.query(\"SELECT Id FROM Account WHERE Name = '\" + name + \"'\")\n"
                   "    sf.query(\"SELECT Id FROM Account WHERE Name = '%s'\" % name)\n"
                   "    sf.query(\"SELECT Id FROM Account WHERE Name = '{}'\".format(name))\n"
                   "    sf.query(format_soql(template, name=name))\n")
    assert sorted(line.split(":")[1] for line in _soql_problems(bad)) == ["2", "3", "4", "5", "6"]


def test_soql_is_built_only_through_format_soql_and_rules_never_run_sql_text() -> None:
    """No f-string, concatenation or str.format in the connectors builds SOQL (format_soql with a
    constant template does, quoting every value); okr_mapping never builds SQL text nor evaluates."""
    connectors = [*(ROOT / "connectors" / "salesforce").glob("*.py"), *(ROOT / "connectors" / "hubspot").glob("*.py")]
    problems = [problem for path in sorted(connectors) for problem in _soql_problems(path)]
    assert len(connectors) > 10
    for path in sorted((ROOT / "okr_mapping").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if re.search(r"\b(exec_driver_sql|text\(\s*f?['\"])|from sqlalchemy import .*\btext\b", source):
            problems.append(f"okr_mapping/{path.relative_to(ROOT / 'okr_mapping')}: SQL text")
        if re.search(r"(?<![.\w])(eval|exec)\(", source):
            problems.append(f"okr_mapping/{path.relative_to(ROOT / 'okr_mapping')}: eval/exec")
    assert problems == []


# -- writes stay within okr-sync's own objects and fields ------------------------------------------------
SF_READS = (re.compile(r"/services/oauth2/token"), re.compile(r"/services/Soap/u/[\d.]+"),
            re.compile(r"/services/data/v[\d.]+/jobs/query(/\w+)?"))
HS_READS = (re.compile(r"/crm/v3/objects/[\w-]+/(search|batch/read)"),
            re.compile(r"/crm/v4/associations/[\w-]+/[\w-]+/batch/read"))


SF_OKR_OBJECTS = {"OKR_Objective__c", "OKR_Key_Result__c", "OKR_Check_In__c"}


def _salesforce_fields() -> dict[str, set[str]]:
    """Object -> the fields okr-sync may write: those its metadata defines, plus Name and OwnerId."""
    objects = ROOT / "connectors" / "salesforce" / "metadata" / "objects"
    return {folder.name: {path.name.split(".")[0] for path in (folder / "fields").glob("*.field-meta.xml")}
            | {"Name", "OwnerId"} for folder in objects.iterdir() if folder.is_dir()}


def _hubspot_objects(org: SandboxServer) -> dict[str, str]:
    """objectTypeId and name -> the okr-sync object kind of every OKR custom object in the portal."""
    import requests

    with requests.Session() as client:
        client.trust_env = False
        answer = client.get(f"{org.hubspot_url}/crm/v3/schemas", verify=str(org.ca_path),
                            headers={"Authorization": f"Bearer {org.token}"}).json()
    names = {name: kind for kind, name in hubspot_settings.OKR_OBJECT_NAMES.items()}
    found = {}
    for schema in answer["results"]:
        if schema["name"] in names:
            found[schema["objectTypeId"]] = found[schema["name"]] = names[schema["name"]]
    return found


def test_writes_touch_only_okr_objects_and_their_fields(session: Session) -> None:
    fields = {name: names for name, names in _salesforce_fields().items() if name in SF_OKR_OBJECTS}
    assert set(fields) == SF_OKR_OBJECTS
    written: dict[str, int] = {}
    for entry in session.writes["salesforce"]:
        if any(pattern.fullmatch(entry.path) for pattern in SF_READS):
            assert "jobs/query" not in entry.path or entry.method != "POST" or \
                entry.body.get("operation") in ("query", "queryAll"), entry
            continue
        match = re.fullmatch(r"/services/data/v[\d.]+/composite/sobjects/(\w+)/Key__c", entry.path)
        assert match and entry.method == "PATCH" and match[1] in fields, f"{entry.method} {entry.path}"
        for record in entry.body["records"]:
            kind = record["attributes"]["type"]
            names = {re.sub(r"__r$", "__c", name) for name in record} - {"attributes"}  # lookups by external id
            assert kind == match[1] and names <= fields[kind], record
            written[kind] = written.get(kind, 0) + 1
    assert set(written) == set(fields)  # each object was written (the check saw real writes)

    objects = _hubspot_objects(session.org)
    written = {}
    for entry in session.writes["hubspot"]:
        if any(pattern.fullmatch(entry.path) for pattern in HS_READS):
            continue
        upsert = re.fullmatch(r"/crm/v3/objects/([\w-]+)/batch/upsert", entry.path)
        associate = re.fullmatch(r"/crm/v4/associations/([\w-]+)/([\w-]+)/batch/associate/default", entry.path)
        assert entry.method == "POST" and (upsert or associate), f"{entry.method} {entry.path}"
        if associate:
            assert associate[1] in objects and associate[2] in objects, entry.path
            continue
        kind = objects[upsert[1]]  # type: ignore[index]
        allowed = {*hubspot_settings.object_properties(kind), hubspot_settings.OWNER_PROPERTY}
        for item in entry.body["inputs"]:
            assert item["idProperty"] == hubspot_settings.OKR_KEY_PROPERTY and set(item["properties"]) <= allowed, item
            written[kind] = written.get(kind, 0) + 1
    assert set(written) == set(hubspot_settings.OKR_OBJECT_NAMES)


SCHEMAS = r"/crm(?:-object-schemas)?/v3/schemas"  # the client's path, and the documented one


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    spec = OrgSpec(seed=5, deals=10, owners=2, accounts=3, anchor=TEST_ORG.anchor)
    with SandboxServer(tmp_path_factory.mktemp("security-bare"), spec, hubspot_objects=False) as server:
        yield server


def test_setup_hubspot_writes_only_the_okr_schemas(bare: SandboxServer, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "HUBSPOT_HOST": bare.hubspot_url, "HUBSPOT_ACCESS_TOKEN": bare.token,
           "OKR_SYNC_CA_BUNDLE": str(bare.ca_path)}
    bare.request_log.start()
    try:
        done = subprocess.run([sys.executable, "-m", "flows.cli", "setup", "hubspot"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    finally:
        bare.request_log.stop()
    assert done.returncode == 0, done.stderr
    names = set(hubspot_settings.OKR_OBJECT_NAMES.values())
    objects = _hubspot_objects(bare)
    writes = bare.request_log.writes("hubspot")
    created = set()
    for entry in writes:
        if re.fullmatch(SCHEMAS, entry.path):
            assert entry.method == "POST" and entry.body["name"] in names, entry
            kind = objects[entry.body["name"]]
            assert {prop["name"] for prop in entry.body["properties"]} <= set(hubspot_settings.object_properties(kind))
            created.add(entry.body["name"])
            continue
        alert_key = re.fullmatch(r"/crm/v3/properties/(tasks|notes)", entry.path)
        if alert_key:  # the one property okr-sync adds to HubSpot's own objects: its alerts' key
            assert entry.method == "POST" and entry.body["name"] == ALERT_KEY_PROPERTY, entry
            continue
        properties = re.fullmatch(r"/crm/v3/properties/([\w-]+)/batch/create", entry.path)
        association = re.fullmatch(SCHEMAS + r"/([\w-]+)/associations", entry.path)
        assert entry.method == "POST" and (properties or association), f"{entry.method} {entry.path}"
        if properties:
            kind = objects[properties[1]]
            assert {item["name"] for item in entry.body["inputs"]} <= set(hubspot_settings.object_properties(kind))
        else:
            assert association[1] in objects and entry.body["toObjectTypeId"] in objects, entry.body  # type: ignore[index]
    assert created == names


# -- the sandbox listens on this host only ------------------------------------------------------------
def _listening(port: int) -> set[str]:
    """The local addresses of the listening TCP sockets on `port` (IPv4 and IPv6, from /proc/net)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not Path(table).is_file():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def _outward_address() -> str | None:
    """This machine's address toward other hosts (a UDP connect sends nothing), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _assert_loopback_only(url: str) -> None:
    port = urlsplit(url).port
    assert port is not None
    if Path("/proc/net/tcp").is_file():
        assert _listening(port) == {"127.0.0.1"}, _listening(port)
    outward = _outward_address()
    if outward is not None:
        with pytest.raises(ConnectionRefusedError), socket.create_connection((outward, port), timeout=5):
            pass


def test_the_sandbox_server_listens_on_loopback_only(org: SandboxServer) -> None:
    for url in (org.salesforce_url, org.hubspot_url):
        assert urlsplit(url).hostname == "127.0.0.1"
        _assert_loopback_only(url)


def test_sandbox_serve_listens_on_loopback_only(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sandbox", "serve", "--data-dir", str(tmp_path / "sandbox"),
         "--deals", "20", "--salesforce-port", "0", "--hubspot-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        urls = re.findall(r"^(?:Salesforce|HubSpot) API: *(\S+)$", "".join(lines), re.MULTILINE)
        assert len(urls) == 2, "".join(lines)
        for url in urls:
            _assert_loopback_only(url)
    finally:
        process.terminate()
        process.wait(timeout=20)
