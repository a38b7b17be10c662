"""The persisted incremental cursor of each (source, stream): a (timestamp, id) watermark.

A stream's cursor is saved in the same transaction as the records it covers, so a run that
dies mid-stream resumes from the last committed page and never skips a record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.store import SyncState


@dataclass(frozen=True)
class Cursor:
    """Records after (watermark, last_id) in (timestamp, id) order are new to the store."""

    watermark: datetime | None = None
    last_id: str | None = None


def load_cursor(engine: Engine, source: str, stream: str) -> Cursor:
    with Session(engine) as session:
        state = session.get(SyncState, (source, stream))
        if state is None or state.watermark is None:
            return Cursor()
        watermark = state.watermark
        if watermark.tzinfo is None:  # SQLite drops the zone; the store keeps UTC
            watermark = watermark.replace(tzinfo=UTC)
        return Cursor(watermark, state.last_id)


def save_cursor(session: Session, source: str, stream: str, cursor: Cursor, records: int) -> None:
    """Advance the cursor inside the caller's transaction (the one that stored the records)."""
    state = session.get(SyncState, (source, stream)) or SyncState(source=source, stream=stream)
    state.watermark = cursor.watermark
    state.last_id = cursor.last_id
    state.records_last_run = records
    state.updated_at = datetime.now(UTC)
    session.add(state)
