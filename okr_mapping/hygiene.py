"""OKR practice checks: warnings, never errors, for a config that works but is likely to be a poor set of OKRs.

Good practice (Google's and Doerr's): three to five objectives per owner and period, two to five key
results per objective, a target beyond the starting point, and children measured over the same period
as the objective they roll up into. A config can have reasons to differ, so these only warn, each at the
file and line of what it is about. Only `okr-sync validate` shows them: a nightly run's log is not
where a config's author reads advice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from okr_mapping.config import KeyResult, OkrConfig
from okr_mapping.config_parts import ConfigParts, ObjectivePart
from okr_mapping.errors import Issue
from okr_mapping.findings import Finding
from okr_mapping.periods import RELATIVE_PERIODS
from okr_mapping.targets import EachTarget

OBJECTIVES_PER_OWNER = (3, 5)  # per owner and period
KEY_RESULTS_PER_OBJECTIVE = (2, 5)


def check_hygiene(parts: ConfigParts) -> Iterator[Finding]:
    """Every practice warning for the objectives and key results that passed the schema."""
    yield from _objectives_per_owner(parts.objectives)
    yield from _key_results_per_objective(parts.objectives)
    yield from _targets_beyond_baseline(parts.objectives)
    yield from _periods_of_children(parts.objectives)


def _objectives_per_owner(objectives: list[ObjectivePart]) -> Iterator[Finding]:
    """Each objective of an owner who has fewer than three or more than five in one period."""
    low, high = OBJECTIVES_PER_OWNER
    groups: dict[tuple[str, str], list[ObjectivePart]] = defaultdict(list)
    for objective in objectives:
        if objective.owner:
            groups[(objective.owner, objective.period or "current")].append(objective)
    for (owner, period), owned in groups.items():
        if low <= len(owned) <= high:
            continue
        ids = ", ".join(part.id or f"#{part.index + 1}" for part in owned)
        advice = "focus on the three to five that matter most" if len(owned) > high else \
            "three to five objectives per owner and period is the usual practice"
        message = f"{owner} owns {len(owned)} objectives for period {period} ({ids}); {advice}"
        for part in owned:
            yield Finding("warning", ("objectives", part.index, "owner"), message)


def _key_results_per_objective(objectives: list[ObjectivePart]) -> Iterator[Finding]:
    low, high = KEY_RESULTS_PER_OBJECTIVE
    for objective in objectives:
        count = len(objective.key_results)
        if count == 0 or low <= count <= high:  # none at all is a schema error already
            continue
        name = f"objective '{objective.id}'" if objective.id else "this objective"
        advice = "one key result rarely measures an objective; add a second view (quality, pace or a leading " \
            "indicator)" if count < low else "more than five dilutes focus; keep the five that measure it best"
        yield Finding("warning", ("objectives", objective.index, "key_results"),
                      f"{name} has {count} key result{'s' if count != 1 else ''}; {advice}", on_key=True)


def _targets_beyond_baseline(objectives: list[ObjectivePart]) -> Iterator[Finding]:
    """An increase or decrease KR whose target equals its baseline is achieved on day one (a target on the
    wrong side of the baseline is an error of validate_key_results already)."""
    for objective in objectives:
        for kr_index, kr in objective.key_results:
            if kr.type not in ("increase", "decrease"):
                continue
            if any(target == kr.baseline for target in _plain_targets(kr)):
                direction = "above" if kr.type == "increase" else "below"
                yield Finding("warning", ("objectives", objective.index, "key_results", kr_index, "target"),
                              f"key result '{kr.id}' starts at its target ({kr.baseline:g}), so it is achieved on "
                              f"day one; set a target {direction} the baseline")


def _plain_targets(kr: KeyResult) -> list[float]:
    """The number targets of a KR with a baseline (relative and phased targets have none to compare)."""
    if kr.baseline is None:
        return []
    if isinstance(kr.target, int | float):
        return [float(kr.target)]
    if isinstance(kr.target, EachTarget):
        return [float(value) for value in (kr.target.each, *kr.target.overrides.values()) if value is not None]
    return []


def _periods_of_children(objectives: list[ObjectivePart]) -> Iterator[Finding]:
    """A child objective measured over another period than its parent rolls up a different quarter."""
    periods = {part.id: part.period or "current" for part in objectives if part.id}
    for part in objectives:
        if part.parent is None or part.parent not in periods:
            continue
        mine, theirs = part.period or "current", periods[part.parent]
        # "current" and "2026-Q4" may be the same quarter: only two relative or two fixed periods compare
        if mine != theirs and (mine in RELATIVE_PERIODS) == (theirs in RELATIVE_PERIODS):
            yield Finding("warning", ("objectives", part.index, "period"),
                          f"objective '{part.id}' is for period {mine} but rolls up into '{part.parent}', which is "
                          f"for {theirs}; give both the same period")


def practice_warnings(config: OkrConfig) -> list[Issue]:
    """The practice warnings of a loaded config, at their file and line (what `okr-sync validate` adds)."""
    return sorted((config.issue(found.level, found.path, found.message, found.suggestion)
                   for found in check_hygiene(ConfigParts.of(config))), key=lambda issue: (issue.line or 0))
