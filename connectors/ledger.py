"""The writeback ledger: send a KR row to a CRM only when its content changed.

The fingerprint covers every value okr-sync writes except the sync timestamp, so a rerun
with identical results costs zero API calls and a retry after a crash re-sends only what
was not confirmed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.store import WritebackLedger


def fingerprint(row: Mapping[str, Any]) -> str:
    """A stable hash of a row's content; floats are rounded so noise below 1e-9 is no change."""
    normalised = {key: round(value, 9) if isinstance(value, float) else value for key, value in row.items()}
    return hashlib.sha256(json.dumps(normalised, sort_keys=True, default=str).encode()).hexdigest()


def pending_rows(engine: Engine, target: str, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str]]:
    """The rows whose fingerprint differs from what was last written to `target`, with it."""
    with Session(engine) as session:
        written = {entry.key: entry.fingerprint for entry in
                   session.exec(select(WritebackLedger).where(WritebackLedger.target == target))}
    pending = []
    for row in rows:
        digest = fingerprint(row)
        if written.get(row["key"]) != digest:
            pending.append((row, digest))
    return pending


def record_written(engine: Engine, target: str, entries: Iterable[tuple[str, str, str | None]]) -> None:
    """Remember (key, fingerprint, CRM record id) for rows the CRM confirmed."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        for key, digest, record_id in entries:
            entry = session.get(WritebackLedger, (target, key)) or WritebackLedger(
                target=target, key=key, fingerprint=digest, written_at=now)
            entry.fingerprint, entry.record_id, entry.written_at = digest, record_id, now
            session.add(entry)
        session.commit()
