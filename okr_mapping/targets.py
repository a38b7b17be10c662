"""Key-result targets as a config writes them: a number, a change over an earlier period, a value
per group of a breakdown, or month by month. The union routes a mapping to one shape by its keys
(a misspelt key to the closest one), so an error names one alternative, not all of them."""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, WithJsonSchema, field_validator

from okr_mapping.config_base import Comparison, StrictModel

_CHANGE = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d+)?|\.\d+)\s*(%?)\s*$")


class ChangeTarget(StrictModel):
    """Target relative to the same metric over an earlier period: "+10%", "-5%" or "+20000"."""

    change: Annotated[str, WithJsonSchema({"type": ["string", "number"], "examples": ["+10%", "-5%"]})]
    vs: Comparison = "previous_period"

    @field_validator("change", mode="before")
    @classmethod
    def _readable_change(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("write the change like '+10%', '-5%' or '+20000'")
        text = f"{value:+g}" if isinstance(value, int | float) else value
        if not _CHANGE.match(text):
            raise ValueError(f"'{value}' is not a change; write it like '+10%', '-5%' or '+20000'")
        return text.strip()

    @property
    def is_percent(self) -> bool:
        return self.change.endswith("%")

    @property
    def amount(self) -> float:
        """The signed number: 10.0 for "+10%", -5.0 for "-5%", 20000.0 for "+20000"."""
        match = _CHANGE.match(self.change)
        assert match is not None  # guaranteed by the validator
        sign = -1.0 if match.group(1) == "-" else 1.0
        return sign * float(match.group(2))

    def apply(self, baseline: float) -> float:
        """The target reached by changing `baseline` by this amount."""
        if self.is_percent:
            return baseline * (1 + self.amount / 100)
        return baseline + self.amount


class EachTarget(StrictModel):
    """A target per group of a breakdown: `each` for every group, `overrides` by group label.

    Override keys are group labels as results show them: owner emails (breakdown: owner) or
    team names (breakdown: team), e.g. {each: 100000, overrides: {"ann@acme.com": 120000}}.
    """

    each: float
    overrides: dict[str, float] = Field(default_factory=dict)

    def for_group(self, label: str) -> float:
        return self.overrides.get(label, self.each)


class PhasedTarget(StrictModel):
    """A count's or sum's target month by month, e.g. {phased: [100000, 150000, 250000]} for a quarter.

    The KR's target is their total; the expected pace follows the phases (a month's amount accrues
    over that month) instead of a straight line, so a back-loaded quarter is not called behind in
    its first month.
    """

    phased: list[float] = Field(min_length=1, max_length=24)

    @property
    def total(self) -> float:
        return float(sum(self.phased))


_TARGET_KEYS = {"change_target": ("change", "vs"), "each_target": ("each", "overrides"), "phased_target": ("phased",)}


def _target_kind(value: Any) -> str | None:
    if isinstance(value, ChangeTarget):
        return "change_target"
    if isinstance(value, EachTarget):
        return "each_target"
    if isinstance(value, PhasedTarget):
        return "phased_target"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    if isinstance(value, dict):
        if "change" in value:
            return "change_target"
        if "each" in value:
            return "each_target"
        if "phased" in value:
            return "phased_target"
        # A misspelt key: route to the closest shape so the error says "did you mean".
        for key in value:
            for kind, keys in _TARGET_KEYS.items():
                if isinstance(key, str) and difflib.get_close_matches(key, keys, n=1, cutoff=0.6):
                    return kind
    return None


Target = Annotated[
    Annotated[float, Tag("number")]
    | Annotated[ChangeTarget, Tag("change_target")]
    | Annotated[EachTarget, Tag("each_target")]
    | Annotated[PhasedTarget, Tag("phased_target")],
    Discriminator(
        _target_kind,
        custom_error_type="target_shape",
        custom_error_message=(
            "the target must be a number (500000), a change ({change: '+10%', vs: previous_period}),"
            " a per-group value with a breakdown ({each: 100000, overrides: {'ann@acme.com': 120000}})"
            " or month by month ({phased: [100000, 150000, 250000]})"
        ),
    ),
]
