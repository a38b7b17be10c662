"""Progress, score and pace status: pure arithmetic, no data access.

Progress keeps the raw ratio (120% is information: the target was too low); the score is that
ratio clamped to 0–1, as OKR tools report it. Status compares progress with the share of the
period already gone (linear pace), so a half-done KR at mid-quarter is on track.

Binary key results have no pace: stay_above / stay_below are achieved while the value is on the
right side of the target and off_track the moment it is not (a guard rail is either held or
broken); a milestone is achieved once done, on_track while the period runs and off_track when the
period has ended without it.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

Status = Literal["on_track", "at_risk", "off_track", "achieved"]
KrKind = Literal["increase", "decrease", "stay_above", "stay_below", "milestone"]
BINARY_KINDS = ("stay_above", "stay_below", "milestone")

DEFAULT_ON_TRACK = 0.95
DEFAULT_AT_RISK = 0.75
_EPSILON = 1e-9  # float noise must not turn an exactly-met target into "not achieved"


def target_met(kind: KrKind, value: float, target: float) -> bool:
    """Whether `value` reaches `target` in the KR's direction."""
    if kind in ("decrease", "stay_below"):
        return value <= target + _EPSILON
    return value >= target - _EPSILON


def progress(kind: KrKind, value: float, baseline: float, target: float) -> float:
    """Raw progress from baseline to target; may be < 0 or > 1.

    increase: (value − baseline) / (target − baseline); decrease: (baseline − value) / (baseline − target).
    When target equals baseline, progress is 1 if the target is met, else 0. stay_above / stay_below
    (baseline ignored) are 1 when `value` is at or beyond the target on the right side, else 0;
    a milestone is 1 when `value` > 0 (done), else 0.
    """
    if kind == "milestone":
        return 1.0 if value > _EPSILON else 0.0
    if kind in ("stay_above", "stay_below") or abs(target - baseline) < _EPSILON:
        return 1.0 if target_met(kind, value, target) else 0.0
    if kind == "decrease":
        return (baseline - value) / (baseline - target)
    return (value - baseline) / (target - baseline)


def score(raw_progress: float) -> float:
    """Progress clamped to the 0–1 OKR score."""
    return min(1.0, max(0.0, raw_progress))


def status(
    raw_progress: float,
    expected: float,
    on_track: float = DEFAULT_ON_TRACK,
    at_risk: float = DEFAULT_AT_RISK,
) -> Status:
    """achieved at ≥ 1; on_track at ≥ on_track × expected; at_risk at ≥ at_risk × expected; else off_track."""
    if raw_progress >= 1 - _EPSILON:
        return "achieved"
    if raw_progress >= on_track * expected - _EPSILON:
        return "on_track"
    if raw_progress >= at_risk * expected - _EPSILON:
        return "at_risk"
    return "off_track"


def kr_status(
    kind: KrKind,
    raw_progress: float,
    expected: float,
    on_track: float = DEFAULT_ON_TRACK,
    at_risk: float = DEFAULT_AT_RISK,
) -> Status:
    """The status for a KR of `kind`: pace-based for increase/decrease, binary for the others."""
    if kind not in BINARY_KINDS:
        return status(raw_progress, expected, on_track, at_risk)
    if raw_progress >= 1 - _EPSILON:
        return "achieved"
    if kind == "milestone" and expected < 1:
        return "on_track"
    return "off_track"


def expected_progress(start: date, end: date, as_of: date) -> float:
    """Linear pace: days elapsed including `as_of` over days in the period (end inclusive), 0–1."""
    if as_of < start:
        return 0.0
    if as_of >= end:
        return 1.0
    return ((as_of - start).days + 1) / ((end - start).days + 1)
