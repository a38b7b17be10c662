"""`okr-sync setup --check` and `okr-sync setup hubspot` as processes against a bare HubSpot portal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.server import SandboxServer
from tests.conftest import TEST_ORG
from tests.flows.conftest import okr_sync


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    spec = OrgSpec(seed=3, deals=30, owners=3, accounts=5, anchor=TEST_ORG.anchor)
    with SandboxServer(tmp_path_factory.mktemp("bare"), spec, hubspot_objects=False) as server:
        yield server


def test_check_names_what_is_missing_then_setup_creates_it_once(bare: SandboxServer, cli_env: dict[str, str]) -> None:
    env = {**cli_env, **bare.connection_env()}
    checked = okr_sync(env, "setup", "--check")
    assert checked.returncode == 1, checked.stderr
    assert "salesforce: every okr-sync object and field is in place" in checked.stdout
    for obj in ("okr_objective", "okr_key_result", "okr_checkin"):
        assert obj in checked.stdout
    created = okr_sync(env, "setup", "hubspot")
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("- ") >= 3 and "HubSpot portal ready" in created.stdout
    writes_before = sum(n for request, n in bare.counters["hubspot"].counts.items() if not request.startswith("GET"))
    again = okr_sync(env, "setup", "hubspot")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    writes_after = sum(n for request, n in bare.counters["hubspot"].counts.items() if not request.startswith("GET"))
    assert writes_after == writes_before  # idempotent: the second run wrote nothing
    final = okr_sync(env, "setup", "--check")
    assert final.returncode == 0, final.stdout + final.stderr
    assert "hubspot: every okr-sync object and field is in place" in final.stdout


def test_setup_without_an_action_or_credentials_is_bad_input(cli_env: dict[str, str]) -> None:
    assert okr_sync(cli_env, "setup").returncode == 2
    nothing = okr_sync(cli_env, "setup", "--check")
    assert nothing.returncode == 2 and "no CRM is configured" in nothing.stderr
