"""A canonical store of a generated org written directly (no sandbox, no connectors), for bench.compute.

Seeded random rows written in chunks into the tables `connectors.store.make_engine` creates: 200
owners in eight teams, deals closing over a year and a half (won, lost and open; amounts by team;
created a sales cycle before they close; 1% deleted), and calls, emails and meetings. SQLite gets
executemany; PostgreSQL gets COPY. `build_store` reuses a SQLite file whose counts match.
(Formerly benchmarks/compute_krs.py.)
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from connectors.store import Activity, Deal, Owner, make_engine

CONFIG_PATH = Path(__file__).with_name("compute_krs.yaml")  # the 50 key results bench.compute times
AS_OF = date(2026, 11, 27)
SPAN_START = date(2025, 7, 1)  # deals close over a year and a half: 2025-Q3 .. 2026-Q4
SPAN_END = date(2026, 12, 31)
SOURCE = "salesforce"
CHUNK = 50_000

# team -> (region, median deal amount, win-rate base)
TEAMS = {
    "Strategic": ("NA", 150_000, 0.30),
    "Enterprise East": ("NA", 60_000, 0.34),
    "Enterprise West": ("NA", 60_000, 0.35),
    "Enterprise EMEA": ("EMEA", 55_000, 0.33),
    "Mid-Market": ("NA", 25_000, 0.40),
    "Mid-Market EMEA": ("EMEA", 22_000, 0.39),
    "SMB": ("APAC", 8_000, 0.47),
    "Partnerships": ("LATAM", 30_000, 0.42),
}
OPEN_STAGES = (("Prospecting", 10.0), ("Qualification", 25.0), ("Proposal", 50.0), ("Negotiation", 75.0))
DEAL_TYPES = (("New Business", 0.5), ("Renewal", 0.3), ("Upsell", 0.2))
LEAD_SOURCES = (("Web", 0.30), ("Outbound", 0.25), ("Referral", 0.15), ("Partner", 0.12), ("Event", 0.10), (None, 0.08))
KINDS = (("call", 0.50), ("email", 0.35), ("meeting", 0.15))
CALL_OUTCOMES = (("Connected", 0.35), ("Left voicemail", 0.30), ("No answer", 0.30), ("Busy", 0.05))
MEETING_MINUTES = (15, 30, 30, 45, 60, 60, 90)
SUBJECTS = {"call": "Call", "email": "Email", "meeting": "Meeting"}


def _cum(pairs: tuple[tuple[Any, float], ...]) -> tuple[list[Any], list[float]]:
    values, weights = zip(*pairs, strict=True)
    total, cum = 0.0, []
    for weight in weights:
        total += weight
        cum.append(total)
    return list(values), cum


def _day_weights(start: date, end: date, weekend: float) -> tuple[list[int], list[float]]:
    """Ordinals of start..end and cumulative weights: 2% growth a month, quarter-end rush, quiet weekends."""
    days, cum, total = [], [], 0.0
    day = start
    while day <= end:
        months = (day.year - start.year) * 12 + day.month - start.month
        weight = 1.02**months
        if day.month % 3 == 0:
            weight *= 1.4 if day.day < 16 else 1.8
        if day.weekday() >= 5:
            weight *= weekend
        total += weight
        days.append(day.toordinal())
        cum.append(total)
        day += timedelta(days=1)
    return days, cum


class Store:
    """Writes the generated org into a canonical store, a chunk per transaction."""

    def __init__(self, engine: Engine, seed: int, owners: int) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.iso = {}  # ordinal -> ISO date, filled lazily
        self.owners = self._owners(owners)

    def _date(self, ordinal: int) -> str:
        value = self.iso.get(ordinal)
        if value is None:
            value = self.iso[ordinal] = date.fromordinal(ordinal).isoformat()
        return value

    def _insert(self, table: Any, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        names = ", ".join(columns)
        if self.engine.dialect.name == "postgresql":
            booleans = [n for n, column in enumerate(columns) if str(table.c[column].type) == "BOOLEAN"]
            with self.engine.begin() as conn:
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([bool(value) if n in booleans else value for n, value in enumerate(row)])
            return
        marks = ", ".join("?" for _ in columns)
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)

    def _owners(self, count: int) -> list[tuple[str, str, float, float]]:
        """(source_id, team, productivity weight, win-rate) per rep; also writes the owner rows."""
        rng, rows, owners = self.rng, [], []
        teams = list(TEAMS)
        for number in range(1, count + 1):
            team = teams[(number - 1) % len(teams)]
            region, _, win_base = TEAMS[team]
            owner_id = f"005{number:015d}"
            rows.append((SOURCE, owner_id, f"rep{number:03d}@acme.example", f"Rep {number:03d}", team, region,
                         int(number % 25 != 0), "2026-01-05 08:00:00.000000", "{}"))
            owners.append((owner_id, team, rng.lognormvariate(0, 0.4), min(0.7, max(0.15, rng.gauss(win_base, 0.06)))))
        self._insert(Owner.__table__, ["source", "source_id", "email", "name", "team", "region", "is_active",
                                       "modified_at", "custom"], rows)
        return owners

    def _owner_picks(self, k: int, unassigned: float) -> list[tuple[str, str, float, float] | None]:
        picks: list[Any] = self.rng.choices(self.owners, weights=[o[2] for o in self.owners], k=k)
        return [None if self.rng.random() < unassigned else pick for pick in picks]

    def deals(self, count: int) -> None:
        rng = self.rng
        close_days, close_cum = _day_weights(SPAN_START, SPAN_END, weekend=0.3)
        as_of = AS_OF.toordinal()
        types, type_cum = _cum(DEAL_TYPES)
        sources, source_cum = _cum(LEAD_SOURCES)
        columns = ["source", "source_id", "name", "owner_id", "account_id", "deal_type", "stage", "amount",
                   "probability", "is_closed", "is_won", "created_date", "close_date", "lead_source",
                   "modified_at", "is_deleted", "custom"]
        for first in range(0, count, CHUNK):
            k = min(CHUNK, count - first)
            closes = rng.choices(close_days, cum_weights=close_cum, k=k)
            owners = self._owner_picks(k, unassigned=0.01)
            deal_types = rng.choices(types, cum_weights=type_cum, k=k)
            lead_sources = rng.choices(sources, cum_weights=source_cum, k=k)
            rows = []
            for n in range(k):
                number = first + n + 1
                close, owner = closes[n], owners[n]
                team = owner[1] if owner else "Mid-Market"
                median = TEAMS[team][1] * (1.6 if deal_types[n] == "New Business" else 1.0)
                amount = round(rng.lognormvariate(math.log(median), 0.9), -2) if rng.random() > 0.005 else None
                days_left = close - as_of
                closed = rng.random() < (0.96 if days_left < -14 else 0.55 if days_left <= 0 else 0.0)
                if closed:
                    win = (owner[3] if owner else 0.35) * (0.8 if (amount or 0) >= 100_000 else 1.0)
                    won = rng.random() < win
                    stage, probability = ("Closed Won", 100.0) if won else ("Closed Lost", 0.0)
                else:
                    won = False
                    stage, probability = OPEN_STAGES[min(3, int(rng.random() * 4))]
                cycle = 1 + int(rng.gammavariate(2.0, 45.0 if median >= 50_000 else 25.0))
                rows.append((
                    SOURCE, f"006{number:015d}", f"Deal {number}", owner[0] if owner else None,
                    f"001{rng.randrange(150_000):015d}", deal_types[n], stage, amount, probability,
                    int(closed), int(won), self._date(close - cycle), self._date(close), lead_sources[n],
                    f"{self._date(min(close, as_of))} 09:30:00.000000", int(rng.random() < 0.01), "{}",
                ))
            self._insert(Deal.__table__, columns, rows)

    def activities(self, count: int, deals: int) -> None:
        rng = self.rng
        past_days, past_cum = _day_weights(SPAN_START, AS_OF, weekend=0.1)
        booked_days, booked_cum = _day_weights(AS_OF + timedelta(days=1), AS_OF + timedelta(days=35), weekend=0.1)
        kinds, kind_cum = _cum(KINDS)
        outcomes, outcome_cum = _cum(CALL_OUTCOMES)
        columns = ["source", "source_id", "kind", "subject", "owner_id", "deal_id", "activity_date",
                   "duration_seconds", "outcome", "direction", "modified_at", "is_deleted", "custom"]
        for first in range(0, count, CHUNK):
            k = min(CHUNK, count - first)
            days = rng.choices(past_days, cum_weights=past_cum, k=k)
            booked = rng.choices(booked_days, cum_weights=booked_cum, k=k)
            owners = self._owner_picks(k, unassigned=0.005)
            picked_kinds = rng.choices(kinds, cum_weights=kind_cum, k=k)
            call_outcomes = rng.choices(outcomes, cum_weights=outcome_cum, k=k)
            rows = []
            for n in range(k):
                number, kind, day, owner = first + n + 1, picked_kinds[n], days[n], owners[n]
                if kind == "call":
                    outcome = call_outcomes[n]
                    duration = int(rng.lognormvariate(math.log(360), 0.6)) if outcome == "Connected" \
                        else rng.randint(5, 60)
                    direction = "outbound" if rng.random() < 0.8 else "inbound"
                elif kind == "email":
                    outcome, duration = None, None
                    direction = "outbound" if rng.random() < 0.7 else "inbound"
                else:
                    if rng.random() < 0.08:  # booked ahead
                        day, outcome = booked[n], "Scheduled"
                    else:
                        roll = rng.random()
                        outcome = "Completed" if roll < 0.85 else "No show" if roll < 0.93 else "Rescheduled"
                    duration, direction = 60 * MEETING_MINUTES[int(rng.random() * 7)], None
                deal_id = f"006{rng.randrange(1, deals + 1):015d}" if deals and rng.random() < 0.6 else None
                rows.append((
                    SOURCE, f"00T{number:015d}", kind, SUBJECTS[kind], owner[0] if owner else None, deal_id,
                    self._date(day), duration, outcome, direction,
                    f"{self._date(min(day, AS_OF.toordinal()))} 10:00:00.000000", int(rng.random() < 0.01), "{}",
                ))
            self._insert(Activity.__table__, columns, rows)


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        deals = conn.execute(text("SELECT COUNT(*) FROM deal")).scalar_one()
        activities = conn.execute(text("SELECT COUNT(*) FROM activity")).scalar_one()
    return int(deals), int(activities)


def build_store(path: Path, deals: int, activities: int, owners: int, seed: int) -> tuple[float | None, str]:
    """Generate the store at `path` (or reuse it when its counts match); returns (seconds, note)."""
    if path.exists():
        engine = make_engine(f"sqlite:///{path}")
        found = _counts(engine)
        engine.dispose()
        if found == (deals, activities):
            return None, f"reused {path}"
        raise RuntimeError(f"{path} holds {found[0]:,} deals and {found[1]:,} activities, not "
                         f"{deals:,} / {activities:,}; remove it or pass other counts")
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    fill_store(engine, deals, activities, owners, seed)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return time.perf_counter() - started, "generated"


def fill_store(engine: Engine, deals: int, activities: int, owners: int, seed: int) -> None:
    """Write the generated org into the (empty) store of `engine`, SQLite or PostgreSQL."""
    store = Store(engine, seed, owners)
    store.deals(deals)
    store.activities(activities, deals)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def _drop_os_cache(path: Path) -> None:
    """Evict the store's file pages from the OS page cache, so the next read comes from disk."""
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


class QueryLog:
    """Counts (and optionally records) the SQL statements an engine runs."""

    def __init__(self, engine: Engine, record: bool = False) -> None:
        self.count = 0
        self.statements: list[tuple[str, Any]] = []
        self.record = record
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.count += 1
        if self.record:
            self.statements.append((statement, parameters))


def _timed(run: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    results = run()
    return time.perf_counter() - started, results
