"""`okr-sync serve` on one machine: it registers the nightly deployment with the config's cron and time
zone, and runs what the schedule (here: a run triggered now) asks for, in a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.sandbox.server import SandboxServer
from tests.conftest import TEST_ORG
from tests.flows.conftest import DEMO, ROOT
from tests.stores import store_url

pytestmark = pytest.mark.integration


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: serve pauses its schedules and exits
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _deployment(client, name: str, deadline: float):
    from prefect.exceptions import ObjectNotFound

    while time.monotonic() < deadline:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            time.sleep(0.5)
    raise AssertionError(f"{name} was not served")


def test_serve_registers_the_nightly_deployment_and_runs_it(cli_env: dict[str, str], sandbox: SandboxServer,
                                                            tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    env = {**cli_env, **sandbox.connection_env(), "OKR_SYNC_DATABASE_URL": store_url(tmp_path),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--config", str(DEMO)], env=env,
                                 cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 90
            deployment = _deployment(client, "nightly_sync/demo", deadline)
            (schedule,) = deployment.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "America/New_York")
            assert deployment.parameters == {"config_path": str(DEMO)}
            run = client.create_flow_run_from_deployment(
                deployment.id, parameters={"as_of": TEST_ORG.anchor.date().isoformat(), "write": False})
            while time.monotonic() < deadline:
                run = client.read_flow_run(run.id)
                if run.state and run.state.is_final():
                    break
                time.sleep(0.5)
        assert run.state is not None and run.state.is_completed(), f"{run.state}\n{log.read_text()[-4000:]}"
    finally:
        _stop(serve)
    assert "serving nightly_sync/demo: '0 2 * * *' America/New_York" in log.read_text()
