"""A CRM that fails does not take the other down, and the run says so without leaking secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sandbox.server import SandboxServer
from flows.nightly import SyncFailed, nightly_sync
from tests.conftest import TEST_ORG
from tests.flows.conftest import DEMO, okr_sync
from tests.stores import store_url

WRONG_TOKEN = "wrong-token-that-must-never-be-printed"


@pytest.mark.usefixtures("prefect_harness", "sandbox_env")
def test_a_failing_crm_is_reported_while_the_other_completes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", WRONG_TOKEN)
    with pytest.raises(SyncFailed) as failure:
        nightly_sync(str(DEMO), sources=["salesforce", "hubspot"], database_url=store_url(tmp_path, 's'),
                     as_of=TEST_ORG.anchor.date(), write=False)
    salesforce, hubspot = failure.value.report.runs
    assert salesforce.error is None and salesforce.results and salesforce.records_extracted > 0
    assert hubspot.error is not None and not hubspot.results
    assert "401" in hubspot.error and WRONG_TOKEN not in str(failure.value)


def test_cli_exits_1_shows_what_succeeded_and_hides_the_token(tmp_path: Path, sandbox: SandboxServer,
                                                              cli_env: dict[str, str]) -> None:
    env = {**cli_env, **sandbox.connection_env(), "HUBSPOT_ACCESS_TOKEN": WRONG_TOKEN}
    result = okr_sync(env, "run", "--config", str(DEMO), "--source", "salesforce", "--source", "hubspot",
                      "--as-of", TEST_ORG.anchor.date().isoformat(), "--no-writeback",
                      "--database-url", store_url(tmp_path, 's'))
    assert result.returncode == 1
    assert "Key results from salesforce" in result.stdout
    assert "the sync did not fully succeed" in result.stderr and "hubspot:" in result.stderr
    assert WRONG_TOKEN not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
