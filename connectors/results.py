"""What a connector reports back to the flow: counts, never records."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamResult:
    source: str
    stream: str
    records: int = 0
    api_calls: int = 0


@dataclass(frozen=True)
class Rejection:
    """One record the CRM refused: which object, its key, and the CRM's own message."""

    object: str  # objective | key_result | checkin
    key: str
    message: str


@dataclass
class WritebackResult:
    """Totals over every object written; `rejected` lists each refused record (also in `errors`)."""

    target: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
