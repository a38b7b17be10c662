"""The Prefect artifacts a run left, read back from the Prefect API: the demo lists them as proof they exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.terminal import console, errors

if TYPE_CHECKING:
    from flows.nightly import SyncReport


def show_artifacts(report: SyncReport) -> None:
    """Print the key and type of each artifact of the report's flow run (a warning when there are none)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    if report.flow_run_id is None:
        return
    artifact_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[report.flow_run_id]))
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=artifact_filter)
    if not found:
        errors.print(f"warning: flow run {report.flow_run_id} left no Prefect artifacts")
        return
    listed = ", ".join(f"{artifact.key} ({artifact.type})" for artifact in sorted(found, key=lambda a: a.key or ""))
    console.print(f"Prefect artifacts of flow run {report.flow_run_id}: {listed}; "
                  f"see them with `prefect artifact inspect KEY` or in the Prefect UI.", soft_wrap=True)
