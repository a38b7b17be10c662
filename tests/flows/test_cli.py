"""The CLI's contract: readable errors with exit code 2 for bad input, JSON output for scripts.

Commands that run the flow are run as real processes (as a user or a scheduler would), pointed at
the session's Prefect test server, so each process's logging is its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.sandbox.server import SandboxServer
from flows.cli import app
from tests.conftest import TEST_ORG
from tests.flows.conftest import DEMO, okr_sync
from tests.stores import store_url

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


def test_run_without_credentials_exits_2_naming_the_variables(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = okr_sync(cli_env, "run", "--config", str(DEMO), "--source", "hubspot",
                      "--database-url", store_url(tmp_path, 's'))
    assert result.returncode == 2, result.stderr
    assert "HUBSPOT_ACCESS_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_run_prints_kr_results_as_json(tmp_path: Path, sandbox: SandboxServer, cli_env: dict[str, str]) -> None:
    env = {**cli_env, **sandbox.connection_env()}
    result = okr_sync(env, "run", "--config", str(DEMO), "--source", "hubspot", "--output", "json",
                      "--as-of", TEST_ORG.anchor.date().isoformat(), "--no-writeback",
                      "--database-url", store_url(tmp_path, 's'))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # stdout holds the JSON document alone
    rows = document["key_results"]
    (run,) = document["runs"]
    objectives = {objective["objective_id"]: objective for objective in run["objectives"]}
    assert set(objectives) == {"grow-revenue", "sharpen-execution", "delight-customers"}
    for objective_id, objective in objectives.items():  # the plain mean: every KR weighs 1 in the demo
        per_kr: dict[str, list[float]] = {}
        for row in rows:
            if row["objective_id"] == objective_id:
                per_kr.setdefault(row["kr_id"], []).append(row["score"])
        means = [sum(scores) / len(scores) for scores in per_kr.values()]
        assert objective["score"] == pytest.approx(sum(means) / len(means), abs=1e-4)
    assert {row["kr_id"] for row in rows} >= {"revenue", "new-deals", "deal-size", "win-rate", "calls", "cycle"}
    assert all(row["source"] == "hubspot" for row in rows)
    revenue = next(row for row in rows if row["kr_id"] == "revenue")
    won = sandbox.state.query("SELECT SUM(amount) AS total FROM deals WHERE stage = 'closed_won' AND "
                              "close_date BETWEEN '2026-10-01' AND '2026-12-31'")[0]["total"]
    assert revenue["value"] == pytest.approx(won)


def run_artifact_keys(flow_run_id: str) -> set[str]:
    """The keys of the artifacts Prefect's API holds for one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {artifact.key for artifact in found if artifact.key}


def test_demo_twice_shows_agreeing_krs_then_extracts_and_writes_nothing(tmp_path: Path,
                                                                        cli_env: dict[str, str]) -> None:
    """The README's first command: a fresh sandbox org, both CRMs, then an idle rerun."""
    first = okr_sync(cli_env, "demo", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "Key results from salesforce" in first.stdout and "Close $28M in won revenue" in first.stdout
    assert "Salesforce and HubSpot give identical values for all" in first.stdout
    assert re.search(r"salesforce: extracted [1-9]\d* new or changed", first.stdout)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")  # the demo ends with its report
    assert f"Report: {(tmp_path / 'report.html').resolve()}" in first.stdout.replace("\n", "")
    assert "Close $28M in won revenue" in page and page.count("<svg") >= 5 and "http" not in page
    printed = first.stdout.replace("\n", "")
    listed = re.search(r"Prefect artifacts of flow run ([0-9a-f-]{36}): (.*?); see them", printed)
    assert listed and "okr-kr-table (markdown)" in listed[2] and "okr-kr-values (table)" in listed[2]
    assert {"okr-kr-table", "okr-kr-values"} <= run_artifact_keys(listed[1])  # and Prefect's API holds them
    second = okr_sync(cli_env, "demo", "--data-dir", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "salesforce: extracted 0 new or changed" in second.stdout
    assert "hubspot: extracted 0 new or changed" in second.stdout
    assert second.stdout.count("0 created, 0 updated") == 2


def test_config_text_that_looks_like_terminal_markup_is_printed_as_is(tmp_path: Path) -> None:
    bad = tmp_path / "markup.yaml"
    bad.write_text(DEMO.read_text().replace("where: {is_won: true}\n", 'where: {"[/x]": 1}\n', 1))
    result = runner.invoke(app, ["validate", "--config", str(bad)])
    assert result.exit_code == 2, result.output
    assert "[/x]" in result.output and "Traceback" not in result.output


def test_the_demo_store_is_reset_when_its_sandbox_org_is_generated_anew(tmp_path: Path) -> None:
    """Records, cursors and the writeback ledger of an old org would hide the new org's changes."""
    from connectors.sandbox.generator import OrgSpec
    from connectors.sandbox.state import VERSION_META_KEY, open_sandbox
    from flows.cli import _reset_store_for_a_new_org

    store = tmp_path / "store.db"
    store.write_text("old org")
    _reset_store_for_a_new_org(tmp_path, "UTC")  # no sandbox yet: it will be generated, the store goes
    assert not store.exists()
    state = open_sandbox(tmp_path / "sandbox", OrgSpec(deals=20, owners=3, accounts=5))
    store.write_text("this org")
    _reset_store_for_a_new_org(tmp_path, "UTC")  # the same, current org: kept
    assert store.read_text() == "this org"
    _reset_store_for_a_new_org(tmp_path, "Europe/Berlin")  # the config moved: the org is made again there
    assert not store.exists()
    store.write_text("this org")
    state.set_meta(VERSION_META_KEY, "1")  # seeded by an older generator: it will be regenerated
    state.close()
    _reset_store_for_a_new_org(tmp_path, "UTC")
    assert not store.exists()


def test_a_sandbox_opened_in_another_time_zone_is_generated_again_there(tmp_path: Path) -> None:
    from connectors.sandbox.generator import OrgSpec
    from connectors.sandbox.state import open_sandbox

    state = open_sandbox(tmp_path, OrgSpec(deals=20, owners=3, accounts=5))
    assert state.spec.time_zone == "UTC"
    closes = state.query("SELECT close_date FROM deals ORDER BY id")
    state.close()
    state = open_sandbox(tmp_path, time_zone="Asia/Tokyo")
    assert (state.spec.time_zone, state.spec.deals) == ("Asia/Tokyo", 20)
    assert str(state.zone) == "Asia/Tokyo" and len(state.query("SELECT close_date FROM deals")) == len(closes)
    assert state.query("SELECT local_date(0)")[0][0] == "1970-01-01"  # 09:00 in Tokyo
    assert state.query("SELECT local_midnight_ms('1970-01-02')")[0][0] == 15 * 3600 * 1000
    state.close()
