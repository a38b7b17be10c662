"""The base of every config model, and names the config's parts share (no import of them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Comparison = Literal["previous_period", "same_period_last_year"]


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
