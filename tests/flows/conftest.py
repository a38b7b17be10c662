"""One Prefect test harness per session: a temporary API server, heartbeats off, temp PREFECT_HOME."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest


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
