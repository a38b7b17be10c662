"""Safety gates before a writeback: numbers that jump like this are more often a broken sync, a
deleted filter or a wrong config than real sales, and once in the CRM sellers act on them.

Compared with the last recorded check-in of each key result (okr_mapping.history):
- more than MAX_MOVED_SHARE of the key results would move by more than MAX_MOVE of their value;
- a key result whose value was not zero would fall to zero.
A run that trips a guard writes nothing and records no check-in (so the next run compares with
the last good values again) unless it is forced (`okr-sync run --force`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from okr_mapping.compute import KrResult

MAX_MOVED_SHARE = 0.30
MAX_MOVE = 0.50
_SHOWN = 5


def tripped(previous: Mapping[str, float], results: Sequence[KrResult]) -> list[str]:
    """One message per guard the run trips (none: safe to write), naming the key results."""
    compared = [result for result in results if result.key in previous]
    problems = []
    moved = [result for result in compared if previous[result.key] != 0
             and abs(result.value - previous[result.key]) > MAX_MOVE * abs(previous[result.key])]
    if compared and len(moved) > MAX_MOVED_SHARE * len(compared):
        problems.append(f"{len(moved)} of {len(compared)} key results would move by more than {MAX_MOVE:.0%}"
                        f" since the last check-in (guard: at most {MAX_MOVED_SHARE:.0%} of them):"
                        f" {_listed(moved, previous)}")
    zeros = [result for result in compared if previous[result.key] != 0 and result.value == 0]
    if zeros:
        problems.append(f"{len(zeros)} key result(s) would fall to zero: {_listed(zeros, previous)}")
    return problems


def _listed(results: Sequence[KrResult], previous: Mapping[str, float]) -> str:
    shown = ", ".join(f"{result.key} {_number(previous[result.key])} -> {_number(result.value)}"
                      for result in results[:_SHOWN])
    return shown + (f" and {len(results) - _SHOWN} more" if len(results) > _SHOWN else "")


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")
