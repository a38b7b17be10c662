"""From computed results to what a CRM receives: objectives, key results and check-ins.

The same rows feed `okr-sync plan` and `okr-sync run`, so a plan shows exactly what the next run
writes. Before a writing run sends anything, the safety gates (okr_mapping.guards) compare the new
values with the last check-ins; a tripped gate stops the writeback (and keeps the check-ins
unrecorded, so the next run compares with the last good values again) unless the run is forced.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from connectors.okr_records import OkrRecords
from okr_mapping import KrResult, ObjectiveResult, OkrConfig
from okr_mapping.history import KrSnapshot


def okr_records(config: OkrConfig, results: Sequence[KrResult], objectives: Sequence[ObjectiveResult],
                checkins: Sequence[KrSnapshot], users: Mapping[str, str], current: bool = True) -> OkrRecords:
    """The rows of one run for one CRM (shapes: connectors.okr_records); `users`: lower-cased email ->
    CRM user id, for objective owners; `checkins`: the snapshots to send as check-ins
    (history.open_checkins); `current` False (a past day recomputed): check-ins only, so the CRM's
    objectives and key results keep today's values. The key results of a closed period (KrResult.final)
    and their check-in of the period's last day carry `final: True`."""
    declared = {objective.id: objective for objective in config.objectives}
    key_of = {result.objective_id: result.key for result in objectives}
    objective_rows = []
    for result in objectives:
        objective = declared.get(result.objective_id)
        owner = objective.owner if objective else None
        objective_rows.append({
            "key": result.key, "objective_id": result.objective_id, "title": result.title,
            "period": result.period, "period_start": result.period_start.isoformat(),
            "period_end": result.period_end.isoformat(), "progress": result.score, "score": result.score,
            "status": result.status, "weight": objective.weight if objective else 1.0, "owner": owner,
            "owner_id": users.get(owner.lower()) if owner else None,
            "parent_key": key_of.get(result.parent) if result.parent else None})
    kr_rows = [_final_only_when_set({**result.as_row(), "objective_key": key_of.get(result.objective_id)})
               for result in results]
    final = {result.key for result in results if result.final}
    checkin_rows = [_final_only_when_set({
        "key": f"{snapshot.key}@{snapshot.as_of.isoformat()}", "kr_key": snapshot.key,
        "as_of": snapshot.as_of.isoformat(), "value": snapshot.value, "target": snapshot.target,
        "progress": snapshot.progress, "score": snapshot.score, "status": snapshot.status,
        "expected_progress": snapshot.expected_progress, "forecast": snapshot.forecast,
        "forecast_confidence": snapshot.forecast_confidence, "note": snapshot.note,
        "final": snapshot.key in final and snapshot.as_of >= snapshot.period_end,
    }) for snapshot in checkins]
    if not current:
        return OkrRecords(checkins=checkin_rows)
    return OkrRecords(objectives=objective_rows, key_results=kr_rows, checkins=checkin_rows)


def _final_only_when_set(row: dict) -> dict:
    """A row carries `final` only when it is final (a closed period's): the rows of open periods keep
    the shape, and the ledger fingerprint, they had before period close existed."""
    if not row.get("final"):
        row.pop("final", None)
    return row


def config_revision(path: Path) -> str:
    """Which version of the config a run used: the git commit that last changed the file when it is
    committed unchanged, else a digest of its content (both short)."""
    path = Path(path).resolve()
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", path.name], cwd=path.parent,
                               capture_output=True, text=True, timeout=10)
        commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", path.name], cwd=path.parent,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return digest
    if dirty.returncode or commit.returncode or dirty.stdout.strip() or not commit.stdout.strip():
        return digest
    return "git:" + commit.stdout.strip()
