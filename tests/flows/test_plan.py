"""`okr-sync plan` as a process against the session sandbox: what a run would write, writing nothing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from connectors.sandbox.server import SandboxServer
from tests.conftest import TEST_ORG
from tests.flows.conftest import DEMO, okr_sync
from tests.stores import store_url

AS_OF = TEST_ORG.anchor.date().isoformat()
CRMS = ("salesforce", "hubspot")
WRITE_PATHS = ("/composite/sobjects", "/batch/upsert", "/batch/create", "/batch/update")
TARGET_FIELD = {"salesforce": "Target__c", "hubspot": "target"}


def _writes(counts: Counter[str]) -> int:
    return sum(n for request, n in counts.items() if not request.startswith("GET") and
               any(part in request for part in WRITE_PATHS))


def _cli(env: dict[str, str], sandbox: SandboxServer, *args: str) -> tuple[dict | str, dict[str, int]]:
    """Run okr-sync; its JSON (or text) output and the write requests each CRM served meanwhile."""
    before = {crm: Counter(sandbox.counters[crm].counts) for crm in CRMS}
    result = okr_sync(env, *args)
    assert result.returncode == 0, result.stderr
    writes = {crm: _writes(sandbox.counters[crm].counts - before[crm]) for crm in CRMS}
    return (json.loads(result.stdout) if "json" in args else result.stdout), writes


def _plans(document: dict, kind: str = "key_result") -> dict[str, dict[str, dict]]:
    return {run["source"]: {change["key"]: change for change in run["changes"] if change["object"] == kind}
            for run in document["runs"]}


@pytest.fixture
def common(tmp_path: Path, sandbox: SandboxServer, cli_env: dict[str, str]):
    env = {**cli_env, **sandbox.connection_env()}
    args = ("--source", "salesforce", "--source", "hubspot", "--as-of", AS_OF,
            "--database-url", store_url(tmp_path))
    return env, args


def test_plan_shows_created_then_exactly_the_changed_targets_and_never_writes(
        common, sandbox: SandboxServer, tmp_path: Path) -> None:
    env, args = common
    first, writes = _cli(env, sandbox, "plan", "--config", str(DEMO), *args, "--output", "json")
    assert writes == {"salesforce": 0, "hubspot": 0}
    for run in first["runs"]:
        assert run["error"] is None and run["records_extracted"] > 0
        assert run["changes"] and {change["action"] for change in run["changes"]} == {"created"}
        assert run["totals"] == {"created": len(run["changes"]), "updated": 0, "unchanged": 0}

    ran, writes = _cli(env, sandbox, "run", "--config", str(DEMO), *args, "--output", "json")
    assert writes["salesforce"] >= 1 and writes["hubspot"] >= 1
    expected = {"revenue": (28e6, 30e6), "calls": (3300, 3500)}
    changed = {row["key"]: expected[row["kr_id"]] for row in ran["key_results"] if row["kr_id"] in expected}
    assert len(changed) == 2

    config = tmp_path / "changed.yaml"
    text = DEMO.read_text()
    assert text.count("target: 28000000") == 1 and text.count("target: 3300\n") == 1
    config.write_text(text.replace("target: 28000000", "target: 30000000").replace("target: 3300\n",
                                                                                   "target: 3500\n"))
    planned, writes = _cli(env, sandbox, "plan", "--config", str(config), *args, "--output", "json")
    assert writes == {"salesforce": 0, "hubspot": 0}
    for crm, plan in _plans(planned).items():
        assert {key for key, change in plan.items() if change["action"] == "updated"} == changed.keys(), crm
        assert {change["action"] for key, change in plan.items() if key not in changed} == {"unchanged"}
        for key, (old, new) in changed.items():
            target = next(c for c in plan[key]["changes"] if c["field"] == TARGET_FIELD[crm])
            assert (float(target["old"]), float(target["new"])) == (old, new), (crm, key)

    table, writes = _cli(env, sandbox, "plan", "--config", str(config), *args)
    assert writes == {"salesforce": 0, "hubspot": 0}
    assert "Target__c: 28000000 → 30000000" in table
    assert "totals: 0 created," in table
    for crm, checkins in _plans(planned, "checkin").items():  # today's check-ins carry the new targets
        assert {change["key"].split("@")[0] for change in checkins.values() if change["action"] == "updated"} \
            == changed.keys(), crm

    # The plan is what the next run writes.
    ran, _ = _cli(env, sandbox, "run", "--config", str(config), *args, "--output", "json")
    totals = {run["source"]: run["totals"] for run in planned["runs"]}
    for run in ran["runs"]:
        planned_totals = totals[run["source"]]
        assert (run["writeback"]["created"], run["writeback"]["updated"], run["writeback"]["unchanged"]) == (
            planned_totals["created"], planned_totals["updated"], planned_totals["unchanged"]), run["source"]
        assert planned_totals["created"] == 0 and planned_totals["updated"] >= 4  # 2 KRs and their check-ins
