"""Scale-out at small scale: a real Prefect server, a process work pool and worker, one deployment per org.

Two orgs from one config: `east` is the sandbox's Salesforce face (credentials from EAST_* variables),
`west` its HubSpot face (host from WEST_*, token from a Prefect Secret block). Each org has its own
store. The deployments come from `okr-sync deployments` and `prefect deploy --all`, exactly as an
admin makes them; the worker runs both flow runs as processes of its own.

With OKR_SYNC_TEST_POSTGRES_URL set (scripts/with-postgres.sh), the Prefect server's database and
both stores are fresh PostgreSQL databases on that server; otherwise SQLite files.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from connectors.sandbox.server import SandboxServer
from okr_mapping.history import KrSnapshot
from tests.conftest import TEST_ORG, TEST_TIME_ZONE, private_sandbox
from tests.flows.conftest import DEMO, ROOT
from tests.stores import new_postgres_database, postgres_server_url

pytestmark = pytest.mark.integration

AS_OF = TEST_ORG.anchor.date()
POOL = "okr-sync-scale-out"
CRON = "15 3 * * *"
TOKEN_BLOCK = "west-hubspot-token"
PREFECT = [sys.executable, "-m", "prefect"]
ORGS = f"""
schedule: {{cron: "{CRON}"}}
orgs:
  - name: east
    sources: [salesforce]
    store: {{env: OKR_TEST_EAST_STORE}}
    credentials: {{env_prefix: EAST_}}
  - name: west
    sources: [hubspot]
    store: {{env: OKR_TEST_WEST_STORE}}
    credentials:
      env_prefix: WEST_
      secret_blocks: {{HUBSPOT_ACCESS_TOKEN: {TOKEN_BLOCK}}}
"""


@dataclass
class Cluster:
    """The Prefect server and what the worker's environment knows."""

    api_url: str
    env: dict[str, str]  # PREFECT_* of every process talking to the server
    logs: Path
    stores: dict[str, str]
    database: str | None  # the Prefect server's PostgreSQL database (None: its SQLite file)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _base_env(home: Path) -> dict[str, str]:
    """This process's environment without CRM, store or Prefect settings, plus a private PREFECT_HOME."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SALESFORCE_", "HUBSPOT_", "OKR_SYNC_", "PREFECT_"))}
    return env | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                  "PREFECT_SERVER_LOGGING_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process in a session of its own, so it and its children stop together."""
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the Prefect server did not start in {timeout} s:\n{log.read_text()[-3000:]}")


def _databases(tmp: Path) -> tuple[str | None, dict[str, str]]:
    """(the Prefect server's database URL or None for its SQLite default, each org's store URL)."""
    if postgres_server_url() is None:
        return None, {org: f"sqlite:///{tmp / f'{org}.db'}" for org in ("east", "west")}
    server = make_url(new_postgres_database("prefect")).set(drivername="postgresql+asyncpg")
    return (server.render_as_string(hide_password=False),
            {org: new_postgres_database(f"store_{org}") for org in ("east", "west")})


