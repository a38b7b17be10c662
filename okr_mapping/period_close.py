"""Period close: the final values and scores of a period, frozen once, kept as they were.

`okr-sync close-period` (flows.close_period) computes a period's key results as of its last day and
stores them here (`kr_final`, one row per source and KR key). From then on the period is closed:
`compute_key_results` replaces every result of it by the frozen one (`apply_frozen`), so a later
run, whatever late data the CRM received, reports and writes back the final values, and the check-in
history records no correction for them. A second close changes nothing unless reopened.

The close also says how ambitious the period was: the score distribution per team in Google's bands
(0-0.3 red, 0.4-0.6 yellow, 0.6-0.7 the sweet spot of a stretch goal, 0.7-1.0 green), and the KRs that
closed at 1.0 in this and the previous closed period ("not ambitious enough").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel, select

from okr_mapping import history

if TYPE_CHECKING:  # compute applies the frozen values: no import cycle at run time
    from okr_mapping.compute import KrResult

# (band, lowest score in it): a score belongs to the last band whose floor it reaches
BANDS: tuple[tuple[str, float], ...] = (("red", 0.0), ("yellow", 0.4), ("sweet spot", 0.6), ("green", 0.7))
_ACHIEVED = 1.0 - 1e-9


class KrFinal(SQLModel, table=True):
    """A key result's final state in a closed period, as the close computed it."""

    __tablename__ = "kr_final"
    source: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    objective_id: str
    kr_id: str
    group: str | None = None
    owner: str | None = None
    period: str = Field(index=True)
    period_start: date
    period_end: date
    value: float
    baseline: float
    target: float
    progress: float
    score: float
    status: str
    closed_at: datetime
    config_revision: str | None = None


def closed(engine: Engine, source: str, period: str | None = None) -> list[KrFinal]:
    """The frozen results of `source` (of one period label when given), oldest period first."""
    history.ensure_tables(engine)
    with Session(engine) as session:
        query = select(KrFinal).where(KrFinal.source == source)
        if period is not None:
            query = query.where(KrFinal.period == period)
        return list(session.exec(query.order_by(KrFinal.period_end, KrFinal.key)))  # type: ignore[arg-type]


def freeze(engine: Engine, source: str, results: Iterable[KrResult], revision: str | None,
           now: datetime | None = None) -> list[KrFinal]:
    """Store `results` as final (the caller checked the period is not closed yet); returns the rows."""
    history.ensure_tables(engine)
    moment = now or datetime.now(UTC)
    rows = [KrFinal(source=source, key=r.key, objective_id=r.objective_id, kr_id=r.kr_id, group=r.group,
                    owner=r.owner, period=r.period, period_start=r.period_start, period_end=r.period_end,
                    value=r.value, baseline=r.baseline, target=r.target, progress=r.progress, score=r.score,
                    status=r.status, closed_at=moment, config_revision=revision) for r in results]
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(rows)
        session.commit()
    return rows


def reopen(engine: Engine, source: str, period: str) -> int:
    """Forget the frozen results of one period (`close-period --reopen`); returns how many there were."""
    history.ensure_tables(engine)
    with Session(engine) as session:
        gone = session.exec(delete(KrFinal).where(KrFinal.source == source,  # type: ignore[call-overload]
                                                  KrFinal.period == period))
        session.commit()
        return int(gone.rowcount or 0)


def closed_values(conn: Connection, source: str, objective_id: str, kr_id: str, period: str
                  ) -> dict[str | None, float]:
    """Group (None without breakdown) -> the final value one KR closed `period` with; {} when not closed.
    Read on the caller's connection: compute resolves `vs: closed` baselines while it reads metrics."""
    table = KrFinal.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa_select(table.c.group, table.c.value).where(
        table.c.source == source, table.c.objective_id == objective_id, table.c.kr_id == kr_id,
        table.c.period == period))
    return {group: float(value) for group, value in rows}


def apply_frozen(engine: Engine, source: str, results: Sequence[KrResult]) -> list[KrResult]:
    """`results` with those of closed periods replaced by their final values (marked `final`).

    A group that appeared in a closed period after it closed (late data) is left out: the period's
    results are the ones it closed with.
    """
    periods = {result.period for result in results}
    finals = {row.key: row for label in periods for row in closed(engine, source, label)}
    if not finals:
        return list(results)
    closed_krs = {(row.objective_id, row.kr_id, row.period) for row in finals.values()}
    kept = []
    for result in results:
        row = finals.get(result.key)
        if row is not None:
            kept.append(replace(result, value=row.value, baseline=row.baseline, target=row.target,
                                progress=row.progress, score=row.score, status=row.status, expected_progress=1.0,
                                forecast=row.value, forecast_confidence=None, forecast_method="final", final=True))
        elif (result.objective_id, result.kr_id, result.period) not in closed_krs:
            kept.append(result)
    return kept


@dataclass
class TeamScores:
    """How one team's KRs closed: the count per band and the mean score."""

    team: str
    bands: dict[str, int]
    mean: float
    count: int


def band(score: float) -> str:
    """The Google band of a 0-1 score (red, yellow, sweet spot, green)."""
    return next(name for name, floor in reversed(BANDS) if score >= floor - 1e-9)


def distribution(finals: Sequence[KrFinal], teams: Mapping[str, str]) -> list[TeamScores]:
    """Per team (the owner's team from the store's owner table, `teams`: lower-cased email -> team;
    "(no team)" when unknown), the number of KRs per band and their mean score, by team name."""
    grouped: dict[str, list[float]] = {}
    for row in finals:
        team = teams.get((row.owner or "").lower()) or "(no team)"
        grouped.setdefault(team, []).append(row.score)
    return [TeamScores(team=team, bands={name: sum(1 for score in scores if band(score) == name)
                                         for name, _floor in BANDS},
                       mean=round(sum(scores) / len(scores), 4), count=len(scores))
            for team, scores in sorted(grouped.items())]


def not_ambitious(engine: Engine, source: str, finals: Sequence[KrFinal]) -> list[KrFinal]:
    """The KRs of `finals` that closed at 1.0 (score >= 1) in the closed period before theirs too.

    The same KR (objective id, KR id and group) is matched across periods: its key carries the period.
    """
    if not finals:
        return []
    start = min(row.period_start for row in finals)
    earlier = [row for row in closed(engine, source) if row.period_end < start]
    if not earlier:
        return []
    last = max(row.period_end for row in earlier)
    maxed = {(row.objective_id, row.kr_id, row.group) for row in earlier
             if row.period_end == last and row.score >= _ACHIEVED}
    return [row for row in finals if row.score >= _ACHIEVED and (row.objective_id, row.kr_id, row.group) in maxed]
