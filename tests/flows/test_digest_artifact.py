"""The nightly run's weekly digest artifact: what moved in the CRMs' check-ins over the week, per team and owner."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.sandbox.tick import tick
from flows.nightly import SyncFailed, SyncReport, nightly_sync
from tests.conftest import TEST_TIME_ZONE, private_sandbox
from tests.flows.conftest import DEMO
from tests.stores import store_url


def _artifact(flow_run_id: str, key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [found] = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])))
    return str(found.data)


def test_the_digest_artifact_shows_the_week_per_team_and_owner(prefect_harness: None,
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    with private_sandbox(tmp_path_factory, "digest", seed=43, deals=300, owners=6, accounts=40,
                         time_zone=TEST_TIME_ZONE) as org:
        url = store_url(tmp_path_factory.mktemp("digest"))
        day = org.state.local_clock.date()
        reports: list[SyncReport] = []
        with pytest.MonkeyPatch.context() as patch:
            for name, value in org.connection_env().items():
                patch.setenv(name, value)
            for offset in (0, 3):
                try:
                    reports.append(nightly_sync(str(DEMO), sources=["salesforce"], database_url=url,
                                                as_of=day + timedelta(days=offset), force=True))
                except SyncFailed as failure:
                    reports.append(failure.report)
                tick(org.state, days=3, seed=offset)
        first, second = (_artifact(str(report.flow_run_id), "okr-weekly-digest") for report in reports)
        assert "# Weekly digest" in first and "## salesforce" in first
        assert "- Moved:" not in first  # one check-in per KR so far: nothing to compare with
        assert "### Per team" in second and "### Per owner" in second
        moved = [line for line in second.splitlines() if line.startswith("- Moved: ")]
        assert moved and all(" → " in line for line in moved)
        revenue = next(r for r in reports[1].runs[0].results if r.kr_id == "revenue" and r.group is None)
        before = next(r for r in reports[0].runs[0].results if r.key == revenue.key)
        if revenue.value != before.value:
            assert any(line.startswith(f"- Moved: {revenue.title}") for line in moved)
