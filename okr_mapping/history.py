"""Check-in history: one snapshot per key result (per breakdown group), source and day.

Every writing run records what it computed as of its day, so the trend of a KR is known (the
forecast reads it) and a past day can be compared with a recomputation. Two things are never lost:

- Corrections. A snapshot is what okr-sync reported that day. When a run recomputes a day whose
  snapshot was recorded on an earlier date (`--as-of` a past date), or when a period has ended
  (after its last day) and late data changes its final value, the old and new value are kept as a
  correction before the snapshot takes the new value; the check-in written back says so in its
  note. A rerun on the day a snapshot was recorded just refreshes it (the day is not over).
- Target changes. When a KR's target differs from its previous snapshot's and the config's
  revision changed in between (someone edited it mid-cycle), the old and new target, the day and
  both revisions are kept. A relative target whose baseline moves with the data (a change over the
  previous period to date) is not a config change and is not logged.

`compare` works out all of it without writing (so `okr-sync plan` can show it); `record` stores
what `compare` found, in one transaction.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Index, func
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel, select

from connectors.migrations.runner import Layer, migrate

if TYPE_CHECKING:  # compute reads the history (trend points): no import cycle at run time
    from okr_mapping.compute import KrResult

_EPSILON = 1e-9


class KrSnapshot(SQLModel, table=True):
    """A key result as one run reported it for one day."""

    __tablename__ = "kr_snapshot"
    __table_args__ = (Index("ix_kr_snapshot_period", "source", "key", "period_end", "as_of"),)
    source: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    as_of: date = Field(primary_key=True)
    objective_id: str
    kr_id: str
    group: str | None = None
    period: str
    period_start: date
    period_end: date
    value: float
    baseline: float
    target: float
    progress: float
    score: float
    expected_progress: float
    status: str
    forecast: float | None = None
    forecast_confidence: float | None = None
    sample_size: int = 0
    config_revision: str | None = None
    note: str | None = None  # the corrections this snapshot made, as its check-in says
    recorded_at: datetime


class KrCorrection(SQLModel, table=True):
    """A reported value that later data changed: the day it was for, old and new, when it was seen."""

    __tablename__ = "kr_correction"
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    key: str
    as_of: date
    period: str
    old_value: float
    new_value: float
    reason: str
    detected_at: datetime


class KrTargetChange(SQLModel, table=True):
    """A key result's target that changed between two snapshots, with both config revisions."""

    __tablename__ = "kr_target_change"
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    key: str
    as_of: date
    old_target: float
    new_target: float
    old_revision: str | None = None
    new_revision: str | None = None
    recorded_at: datetime


HISTORY_TABLES = [KrSnapshot.__table__, KrCorrection.__table__, KrTargetChange.__table__]  # type: ignore[attr-defined]


def _adopt_older_history(connection: Connection) -> None:
    """History tables an older okr-sync made with `create_all` have the first released shape: create the
    ones it lacks, then the runner stamps them 0001."""
    SQLModel.metadata.create_all(connection, tables=HISTORY_TABLES)


# The history tables are migrated apart from the store's (own scripts, own version table): okr_mapping owns them.
HISTORY_SCHEMA = Layer(package="okr_mapping", script_location=Path(__file__).parent / "migrations",
                       version_table="okr_sync_history_version", adopt=_adopt_older_history)

_READY: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose store has the tables at the head revision


def ensure_tables(engine: Engine) -> None:
    """Bring the history tables to the latest migration (okr_mapping/migrations), once per engine: a run asks often."""
    if engine not in _READY:
        migrate(engine, HISTORY_SCHEMA)
        _READY.add(engine)


@dataclass
class HistoryChanges:
    """What recording a run would change: snapshots to write, corrections and target changes to keep."""

    snapshots: list[KrSnapshot] = field(default_factory=list)
    corrections: list[KrCorrection] = field(default_factory=list)
    target_changes: list[KrTargetChange] = field(default_factory=list)

    def note(self, key: str) -> str | None:
        """The check-in note of `key`: the corrections this run makes to it, if any."""
        notes = [f"corrects {c.as_of.isoformat()}: {c.old_value:g} -> {c.new_value:g} ({c.reason})"
                 for c in self.corrections if c.key == key]
        return "; ".join(notes) or None


def trend_points(engine: Engine, source: str, results: Sequence[KrResult], day: date
                 ) -> dict[str, list[tuple[date, float]]]:
    """Per KR key: the (day, value) of its snapshots in its current period before `day`."""
    ensure_tables(engine)
    keys = {result.key: result for result in results}
    points: dict[str, list[tuple[date, float]]] = {key: [] for key in keys}
    if not keys:
        return points
    with Session(engine) as session:
        query = select(KrSnapshot.key, KrSnapshot.as_of, KrSnapshot.value, KrSnapshot.period_start).where(
            KrSnapshot.source == source, KrSnapshot.key.in_(list(keys)), KrSnapshot.as_of < day)  # type: ignore[attr-defined]
        for key, as_of, value, start in session.exec(query):
            if start == keys[key].period_start:
                points[key].append((as_of, value))
    return points


