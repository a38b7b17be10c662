"""The wording of an explanation: a measure and its filters in words, and how each number of a key
result was obtained (value, baseline, target, progress, expected pace, status), with the numbers.

Split from explain.py, which finds the key result and reads its queries and records.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from okr_mapping import scoring, windows
from okr_mapping.compute import KrResult, window_of
from okr_mapping.config import ChangeTarget, EachTarget, KeyResult, MeasureSource, OkrConfig, PhasedTarget
from okr_mapping.explanation import Explanation
from okr_mapping.metrics import MetricValue, resolve_where, restarts_each_period
from okr_mapping.periods import Period
from okr_mapping.rules import Condition, Group, Measure

_OPS = {"eq": "is", "ne": "is not", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "in": "is one of",
        "not_in": "is none of"}


def measure_words(measure: Measure, entity: str) -> str:
    plural = f"{entity}s" if not entity.endswith("s") else entity
    words = {
        "count": f"number of {plural}" if measure.field is None else f"number of {plural} with a {measure.field}",
        "count_distinct": f"number of distinct {measure.field} values of {plural}",
        "sum": f"total {measure.field} of {plural}",
        "avg": f"average {measure.field} of {plural}",
        "min": f"smallest {measure.field} of {plural}",
        "max": f"largest {measure.field} of {plural}",
        "median": f"median {measure.field} of {plural}",
    }
    if measure.func == "percentile":
        return f"{measure.percent:g}th percentile of {measure.field} of {plural}"
    return words[measure.func]


def filter_words(part: MeasureSource, config: OkrConfig) -> list[str]:
    """Each filter the measure applies, in words; a segment's are marked with its name."""
    trees = resolve_where(part, config.segments)
    words: list[str] = []
    for index, tree in enumerate(trees):
        in_segment = part.segment is not None and index == 0
        for item in tree.root.items:
            text = _node_words(item)
            words.append(f"{text} (segment {part.segment})" if in_segment else text)
    return words


def _value_words(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value_words(item) for item in value) + "]"
    return str(value)


def _node_words(node: Condition | Group) -> str:
    if isinstance(node, Condition):
        return f"{node.field} {_OPS.get(node.op, node.op)} {_value_words(node.value)}"
    parts = [_node_words(item) for item in node.items]
    if node.op == "not":
        return f"not ({parts[0]})"
    if len(parts) == 1 and node.op == "and":
        return parts[0]
    if node.op == "or":
        return "any of (" + "; ".join(parts) + ")"
    return "all of (" + "; ".join(parts) + ")"


