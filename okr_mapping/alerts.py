"""Alerts where people work: a key result's status transitions, worded for its owner.

A transition is a change of status between the KR's previous check-in (its latest snapshot before
the run's day, okr_mapping.history) and this run's result: into at_risk or off_track (a task for the
owner), into achieved (a celebration post). A KR seen for the first time, or a period's first day
(no earlier snapshot of the same period), has no transition: installing okr-sync mid-quarter does
not flood every owner with tasks.

Each alert has a key, `<kr key>|<group>|<transition>|<period end>|<day>`: the same transition found
again (a rerun of the day, a retry, a run after a crash) has the same key, so the connectors'
alert ledger sends it once. A KR that turns at risk, recovers, and turns at risk again on a later
day gets a second alert: that is a second transition.

Which transitions alert is configured per objective (`alerts:` on, off, or a list), defaulting to
the file's top-level `alerts:` (on). This module is pure: the flow reads the snapshots and hands
the alerts to the CRM connectors (flows.alerts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from okr_mapping.compute import KrResult
from okr_mapping.config import OkrConfig
from okr_mapping.history import KrSnapshot

Transition = Literal["at_risk", "off_track", "achieved"]
TRANSITIONS: tuple[Transition, ...] = ("at_risk", "off_track", "achieved")
_WORDS = {"at_risk": "is at risk", "off_track": "is off track", "achieved": "is achieved"}
_DECREASING = ("decrease", "stay_below")


@dataclass(frozen=True)
class Alert:
    """One alert to send: a task (at_risk, off_track) or a celebration post (achieved)."""

    key: str
    kr_key: str
    transition: Transition
    previous_status: str
    day: date
    owner: str | None  # email
    owner_id: str | None  # the CRM user with that email, when the store knows one
    subject: str
    body: str

    @property
    def kind(self) -> Literal["task", "post"]:
        return "post" if self.transition == "achieved" else "task"

    def as_row(self) -> dict[str, str | None]:
        """The plain row a connector sends (connectors.alert_ledger documents the shape)."""
        return {"key": self.key, "kr_key": self.kr_key, "kind": self.kind, "transition": self.transition,
                "day": self.day.isoformat(), "owner": self.owner, "owner_id": self.owner_id,
                "subject": self.subject, "body": self.body}


def enabled(config: OkrConfig, objective_id: str) -> frozenset[Transition]:
    """The transitions objective `objective_id` alerts on: its own `alerts:`, else the file's."""
    objective = next((each for each in config.objectives if each.id == objective_id), None)
    setting = objective.alerts if objective is not None and objective.alerts is not None else config.alerts
    if setting is True:
        return frozenset(TRANSITIONS)
    if setting is False:
        return frozenset()
    return frozenset(setting)


def alert_key(result: KrResult, transition: str, day: date) -> str:
    return f"{result.key}|{result.group or ''}|{transition}|{result.period_end.isoformat()}|{day.isoformat()}"


def transitions(config: OkrConfig, results: Sequence[KrResult], previous: Mapping[str, KrSnapshot],
                day: date) -> list[Alert]:
    """The alerts of this run: each result whose status changed into an alerting one since its
    previous snapshot (of the same period), when its objective alerts on that transition."""
    alerts = []
    for result in results:
        before = previous.get(result.key)
        if before is None or before.period_end != result.period_end or before.status == result.status:
            continue
        if result.status not in TRANSITIONS or result.status not in enabled(config, result.objective_id):
            continue
        alerts.append(alert(result, before.status, day))
    return alerts


def alert(result: KrResult, previous_status: str, day: date) -> Alert:
    transition: Transition = result.status  # type: ignore[assignment]
    return Alert(key=alert_key(result, transition, day), kr_key=result.key, transition=transition,
                 previous_status=previous_status, day=day, owner=result.owner, owner_id=result.owner_id,
                 subject=subject(result), body=body(result, previous_status, day))


def subject(result: KrResult) -> str:
    who = f" ({result.group})" if result.group else ""
    if result.status == "achieved":
        return f"🎉 {result.title}{who} is achieved: {_number(result.value, result.unit)}"
    return f"{result.title}{who} {_WORDS.get(result.status, result.status)}: " \
           f"{_number(result.value, result.unit)} of {_number(result.target, result.unit)}"


def remaining_weeks(result: KrResult, day: date) -> float:
    """Weeks left in the period after `day` (0 on its last day or after)."""
    return max(0, (result.period_end - day).days) / 7


def needed_per_week(result: KrResult, day: date) -> float | None:
    """What the KR must gain each remaining week to reach its target, in its own direction:
    increase (and manual) (target − value) ÷ weeks left, decrease (value − target) ÷ weeks left; 0
    when already met. None when there is no rate to give: a binary KR (stay_above / stay_below: the
    value must be back over / under the target; milestone: it is done or not), or no week left."""
    if result.kr_type in ("stay_above", "stay_below", "milestone"):
        return None
    weeks = remaining_weeks(result, day)
    if weeks <= 0:
        return None
    decreasing = result.kr_type == "decrease" or (result.kr_type == "manual" and result.target < result.baseline)
    gap = result.value - result.target if decreasing else result.target - result.value
    return max(0.0, gap) / weeks


def body(result: KrResult, previous_status: str, day: date) -> str:
    """The alert's text: title, value, target, expected pace, what is needed per remaining week."""
    unit = result.unit
    lines = [f"{result.objective_title} — {result.title}" + (f" ({result.group})" if result.group else ""),
             f"Status: {previous_status.replace('_', ' ')} → {result.status.replace('_', ' ')} on {day.isoformat()}",
             f"Value: {_number(result.value, unit)}; target: {_number(result.target, unit)} "
             f"({result.progress:.0%} of the way, period {result.period} ends {result.period_end.isoformat()})"]
    if result.status != "achieved":
        lines.append(f"Expected pace: {result.expected_progress:.0%} of the way by today")
        needed = needed_per_week(result, day)
        weeks = remaining_weeks(result, day)
        if needed is not None:
            verb = "lower by" if result.kr_type == "decrease" or (
                result.kr_type == "manual" and result.target < result.baseline) else "add"
            lines.append(f"Needed: {verb} {_number(needed, unit)} per week over the {weeks:.1f} week(s) left")
        elif result.kr_type in ("stay_above", "stay_below"):
            side = "above" if result.kr_type == "stay_above" else "below"
            lines.append(f"Needed: back {side} {_number(result.target, unit)}")
        elif weeks <= 0:
            lines.append("The period has ended.")
    lines.append(f"okr-sync alert {alert_key(result, result.status, day)}")  # the marker reruns look for
    return "\n".join(lines)


def _number(value: float, unit: str | None) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")
    if unit in ("%", "percent"):
        return f"{text}%"
    return f"{text} {unit}" if unit and unit not in ("count",) else text


def as_rows(alerts: Sequence[Alert]) -> list[dict[str, str | None]]:
    return [each.as_row() for each in alerts]


__all__ = ["TRANSITIONS", "Alert", "alert", "as_rows", "body", "enabled", "needed_per_week",
           "remaining_weeks", "subject", "transitions"]