def compare(engine: Engine, source: str, results: Iterable[KrResult], day: date,
            revision: str | None) -> HistoryChanges:
    """The snapshots of `results` as of `day`, and the corrections and target changes they imply."""
    ensure_tables(engine)
    now = datetime.now(UTC)
    changes = HistoryChanges()
    with Session(engine) as session:
        on_day = {snapshot.key: snapshot for snapshot in session.exec(
            select(KrSnapshot).where(KrSnapshot.source == source, KrSnapshot.as_of == day))}
        latest = _latest_before(session, source, day)
        for result in results:
            changes.snapshots.append(_snapshot(result, source, day, revision, now))
            same_day, before = on_day.get(result.key), latest.get(result.key)
            if same_day is not None and _differs(same_day.value, result.value) \
                    and same_day.recorded_at.date() < now.date():
                changes.corrections.append(_correction(source, result, day, same_day.value, "recomputed later", now))
            elif before is not None and before.as_of > result.period_end and _differs(before.value, result.value):
                changes.corrections.append(_correction(source, result, before.as_of, before.value,
                                                       "late data after the period ended", now))
            previous = same_day if same_day is not None else before
            if previous is not None and _differs(previous.target, result.target) \
                    and previous.config_revision != revision:
                changes.target_changes.append(KrTargetChange(
                    source=source, key=result.key, as_of=day, old_target=previous.target, new_target=result.target,
                    old_revision=previous.config_revision, new_revision=revision, recorded_at=now))
    for snapshot in changes.snapshots:
        snapshot.note = changes.note(snapshot.key)
    return changes


def open_checkins(engine: Engine, source: str, day: date, changes: HistoryChanges) -> list[KrSnapshot]:
    """Every check-in of the periods still open on `day` (up to it), this run's own in place of any
    stored for the same key and day: the writeback sends them all and its ledger skips what the CRM
    holds already, so a check-in refused or lost on an earlier night is sent again."""
    ensure_tables(engine)
    with Session(engine) as session:
        stored = session.exec(select(KrSnapshot).where(
            KrSnapshot.source == source, KrSnapshot.period_end >= day, KrSnapshot.as_of <= day))
        merged = {(snapshot.key, snapshot.as_of): snapshot for snapshot in stored}
    merged |= {(snapshot.key, snapshot.as_of): snapshot for snapshot in changes.snapshots}
    return sorted(merged.values(), key=lambda snapshot: (snapshot.as_of, snapshot.key))


def record(engine: Engine, changes: HistoryChanges) -> None:
    """Store what `compare` found: snapshots upserted by (source, key, day), the rest appended (the
    objects stay readable after: the caller reports them)."""
    with Session(engine, expire_on_commit=False) as session:
        for snapshot in changes.snapshots:
            session.merge(snapshot)
        for row in [*changes.corrections, *changes.target_changes]:
            session.add(row)
        session.commit()


def snapshots(engine: Engine, source: str, key: str | None = None) -> list[KrSnapshot]:
    """The stored snapshots of `source` (of one KR key when given), by key and day."""
    ensure_tables(engine)
    with Session(engine) as session:
        query = select(KrSnapshot).where(KrSnapshot.source == source)
        if key is not None:
            query = query.where(KrSnapshot.key == key)
        return list(session.exec(query.order_by(KrSnapshot.key, KrSnapshot.as_of)))  # type: ignore[arg-type]


def reported_groups(engine: Engine, source: str) -> dict[tuple[str, str, str], set[str]]:
    """(objective id, KR id, period label) -> the breakdown groups reported for it so far: a group whose
    records have all gone keeps a result (empty) instead of leaving its last value in the CRM."""
    ensure_tables(engine)
    groups: dict[tuple[str, str, str], set[str]] = {}
    with Session(engine) as session:
        query = select(KrSnapshot.objective_id, KrSnapshot.kr_id, KrSnapshot.period, KrSnapshot.group).where(
            KrSnapshot.source == source, KrSnapshot.group.is_not(None)).distinct()  # type: ignore[union-attr]
        for objective_id, kr_id, period, group in session.exec(query):
            groups.setdefault((objective_id, kr_id, period), set()).add(group)
    return groups


def latest_day(engine: Engine, source: str) -> date | None:
    """The latest day `source` has a check-in for (what its CRM records show), None before the first."""
    ensure_tables(engine)
    with Session(engine) as session:
        return session.exec(select(func.max(KrSnapshot.as_of)).where(KrSnapshot.source == source)).first()


def previous_snapshots(engine: Engine, source: str, day: date) -> dict[str, KrSnapshot]:
    """Per KR key, its latest snapshot before `day` (what the CRM shows now)."""
    ensure_tables(engine)
    with Session(engine) as session:
        return _latest_before(session, source, day)


def _latest_before(session: Session, source: str, day: date) -> dict[str, KrSnapshot]:
    """Per KR key of `source`, its latest snapshot before `day`: one query, whatever the history's length."""
    latest = select(KrSnapshot.key, func.max(KrSnapshot.as_of).label("as_of")).where(
        KrSnapshot.source == source, KrSnapshot.as_of < day).group_by(KrSnapshot.key).subquery()
    query = select(KrSnapshot).join(latest, (KrSnapshot.key == latest.c.key) & (KrSnapshot.as_of == latest.c.as_of))
    return {snapshot.key: snapshot for snapshot in session.exec(query.where(KrSnapshot.source == source))}


def _snapshot(result: KrResult, source: str, day: date, revision: str | None, now: datetime) -> KrSnapshot:
    return KrSnapshot(
        source=source, key=result.key, as_of=day, objective_id=result.objective_id, kr_id=result.kr_id,
        group=result.group, period=result.period, period_start=result.period_start, period_end=result.period_end,
        value=result.value, baseline=result.baseline, target=result.target, progress=result.progress,
        score=result.score, expected_progress=result.expected_progress, status=result.status,
        forecast=result.forecast, forecast_confidence=result.forecast_confidence, sample_size=result.sample_size,
        config_revision=revision, recorded_at=now)


def _correction(source: str, result: KrResult, as_of: date, old: float, reason: str, now: datetime) -> KrCorrection:
    return KrCorrection(source=source, key=result.key, as_of=as_of, period=result.period, old_value=old,
                        new_value=result.value, reason=reason, detected_at=now)


def _differs(old: float, new: float) -> bool:
    return abs(old - new) > _EPSILON * max(1.0, abs(old), abs(new))
