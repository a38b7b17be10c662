"""The nightly flow end to end: both CRMs of the sandbox, real clients over HTTPS, Prefect for real."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from connectors.sandbox.server import SandboxServer
from flows.nightly import SyncReport, nightly_sync
from tests.conftest import TEST_ORG
from tests.flows.oracle import demo_values
from tests.stores import store_url

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
AS_OF = TEST_ORG.anchor.date()
WRITE_PATHS = ("/composite/sobjects", "/batch/upsert", "/batch/create", "/batch/update")


def _writes(counts: Counter[str]) -> int:
    return sum(n for request, n in counts.items() if not request.startswith("GET") and
               any(part in request for part in WRITE_PATHS))


@pytest.fixture(scope="module")
def runs(prefect_harness: None, sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory):
    """Two nightly runs back to back against one store, with the sandbox's request counts of each."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in sandbox.connection_env().items():
            patch.setenv(name, value)
        url = store_url(tmp_path_factory.mktemp('flow'))
        counts = []
        reports: list[SyncReport] = []
        for _ in range(2):
            before = {crm: Counter(sandbox.counters[crm].counts) for crm in ("salesforce", "hubspot")}
            reports.append(nightly_sync(str(DEMO), sources=["salesforce", "hubspot"], database_url=url,
                                        as_of=AS_OF))
            counts.append({crm: sandbox.counters[crm].counts - before[crm] for crm in before})
        return reports, counts


def _values(report: SyncReport, source: str) -> dict[str, float]:
    run = next(run for run in report.runs if run.source == source)
    return {result.key: result.value for result in run.results}


def test_first_run_extracts_every_stream_and_writes_every_kr(runs) -> None:
    (first, _), (counts, _) = runs
    for run in first.runs:
        assert {stream.stream: stream.records > 0 for stream in run.streams} == dict.fromkeys(
            (stream.stream for stream in run.streams), True)
        assert run.writeback is not None
        # every objective, key result and today's check-in of each
        assert run.writeback.created == len(run.objectives) + 2 * len(run.results) and run.writeback.failed == 0
    assert _writes(counts["salesforce"]) >= 1 and _writes(counts["hubspot"]) >= 1


def test_salesforce_and_hubspot_give_identical_kr_values(runs) -> None:
    (first, _), _ = runs
    salesforce, hubspot = _values(first, "salesforce"), _values(first, "hubspot")
    assert len(salesforce) >= 8
    assert salesforce.keys() == hubspot.keys()
    for key, value in salesforce.items():
        assert hubspot[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("source", ["salesforce", "hubspot"])
def test_kr_values_equal_an_independent_computation(runs, sandbox: SandboxServer, source: str) -> None:
    (first, _), _ = runs
    expected = demo_values(sandbox.state, AS_OF)
    run = next(run for run in first.runs if run.source == source)
    actual = {(r.kr_id, r.group): (r.value, r.baseline, r.target) for r in run.results}
    assert actual.keys() == expected.keys()
    for key, (value, baseline, target) in expected.items():
        assert actual[key][0] == pytest.approx(value, abs=1e-3), key
        assert actual[key][1] == pytest.approx(baseline, abs=1e-3), key
        if target is not None:
            assert actual[key][2] == pytest.approx(target, abs=1e-3), key


def test_second_run_extracts_nothing_and_writes_nothing(runs) -> None:
    (_, second), (_, counts) = runs
    for run in second.runs:
        assert run.records_extracted == 0
        assert run.writeback is not None
        assert (run.writeback.created, run.writeback.updated, run.writeback.failed) == (0, 0, 0)
        assert run.writeback.unchanged == len(run.objectives) + 2 * len(run.results)
        assert run.writeback.api_calls == 0  # no describe, no schema lookup, no write
        assert run.api_calls == sum(stream.api_calls for stream in run.streams)
        assert all(stream.api_calls <= 2 for stream in run.streams)  # one query (HubSpot owners: two lists)
    assert _writes(counts["salesforce"]) == 0 and _writes(counts["hubspot"]) == 0


def test_each_crm_holds_exactly_one_record_per_kr_key(runs, sandbox: SandboxServer) -> None:
    (first, _), _ = runs
    for crm, obj, value_field in (("salesforce", "OKR_Key_Result__c", "Current_Value__c"),
                                  ("hubspot", "okr_key_result", "current_value")):
        results = {result.key: result for result in next(r for r in first.runs if r.source == crm).results}
        records = [r for r in sandbox.state.custom_records(crm, obj) if r["unique_key"] in results]
        assert Counter(r["unique_key"] for r in records) == Counter(dict.fromkeys(results, 1))
        for record in records:
            assert float(record["fields"][value_field]) == pytest.approx(results[record["unique_key"]].value)


def test_run_leaves_a_markdown_artifact_with_the_kr_table(runs) -> None:
    from prefect.client.orchestration import get_client

    (first, _), _ = runs
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == "okr-kr-table"]
    assert artifacts, "no okr-kr-table artifact"
    latest = max(artifacts, key=lambda artifact: artifact.created)
    titles = {result.title for run in first.runs for result in run.results}
    assert all(title in latest.data for title in titles)
    assert "| Objective | Period | Score | Status |" in latest.data
    assert all(objective.title in latest.data for run in first.runs for objective in run.objectives)


def test_run_leaves_a_table_artifact_and_bars_and_the_quota_left_in_the_markdown(runs) -> None:
    from prefect.client.orchestration import get_client

    (_, second), _ = runs  # the latest artifacts are the second run's
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    tables = [a for a in artifacts if a.key == "okr-kr-values"]
    assert tables, "no okr-kr-values artifact"
    table = max(tables, key=lambda artifact: artifact.created).data
    rows = json.loads(table) if isinstance(table, str) else table
    expected = {(run.source, result.key): result.value for run in second.runs for result in run.results}
    assert {(row["source"], row["key"]): row["value"] for row in rows} == expected
    markdown = max((a for a in artifacts if a.key == "okr-kr-table"), key=lambda artifact: artifact.created).data
    salesforce = next(run for run in second.runs if run.source == "salesforce")
    assert salesforce.api_calls_left is not None and salesforce.api_calls_left > 0
    assert f"({salesforce.api_calls_left:,} left in the CRM's daily quota)" in markdown
    assert "██" in markdown and "░" in markdown  # progress bars
