"""Simulated sales activity: `tick` advances the sandbox org's clock by N days of work.

Each simulated day brings new deals, stage moves, amount changes, deals closing as their close
date passes, a few deletions (flagged, as CRMs keep them in a recycle bin) and new calls, all in
proportion to the org's size (`DealSimulation`); and around them the rest of the org moves
(`OrgTables`, in connectors.sandbox.tick_tables): leads come in, advance and convert, cases open and
close, emails and meetings accrue, meetings get their outcome, campaigns start, spend and end, and
a deal's line items keep summing to its amount. Once per tick a mass update (a territory
realignment) gives at least `BURST_MIN` rows one shared modified time, so extractors must handle
ties across page boundaries.

A tick is deterministic for a given org, tick number and seed: modified times come from the
simulated clock, never the wall clock. The deal and call changes draw from the tick's first random
stream exactly as before the other tables existed; everything else draws from a second one.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.local_dates import zone_of
from connectors.sandbox.generator import (
    AMOUNT_RANGE,
    CALL_OUTCOMES,
    DEAL_TYPES,
    LEAD_SOURCES,
    OPEN_STAGES,
    STAGES,
    WIN_RATE,
    OrgSpec,
    add_quarters,
    quarter_start,
    to_ms,
)
from connectors.sandbox.state import TICKS_META_KEY, SandboxState
from connectors.sandbox.tick_tables import OrgTables, insert_rows, stochastic_round

DAY = timedelta(days=1)
CLOSE_DATE_SPAN_DAYS = 270  # the generator spreads spec.deals close dates over about this many days
STAGE_MOVE_RATE = 0.03  # share of open deals moving one stage forward per day
AMOUNT_CHANGE_RATE = 0.01  # share of open deals whose amount changes per day
DELETE_RATE = 0.03  # deletions per day, as a share of the deals created per day
BURST_MIN = 250  # rows sharing the burst's modified time, at least
BURST_SHARE = 0.02  # or this share of the live deals, if more


@dataclass(frozen=True)
class TickSummary:
    """What a tick did; `changed` counts stage moves and amount changes of deals.

    `changes` counts the rows each table had inserted or updated (the burst aside), `deletions`
    the rows flagged deleted per table (`deleted` is the deals').
    """

    days: int
    created: int
    changed: int
    closed: int
    deleted: int
    calls_added: int
    burst: int
    burst_modified_ms: int
    clock: datetime
    changes: dict[str, int] = field(default_factory=dict)
    deletions: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        touched = ", ".join(f"{table} {count}" for table, count in self.changes.items() if count) or "none"
        deleted = ", ".join(f"{table} {count}" for table, count in self.deletions.items() if count) or "none"
        return (f"Simulated {self.days} day(s): {self.created} deal(s) created, {self.changed} changed, "
                f"{self.closed} closed, {self.deleted} deleted, {self.calls_added} call(s) added; "
                f"a mass update touched {self.burst} row(s) at one modified time.\n"
                f"Rows touched per table: {touched}; deleted: {deleted}.\n"
                f"Org clock is now {self.clock.isoformat()}.")


def tick(state: SandboxState, days: int, seed: int | None = None) -> TickSummary:
    """Simulate `days` days of sales activity and advance the org's clock by as much."""
    if days < 1:
        raise ValueError("a tick simulates at least one day")
    with state.transaction() as conn:
        spec, start = state.spec, state.clock
        number = int(state.get_meta(TICKS_META_KEY) or 0) + 1
        rng = random.Random(f"okr-sync sandbox tick {spec.seed} {number} {seed}")
        end = start + days * DAY
        simulation = DealSimulation(conn, spec, rng, end)
        org_rng = random.Random(f"okr-sync sandbox tick {spec.seed} {number} {seed} org")
        org = OrgTables(conn, spec, org_rng, simulation)
        for day in range(days):
            simulation.simulate_day(start + day * DAY, start + (day + 1) * DAY)
            org.simulate_day(start + day * DAY, start + (day + 1) * DAY)
        simulation.write()
        org.write()
        burst_ms = to_ms(end)  # every other change lies strictly before the new clock
        burst = _burst(conn, rng, burst_ms)
        state.set_clock(end)
        state.set_meta(TICKS_META_KEY, str(number))
    counts = simulation.counts
    changes = {"deals": len(simulation.touched) + len(simulation.created), "calls": len(simulation.calls),
               **org.changes()}
    deletions = {"deals": counts["deleted"], **{table: org.deletions[table] for table in org.tables}}
    return TickSummary(days=days, created=counts["created"], changed=counts["changed"],
                       closed=counts["closed"], deleted=counts["deleted"], calls_added=counts["calls"],
                       burst=burst, burst_modified_ms=burst_ms, clock=end, changes=changes, deletions=deletions)


class DealSimulation:
    """The open deals in memory, changed day by day, then written in one go."""

    def __init__(self, conn: sqlite3.Connection, spec: OrgSpec, rng: random.Random, end: datetime) -> None:
        self.conn, self.spec, self.rng = conn, spec, rng
        self.zone = zone_of(spec.time_zone)  # dates are the org's calendar days
        self.per_day = spec.deals / CLOSE_DATE_SPAN_DAYS
        self.end_date = end.astimezone(self.zone).date()
        marks = ", ".join("?" for _ in OPEN_STAGES)
        self.open: dict[int, dict[str, Any]] = {row["id"]: dict(row) for row in conn.execute(
            f"SELECT * FROM deals WHERE deleted = 0 AND stage IN ({marks}) ORDER BY id", OPEN_STAGES)}
        self.account_owner = dict(conn.execute(
            "SELECT id, owner_id FROM accounts WHERE deleted = 0 ORDER BY id").fetchall())
        self.active = _active_owners(conn)
        self.next_deal = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM deals").fetchone()[0]
        self.next_call = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM calls").fetchone()[0]
        self.known = dict(self.open)  # every deal the tick has seen open, by id (closed and deleted stay)
        self.amount_changed: set[int] = set()
        self.touched: dict[int, dict[str, Any]] = {}
        self.created: dict[int, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.counts = dict.fromkeys(("created", "changed", "closed", "deleted", "calls"), 0)

    # -- one day ------------------------------------------------------------------------------
    def simulate_day(self, day_start: datetime, day_end: datetime) -> None:
        self.start_ms, self.end_ms = to_ms(day_start), to_ms(day_end)
        self.volume = volume = self.rng.uniform(0.6, 1.4) * (0.2 if day_start.weekday() >= 5 else 1.0)
        self._close_passed(day_end.astimezone(self.zone).date().isoformat())
        self._move_stages(stochastic_round(self.rng, len(self.open) * STAGE_MOVE_RATE * volume))
        self._change_amounts(stochastic_round(self.rng, len(self.open) * AMOUNT_CHANGE_RATE * volume))
        self._delete(stochastic_round(self.rng, self.per_day * DELETE_RATE * volume))
        for _ in range(stochastic_round(self.rng, self.per_day * volume)):
            self._create_deal()
        self._add_calls(stochastic_round(self.rng, self.per_day * self.spec.calls_per_deal * volume))

    def _moment_ms(self) -> int:
        """A whole second strictly inside the current day."""
        return self.start_ms + 1000 * self.rng.randrange(1, (self.end_ms - self.start_ms) // 1000)

    def _touch(self, deal: dict[str, Any]) -> None:
        deal["modified_ms"] = max(deal["modified_ms"], self._moment_ms())
        if deal["id"] not in self.created:
            self.touched[deal["id"]] = deal

    def _set_stage(self, deal: dict[str, Any], stage: str) -> None:
        deal["stage"], deal["probability"] = stage, STAGES[stage][1]
        self._touch(deal)

    def _close_passed(self, day_end: str) -> None:
        """Deals whose close date is behind the day's end are won or lost; the close date stays."""
        for deal in [deal for deal in self.open.values() if deal["close_date"] < day_end]:
            won = self.rng.random() < WIN_RATE[deal["deal_type"]]
            self._set_stage(deal, "closed_won" if won else "closed_lost")
            del self.open[deal["id"]]
            self.counts["closed"] += 1

    def _move_stages(self, count: int) -> None:
        movable = [deal for deal in self.open.values() if deal["stage"] != OPEN_STAGES[-1]]
        for deal in self.rng.sample(movable, min(count, len(movable))):
            self._set_stage(deal, OPEN_STAGES[OPEN_STAGES.index(deal["stage"]) + 1])
            self.counts["changed"] += 1

    def _change_amounts(self, count: int) -> None:
        deals = list(self.open.values())
        for deal in self.rng.sample(deals, min(count, len(deals))):
            deal["amount"] = float(max(round(deal["amount"] * self.rng.uniform(0.8, 1.25), -2), 100.0))
            self._touch(deal)
            self.amount_changed.add(deal["id"])
            self.counts["changed"] += 1

    def _delete(self, count: int) -> None:
        deals = list(self.open.values())
        for deal in self.rng.sample(deals, min(count, len(deals))):
            deal["deleted"] = 1
            self._touch(deal)
            del self.open[deal["id"]]
            self.counts["deleted"] += 1

    def _create_deal(self) -> None:
        """An open deal closing this quarter or next (relative to the tick's new clock)."""
        if not self.account_owner or not self.active:
            return
        rng, deal_id = self.rng, self.next_deal
        account_id = rng.choice(list(self.account_owner))
        owner_id = self.account_owner[account_id] if rng.random() < 0.8 else rng.choice(self.active)
        deal_type = rng.choices(DEAL_TYPES, weights=(5, 3, 2))[0]
        last_close = add_quarters(quarter_start(self.end_date), 2) - DAY
        close_date = self.end_date + timedelta(days=rng.randint(0, (last_close - self.end_date).days))
        created_ms = self._moment_ms()
        deal = {
            "id": deal_id, "name": f"{deal_type} - account {account_id} #{deal_id}", "account_id": account_id,
            "owner_id": owner_id, "deal_type": deal_type, "stage": OPEN_STAGES[0],
            "amount": float(round(rng.uniform(*AMOUNT_RANGE[deal_type]), -2)),
            "probability": STAGES[OPEN_STAGES[0]][1],
            "created_date": datetime.fromtimestamp(created_ms / 1000, self.zone).date().isoformat(),
            "close_date": close_date.isoformat(), "lead_source": rng.choice(LEAD_SOURCES),
            "created_ms": created_ms, "modified_ms": created_ms, "deleted": 0,
        }
        self.next_deal += 1
        self.open[deal_id] = self.created[deal_id] = self.known[deal_id] = deal
        self.counts["created"] += 1

    def _add_calls(self, count: int) -> None:
        """Calls on deals open since before the day began (so a call never precedes its deal)."""
        deals = [deal for deal in self.open.values() if deal["created_ms"] < self.start_ms]
        for _ in range(count if deals else 0):
            deal, when = self.rng.choice(deals), self._moment_ms()
            self.calls.append({
                "id": self.next_call, "owner_id": deal["owner_id"], "deal_id": deal["id"],
                "subject": f"Call about {deal['name']}", "ts_ms": when,
                "duration_s": self.rng.randint(30, 2400), "direction": self.rng.choice(("Outbound", "Inbound")),
                "outcome": self.rng.choice(CALL_OUTCOMES), "created_ms": when, "modified_ms": when, "deleted": 0,
            })
            self.next_call += 1
            self.counts["calls"] += 1

    # -- writing ------------------------------------------------------------------------------
    def write(self) -> None:
        self.conn.executemany(
            "UPDATE deals SET stage = :stage, probability = :probability, amount = :amount,"
            " deleted = :deleted, modified_ms = :modified_ms WHERE id = :id", list(self.touched.values()))
        insert_rows(self.conn, "deals", list(self.created.values()))
        insert_rows(self.conn, "calls", self.calls)


def _active_owners(conn: sqlite3.Connection) -> list[int]:
    rows = conn.execute("SELECT id FROM owners WHERE deleted = 0 AND is_active = 1 ORDER BY id").fetchall()
    return [row[0] for row in rows]


def _burst(conn: sqlite3.Connection, rng: random.Random, modified_ms: int) -> int:
    """A territory realignment: live deals (then calls, in a small org) get new owners at one time."""
    active = _active_owners(conn)
    if not active:
        return 0
    deal_ids = [row[0] for row in conn.execute("SELECT id FROM deals WHERE deleted = 0 ORDER BY id")]
    size = max(BURST_MIN, round(len(deal_ids) * BURST_SHARE))
    picked = {"deals": rng.sample(deal_ids, min(size, len(deal_ids)))}
    if len(picked["deals"]) < size:
        call_ids = [row[0] for row in conn.execute("SELECT id FROM calls WHERE deleted = 0 ORDER BY id")]
        picked["calls"] = rng.sample(call_ids, min(size - len(picked["deals"]), len(call_ids)))
    for table, ids in picked.items():
        conn.executemany(f"UPDATE {table} SET owner_id = ?, modified_ms = ? WHERE id = ?",
                         [(rng.choice(active), modified_ms, row_id) for row_id in ids])
    return sum(len(ids) for ids in picked.values())