@pytest.fixture(scope="module")
def scale_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A small org of this module's own: the runs write their KRs into it."""
    with private_sandbox(tmp_path_factory, "scale-out", seed=11, deals=150, owners=6, accounts=40,
                         calls_per_deal=1.0, time_zone=TEST_TIME_ZONE) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A Prefect server in a process of its own, on a free port (stopped whatever happens)."""
    tmp = tmp_path_factory.mktemp("scale-out")
    database, stores = _databases(tmp)
    port = _free_port()
    env = _base_env(tmp / "prefect-home") | {"PREFECT_UI_ENABLED": "false",
                                             "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    server_env = env | ({"PREFECT_API_DATABASE_CONNECTION_URL": database} if database else {})
    log = tmp / "server.log"
    server = _start([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], server_env, log)
    try:
        _wait_healthy(env["PREFECT_API_URL"], server, log)
        yield Cluster(env["PREFECT_API_URL"], env, tmp, stores, database)
    finally:
        _stop(server)


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _save_secret(cluster: Cluster, value: str) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: cluster.api_url}):
        Secret(value=value).save(TOKEN_BLOCK, overwrite=True)


def _wait_final(client, run_ids: list, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        runs = {run_id: client.read_flow_run(run_id) for run_id in run_ids}
        if all(run.state and run.state.is_final() for run in runs.values()) or time.monotonic() > deadline:
            return runs
        time.sleep(1)


@pytest.fixture(scope="module")
def deployed_runs(cluster: Cluster, scale_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory):
    """Deploy both orgs from one config, start a process worker, run both deployments to the end."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    tmp = tmp_path_factory.mktemp("deploy")
    config = tmp_path_factory.mktemp("config") / "two-orgs.yaml"  # outside the prefect.yaml's directory: absolute
    config.write_text(DEMO.read_text(encoding="utf-8") + ORGS, encoding="utf-8")
    started = time.monotonic()
    _run([*PREFECT, "work-pool", "create", POOL, "--type", "process"], cluster.env)
    _save_secret(cluster, scale_sandbox.token)
    _run([sys.executable, "-m", "flows.cli", "deployments", "--config", str(config), "--pool", POOL,
          "--file", str(tmp / "prefect.yaml")], cluster.env)
    _run([*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp / "prefect.yaml")], cluster.env)
    sandbox = scale_sandbox.connection_env()
    worker_env = cluster.env | {
        "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "EAST_SALESFORCE_INSTANCE_URL": sandbox["SALESFORCE_INSTANCE_URL"],
        "EAST_SALESFORCE_ACCESS_TOKEN": sandbox["SALESFORCE_ACCESS_TOKEN"],
        "WEST_HUBSPOT_HOST": sandbox["HUBSPOT_HOST"],  # the token comes from the Secret block only
        "OKR_SYNC_CA_BUNDLE": sandbox["OKR_SYNC_CA_BUNDLE"],
        "OKR_TEST_EAST_STORE": cluster.stores["east"], "OKR_TEST_WEST_STORE": cluster.stores["west"]}
    worker_log = cluster.logs / "worker.log"
    worker = _start([*PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], worker_env, worker_log)
    try:
        with SyncPrefectClient(cluster.api_url) as client:
            deployments = {d.name: d for d in client.read_deployments()}
            runs = [client.create_flow_run_from_deployment(deployments[org].id, parameters={"as_of": str(AS_OF)})
                    for org in ("east", "west")]
            finished = _wait_final(client, [run.id for run in runs], timeout=150)
            logs = {org: [log.message for log in client.read_logs(LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200)]
                for org, run in zip(("east", "west"), runs, strict=True)}
    finally:
        _stop(worker)
    elapsed = time.monotonic() - started
    return deployments, finished, logs, worker_log.read_text(errors="replace"), elapsed


def test_each_org_has_a_nightly_deployment_with_the_configs_cron_and_time_zone(deployed_runs, cluster: Cluster) -> None:
    deployments, *_ = deployed_runs
    if cluster.database:  # the server's state really is in PostgreSQL
        engine = create_engine(make_url(cluster.database).set(drivername="postgresql+psycopg"))
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM deployment")).scalar() == len(deployments)
        finally:
            engine.dispose()
    for org in ("east", "west"):
        deployment = deployments[org]
        assert deployment.parameters["org"] == org and deployment.work_pool_name == POOL
        (schedule,) = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (CRON, "America/New_York")


def test_the_worker_runs_both_orgs_to_completion(deployed_runs) -> None:
    _, finished, logs, worker_log, elapsed = deployed_runs
    states = {run.name: run.state.type.value for run in finished.values()}
    assert all(run.state.is_completed() for run in finished.values()), \
        f"{states}\n{logs}\n--- worker ---\n{worker_log[-4000:]}"
    print(f"scale-out: deploy + both runs in {elapsed:.1f} s")


@pytest.mark.parametrize(("org", "crm", "obj"), [("east", "salesforce", "OKR_Key_Result__c"),
                                                  ("west", "hubspot", "okr_key_result")])
def test_each_org_has_its_own_store_and_its_crm_got_the_writeback(deployed_runs, cluster: Cluster,
                                                                  scale_sandbox: SandboxServer, org: str, crm: str,
                                                                  obj: str) -> None:
    engine = create_engine(cluster.stores[org])
    try:
        with engine.connect() as conn:
            sources = {row.source for row in conn.execute(select(KrSnapshot.source, KrSnapshot.key))}
            keys = {row.key for row in conn.execute(select(KrSnapshot.key).where(KrSnapshot.as_of == AS_OF))}
    finally:
        engine.dispose()
    assert sources == {crm} and keys, f"{org}'s store holds check-ins of {sources}"
    written = {record["unique_key"] for record in scale_sandbox.state.custom_records(crm, obj)}
    assert keys <= written


def test_the_secret_token_is_nowhere_in_the_logs(deployed_runs, scale_sandbox: SandboxServer) -> None:
    _, _, logs, worker_log, _ = deployed_runs
    assert any("Secret block" in message for message in logs["west"])  # where it came from, by name
    assert all(scale_sandbox.token not in message for messages in logs.values() for message in messages)
    assert scale_sandbox.token not in worker_log
