"""What the flow hands a connector to write: objectives, key results and check-ins, as plain rows.

The rows are CRM-agnostic dicts (okr_mapping computes them, flows assembles them); each connector
maps them onto its own objects (Salesforce: OKR_Objective__c, OKR_Key_Result__c, OKR_Check_In__c;
HubSpot: the okr_objective, okr_key_result and okr_checkin custom objects). Every row has a `key`,
stable across runs, that the CRM upserts on, so a retry never creates a duplicate:

- objective: `{objective_id}.{period}` (okr_mapping.rollup's key); fields objective_id, title, period, period_start,
  period_end (ISO dates), progress, score, status, weight, owner (email or None), owner_id (the
  CRM user with that email, or None), parent_key (the parent objective's key, or None).
- key result: KrResult.as_row() (okr_mapping.compute) plus objective_key, forecast,
  forecast_confidence (0-1 or None) and pace (linear | step | seasonal); `final: True` only on the
  frozen result of a closed period (absent otherwise, so the CRM keeps its value).
- check-in: `{kr_key}@{as_of}`; fields kr_key, as_of (ISO date), value, target, progress, score,
  status, expected_progress, forecast, forecast_confidence, note (None, or why this check-in
  corrects an earlier one); `final: True` only on a closed period's final check-in.

Writes go parents first (objectives, key results, check-ins) so lookups resolve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

OkrObject = Literal["objective", "key_result", "checkin"]
OKR_OBJECTS: tuple[OkrObject, ...] = ("objective", "key_result", "checkin")  # the order writes go in


@dataclass
class OkrRecords:
    """One run's rows for one CRM."""

    objectives: list[dict[str, Any]] = field(default_factory=list)
    key_results: list[dict[str, Any]] = field(default_factory=list)
    checkins: list[dict[str, Any]] = field(default_factory=list)

    def rows(self, kind: OkrObject) -> list[dict[str, Any]]:
        return {"objective": self.objectives, "key_result": self.key_results, "checkin": self.checkins}[kind]

    def __len__(self) -> int:
        return len(self.objectives) + len(self.key_results) + len(self.checkins)


def ledger_target(source: str, kind: OkrObject) -> str:
    """The writeback ledger's target for one object of one CRM (key results keep the bare source
    name, as stores written before objectives and check-ins existed hold)."""
    return source if kind == "key_result" else f"{source}:{kind}"
