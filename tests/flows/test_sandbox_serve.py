"""`okr-sync sandbox serve` as a user runs it: a real process, its printed details, its state kept."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import requests
from simple_salesforce import Salesforce

ROOT = Path(__file__).resolve().parents[2]


def _serve(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sandbox", "serve", "--data-dir", str(data_dir), "--deals", "120",
         "--salesforce-port", "0", "--hubspot-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    output = "".join(lines)
    assert "Salesforce API: https://127.0.0.1:" in output and "CA bundle:" in output, output
    return process, dict(re.findall(r"^export (\w+)=(\S+)$", output, re.MULTILINE))


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def _client(env: dict[str, str]) -> Salesforce:
    session = requests.Session()
    session.trust_env = False
    session.verify = env["OKR_SYNC_CA_BUNDLE"]
    return Salesforce(instance_url=env["SALESFORCE_INSTANCE_URL"], session_id=env["SALESFORCE_ACCESS_TOKEN"],
                      session=session)


def test_serve_prints_how_to_connect_and_keeps_its_org_across_restarts(tmp_path: Path) -> None:
    process, env = _serve(tmp_path / "sandbox")
    try:
        assert set(env) == {"SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "HUBSPOT_HOST",
                            "HUBSPOT_ACCESS_TOKEN", "OKR_SYNC_CA_BUNDLE"}
        client = _client(env)
        assert client.query("SELECT Id FROM Opportunity")["totalSize"] == 120
        written = client.restful("composite/sobjects/OKR_Key_Result__c/Key__c", method="PATCH", json={
            "allOrNone": True,
            "records": [{"attributes": {"type": "OKR_Key_Result__c"}, "Key__c": "serve-test", "Name": "Kept"}]})
        assert written[0]["success"] and written[0]["created"]
    finally:
        _stop(process)

    process, again = _serve(tmp_path / "sandbox")
    try:
        assert again["SALESFORCE_ACCESS_TOKEN"] == env["SALESFORCE_ACCESS_TOKEN"]
        assert again["OKR_SYNC_CA_BUNDLE"] == env["OKR_SYNC_CA_BUNDLE"]
        kept = _client(again).query("SELECT Key__c, Name FROM OKR_Key_Result__c WHERE Key__c = 'serve-test'")
        assert [(r["Key__c"], r["Name"]) for r in kept["records"]] == [("serve-test", "Kept")]
        assert _client(again).query("SELECT Id FROM Opportunity")["totalSize"] == 120
    finally:
        _stop(process)
