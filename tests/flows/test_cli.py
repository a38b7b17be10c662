"""The CLI's contract: readable errors with exit code 2 for bad input, JSON output for scripts.

Commands that run the flow are run as real processes (as a user or a scheduler would), pointed at
the session's Prefect test server, so each process's logging is its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.sandbox.server import SandboxServer
from flows.cli import app
from tests.conftest import TEST_ORG

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
runner = CliRunner()


def test_validate_accepts_the_demo_config() -> None:
    result = runner.invoke(app, ["validate", "--config", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_bad_config_names_file_line_and_key_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("metric: call_volume", "metric: call_volumes"))
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "call_volumes" in text)
    result = runner.invoke(app, ["validate", "--config", str(bad)])
    assert result.exit_code == 2
    assert f"bad.yaml:{line}:" in result.output
    assert "call_volume" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def cli_env(prefect_harness: None) -> dict[str, str]:
    """The environment of an `okr-sync` process: the test Prefect API, no CRM credentials."""
    from prefect.settings import PREFECT_API_URL

    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SALESFORCE_", "HUBSPOT_", "OKR_SYNC_"))}
    env.update(PREFECT_API_URL=str(PREFECT_API_URL.value()), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def okr_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=DEMO.parents[2],
                          capture_output=True, text=True, timeout=300)


def test_run_without_credentials_exits_2_naming_the_variables(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = okr_sync(cli_env, "run", "--config", str(DEMO), "--source", "hubspot",
                      "--database-url", f"sqlite:///{tmp_path / 's.db'}")
    assert result.returncode == 2, result.stderr
    assert "HUBSPOT_ACCESS_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_run_prints_kr_results_as_json(tmp_path: Path, sandbox: SandboxServer, cli_env: dict[str, str]) -> None:
    env = {**cli_env, **sandbox.connection_env()}
    result = okr_sync(env, "run", "--config", str(DEMO), "--source", "hubspot", "--output", "json",
                      "--as-of", TEST_ORG.anchor.date().isoformat(), "--no-writeback",
                      "--database-url", f"sqlite:///{tmp_path / 's.db'}")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["key_results"]  # stdout holds the JSON document alone
    assert {row["kr_id"] for row in rows} >= {"revenue", "new-deals", "deal-size", "win-rate", "calls", "cycle"}
    assert all(row["source"] == "hubspot" for row in rows)
    revenue = next(row for row in rows if row["kr_id"] == "revenue")
    won = sandbox.state.query("SELECT SUM(amount) AS total FROM deals WHERE stage = 'closed_won' AND "
                              "close_date BETWEEN '2026-10-01' AND '2026-12-31'")[0]["total"]
    assert revenue["value"] == pytest.approx(won)


def test_demo_twice_shows_agreeing_krs_then_extracts_and_writes_nothing(tmp_path: Path,
                                                                        cli_env: dict[str, str]) -> None:
    """The README's first command: a fresh sandbox org, both CRMs, then an idle rerun."""
    first = okr_sync(cli_env, "demo", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "Key results from salesforce" in first.stdout and "Close $28M in won revenue" in first.stdout
    assert "Salesforce and HubSpot give identical values for all" in first.stdout
    assert re.search(r"salesforce: extracted [1-9]\d* new or changed", first.stdout)
    second = okr_sync(cli_env, "demo", "--data-dir", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "salesforce: extracted 0 new or changed" in second.stdout
    assert "hubspot: extracted 0 new or changed" in second.stdout
    assert second.stdout.count("0 created, 0 updated") == 2
