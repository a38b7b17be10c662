"""Credentials from environment variables or Prefect Secret blocks, resolved inside the flow run.

The unit tests read a fake block store; the flow tests save real Secret blocks in the session's
Prefect test server and sync the sandbox with them, then look for the token in logs and artifacts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.errors import ConnectorConfigError
from connectors.hubspot import settings as hubspot_settings
from connectors.salesforce.auth import CREDENTIAL_SETS
from connectors.sandbox.server import SandboxServer
from connectors.store import SyncState, make_engine
from flows.credentials import connection_env, load_secret_block, store_url, where_from
from flows.nightly import nightly_sync
from okr_mapping import parse_config
from okr_mapping.deployment_config import ALL_CONNECTION_VARIABLES, CONNECTION_VARIABLES, Org
from tests.conftest import TEST_ORG
from tests.flows.conftest import DEMO
from tests.stores import store_url as new_store_url

AS_OF = TEST_ORG.anchor.date()
WRONG = "a-wrong-token-from-the-unprefixed-environment"


def _org(text: str) -> Org:
    config = parse_config(DEMO.read_text(encoding="utf-8") + "\norgs:\n" + text, "orgs.yaml")
    return config.orgs[0]


def test_the_config_knows_every_connection_variable_the_connectors_read() -> None:
    salesforce = {name for names in CREDENTIAL_SETS.values() for name in names}
    assert salesforce | {"SALESFORCE_DOMAIN", "SALESFORCE_API_VERSION"} == set(CONNECTION_VARIABLES["salesforce"])
    assert {hubspot_settings.TOKEN_ENV, hubspot_settings.HOST_ENV, hubspot_settings.TIER_ENV} == set(
        CONNECTION_VARIABLES["hubspot"])


def test_a_prefix_reads_the_orgs_variables_and_hides_the_unprefixed_ones() -> None:
    org = _org("  - name: acme\n    credentials: {env_prefix: ACME_}\n")
    env = {"HUBSPOT_ACCESS_TOKEN": WRONG, "SALESFORCE_USERNAME": "someone@else", "ACME_HUBSPOT_ACCESS_TOKEN": "t",
           "OKR_SYNC_CA_BUNDLE": "/ca.pem", "ACME_OKR_SYNC_LOOKBACK_MINUTES": "5", "PATH": "/bin"}
    resolved = connection_env(org, env, load_secret=pytest.fail)
    assert resolved["HUBSPOT_ACCESS_TOKEN"] == "t" and "SALESFORCE_USERNAME" not in resolved
    assert resolved["OKR_SYNC_CA_BUNDLE"] == "/ca.pem" and resolved["OKR_SYNC_LOOKBACK_MINUTES"] == "5"
    assert resolved["PATH"] == "/bin"
    assert not set(resolved) & {name for name in ALL_CONNECTION_VARIABLES if name != "HUBSPOT_ACCESS_TOKEN"}


def test_a_secret_block_wins_over_the_environment_and_only_names_are_described() -> None:
    org = _org("  - name: acme\n    store: {secret_block: acme-store}\n    credentials:\n"
               "      secret_blocks: {HUBSPOT_ACCESS_TOKEN: acme-token}\n")
    blocks = {"acme-token": "s3cret-token", "acme-store": "sqlite:///x.db"}
    assert connection_env(org, {"HUBSPOT_ACCESS_TOKEN": WRONG}, blocks.__getitem__)["HUBSPOT_ACCESS_TOKEN"] == (
        "s3cret-token")
    assert store_url(org, {}, blocks.__getitem__) == "sqlite:///x.db"
    described = where_from(org)
    assert "HUBSPOT_ACCESS_TOKEN from Secret block 'acme-token'" in described and "s3cret" not in described


def test_without_an_org_the_process_environment_is_used_as_it_is() -> None:
    assert connection_env(None, {"HUBSPOT_ACCESS_TOKEN": "t"}) == {"HUBSPOT_ACCESS_TOKEN": "t"}
    assert store_url(None, {}) is None


def test_a_store_variable_that_is_not_set_is_named() -> None:
    org = _org("  - name: acme\n    store: {env: ACME_STORE_URL}\n")
    with pytest.raises(ConnectorConfigError, match="ACME_STORE_URL"):
        store_url(org, {})


# -- through the flow, against the sandbox ------------------------------------------------------
@pytest.fixture
def org_config(tmp_path: Path) -> Path:
    """The demo rules with two orgs: `env` reads ACME_* variables, `blocks` reads Secret blocks."""
    config = tmp_path / "orgs.yaml"
    config.write_text(DEMO.read_text(encoding="utf-8") + """
