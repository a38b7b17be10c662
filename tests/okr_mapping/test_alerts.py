"""Alerts: which status changes alert, their keys and text, and the per-objective switch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from okr_mapping import alerts
from okr_mapping.compute import KrResult
from okr_mapping.config import OkrConfig
from okr_mapping.history import KrSnapshot

DAY = date(2026, 11, 16)
END = date(2026, 12, 31)


def _config(file_level: object = None, **per_objective: object) -> OkrConfig:
    objectives = [{"id": name, "title": name.title(), "key_results": [{"id": "revenue", "metric": "won"}],
                   **({"alerts": setting} if setting is not None else {})}
                  for name, setting in [("grow", per_objective.get("grow")), ("keep", per_objective.get("keep"))]]
    data: dict = {"metrics": {"won": {"entity": "deal", "measure": "sum(amount)"}}, "objectives": objectives}
    if file_level is not None:
        data["alerts"] = file_level
    return OkrConfig.model_validate(data)


def _result(status: str = "at_risk", objective: str = "grow", kr_type: str = "increase", value: float = 40_000,
            target: float = 100_000, group: str | None = None, owner: str | None = "ann@example.com") -> KrResult:
    return KrResult(key=f"{objective}.revenue.2026-Q4" + (f".{group}" if group else ""), objective_id=objective,
                    objective_title="Grow revenue", kr_id="revenue", title="Revenue", group=group, metric="won",
                    period="2026-Q4", period_start=date(2026, 10, 1), period_end=END, kr_type=kr_type,
                    value=value, baseline=0, target=target, progress=value / target, score=min(1, value / target),
                    expected_progress=0.5, status=status, unit="USD", owner=owner, owner_id="005A",  # type: ignore
                    source="salesforce")


def _snapshot(result: KrResult, status: str, as_of: date = date(2026, 11, 15), end: date = END) -> KrSnapshot:
    return KrSnapshot(source="salesforce", key=result.key, as_of=as_of, objective_id=result.objective_id,
                      kr_id=result.kr_id, period=result.period, period_start=result.period_start, period_end=end,
                      value=1, baseline=0, target=result.target, progress=0.5, score=0.5, expected_progress=0.5,
                      status=status, recorded_at=datetime.now(UTC))


@pytest.mark.parametrize(("before", "now", "alerted"), [
    ("on_track", "at_risk", "at_risk"), ("at_risk", "off_track", "off_track"), ("on_track", "off_track", "off_track"),
    ("at_risk", "achieved", "achieved"), ("off_track", "at_risk", "at_risk"),
    ("at_risk", "at_risk", None), ("at_risk", "on_track", None), ("achieved", "on_track", None)])
def test_a_status_change_into_at_risk_off_track_or_achieved_alerts(before: str, now: str, alerted: str | None) -> None:
    result = _result(now)
    found = alerts.transitions(_config(), [result], {result.key: _snapshot(result, before)}, DAY)
    assert [alert.transition for alert in found] == ([alerted] if alerted else [])


def test_no_alert_without_an_earlier_check_in_of_the_same_period() -> None:
    result = _result("at_risk")
    assert alerts.transitions(_config(), [result], {}, DAY) == []
    last_quarter = _snapshot(result, "on_track", end=date(2026, 9, 30))
    assert alerts.transitions(_config(), [result], {result.key: last_quarter}, DAY) == []


def test_the_key_names_kr_group_transition_period_end_and_day_and_is_stable() -> None:
    result = _result("off_track", group="ann@example.com")
    previous = {result.key: _snapshot(result, "at_risk")}
    [alert] = alerts.transitions(_config(), [result], previous, DAY)
    assert alert.key == f"{result.key}|ann@example.com|off_track|2026-12-31|2026-11-16"
    assert alerts.transitions(_config(), [result], previous, DAY)[0].key == alert.key  # a rerun: the same key
    assert alert.kind == "task" and alert.owner == "ann@example.com" and alert.owner_id == "005A"
    assert alert.as_row()["kind"] == "task"


def test_the_task_says_value_target_pace_and_what_is_needed_per_remaining_week() -> None:
    result = _result("at_risk", value=40_000, target=100_000)
    [alert] = alerts.transitions(_config(), [result], {result.key: _snapshot(result, "on_track")}, DAY)
    weeks = (END - DAY).days / 7
    assert alerts.needed_per_week(result, DAY) == pytest.approx(60_000 / weeks)
    assert alert.subject == "Revenue is at risk: 40,000 USD of 100,000 USD"
    assert "Value: 40,000 USD; target: 100,000 USD" in alert.body
    assert "Expected pace: 50% of the way by today" in alert.body
    assert f"Needed: add {60_000 / weeks:,.0f} USD per week over the {weeks:.1f} week(s) left" in alert.body
    assert alert.body.endswith(f"okr-sync alert {alert.key}")  # the marker a rerun looks for


def test_needed_per_week_follows_the_kr_direction_and_has_none_for_binary_krs_or_no_week_left() -> None:
    down = _result("at_risk", kr_type="decrease", value=30, target=20)
    assert alerts.needed_per_week(down, DAY) == pytest.approx(10 / ((END - DAY).days / 7))
    assert "Needed: lower by" in alerts.body(down, "on_track", DAY)
    assert alerts.needed_per_week(_result(value=120_000), DAY) == 0  # met already
    assert alerts.needed_per_week(_result(kr_type="stay_above"), DAY) is None
    assert "Needed: back above 100,000 USD" in alerts.body(_result(kr_type="stay_above"), "achieved", DAY)
    assert alerts.needed_per_week(_result(), END) is None
    assert "The period has ended." in alerts.body(_result(), "on_track", END)


def test_the_celebration_is_a_post_without_pace() -> None:
    result = _result("achieved", value=101_000)
    [alert] = alerts.transitions(_config(), [result], {result.key: _snapshot(result, "on_track")}, DAY)
    assert alert.kind == "post" and alert.subject.startswith("🎉 Revenue is achieved")
    assert "Needed" not in alert.body and "Expected pace" not in alert.body


@pytest.mark.parametrize(("file_level", "grow", "keep", "expected"), [
    (None, None, None, ({"at_risk", "off_track", "achieved"},) * 2),
    (False, None, True, (set(), {"at_risk", "off_track", "achieved"})),
    ("off", ["achieved"], None, ({"achieved"}, set())),
    (None, ["off_track", "achieved"], "off", ({"off_track", "achieved"}, set())),
])
def test_alerts_are_configured_per_objective_with_a_file_default(file_level: object, grow: object, keep: object,
                                                                 expected: tuple[set[str], set[str]]) -> None:
    config = _config(file_level, grow=grow, keep=keep)
    assert (set(alerts.enabled(config, "grow")), set(alerts.enabled(config, "keep"))) == expected
    result = _result("at_risk", objective="keep")
    found = alerts.transitions(config, [result], {result.key: _snapshot(result, "on_track")}, DAY)
    assert bool(found) == ("at_risk" in expected[1])


def test_an_unknown_transition_is_a_config_error() -> None:
    with pytest.raises(ValidationError):
        _config(["at_rsk"])


def test_a_group_names_its_rep_in_the_text() -> None:
    result = replace(_result("at_risk"), group="ann@example.com")
    assert "(ann@example.com)" in alerts.subject(result)
