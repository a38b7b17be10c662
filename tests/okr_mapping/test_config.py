import pytest
from pydantic import ValidationError

from okr_mapping.config import ChangeTarget, EachTarget, KeyResult, OkrConfig, RatioMetric, SimpleMetric


def test_target_shapes_are_discriminated() -> None:
    assert KeyResult.model_validate({"id": "a", "metric": "m", "target": 5}).target == 5.0
    change = KeyResult.model_validate({"id": "a", "metric": "m", "target": {"change": "+10%"}}).target
    assert isinstance(change, ChangeTarget)
    assert change.vs == "previous_period"
    each = KeyResult.model_validate({"id": "a", "metric": "m", "target": {"each": 7}}).target
    assert isinstance(each, EachTarget)
    with pytest.raises(ValidationError, match="the target must be a number"):
        KeyResult.model_validate({"id": "a", "metric": "m", "target": "lots"})
    with pytest.raises(ValidationError):
        KeyResult.model_validate({"id": "a", "metric": "m", "target": True})


@pytest.mark.parametrize(
    ("change", "baseline", "target", "percent"),
    [
        ("+10%", 200.0, 220.0, True),
        ("-5%", 200.0, 190.0, True),
        ("+20000", 1000.0, 21000.0, False),
        (20000, 1000.0, 21000.0, False),
        ("10%", 50.0, 55.0, True),
        ("-2.5", 10.0, 7.5, False),
    ],
)
def test_change_apply(change: object, baseline: float, target: float, percent: bool) -> None:
    parsed = ChangeTarget.model_validate({"change": change})
    assert parsed.is_percent is percent
    assert parsed.apply(baseline) == pytest.approx(target)


def test_metric_kinds() -> None:
    config = OkrConfig.model_validate(
        {
            "metrics": {
                "a": {"entity": "deal", "measure": "count"},
                "r": {
                    "ratio": {
                        "numerator": {"entity": "deal", "measure": "count"},
                        "denominator": {"entity": "deal", "measure": "count"},
                    }
                },
            },
            "objectives": [
                {"id": "o", "title": "O", "key_results": [{"id": "k", "metric": "a", "target": 1}]}
            ],
        }
    )
    assert isinstance(config.metrics["a"], SimpleMetric)
    assert isinstance(config.metrics["r"], RatioMetric)


def test_scoring_thresholds_must_be_ordered() -> None:
    base = {
        "objectives": [{"id": "o", "title": "O", "key_results": [{"id": "k", "metric": "a", "target": 1}]}]
    }
    with pytest.raises(ValidationError, match="at_risk must not be above on_track"):
        OkrConfig.model_validate({**base, "scoring": {"on_track": 0.5, "at_risk": 0.6}})
