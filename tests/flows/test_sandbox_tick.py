"""`okr-sync sandbox tick`: advances an existing org (even while it is served), refuses an empty dir."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import requests
from simple_salesforce import Salesforce
from typer.testing import CliRunner

from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.state import open_sandbox
from flows.cli import app

ANCHOR = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SMALL = OrgSpec(seed=11, deals=300, owners=8, accounts=60, anchor=ANCHOR)
runner = CliRunner()


def _tick(data_dir: Path, *args: str):
    return runner.invoke(app, ["sandbox", "tick", "--data-dir", str(data_dir), *args])


def test_tick_prints_the_summary_and_advances_the_clock(tmp_path: Path) -> None:
    open_sandbox(tmp_path / "sandbox", SMALL).close()
    result = _tick(tmp_path / "sandbox", "--days", "3", "--seed", "1")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Simulated 3 day(s):" in text and "deal(s) created" in text and "call(s) added" in text
    assert "Org clock is now 2026-11-18T12:00:00+00:00" in text
    again = _tick(tmp_path / "sandbox")
    assert again.exit_code == 0 and "Org clock is now 2026-11-19T12:00:00+00:00" in " ".join(again.output.split())


def test_tick_without_an_org_fails_cleanly(tmp_path: Path) -> None:
    for data_dir in (tmp_path, tmp_path / "missing"):
        result = _tick(data_dir, "--days", "2")
        assert result.exit_code == 2
        text = " ".join(result.output.split())
        assert "run `okr-sync sandbox serve` or `okr-sync demo` first" in text and "Traceback" not in text
    assert not (tmp_path / "missing").exists() and not (tmp_path / "sandbox.db").exists()
    assert _tick(tmp_path, "--days", "0").exit_code == 2


def test_tick_while_the_org_is_served(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "served", SMALL) as server:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(server.ca_path)
        client = Salesforce(instance_url=server.salesforce_url, session_id=server.token, session=session)
        before = client.query("SELECT Id FROM Opportunity")["totalSize"]
        result = _tick(tmp_path / "served", "--days", "10", "--seed", "2")
        assert result.exit_code == 0, result.output
        after = client.query_all("SELECT Id FROM Opportunity")["totalSize"]
        assert after > before
        assert server.state.clock == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
