"""The persisted incremental cursor of each (source, stream): a (timestamp, id) watermark.

A stream's cursor is saved in the same transaction as the records it covers, so a run that
dies mid-stream resumes from the last committed page and never skips a record.

Lookback. A record can commit with a modification time earlier than a cursor already saved
(Salesforce SystemModstamp is set when the transaction starts, not when it commits; HubSpot's
search index lags behind writes), and a strict "after the cursor" query would miss it for
good. So each run starts `lookback` before the saved watermark (`Cursor.start`), re-reads
what changed in that window, and keeps only the records that are new to the store or whose
modified_at / is_deleted differ from what it holds (`changed_rows`, one SELECT per page). The
saved cursor never moves backwards (`later`). Default 10 minutes; $OKR_SYNC_LOOKBACK_MINUTES
(a non-negative integer) or the sources' `lookback` argument change it; 0 gives the exact
(timestamp, id) continuation with no re-read.

Field sets. A stream's cursor remembers what its rows were read with (`field_set`, a digest of the
config's custom-field mapping and of the time zone its dates are in). When either changes, the
records stored so far lack the new fields or carry other days, so `load_cursor` hands back an empty
cursor marked `reread`: the stream is read from the start and every record rewritten, even those
whose modified time is unchanged. The new set is recorded only when the stream completes
(`save_field_set`): a re-read killed half way starts over next run rather than trusting records
it never rewrote. A first read (no cursor yet) has no such records: `load_cursor` records its set
at once, so one killed half way resumes from its last stored page instead of reading it all again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from connectors import progress
from connectors.errors import ConnectorConfigError
from connectors.local_dates import DEFAULT_TIME_ZONE
from connectors.store import SyncState

LOOKBACK_ENV = "OKR_SYNC_LOOKBACK_MINUTES"
DEFAULT_LOOKBACK_MINUTES = 10
DEFAULT_LOOKBACK = timedelta(minutes=DEFAULT_LOOKBACK_MINUTES)


@dataclass(frozen=True)
class Cursor:
    """Records after (watermark, last_id) in (timestamp, id) order are new to the store."""

    watermark: datetime | None = None
    last_id: str | None = None
    reread: bool = False  # the stream's field set changed: rewrite every record read, changed or not

    def start(self, lookback: timedelta) -> Cursor:
        """Where a run reads from: `lookback` before the watermark (all ids), or exactly here at 0."""
        if self.watermark is None or not lookback:
            return self
        return Cursor(self.watermark - lookback)


def _default_key(cursor: Cursor) -> tuple[datetime, str]:
    """(watermark, id) order with ids compared as strings (Salesforce Ids); (wm, None) sorts first."""
    return (cursor.watermark or datetime.min.replace(tzinfo=UTC), cursor.last_id or "")


def later(saved: Cursor, seen: Cursor, key: Callable[[Cursor], Any] = _default_key) -> Cursor:
    """The later of two cursors: a lookback run never moves the saved cursor backwards."""
    if saved.watermark is None:
        return seen
    if seen.watermark is None:
        return saved
    return seen if key(seen) > key(saved) else saved


def validate_lookback(lookback: timedelta, name: str = "lookback") -> timedelta:
    """`lookback` if it is a non-negative timedelta, else a ConnectorConfigError naming `name`."""
    if not isinstance(lookback, timedelta) or lookback < timedelta(0):
        raise ConnectorConfigError(f"{name} must be a non-negative duration, got {lookback!r}")
    return lookback


def lookback_from_env(env: Mapping[str, str], name: str = LOOKBACK_ENV,
                      default_minutes: int = DEFAULT_LOOKBACK_MINUTES) -> timedelta:
    """$OKR_SYNC_LOOKBACK_MINUTES (`name`) as a timedelta; unset or empty gives the default."""
    text = (env.get(name) or "").strip()
    if not text:
        return timedelta(minutes=default_minutes)
    if not (text.isascii() and text.isdecimal()):
        raise ConnectorConfigError(f"{name} must be a non-negative integer number of minutes, got {text!r}")
    return timedelta(minutes=int(text))


def _naive_utc(moment: datetime | None) -> datetime | None:
    """Comparable with what SQLite gives back (it drops the zone; the store keeps UTC)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment and moment.tzinfo else moment


def stored_versions(session: Session, model: type[SQLModel], source: str,
                    ids: Sequence[str]) -> dict[str, tuple[datetime | None, bool]]:
    """(modified_at, is_deleted) of the stored records among `ids`: one SELECT by primary key."""
    if not ids:
        return {}
    columns = model.__table__.c  # type: ignore[attr-defined]
    selected = [columns.source_id, columns.modified_at]
    if "is_deleted" in columns:  # owners have no delete flag
        selected.append(columns.is_deleted)
    query = select(*selected).where(columns.source == source, columns.source_id.in_(list(ids)))
    return {row[0]: (_naive_utc(row[1]), bool(row[2]) if len(row) > 2 else False)
            for row in session.execute(query)}


def is_changed(stored: Mapping[str, tuple[datetime | None, bool]], source_id: str,
               modified_at: datetime | None, is_deleted: bool) -> bool:
    """Whether a read record is new to the store or differs in modified_at or is_deleted."""
    old = stored.get(source_id)
    return old is None or old != (_naive_utc(modified_at), bool(is_deleted))


def changed_rows(session: Session, model: type[SQLModel], source: str,
                 rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The canonical rows of one page that are new to the store or changed (one SELECT)."""
    stored = stored_versions(session, model, source, [row["source_id"] for row in rows])
    return [row for row in rows
            if is_changed(stored, row["source_id"], row["modified_at"], row.get("is_deleted", False))]


def field_set_digest(mapping: Mapping[str, str] | None, time_zone: str = DEFAULT_TIME_ZONE) -> str | None:
    """A short, stable digest of what a stream's rows were read with: its custom-field mapping (canonical
    name -> CRM field) and the time zone of its dates; None for no custom fields in UTC (as stores
    written before either existed hold)."""
    if not mapping and time_zone == DEFAULT_TIME_ZONE:
        return None
    lines = [f"{name}={field}" for name, field in sorted((mapping or {}).items())]
    if time_zone != DEFAULT_TIME_ZONE:
        lines.append(f"time_zone={time_zone}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def load_cursor(engine: Engine, source: str, stream: str, field_set: str | None = None) -> Cursor:
    """The saved cursor; an empty one marked `reread` when the stream was read with other custom fields.

    Before a first read (no cursor yet) the stream's field set is recorded: every page it stores is read
    with it, so a first read that dies half way is resumed next run, not started over.
    """
    with Session(engine) as session:
        state = session.get(SyncState, (source, stream))
        if state is None or state.watermark is None:
            if state is None or state.field_set != field_set:
                state = state or SyncState(source=source, stream=stream)
                state.field_set = field_set
                session.add(state)
                session.commit()
            return Cursor()
        if state.field_set != field_set:
            return Cursor(reread=True)
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
    progress.publish(source, stream, records=records)


def save_field_set(engine: Engine, source: str, stream: str, field_set: str | None) -> None:
    """Record that the stream has been read completely with `field_set` (call after its last page)."""
    with Session(engine) as session:
        state = session.get(SyncState, (source, stream)) or SyncState(source=source, stream=stream)
        if state.field_set == field_set and state.updated_at is not None:
            return
        state.field_set = field_set
        state.updated_at = state.updated_at or datetime.now(UTC)
        session.add(state)
        session.commit()
