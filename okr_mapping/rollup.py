"""Objective roll-up: the weighted mean of its key results' scores, and of its child objectives'.

A breakdown key result (one row per rep or team) counts once, with the mean of its groups'
scores, so adding reps does not drown the objective's other key results. Objectives with a
`parent` form a tree (company -> team -> rep): a parent's score also weighs each child
objective's rolled-up score by the child's `weight`, as if the child were one more key result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from okr_mapping import scoring
from okr_mapping.compute import KrResult
from okr_mapping.config import OkrConfig


@dataclass(frozen=True)
class ObjectiveResult:
    """An objective's roll-up for one period; `key` is f"{objective_id}.{period}"."""

    key: str
    objective_id: str
    title: str
    period: str
    period_start: date
    period_end: date
    score: float
    expected_progress: float
    status: scoring.Status
    key_results: int
    parent: str | None = None
    children: int = 0

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["period_start"] = self.period_start.isoformat()
        row["period_end"] = self.period_end.isoformat()
        return row


def rollup_objectives(results: Sequence[KrResult], config: OkrConfig | None = None) -> list[ObjectiveResult]:
    """One ObjectiveResult per objective present in `results`, in first-seen order.

    Status uses the same pace rule as key results, applied to the rolled-up score; thresholds
    come from `config.scoring` when given.
    """
    on_track = config.scoring.on_track if config else scoring.DEFAULT_ON_TRACK
    at_risk = config.scoring.at_risk if config else scoring.DEFAULT_AT_RISK
    by_objective: dict[str, dict[str, list[KrResult]]] = {}
    for result in results:
        by_objective.setdefault(result.objective_id, {}).setdefault(result.kr_id, []).append(result)
    declared = {objective.id: objective for objective in config.objectives} if config else {}
    # The tree comes from the config, so an objective with no rows yet (a breakdown KR whose groups
    # have no records in the first days of a quarter) still passes its children's scores up.
    order = [objective.id for objective in config.objectives] if config else list(by_objective)
    children: dict[str, list[str]] = {}
    for objective_id in order:
        parent = declared[objective_id].parent if objective_id in declared else None
        if parent is not None:
            children.setdefault(parent, []).append(objective_id)
    scores: dict[str, float | None] = {}

    def score_of(objective_id: str) -> float | None:
        """Weighted mean over the objective's KRs (weight each) and its scored children (their weight);
        None when neither has a result."""
        if objective_id not in scores:
            krs = by_objective.get(objective_id, {})
            items = [(rows[0].weight, sum(row.score for row in rows) / len(rows)) for rows in krs.values()]
            for child in children.get(objective_id, []):
                child_score = score_of(child)
                if child_score is not None:
                    items.append((declared[child].weight, child_score))
            total = sum(weight for weight, _ in items)
            scores[objective_id] = (sum(weight * value for weight, value in items) / total if total else 0.0) \
                if items else None
        return scores[objective_id]

    def sample(objective_id: str) -> KrResult | None:
        """A result of the objective or, failing that, of a descendant: it gives the period and pace."""
        if objective_id in by_objective:
            return next(iter(by_objective[objective_id].values()))[0]
        return next((found for child in children.get(objective_id, []) if (found := sample(child))), None)

    rolled: list[ObjectiveResult] = []
    for objective_id in order:
        value, first = score_of(objective_id), sample(objective_id)
        if value is None or first is None:
            continue
        own = objective_id in by_objective
        rolled.append(
            ObjectiveResult(
                key=f"{objective_id}.{first.period}",
                objective_id=objective_id,
                title=first.objective_title if own else declared[objective_id].title,
                period=first.period,
                period_start=first.period_start,
                period_end=first.period_end,
                score=round(value, 4),
                expected_progress=first.expected_progress,
                status=scoring.status(value, first.expected_progress, on_track, at_risk),
                key_results=len(by_objective.get(objective_id, {})),
                parent=declared[objective_id].parent if objective_id in declared else None,
                children=len(children.get(objective_id, [])),
            )
        )
    return rolled
