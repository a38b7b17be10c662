"""The weekly digest: per team and per owner, what moved in the last week, what turned at risk, what was achieved.

It reads the check-in history only (okr_mapping.history), so it says what the CRM showed: for each key
result with a check-in in the week (the 7 days ending at the run's day), its latest check-in of the
week against the last one before the week (or, for a KR new this week, its first one in it).

- moved: the value, progress or status differs;
- turned at risk: now at risk or off track, and was neither;
- achieved: now achieved, and was not (or is new this week and achieved already).

Owners come from the config as the results have them (the rep of a per-owner group, else the KR's
or objective's owner); the team is the owner's in the store's owner table (a per-team group is its
own team). KRs without an owner go under "(no owner)", without a known team under "(no team)".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from okr_mapping import history
from okr_mapping.config import OkrConfig
from okr_mapping.history import KrSnapshot
from okr_mapping.metrics import UNASSIGNED
from okr_mapping.owners import owner_teams

WEEK_DAYS = 7
_AT_RISK = frozenset({"at_risk", "off_track"})
_EPSILON = 1e-9
NO_OWNER, NO_TEAM = "(no owner)", "(no team)"


@dataclass(frozen=True)
class Change:
    """One key result over the week: its check-in before (None: none before, nor another this week) and now."""

    key: str
    title: str
    group: str | None
    period: str
    owner: str
    team: str
    before: KrSnapshot | None
    after: KrSnapshot

    @property
    def moved(self) -> bool:
        before, after = self.before, self.after
        return before is not None and (_differs(before.value, after.value) or _differs(before.progress, after.progress)
                                       or before.status != after.status)

    @property
    def turned_at_risk(self) -> bool:
        return self.after.status in _AT_RISK and self.before is not None and self.before.status not in _AT_RISK

    @property
    def achieved(self) -> bool:
        return self.after.status == "achieved" and (self.before is None or self.before.status != "achieved")


@dataclass
class Section:
    """The changes of one team or owner, each list sorted by title and group."""

    name: str
    moved: list[Change] = field(default_factory=list)
    at_risk: list[Change] = field(default_factory=list)
    achieved: list[Change] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.moved or self.at_risk or self.achieved)


@dataclass
class WeeklyDigest:
    source: str
    start: date
    end: date
    teams: list[Section] = field(default_factory=list)
    owners: list[Section] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(self.teams)


def weekly_digest(engine: Engine, config: OkrConfig, source: str, day: date, days: int = WEEK_DAYS) -> WeeklyDigest:
    """The digest of `source` for the `days` days ending at `day` (the day a run measures)."""
    history.ensure_tables(engine)
    start = day - timedelta(days=days - 1)
    with Session(engine) as session:
        rows = list(session.exec(select(KrSnapshot).where(KrSnapshot.source == source, KrSnapshot.as_of <= day)
                                 .order_by(KrSnapshot.key, KrSnapshot.as_of)))  # type: ignore[arg-type]
    with engine.connect() as conn:
        teams = owner_teams(conn, source)
    by_key: dict[str, list[KrSnapshot]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    changes = []
    for snapshots in by_key.values():
        week = [snapshot for snapshot in snapshots if snapshot.as_of >= start]
        if not week:
            continue
        earlier = [snapshot for snapshot in snapshots if snapshot.as_of < start]
        before = earlier[-1] if earlier else (week[0] if len(week) > 1 else None)
        changes.append(_change(config, teams, before, week[-1]))
    digest = WeeklyDigest(source=source, start=start, end=day)
    digest.teams = _sections(changes, lambda change: change.team)
    digest.owners = _sections(changes, lambda change: change.owner)
    return digest


def _change(config: OkrConfig, teams: Mapping[str, str], before: KrSnapshot | None, after: KrSnapshot) -> Change:
    objective = next((each for each in config.objectives if each.id == after.objective_id), None)
    kr = next((each for each in objective.key_results if each.id == after.kr_id), None) if objective else None
    title = (kr.title or (kr.metric or kr.id).replace("_", " ").capitalize()) if kr else after.kr_id
    breakdown = kr.breakdown if kr else None
    owner = (kr.owner if kr else None) or (objective.owner if objective else None)
    if breakdown == "owner" and after.group and after.group != UNASSIGNED:
        owner = after.group
    team = after.group if breakdown == "team" and after.group and after.group != UNASSIGNED else \
        teams.get((owner or "").lower())
    return Change(key=after.key, title=title, group=after.group, period=after.period, owner=owner or NO_OWNER,
                  team=team or NO_TEAM, before=before, after=after)


def _sections(changes: list[Change], name_of: Callable[[Change], str]) -> list[Section]:
    sections: dict[str, Section] = {}
    for change in sorted(changes, key=lambda each: (each.title, each.group or "", each.period)):
        section = sections.setdefault(name_of(change), Section(name_of(change)))
        if change.moved:
            section.moved.append(change)
        if change.turned_at_risk:
            section.at_risk.append(change)
        if change.achieved:
            section.achieved.append(change)
    return [sections[name] for name in sorted(sections) if sections[name]]


def _differs(old: float, new: float) -> bool:
    return abs(old - new) > _EPSILON * max(1.0, abs(old), abs(new))
