"""The CLI's contract: readable errors with exit code 2 for bad input, JSON output for scripts."""

from __future__ import annotations

import json
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


def test_run_without_credentials_exits_2_naming_the_variables(tmp_path: Path, monkeypatch) -> None:
    for name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "SALESFORCE_USERNAME",
                 "SALESFORCE_CLIENT_ID", "HUBSPOT_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["run", "--config", str(DEMO), "--source", "hubspot",
                                 "--database-url", f"sqlite:///{tmp_path / 's.db'}"])
    assert result.exit_code == 2, result.output
    assert "HUBSPOT_ACCESS_TOKEN" in result.output


@pytest.mark.usefixtures("prefect_harness", "sandbox_env")
def test_run_prints_kr_results_as_json(tmp_path: Path, sandbox: SandboxServer) -> None:
    result = runner.invoke(app, ["run", "--config", str(DEMO), "--source", "hubspot", "--output", "json",
                                 "--as-of", TEST_ORG.anchor.date().isoformat(), "--no-writeback",
                                 "--database-url", f"sqlite:///{tmp_path / 's.db'}"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    rows = payload["key_results"]
    assert {row["kr_id"] for row in rows} >= {"revenue", "new-deals", "deal-size", "win-rate", "calls", "cycle"}
    assert all(row["source"] == "hubspot" for row in rows)
    revenue = next(row for row in rows if row["kr_id"] == "revenue")
    won = sandbox.state.query("SELECT SUM(amount) AS total FROM deals WHERE stage = 'closed_won' AND "
                              "close_date BETWEEN '2026-10-01' AND '2026-12-31'")[0]["total"]
    assert revenue["value"] == pytest.approx(won)
