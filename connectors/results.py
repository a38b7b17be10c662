"""What a connector reports back to the flow: counts, never records."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamResult:
    source: str
    stream: str
    records: int = 0
    api_calls: int = 0


@dataclass
class WritebackResult:
    target: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)
