"""A meaning problem found in a config: level, key path and a message for the YAML's maintainer."""

from __future__ import annotations

from dataclasses import dataclass

from okr_mapping.errors import KeyPath, Level


@dataclass(frozen=True)
class Finding:
    """A problem at a key path; `on_key` points the position at the key rather than its value."""

    level: Level
    path: KeyPath
    message: str
    suggestion: str | None = None
    on_key: bool = False
