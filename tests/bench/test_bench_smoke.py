"""The benchmark harness works end to end on a tiny org (no timing is asserted: figures are the bench's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main, merge
from bench.render import render

pytestmark = pytest.mark.integration


def test_quick_run_writes_figures_and_keeps_earlier_ones(tmp_path: Path) -> None:
    results, markdown = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    earlier = {"crm": "salesforce", "deals": 10_000, "records": 84_000, "peak_rss_mb": 123.0,
               "rss_before_sync_mb": 100.0, "seconds": 1.0, "command": "earlier", "at": "then", "load": [0.1, 0.1, 0.1]}
    merge(results, "memory", {"salesforce/10000": earlier})

    assert main(["--quick", "--only", "calls,memory,compute,writeback", "--sizes", "200", "--results", str(results),
                 "--markdown", str(markdown), "--cache", str(tmp_path / "cache")]) == 0

    merge(results, "memory", {"salesforce/10000": {"not_measured": "past the deadline"}})
    figures = json.loads(results.read_text())["figures"]
    assert figures["memory"]["salesforce/10000"] == earlier  # kept by a partial run and by a "not measured"
    for crm in ("salesforce", "hubspot"):  # the sandbox and each sync in processes of their own
        calls, memory = figures["calls"][f"{crm}/200"], figures["memory"][f"{crm}/200"]
        assert calls["full_calls"] >= calls["minimum_pages"] * 0.5
        assert 0 < calls["incremental_calls"] <= calls["full_calls"]
        assert memory["peak_rss_mb"] >= memory["rss_before_sync_mb"] > 0
    assert figures["compute"]["sqlite/200"]["krs"] == 50
    assert "not_measured" in figures["compute"]["postgresql/200"] or figures["compute"]["postgresql/200"]["krs"] == 50
    for crm, batch in (("salesforce", 200), ("hubspot", 100)):
        written = figures["writeback"][f"{crm}/20"]
        assert written["first_written"] == 20 and written["bound"] == 1 == -(-20 // batch)
        assert written["unchanged_calls"] == 0
        assert written["naive_calls"] >= 20
    text = markdown.read_text()
    assert text == render(json.loads(results.read_text()))
    assert "| salesforce | 10,000 | 84,000 | 123 MB |" in text
    assert "not measured (not run yet)" in text


def test_a_run_limited_to_one_crm_measures_only_its_syncs(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    assert main(["--quick", "--only", "memory", "--sizes", "200", "--crms", "salesforce", "--results", str(results),
                 "--markdown", str(tmp_path / "BENCHMARKS.md"), "--cache", str(tmp_path / "cache")]) == 0
    assert set(json.loads(results.read_text())["figures"]["memory"]) == {"salesforce/200"}
    with pytest.raises(SystemExit):  # argparse: exit 2 and the known CRMs named
        main(["--crms", "pipedrive"])