def _n(value: float) -> str:
    """A number as written in a formula: no exponent, at most four decimals (as results are rounded)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def with_numbers(e: Explanation, config: OkrConfig, kr: KeyResult, r: KrResult, measured: MetricValue,
                  before_period: Period | None, before: MetricValue | None) -> Explanation:
    """Fill in how each number was obtained, with the numbers themselves."""
    kind: scoring.KrKind = "milestone" if kr.type == "milestone" else (
        ("decrease" if r.target < r.baseline else "increase") if kr.type == "manual" else kr.type)  # type: ignore[assignment]
    value_how, defined = _value_how(e, config, kr, r, measured)
    restarts = kr.metric in config.metrics and restarts_each_period(config.metrics[kr.metric], config.metrics)
    baseline_how, target_how = _baseline_target_how(e, kr, r, before_period, before, restarts)
    if before is not None and not (before.defined and (before.rows > 0 or not kr.target.is_percent)):  # type: ignore[union-attr]
        defined = False
        e.notes.append(f"the earlier period {before_period.label if before_period else ''} has no value to change "
                       f"from, so the target is undefined and progress reads 0")
    progress_formula = _progress_formula(kind, r, defined)
    expected = r.expected_progress
    p = e.period
    if e.as_of < p.start:
        expected_how = f"{p.label} has not started on {e.as_of}"
    elif e.as_of >= p.end:
        expected_how = f"{p.label} ended on {p.end}: the whole period has gone by"
    elif kr.metric is not None and windows.expected_share(window_of(kr), p, e.as_of,
                                                          isinstance(kr.target, ChangeTarget)) is not None:
        expected_how = "100%: the window's days are all counted, and so are the days its target covers"
    elif isinstance(kr.target, PhasedTarget):
        expected_how = (f"phased: the months before {e.as_of} in full and this month's share of its days, "
                        f"out of {_n(kr.target.total)} ({', '.join(_n(amount) for amount in kr.target.phased)})")
    else:
        expected_how = (f"{(e.as_of - p.start).days + 1} of {p.days} days of {p.label} gone by at the end of "
                        f"{e.as_of} (linear pace)")
    on, risk = config.scoring.on_track, config.scoring.at_risk
    if kind in scoring.BINARY_KINDS:
        if kind == "milestone":
            status_how = ("achieved once done; until then on track while the period runs, off track once it has "
                          f"ended (expected {expected:.0%})")
        else:
            status_how = "achieved while the target is held, off track the moment it is not (no pace)"
    else:
        status_how = (f"achieved at progress ≥ 100%; on track at ≥ {on:g} × {expected:.1%} = {on * expected:.1%}; "
                      f"at risk at ≥ {risk:g} × {expected:.1%} = {risk * expected:.1%}; else off track")
    return replace(e, defined=defined, value_how=value_how, baseline_how=baseline_how, target_how=target_how,
                   progress_formula=progress_formula, score_how=f"progress {r.progress:.1%} clamped to 0–1",
                   expected_how=expected_how, status_how=status_how)


def _value_how(e: Explanation, config: OkrConfig, kr: KeyResult, r: KrResult,
               measured: MetricValue) -> tuple[str, bool]:
    if kr.type == "manual":
        checkin = config.latest_checkin(e.ref, r.period_start, min(e.as_of, r.period_end))
        if checkin is None:
            return f"no check-in dated {r.period_start} – {min(e.as_of, r.period_end)} yet: 0", False
        note = f" ({checkin.note})" if checkin.note else ""
        return f"latest check-in: {_n(checkin.value)} on {checkin.date}{note}", True
    if kr.type == "milestone" and kr.metric is None:
        return f"done: {'true' if kr.done else 'false'} in the config", True
    defined = measured.defined
    if e.metric_kind == "ratio":
        num, den = e.sides[0], e.sides[1]
        how = f"{_n(num.value or 0)} / {_n(den.value or 0)}" + (" × 100" if e.unit == "%" else "")
    elif e.metric_kind == "derived":
        how = f"{e.formula} with " + ", ".join(f"{s.name} = {_n(s.value or 0)}" for s in e.sides)
    else:
        side = e.sides[0]
        how = f"{side.measure_words} over {side.row_count} record(s)"
    if kr.type == "milestone":
        how += f"; the metric reads {_n(measured.value)}: " + ("done (value 1)" if measured.value > 0 and defined
                                                                else "not done (value 0)")
    if not defined:
        how += "; undefined (nothing to average or divide by), read as 0"
    return how, defined


def _baseline_target_how(e: Explanation, kr: KeyResult, r: KrResult, before_period: Period | None,
                         before: MetricValue | None, restarts: bool) -> tuple[str, str]:
    if kr.type == "milestone":
        return "0 (not done)", "1 (done)"
    if isinstance(kr.target, ChangeTarget) and before is not None and before_period is not None:
        earlier = f"{before_period.label} ({before_period.start} – {before_period.end})"
        if restarts:
            baseline_how = "0: counts and sums restart every period, so progress runs from 0 to the target"
        else:
            baseline_how = f"the value of {earlier}: {_n(before.value)}"
        change, vs = kr.target.change, kr.target.vs.replace("_", " ")
        if kr.target.is_percent:
            sign = "+" if kr.target.amount >= 0 else "−"
            how = f"{_n(before.value)} × (1 {sign} {abs(kr.target.amount):g}%)"
        else:
            how = f"{_n(before.value)} {change}"
        return baseline_how, f"change {change} vs {vs}: {how} = {_n(r.target)}, from the {earlier} value"
    baseline_how = "given in the config" if kr.baseline is not None else "0 (no baseline given)"
    if isinstance(kr.target, EachTarget):
        if r.group is not None and r.group in kr.target.overrides:
            target_how = f"per group: the override for {r.group}"
        else:
            target_how = f"per group: each {_n(kr.target.each)}"
    elif isinstance(kr.target, PhasedTarget):
        target_how = f"phased by month: {' + '.join(_n(amount) for amount in kr.target.phased)} = {_n(r.target)}"
    else:
        target_how = "absolute, given in the config"
    return baseline_how, target_how


def _progress_formula(kind: scoring.KrKind, r: KrResult, defined: bool) -> str:
    v, b, t = _n(r.value), _n(r.baseline), _n(r.target)
    if not defined:
        return "the value is undefined, so progress is 0"
    if kind == "milestone":
        return f"1 when done, else 0: value {v}"
    if kind == "stay_above":
        return f"1 while value ≥ target, else 0: {v} ≥ {t} is {'true' if r.progress >= 1 else 'false'}"
    if kind == "stay_below":
        return f"1 while value ≤ target, else 0: {v} ≤ {t} is {'true' if r.progress >= 1 else 'false'}"
    if abs(r.target - r.baseline) < 1e-9:
        return f"target equals baseline ({t}): 1 when met, else 0"
    if kind == "decrease":
        return f"(baseline − value) / (baseline − target) = ({b} − {v}) / ({b} − {t}) = {r.progress:.4g}"
    return f"(value − baseline) / (target − baseline) = ({v} − {b}) / ({t} − {b}) = {r.progress:.4g}"