orgs:
  - name: env
    sources: [salesforce, hubspot]
    store: {env: OKR_TEST_ENV_STORE}
    credentials: {env_prefix: ACME_}
  - name: blocks
    sources: [salesforce, hubspot]
    store: {secret_block: okr-test-store-url}
    credentials:
      env_prefix: BLOCKS_
      secret_blocks:
        SALESFORCE_ACCESS_TOKEN: okr-test-salesforce-token
        HUBSPOT_ACCESS_TOKEN: okr-test-hubspot-token
  - name: missing
    store: {env: OKR_TEST_ENV_STORE_2}
    credentials:
      env_prefix: MISSING_
      secret_blocks: {SALESFORCE_ACCESS_TOKEN: okr-test-no-such-block}
""", encoding="utf-8")
    return config


def _records(url: str) -> int:
    with make_engine(url).connect() as conn:
        return conn.execute(select(func.sum(SyncState.records_last_run))).scalar() or 0


@pytest.mark.usefixtures("prefect_harness")
def test_credentials_from_prefixed_environment_variables(org_config: Path, sandbox: SandboxServer,
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in sandbox.connection_env().items():
        monkeypatch.setenv(name if name == "OKR_SYNC_CA_BUNDLE" else f"ACME_{name}", value)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", WRONG)  # unprefixed: never read for this org
    store = new_store_url(tmp_path, "env")
    monkeypatch.setenv("OKR_TEST_ENV_STORE", store)
    report = nightly_sync(str(org_config), org="env", as_of=AS_OF, write=False)
    assert report.org == "env" and [run.source for run in report.runs] == ["salesforce", "hubspot"]
    assert all(run.error is None and run.results for run in report.runs)
    assert _records(store) > 0


@pytest.mark.usefixtures("prefect_harness")
def test_credentials_and_store_from_secret_blocks_never_reach_logs_or_artifacts(
        org_config: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    env = sandbox.connection_env()
    monkeypatch.setenv("BLOCKS_SALESFORCE_INSTANCE_URL", env["SALESFORCE_INSTANCE_URL"])
    monkeypatch.setenv("BLOCKS_HUBSPOT_HOST", env["HUBSPOT_HOST"])
    monkeypatch.setenv("OKR_SYNC_CA_BUNDLE", env["OKR_SYNC_CA_BUNDLE"])
    for name in ("SALESFORCE_ACCESS_TOKEN", "HUBSPOT_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    store = new_store_url(tmp_path, "blocks")
    Secret(value=sandbox.token).save("okr-test-salesforce-token", overwrite=True)
    Secret(value=sandbox.token).save("okr-test-hubspot-token", overwrite=True)
    Secret(value=store).save("okr-test-store-url", overwrite=True)
    state = nightly_sync(str(org_config), org="blocks", as_of=AS_OF, write=False, return_state=True)
    report = state.result()
    assert all(run.error is None and run.results for run in report.runs)
    assert _records(store) > 0
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
        flow_run = client.read_flow_run(run_id)
    assert any("from Secret block 'okr-test-hubspot-token'" in message for message in logs)
    assert {artifact.key for artifact in artifacts} == {"okr-kr-table-blocks", "okr-kr-values-blocks",
                                                         "okr-weekly-digest-blocks"}
    shown = "\n".join(logs) + "".join(str(artifact.data) for artifact in artifacts) + str(flow_run.parameters)
    assert sandbox.token not in shown and store not in shown


@pytest.mark.usefixtures("prefect_harness")
def test_a_missing_secret_block_fails_the_run_naming_the_block(org_config: Path, monkeypatch) -> None:
    monkeypatch.setenv("OKR_TEST_ENV_STORE_2", "sqlite://")
    with pytest.raises(ConnectorConfigError, match="okr-test-no-such-block"):
        nightly_sync(str(org_config), org="missing", as_of=AS_OF, write=False)


@pytest.mark.usefixtures("prefect_harness")
def test_an_unknown_org_fails_the_run_naming_the_orgs(org_config: Path) -> None:
    with pytest.raises(ConnectorConfigError, match="no org 'nope'.*env, blocks, missing"):
        nightly_sync(str(org_config), org="nope", as_of=AS_OF, write=False)


@pytest.mark.usefixtures("prefect_harness")
def test_load_secret_block_reads_a_saved_block() -> None:
    from prefect.blocks.system import Secret

    Secret(value="hello").save("okr-test-plain", overwrite=True)
    assert load_secret_block("okr-test-plain") == "hello"
