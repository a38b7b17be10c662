from datetime import date

import pytest

from okr_mapping import scoring


def test_increase_progress_keeps_raw_ratio() -> None:
    assert scoring.progress("increase", 250, 0, 500) == 0.5
    assert scoring.progress("increase", 150, 100, 200) == 0.5
    assert scoring.progress("increase", 600, 0, 500) == pytest.approx(1.2)
    assert scoring.progress("increase", 50, 100, 200) == pytest.approx(-0.5)


def test_decrease_progress() -> None:
    assert scoring.progress("decrease", 50, 60, 40) == 0.5
    assert scoring.progress("decrease", 30, 60, 45) == 2.0
    assert scoring.progress("decrease", 70, 60, 45) == pytest.approx(-10 / 15)


def test_target_equal_to_baseline_is_met_or_not() -> None:
    assert scoring.progress("increase", 100, 100, 100) == 1.0
    assert scoring.progress("increase", 99, 100, 100) == 0.0
    assert scoring.progress("decrease", 100, 100, 100) == 1.0
    assert scoring.progress("decrease", 101, 100, 100) == 0.0


def test_score_is_clamped() -> None:
    assert scoring.score(1.7) == 1.0
    assert scoring.score(-0.2) == 0.0
    assert scoring.score(0.42) == 0.42


@pytest.mark.parametrize(
    ("progress", "expected", "status"),
    [
        (1.0, 0.5, "achieved"),
        (0.475, 0.5, "on_track"),  # exactly 0.95 x expected
        (0.47, 0.5, "at_risk"),
        (0.375, 0.5, "at_risk"),  # exactly 0.75 x expected
        (0.37, 0.5, "off_track"),
        (0.0, 0.0, "on_track"),  # a period that has not started
        (-0.1, 0.0, "off_track"),
    ],
)
def test_status_default_thresholds(progress: float, expected: float, status: str) -> None:
    assert scoring.status(progress, expected) == status


def test_status_custom_thresholds() -> None:
    assert scoring.status(0.45, 0.5) == "at_risk"
    assert scoring.status(0.45, 0.5, on_track=0.9, at_risk=0.5) == "on_track"
    assert scoring.status(0.2, 0.5, on_track=0.9, at_risk=0.5) == "off_track"


def test_expected_progress() -> None:
    start, end = date(2026, 10, 1), date(2026, 12, 31)
    assert scoring.expected_progress(start, end, date(2026, 11, 27)) == pytest.approx(58 / 92)
    assert scoring.expected_progress(start, end, date(2027, 1, 1)) == 1.0
    assert scoring.expected_progress(start, end, date(2026, 6, 1)) == 0.0


def test_binary_kinds() -> None:
    from okr_mapping.scoring import kr_status, progress

    assert progress("stay_above", 10, 0, 10) == 1.0
    assert progress("stay_above", 9.99, 0, 10) == 0.0
    assert progress("stay_below", 10, 0, 10) == 1.0
    assert progress("stay_below", 10.01, 99, 10) == 0.0
    assert progress("milestone", 3, 0, 1) == 1.0 and progress("milestone", 0, 0, 1) == 0.0
    assert kr_status("stay_above", 0.0, 0.0) == "off_track"  # even on day one
    assert kr_status("stay_below", 1.0, 0.5) == "achieved"
    assert kr_status("milestone", 0.0, 0.99) == "on_track"
    assert kr_status("milestone", 0.0, 1.0) == "off_track"
    assert kr_status("increase", 0.5, 0.5) == "on_track"
