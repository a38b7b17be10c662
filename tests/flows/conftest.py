"""One Prefect test harness per session: a temporary API server, heartbeats off, temp PREFECT_HOME."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "examples" / "demo.yaml"


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), \
            prefect_test_harness(server_startup_timeout=90):
        yield
        # The harness logs its shutdown after pytest has closed the captured stream; keep it quiet.
        logging.getLogger("prefect").setLevel(logging.WARNING)


@pytest.fixture
def sandbox_env(sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the connectors at the session sandbox through the environment, as a real run would."""
    env = sandbox.connection_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def cli_env(prefect_harness: None) -> dict[str, str]:
    """The environment of an `okr-sync` process: the test Prefect API, no CRM credentials."""
    from prefect.settings import PREFECT_API_URL

    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SALESFORCE_", "HUBSPOT_", "OKR_SYNC_"))}
    env.update(PREFECT_API_URL=str(PREFECT_API_URL.value()), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def okr_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
