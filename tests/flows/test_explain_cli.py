"""`okr-sync explain` over a store filled by one sync from the shared sandbox; explain calls no CRM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from connectors.sandbox.server import SandboxServer
from connectors.store import make_engine
from flows.cli import app
from tests.conftest import TEST_ORG
from tests.flows.conftest import DEMO, okr_sync
from tests.stores import store_url

runner = CliRunner()
AS_OF = TEST_ORG.anchor.date().isoformat()
NO_CRM = {"SALESFORCE_INSTANCE_URL": "", "SALESFORCE_ACCESS_TOKEN": "", "HUBSPOT_ACCESS_TOKEN": "",
          "HUBSPOT_PORTAL_ID": ""}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer, cli_env: dict[str, str]) -> dict:
    """The store after one run from both CRMs, and that run's KR rows by (source, key)."""
    url = store_url(tmp_path_factory.mktemp('explain'))
    result = okr_sync({**cli_env, **sandbox.connection_env()}, "run", "--config", str(DEMO), "--source", "salesforce",
                      "--source", "hubspot", "--output", "json", "--as-of", AS_OF, "--no-writeback",
                      "--database-url", url)
    assert result.returncode == 0, result.stderr
    rows = {(row["source"], row["key"]): row for row in json.loads(result.stdout)["key_results"]}
    return {"url": url, "rows": rows}


def explain(synced: dict, *args: str, **env: str):
    return runner.invoke(app, ["explain", "--config", str(DEMO), "--as-of", AS_OF, "--database-url", synced["url"],
                               *args], env={**NO_CRM, **env})


def test_explains_revenue_with_sql_records_links_and_numbers(synced: dict) -> None:
    result = explain(synced, "grow-revenue.revenue", "--limit", "5",
                     SALESFORCE_INSTANCE_URL="https://acme.my.salesforce.com/")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "total amount of deals (sum(amount))" in out and "where is_won is true" in out
    assert "dated by close_date from 2026-10-01 to 2026-12-31" in out
    assert "SELECT sum(deal.amount) AS metric_value" in out and "deal.source = 'salesforce'" in out
    with make_engine(synced["url"]).connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM deal WHERE source = 'salesforce' AND is_won AND "
                                  "NOT is_deleted AND amount IS NOT NULL AND close_date BETWEEN "
                                  "'2026-10-01' AND '2026-12-31'")).scalar_one()
    assert f"records with amount set: {total}, showing 5" in out
    links = [line for line in out.splitlines() if "https://acme.my.salesforce.com/lightning/r/Opportunity/" in line]
    assert len(links) == 5 and all(line.rstrip().endswith("/view") for line in links)
    row = synced["rows"][("salesforce", "grow-revenue.revenue.2026-Q4")]
    assert f"${row['value']:,.0f}" in out and f"{row['progress']:.1%}" in out
    for name in ("value", "baseline", "target", "progress", "score", "expected", "status"):
        assert f"\n  {name} " in out
    assert "absolute, given in the config" in out
    assert f"(value − baseline) / (target − baseline) = ({row['value']:.0f} − 0) / (28000000 − 0)" in out
    assert "46 of 92 days of 2026-Q4" in out and "on track at ≥ 0.95 ×" in out


def test_hubspot_links_and_ratio_sides(synced: dict) -> None:
    result = explain(synced, "win-rate", "--source", "hubspot", "--limit", "2", HUBSPOT_PORTAL_ID="4242")
    assert result.exit_code == 0, result.output
    assert "Numerator" in result.output and "Denominator" in result.output
    assert result.output.count("https://app.hubspot.com/contacts/4242/record/0-3/") == 4
    row = synced["rows"][("hubspot", "sharpen-execution.win-rate.2026-Q4")]
    assert f"{row['value']:.1f}%" in result.output


def test_without_the_org_address_only_ids_are_shown(synced: dict) -> None:
    result = explain(synced, "calls", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "http" not in result.output and "  call" in result.output


def test_breakdown_lists_groups_and_explains_one(synced: dict) -> None:
    rows = synced["rows"]
    groups = sorted(row["group"] for (source, key), row in rows.items()
                    if source == "salesforce" and key.startswith("grow-revenue.rep-revenue."))
    first = explain(synced, "rep-revenue")
    assert first.exit_code == 0, first.output
    assert f"Breakdown by owner: {len(groups)} group(s)" in first.output
    assert f"Explaining group {groups[0]}" in first.output
    chosen = explain(synced, "rep-revenue", "--group", groups[1])
    assert chosen.exit_code == 0, chosen.output
    assert f"Explaining group {groups[1]}" in chosen.output and f"= '{groups[1]}'" not in chosen.output
    wrong = explain(synced, "rep-revenue", "--group", groups[1] + "x")
    assert wrong.exit_code == 2 and f"did you mean {groups[1]}" in wrong.output
    assert "Traceback" not in wrong.output


@pytest.mark.parametrize(("args", "message"), [
    (["revenu"], "no key result 'revenu' in the config; did you mean"),
    (["revenue", "--source", "pipedrive"], "unknown --source pipedrive"),
    (["revenue", "--as-of", "soon"], "--as-of 'soon' is not a date"),
])
def test_bad_input_exits_2_with_a_message(synced: dict, args: list[str], message: str) -> None:
    result = explain(synced, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("metric: call_volume", "metric: call_volumes"))
    result = runner.invoke(app, ["explain", "calls", "--config", str(bad),
                                 "--database-url", store_url(tmp_path, 's')])
    assert result.exit_code == 2 and "the config has problems" in result.output
