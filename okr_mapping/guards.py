"""Safety gates before a writeback: numbers that jump like this are more often a broken sync, a
deleted filter or a wrong config than real sales, and once in the CRM sellers act on them.

Compared with each key result's last recorded check-in (okr_mapping.history):
- more than MAX_MOVED_SHARE of the key results would move by more than MAX_MOVE of their value;
- a key result whose value was not zero would fall to zero.
A count or sum grows through its period, so its last value is first carried forward along the pace
(value x expected progress now / expected progress then): doubling in the second week of a quarter is
what it should do. Key results measured over fewer than MIN_SAMPLE records (a rep's two deals) move
too much by nature and are left out. A run that trips a gate writes nothing and records no check-in
(so the next run compares with the last good values again) unless it is forced (`--force`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from okr_mapping.config import OkrConfig
from okr_mapping.metrics import restarts_each_period

if TYPE_CHECKING:
    from okr_mapping.compute import KrResult
    from okr_mapping.history import KrSnapshot

MAX_MOVED_SHARE = 0.30
MAX_MOVE = 0.50
MIN_SAMPLE = 10
_SHOWN = 5


def growing_keys(config: OkrConfig, results: Sequence[KrResult]) -> set[str]:
    """The keys of results that grow from 0 through their period (a count or sum over the whole period)."""
    windows = {(objective.id, kr.id): kr.window for objective in config.objectives for kr in objective.key_results}
    return {result.key for result in results if result.metric in config.metrics
            and windows.get((result.objective_id, result.kr_id)) == "period"
            and restarts_each_period(config.metrics[result.metric], config.metrics)}


def tripped(previous: Mapping[str, KrSnapshot], results: Sequence[KrResult], growing: set[str]) -> list[str]:
    """One message per gate the run trips (none: safe to write), naming the key results."""
    compared = [(result, _expected(previous[result.key], result, result.key in growing)) for result in results
                if result.key in previous and previous[result.key].sample_size >= MIN_SAMPLE]
    problems = []
    moved = [(result, before) for result, before in compared
             if before != 0 and abs(result.value - before) > MAX_MOVE * abs(before)]
    if compared and len(moved) > MAX_MOVED_SHARE * len(compared):
        problems.append(f"{len(moved)} of {len(compared)} key results would move by more than {MAX_MOVE:.0%}"
                        f" since the last check-in (guard: at most {MAX_MOVED_SHARE:.0%} of them):"
                        f" {_listed(moved)}")
    zeros = [(result, previous[result.key].value) for result, _ in compared
             if previous[result.key].value != 0 and result.value == 0]
    if zeros:
        problems.append(f"{len(zeros)} key result(s) would fall to zero: {_listed(zeros)}")
    return problems


def _expected(before: KrSnapshot, result: KrResult, grows: bool) -> float:
    """The last check-in's value, carried along the pace to today for a value that grows."""
    if grows and before.period_start == result.period_start and before.expected_progress > 0:
        return before.value * result.expected_progress / before.expected_progress
    return before.value


def _listed(pairs: Sequence[tuple[KrResult, float]]) -> str:
    shown = ", ".join(f"{result.key} {_number(before)} -> {_number(result.value)}" for result, before in pairs[:_SHOWN])
    return shown + (f" and {len(pairs) - _SHOWN} more" if len(pairs) > _SHOWN else "")


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")
