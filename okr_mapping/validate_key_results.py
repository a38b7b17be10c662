"""Meaning checks of objectives and their key results: ids, periods, each type's required keys,
targets against baselines, breakdowns, phased targets and the objective hierarchy.

Split from validate.py, which keeps check_config and the metric, segment and field checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from okr_mapping.config import ChangeTarget, EachTarget, KeyResult, PhasedTarget
from okr_mapping.config_parts import ConfigParts, metric_parts
from okr_mapping.derived import base_metrics
from okr_mapping.entities import BREAKDOWNS, EntitySpec
from okr_mapping.errors import KeyPath, did_you_mean
from okr_mapping.findings import Finding
from okr_mapping.metrics import restarts_each_period
from okr_mapping.periods import PERIOD_HELP, RELATIVE_PERIODS, FiscalCalendar, is_valid_period_spec
from okr_mapping.validate_fields import check_coverage

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")


def check_objectives(parts: ConfigParts) -> Iterator[Finding]:
    seen_objectives: set[str] = set()
    for objective in parts.objectives:
        path: KeyPath = ("objectives", objective.index)
        if objective.id is not None:
            yield from _check_id(objective.id, (*path, "id"), seen_objectives, "objective")
        if objective.period is not None and not is_valid_period_spec(objective.period):
            yield Finding(
                "error",
                (*path, "period"),
                f"'{objective.period}' is not a period; {PERIOD_HELP}",
                did_you_mean(objective.period, RELATIVE_PERIODS),
            )
        seen_krs: set[str] = set()
        for kr_index, kr in objective.key_results:
            kr_path: KeyPath = (*path, "key_results", kr_index)
            yield from _check_id(kr.id, (*kr_path, "id"), seen_krs, "key result")
            yield from _check_key_result(parts, kr_path, kr)
            if isinstance(kr.target, PhasedTarget):
                yield from _check_phases(parts, objective.period, kr, kr_path)
        for kr_index, name in objective.rejected_metric_refs:
            yield from _check_metric_ref(parts, (*path, "key_results", kr_index), name)


def _check_phases(parts: ConfigParts, period: str | None, kr: KeyResult, path: KeyPath) -> Iterator[Finding]:
    """Phases are monthly amounts of one count or sum: one per month of the period, no breakdown."""
    assert isinstance(kr.target, PhasedTarget)
    target_path = (*path, "target")
    if kr.type != "increase":
        yield Finding("error", target_path, f"phased targets are for increase key results; a {kr.type} key result "
                      "takes one target number")
        return
    if kr.breakdown is not None:
        yield Finding("error", (*path, "breakdown"), "a phased target is one total for the key result; remove the "
                      "breakdown, or give per-group targets with {each: ...}")
    if kr.window != "period":
        yield Finding("error", (*path, "window"), "a phased target spreads the whole period's total over its "
                      "months; remove the window")
    metric = parts.metrics.get(kr.metric or "")
    if metric is not None and not restarts_each_period(metric, parts.metrics):
        yield Finding("error", target_path, "phased targets are monthly amounts of a count or a sum that "
                      "restarts each period; for this metric give one target number")
    try:
        resolved = FiscalCalendar(1).resolve(period or "current", date.today())
    except ValueError:
        return  # the period itself is reported
    months = (resolved.end.year * 12 + resolved.end.month) - (resolved.start.year * 12 + resolved.start.month) + 1
    if len(kr.target.phased) != months:
        yield Finding("error", target_path, f"the period has {months} month(s) but the phased target gives "
                      f"{len(kr.target.phased)} amount(s): give one amount per month, in order")


def check_hierarchy(parts: ConfigParts) -> Iterator[Finding]:
    """Every parent names another objective, and no objective rolls up into itself."""
    parents = {part.id: part.parent for part in parts.objectives if part.id is not None}
    known = sorted(parents)
    for part in parts.objectives:
        if part.parent is None:
            continue
        path: KeyPath = ("objectives", part.index, "parent")
        if part.parent not in parents:
            yield Finding("error", path, f"parent '{part.parent}' is not the id of an objective in this file",
                          did_you_mean(part.parent, known))
            continue
        seen, current = {part.id}, part.parent
        while current is not None and current not in seen:
            seen.add(current)
            current = parents.get(current)
        if current is not None and current == part.id:
            yield Finding("error", path, f"objective '{part.id}' rolls up into itself through its parents; "
                          "parents must form a tree (company -> team -> rep)")


def _check_id(value: str, path: KeyPath, seen: set[str], what: str) -> Iterator[Finding]:
    if not ID_PATTERN.match(value):
        yield Finding(
            "error", path, f"{what} ids may use only letters, digits, '-' and '_' (no spaces or dots), max 60"
        )
    if value in seen:
        yield Finding("error", path, f"{what} id '{value}' is used twice; ids must be unique")
    seen.add(value)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _check_kr_shape(path: KeyPath, kr: KeyResult) -> Iterator[Finding]:
    """Which keys each type needs and refuses: metric, target, done, baseline, breakdown."""
    kind = kr.type
    if kind != "milestone" and kr.done is not None:
        yield Finding("error", (*path, "done"), "done: applies to milestones only; add type: milestone", on_key=True)
    if kind == "manual":
        if kr.metric is not None:
            yield Finding(
                "error",
                (*path, "metric"),
                "a manual key result takes its value from the check-in file; remove the metric",
                on_key=True,
            )
    elif kind == "milestone":
        if (kr.metric is None) == (kr.done is None):
            yield Finding(
                "error",
                (*path, "type"),
                "a milestone needs either done: true/false or a metric (done when its value is above 0), "
                "not both",
            )
    elif kr.metric is None:
        yield Finding("error", (*path, "metric"), f"{_article(kind)} {kind} key result needs a metric", on_key=True)
    if kind == "milestone":
        if kr.target is not None:
            yield Finding(
                "error", (*path, "target"), "a milestone is done or not; remove the target", on_key=True
            )
    elif kr.target is None:
        yield Finding("error", (*path, "target"), f"{_article(kind)} {kind} key result needs a target", on_key=True)
    if kind in ("manual", "milestone") and kr.breakdown is not None:
        yield Finding(
            "error", (*path, "breakdown"), f"a {kind} key result cannot be broken down; remove the breakdown",
            on_key=True,
        )
    if kind in ("stay_above", "stay_below", "milestone") and kr.baseline is not None:
        yield Finding(
            "error",
            (*path, "baseline"),
            f"remove the baseline: a {kind} key result compares its value with the target only"
            if kind != "milestone"
            else "remove the baseline: a milestone is done or not",
            on_key=True,
        )
    if kind == "manual" and isinstance(kr.target, EachTarget | ChangeTarget):
        yield Finding(
            "error",
            (*path, "target"),
            "a manual key result needs a number target (its value comes from check-ins, per key result)",
        )


def _check_breakdown(entity: EntitySpec, breakdown: str, path: KeyPath) -> Iterator[Finding]:
    """owner / team need an owner; any other breakdown must be a text field of the entity."""
    if breakdown in BREAKDOWNS:
        if not entity.has_owner:
            yield Finding("error", path, f"{entity.name} records have no owner to break down by")
        return
    field = entity.field(breakdown)
    texts = entity.names("text")
    if field is None or field.kind != "text":
        what = "is not a field of" if field is None else f"is a {field.kind}, not a text field of"
        examples = [name for name in texts if "." not in name and not name.endswith("_id")][:5]
        yield Finding("error", path, f"'{breakdown}' {what} {entity.name}; break down by owner, team or a text "
                      f"field such as {', '.join(examples)}",
                      did_you_mean(breakdown, [*BREAKDOWNS, *texts]) if field is None else None)
    else:
        yield from check_coverage(entity, breakdown, path)


def _check_key_result(parts: ConfigParts, path: KeyPath, kr: KeyResult) -> Iterator[Finding]:
    shape = list(_check_kr_shape(path, kr))
    yield from shape
    if kr.metric is not None:
        yield from _check_metric_ref(parts, path, kr.metric)
    if shape or kr.type in ("manual", "milestone") or kr.target is None or kr.metric is None:
        return
    metric = parts.metrics.get(kr.metric)
    if metric is not None and kr.breakdown is not None:
        aggregates = [part for name in base_metrics(kr.metric, parts.metrics)
                      for _suffix, part, _time in metric_parts(parts.metrics[name])]
        for part in aggregates:
            entity = parts.entities.get(part.entity)
            if entity is not None:
                yield from _check_breakdown(entity, kr.breakdown, (*path, "breakdown"))
    target = kr.target
    if isinstance(target, EachTarget) and kr.breakdown is None:
        yield Finding(
            "error", (*path, "target"), "{each: ...} needs a breakdown (owner, team or a field) on this key result"
        )
    if not isinstance(target, EachTarget | ChangeTarget) and kr.breakdown is not None:
        yield Finding(
            "error",
            (*path, "target"),
            "with a breakdown, give the target per group as {each: N}, or as a change like {change: '+10%'}",
        )
    if kr.type in ("stay_above", "stay_below"):
        return
    if isinstance(target, ChangeTarget):
        if kr.baseline is not None:
            yield Finding(
                "error",
                (*path, "baseline"),
                "remove the baseline: with a change target the baseline is the metric over the "
                + target.vs.replace("_", " "),
                on_key=True,
            )
        if kr.type == "increase" and target.amount < 0:
            yield Finding(
                "error",
                (*path, "target", "change"),
                "an increase needs a positive change; use type: decrease to aim lower",
            )
        if kr.type == "decrease" and target.amount > 0:
            yield Finding(
                "error", (*path, "target", "change"), "a decrease needs a negative change like '-10%'"
            )
        return
    if isinstance(target, PhasedTarget):
        goal = target.total
    else:
        goal = target.each if isinstance(target, EachTarget) else float(target)
    if kr.type == "decrease" and kr.baseline is None:
        yield Finding(
            "error",
            (*path, "type"),
            "a decrease needs a baseline (the value you start from), e.g. baseline: 60",
        )
        return
    baseline = kr.baseline if kr.baseline is not None else 0.0
    if kr.type == "increase" and goal < baseline:
        yield Finding(
            "error",
            (*path, "target"),
            f"the target ({goal:g}) is below the baseline ({baseline:g}); use type: decrease to aim lower",
        )
    if kr.type == "decrease" and goal > baseline:
        yield Finding(
            "error",
            (*path, "target"),
            f"the target ({goal:g}) is above the baseline ({baseline:g}); a decrease aims below its baseline",
        )


def _check_metric_ref(parts: ConfigParts, path: KeyPath, name: str) -> Iterator[Finding]:
    if name not in parts.metric_names:
        known = sorted(parts.metric_names)
        yield Finding("error", (*path, "metric"), f"unknown metric '{name}'", did_you_mean(name, known))
