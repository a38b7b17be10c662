"""The writeback ledger: send a KR row to a CRM only when its content changed.

The fingerprint covers every value okr-sync writes except the sync timestamp, so a rerun
with identical results costs zero API calls and a retry after a crash re-sends only what
was not confirmed. The ledger also keeps the payload last written, so `plan_rows` can say
what a run would change (old -> new per field) without asking the CRM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.results import Rejection
from connectors.store import WritebackLedger, WritebackRejection

Action = Literal["created", "updated", "unchanged"]

def _normalise(value: Any) -> Any:
    return round(value, 9) if isinstance(value, float) else value


def fingerprint(row: Mapping[str, Any]) -> str:
    """A stable hash of a row's content; floats are rounded so noise below 1e-9 is no change."""
    normalised = {key: _normalise(value) for key, value in row.items()}
    return hashlib.sha256(json.dumps(normalised, sort_keys=True, default=str).encode()).hexdigest()


def _json_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as the JSON column stores it (so old and new compare alike)."""
    return json.loads(json.dumps(dict(row), default=str))


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


def record_written(engine: Engine, target: str,
                   entries: Iterable[tuple[str, str, str | None, Mapping[str, Any] | None]]) -> None:
    """Remember (key, fingerprint, CRM record id, payload sent) for rows the CRM confirmed.

    The payload is what `plan_rows` later compares against; None leaves the old values unknown.
    """
    now = datetime.now(UTC)
    with Session(engine) as session:
        for key, digest, record_id, payload in entries:
            entry = session.get(WritebackLedger, (target, key)) or WritebackLedger(
                target=target, key=key, fingerprint=digest, written_at=now)
            entry.fingerprint, entry.record_id, entry.written_at = digest, record_id, now
            entry.payload = None if payload is None else _json_payload(payload)
            session.add(entry)
        session.commit()


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any  # None when the field was empty, or when the ledger predates payloads (`old_known` False)
    new: Any


@dataclass
class PlannedChange:
    """What a run would do with one KR row in one CRM, judged from the ledger alone."""

    key: str
    action: Action
    changes: list[FieldChange] = field(default_factory=list)
    old_known: bool = True  # False: written before the ledger kept payloads, old values unknown
    record_id: str | None = None
    object: str = "key_result"  # objective | key_result | checkin

    def as_dict(self) -> dict[str, Any]:
        return {"object": self.object, "key": self.key, "action": self.action, "old_known": self.old_known,
                "record_id": self.record_id,
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes]}


def plan_rows(engine: Engine, target: str, rows: Sequence[Mapping[str, Any]],
              kind: str = "key_result") -> list[PlannedChange]:
    """Per row (as the connector would send it, with its `key`): created, updated or unchanged.

    No API call: "created" means the ledger has no write of this key to `target` (the CRM may
    still hold a record from another store, which the upsert would then update).
    """
    with Session(engine) as session:
        written = {entry.key: entry for entry in
                   session.exec(select(WritebackLedger).where(WritebackLedger.target == target))}
    plan = []
    for row in rows:
        key = str(row["key"])
        new = _json_payload(row)
        fields = [name for name in new if name != "key"]
        entry = written.get(key)
        if entry is None:
            plan.append(PlannedChange(key, "created", [FieldChange(name, None, new[name]) for name in fields],
                                      object=kind))
        elif entry.fingerprint == fingerprint(row):
            plan.append(PlannedChange(key, "unchanged", record_id=entry.record_id, object=kind))
        elif entry.payload is None:
            plan.append(PlannedChange(key, "updated", [FieldChange(name, None, new[name]) for name in fields],
                                      old_known=False, record_id=entry.record_id, object=kind))
        else:
            old = entry.payload
            changed = [FieldChange(name, old.get(name), new[name]) for name in fields
                       if _normalise(old.get(name)) != _normalise(new[name])]
            plan.append(PlannedChange(key, "updated", changed, record_id=entry.record_id, object=kind))
    return plan


def record_rejections(engine: Engine, target: str, rejections: Iterable[Rejection],
                      written: Iterable[tuple[str, str]] = ()) -> None:
    """Keep each refused record (counting attempts) and forget those now `written` ((object, key))."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        for rejection in rejections:
            entry = session.get(WritebackRejection, (target, rejection.object, rejection.key))
            if entry is None:
                entry = WritebackRejection(target=target, object=rejection.object, key=rejection.key,
                                           message=rejection.message, first_seen=now, last_seen=now)
            else:
                entry.message, entry.last_seen, entry.attempts = rejection.message, now, entry.attempts + 1
            session.add(entry)
        for kind, key in written:
            entry = session.get(WritebackRejection, (target, kind, key))
            if entry is not None:
                session.delete(entry)
        session.commit()


def open_rejections(engine: Engine, target: str) -> list[WritebackRejection]:
    """The records `target` refused and okr-sync has not written since, oldest first."""
    with Session(engine) as session:
        query = select(WritebackRejection).where(WritebackRejection.target == target)
        return sorted(session.exec(query), key=lambda entry: (entry.first_seen, entry.object, entry.key))
