"""The base of every config model, and names the config's parts share (no import of them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# closed: the final values the previous period was closed with (okr-sync close-period; okr_mapping.period_close)
Comparison = Literal["previous_period", "same_period_last_year", "closed"]


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
