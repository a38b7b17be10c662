"""The alert ledger: each alert a CRM got (or may have got), so a transition is alerted once.

An alert row (what the flow hands a connector, CRM-agnostic) has: `key` (unique and stable, see
okr_mapping.alerts), `kr_key` (the key result it is about, whose CRM record the task or post is
attached to), `kind` (task | post), `transition`, `day` (ISO date), `owner` (email or None),
`owner_id` (the CRM user, or None), `subject`, `body` (the body ends with a marker line holding
the key, which a connector can look for in records that have no field for it).

The protocol, per alert and CRM (connectors.salesforce.alerts, connectors.hubspot.alerts):

1. `queued`: the run that finds the transition queues it (`queue`) as it records the check-ins, with
   the whole row, so an alert whose sending failed (the CRM was down, the KR record not written)
   is sent by a later run instead of being lost: later runs no longer see the transition.
2. `pending`: committed just BEFORE the request that creates it in the CRM;
3. `sent`: after the CRM confirmed it, with the record's id. A `sent` alert is never sent again
   (a rerun of the day finds the same transition, with the same key: `queue` leaves it be).

A `pending` alert found by a later run is one whose creation may have happened (the process died
between the request and step 3): the connector first looks it up in the CRM by its key and only
creates it when it is not there, so a crash never duplicates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.store import AlertLedger

QUEUED = "queued"
PENDING = "pending"
SENT = "sent"


@dataclass
class AlertResult:
    """What sending one CRM's alerts came to."""

    target: str
    created: int = 0
    reconciled: int = 0  # pending alerts found in the CRM (a crash after sending): marked sent, not re-sent
    already_sent: int = 0
    failed: int = 0
    skipped: int = 0  # not sendable: e.g. the KR record is not in the CRM (yet); tried again next run
    errors: list[str] = field(default_factory=list)
    api_calls: int = 0


def queue(engine: Engine, target: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """Queue the alerts `target` has no entry for; returns how many were new."""
    known = states(engine, target, [str(row["key"]) for row in rows])
    now = datetime.now(UTC)
    fresh = {str(row["key"]): row for row in rows if str(row["key"]) not in known}
    if fresh:
        with Session(engine) as session:
            for key, row in fresh.items():
                session.add(AlertLedger(target=target, key=key, kind=str(row["kind"]), kr_key=str(row["kr_key"]),
                                        state=QUEUED, payload=dict(row), created_at=now))
            session.commit()
    return len(fresh)


def outstanding(engine: Engine, target: str) -> list[AlertLedger]:
    """The alerts of `target` not confirmed yet (queued, or pending after a crash), oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(AlertLedger).where(AlertLedger.target == target, AlertLedger.state != SENT)
        return list(session.exec(query.order_by(AlertLedger.created_at, AlertLedger.key)))  # type: ignore[arg-type]


def states(engine: Engine, target: str, keys: Sequence[str]) -> dict[str, AlertLedger]:
    """Key -> ledger entry of the given alert keys that `target` has an entry for."""
    if not keys:
        return {}
    with Session(engine, expire_on_commit=False) as session:
        query = select(AlertLedger).where(AlertLedger.target == target,
                                          AlertLedger.key.in_(list(keys)))  # type: ignore[attr-defined]
        return {entry.key: entry for entry in session.exec(query)}


def unsent(engine: Engine, target: str, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """What a send would deliver: the rows `target` has not confirmed, then those queued by earlier runs."""
    known = states(engine, target, [str(row["key"]) for row in rows])
    mine = [row for row in rows if getattr(known.get(str(row["key"])), "state", None) != SENT]
    keys = {str(row["key"]) for row in rows}
    return mine + [entry.payload for entry in outstanding(engine, target) if entry.key not in keys]


def of_key_results(engine: Engine, target: str, kr_keys: Sequence[str]) -> list[AlertLedger]:
    """Every alert of `target` about the given key results."""
    if not kr_keys:
        return []
    with Session(engine, expire_on_commit=False) as session:
        query = select(AlertLedger).where(AlertLedger.target == target,
                                          AlertLedger.kr_key.in_(list(kr_keys)))  # type: ignore[attr-defined]
        return list(session.exec(query))


def mark_pending(engine: Engine, target: str, key: str) -> None:
    """Record that the alert is about to be sent (committed before the request that sends it)."""
    _set(engine, target, key, PENDING)


def mark_sent(engine: Engine, target: str, key: str, record_id: str | None) -> None:
    _set(engine, target, key, SENT, record_id)


def _set(engine: Engine, target: str, key: str, state: str, record_id: str | None = None) -> None:
    with Session(engine) as session:
        entry = session.get(AlertLedger, (target, key))
        if entry is None:
            raise KeyError(f"alert {key} is not queued for {target}")
        entry.state = state
        if state == SENT:
            entry.record_id, entry.sent_at = record_id, datetime.now(UTC)
        session.add(entry)
        session.commit()


def entries(engine: Engine, target: str) -> list[AlertLedger]:
    """Every ledger entry of `target`, by key (for tests and reports)."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(AlertLedger).where(AlertLedger.target == target).order_by(AlertLedger.key)
        return list(session.exec(query))  # type: ignore[arg-type]
