"""The tick's simulation of everything around the deals: leads, cases, emails, meetings, line items,
campaigns and products.

Split from connectors.sandbox.tick so each module stays small: `tick` drives the days and moves the
deals and calls (`DealSimulation`); `OrgTables` moves the rest of the org in step with them, from a
random stream of its own, so adding these tables left the deal and call changes of every tick as
they were. Leads come in, advance and convert, cases open and close, emails and meetings accrue,
meetings get their outcome, campaigns start, spend and end, list prices change, and a deal's line
items keep summing to its amount.
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.sandbox.generator import (
    CASE_ORIGINS,
    CASE_PRIORITIES,
    CASE_SUBJECTS,
    EMAIL_DIRECTIONS,
    EMAIL_SUBJECTS,
    LEAD_SOURCES,
    LEAD_STATUSES,
    MEETING_OUTCOMES,
    MEETING_SUBJECTS,
    PAST_MEETING_WEIGHTS,
    UNCONVERTED_LIFECYCLES,
    OrgSpec,
    deal_line_items,
    free_company,
    meeting_slot,
    person_name,
    to_ms,
)

if TYPE_CHECKING:
    from connectors.sandbox.tick import DealSimulation

CASE_SPAN_DAYS = 365  # the generator's cases per account arrive over about this many days
LEAD_CONVERT_RATE = 0.01  # share of open leads converting per day
LEAD_MOVE_RATE = 0.03  # share of open leads moving on (status or lifecycle) per day
CASE_MOVE_RATE = 0.15  # share of open cases changing status per day
SAME_DAY_CASE_SHARE = 0.35  # new cases solved the day they come in
LINE_REMOVE_RATE = 0.002  # share of open deals losing a line item per day (another line takes its total)
CAMPAIGN_SPEND_RATE = 0.2  # chance per day that a running campaign books more spend
PRODUCT_CHANGE_RATE = 0.1  # chance per day of a list price change
ROW_DELETE_RATE = 0.0005  # share of the leads, cases, emails and meetings deleted per day


def stochastic_round(rng: random.Random, mean: float) -> int:
    """`mean` rounded down or up at random, so small rates still add up over days."""
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)


def insert_rows(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (all with the first row's columns) in one statement; the deal simulation uses it too."""
    if rows:
        columns = list(rows[0])
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                         f"({', '.join(':' + name for name in columns)})", rows)


class OrgTables:
    """Everything around the deals, changed day by day in memory, then written in one go.

    Rows the tick reads or creates are kept by table and id; `dirty` and `new` say which to update
    and which to insert. Working sets (open leads, open cases, booked meetings, campaigns) are
    loaded once; other rows are read by id when a deletion picks them.
    """

    tables = ("products", "line_items", "emails", "meetings", "leads", "cases", "campaigns")

    def __init__(self, conn: sqlite3.Connection, spec: OrgSpec, rng: random.Random, deals: DealSimulation) -> None:
        self.conn, self.spec, self.rng, self.deals = conn, spec, rng, deals
        self.rows: dict[str, dict[int, dict[str, Any]]] = {table: {} for table in self.tables}
        self.dirty: dict[str, set[int]] = {table: set() for table in self.tables}
        self.new: dict[str, set[int]] = {table: set() for table in self.tables}
        self.deletions: Counter[str] = Counter()
        self.stored_max = {table: conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
                           for table in self.tables}
        self.next_id = {table: last + 1 for table, last in self.stored_max.items()}
        self.accounts = {row[0]: tuple(row[1:]) for row in conn.execute(
            "SELECT id, name, country, account_type FROM accounts WHERE deleted = 0 ORDER BY id")}
        self.products = self._load("products", "SELECT * FROM products WHERE deleted = 0 ORDER BY id")
        self.sellable = [row["id"] for row in self.products.values() if row["is_active"]] or [None]
        self.pools = {
            "leads": self._load("leads", "SELECT * FROM leads WHERE deleted = 0 AND converted_ms IS NULL"
                                " AND status != ? ORDER BY id", (LEAD_STATUSES[3],)),
            "cases": self._load("cases", "SELECT * FROM cases WHERE deleted = 0 AND status != 'Closed' ORDER BY id"),
            "meetings": self._load("meetings", "SELECT * FROM meetings WHERE deleted = 0 AND outcome = 'Scheduled'"
                                   " ORDER BY id"),
            "campaigns": self._load("campaigns", "SELECT * FROM campaigns WHERE deleted = 0 ORDER BY id"),
        }
        self.line_removals: dict[int, int] = {}  # deal id -> when one of its line items was removed

    def _load(self, table: str, sql: str, params: tuple[Any, ...] = ()) -> dict[int, dict[str, Any]]:
        rows = {row["id"]: dict(row) for row in self.conn.execute(sql, params)}
        self.rows[table].update(rows)
        return dict(rows)

    def _row(self, table: str, row_id: int) -> dict[str, Any] | None:
        if row_id not in self.rows[table]:
            row = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
            if row is None:
                return None
            self.rows[table][row_id] = dict(row)
        return self.rows[table][row_id]

    def _add(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        row_id = row.get("id") or self.next_id[table]
        self.next_id[table] = max(self.next_id[table], row_id + 1)
        row = {**row, "id": row_id, "deleted": row.get("deleted", 0)}
        self.rows[table][row["id"]] = row
        self.new[table].add(row["id"])
        return row

    def _touch(self, table: str, row: dict[str, Any], moment_ms: int | None = None) -> int:
        row["modified_ms"] = max(row["modified_ms"] or 0, moment_ms or self._moment_ms())
        if row["id"] not in self.new[table]:
            self.dirty[table].add(row["id"])
        return row["modified_ms"]

    def _flag_deleted(self, table: str, row: dict[str, Any], moment_ms: int | None = None) -> None:
        row["deleted"] = 1
        self._touch(table, row, moment_ms)
        self.pools.get(table, {}).pop(row["id"], None)
        self.deletions[table] += 1

    def _moment_ms(self, after_ms: int | None = None) -> int:
        """A whole second strictly inside the current day (and after `after_ms`, when given)."""
        low = max(self.start_ms, after_ms or 0)
        return low + 1000 * self.rng.randrange(1, max((self.end_ms - low) // 1000, 2))

    def _count(self, mean: float) -> int:
        return stochastic_round(self.rng, mean * self.deals.volume)

    def _older(self, table: str) -> list[dict[str, Any]]:
        """The working set's rows created before the day began (so a change never precedes creation)."""
        return [row for row in self.pools[table].values() if row["created_ms"] < self.start_ms]

    def _pick(self, rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
        return self.rng.sample(rows, min(count, len(rows)))

    # -- one day ------------------------------------------------------------------------------
    def simulate_day(self, day_start: datetime, day_end: datetime) -> None:
        self.start_ms, self.end_ms = to_ms(day_start), to_ms(day_end)
        leads_per_day = self.deals.per_day * self.spec.leads_per_deal
        self._convert_leads(self._count(len(self.pools["leads"]) * LEAD_CONVERT_RATE))
        self._advance_leads(self._count(len(self.pools["leads"]) * LEAD_MOVE_RATE))
        for _ in range(self._count(leads_per_day)):
            self._new_lead()
        self._advance_cases(self._count(len(self.pools["cases"]) * CASE_MOVE_RATE))
        for _ in range(self._count(len(self.accounts) * self.spec.cases_per_account / CASE_SPAN_DAYS)):
            self._new_case()
        self._settle_meetings()
        deals = [deal for deal in self.deals.open.values() if deal["created_ms"] < self.start_ms]
        self._add_emails(deals, self._count(self.deals.per_day * self.spec.emails_per_deal))
        self._add_meetings(deals, self._count(self.deals.per_day * self.spec.meetings_per_deal))
        stored = [deal for deal in deals if deal["id"] not in self.deals.created]
        for deal in self._pick(stored, self._count(len(stored) * LINE_REMOVE_RATE)):
            self.line_removals[deal["id"]] = self._moment_ms()
        self._run_campaigns(day_end.astimezone(self.deals.zone).date().isoformat())
        if self.products and self.rng.random() < PRODUCT_CHANGE_RATE:
            product = self.rng.choice(list(self.products.values()))
            product["list_price"] = float(max(round(product["list_price"] * self.rng.uniform(0.9, 1.15), -2), 100))
            self._touch("products", product)
        for table in ("leads", "cases", "emails", "meetings"):
            self._delete_some(table, self._count(self.stored_max[table] * ROW_DELETE_RATE))

    def _new_lead(self) -> None:
        first, last = person_name(self.rng)
        company, country = free_company(self.rng)
        created_ms = self._moment_ms()
        lead = self._add("leads", {
            "first_name": first, "last_name": last, "email": None, "company": company, "country": country,
            "owner_id": self.rng.choice(self.deals.active) if self.deals.active else None,
            "lead_source": self.rng.choice(LEAD_SOURCES), "status": LEAD_STATUSES[0],
            "lifecycle": self.rng.choice(UNCONVERTED_LIFECYCLES[:2]), "account_id": None, "converted_ms": None,
            "created_ms": created_ms, "modified_ms": created_ms})
        lead["email"] = f"{first}.{last}.{lead['id']}@example.org".lower()
        self.pools["leads"][lead["id"]] = lead

    def _convert_leads(self, count: int) -> None:
        """Converted into an existing account (the tick leaves accounts as they are)."""
        if not self.accounts:
            return
        for lead in self._pick(self._older("leads"), count):
            account_id = self.rng.choice(list(self.accounts))
            name, country, account_type = self.accounts[account_id]
            lead.update(status=LEAD_STATUSES[2], account_id=account_id, company=name, country=country,
                        lifecycle="customer" if account_type == "Customer" else "opportunity")
            lead["converted_ms"] = self._touch("leads", lead)
            del self.pools["leads"][lead["id"]]

    def _advance_leads(self, count: int) -> None:
        """Open leads get contacted and qualified; a qualified one may also be dropped."""
        for lead in self._pick(self._older("leads"), count):
            lifecycle = lead["lifecycle"]
            stage = UNCONVERTED_LIFECYCLES.index(lifecycle) if lifecycle in UNCONVERTED_LIFECYCLES else 0
            if lead["status"] == LEAD_STATUSES[0]:
                lead["status"] = LEAD_STATUSES[1]
            elif stage + 1 < len(UNCONVERTED_LIFECYCLES):
                lead["lifecycle"] = UNCONVERTED_LIFECYCLES[stage + 1]
            elif self.rng.random() < 0.3:
                lead["status"] = LEAD_STATUSES[3]
                del self.pools["leads"][lead["id"]]
            self._touch("leads", lead)

    def _new_case(self) -> None:
        account_id = self.rng.choice(list(self.accounts)) if self.accounts else None
        owner = self.deals.account_owner.get(account_id) if account_id else None
        created_ms = self._moment_ms()
        case = self._add("cases", {
            "account_id": account_id, "owner_id": owner, "subject": self.rng.choice(CASE_SUBJECTS),
            "status": "New", "priority": self.rng.choices(CASE_PRIORITIES, weights=(2, 5, 3))[0],
            "origin": self.rng.choices(CASE_ORIGINS, weights=(3, 4, 3))[0], "created_ms": created_ms,
            "closed_ms": None, "modified_ms": created_ms})
        if self.end_ms - created_ms > 2000 and self.rng.random() < SAME_DAY_CASE_SHARE:
            case["status"], case["closed_ms"] = "Closed", self._moment_ms(created_ms)
            case["modified_ms"] = case["closed_ms"]
        else:
            self.pools["cases"][case["id"]] = case

    def _advance_cases(self, count: int) -> None:
        for case in self._pick(self._older("cases"), count):
            if case["status"] == "New":
                case["status"] = "Working"
            elif case["status"] == "Working" and self.rng.random() < 0.3:
                case["status"] = "Escalated"
            else:
                case["status"] = "Closed"
                del self.pools["cases"][case["id"]]
            moment = self._touch("cases", case)
            if case["status"] == "Closed":
                case["closed_ms"] = moment

    def _add_emails(self, deals: list[dict[str, Any]], count: int) -> None:
        for _ in range(count if deals else 0):
            deal, when = self.rng.choice(deals), self._moment_ms()
            self._add("emails", {
                "owner_id": deal["owner_id"], "deal_id": deal["id"],
                "subject": self.rng.choice(EMAIL_SUBJECTS).format(deal=deal["name"]), "ts_ms": when,
                "direction": self.rng.choices(EMAIL_DIRECTIONS, weights=(3, 2))[0],
                "created_ms": when, "modified_ms": when})

    def _add_meetings(self, deals: list[dict[str, Any]], count: int) -> None:
        """Meetings booked today for the coming two weeks."""
        for _ in range(count if deals else 0):
            deal, booked = self.rng.choice(deals), self._moment_ms()
            start, end = meeting_slot(self.rng, datetime.fromtimestamp(booked / 1000, UTC)
                                      + timedelta(seconds=self.rng.randrange(3_600, 14 * 86_400)))
            meeting = self._add("meetings", {
                "owner_id": deal["owner_id"], "deal_id": deal["id"],
                "subject": f"{self.rng.choice(MEETING_SUBJECTS)}: {deal['name']}", "start_ms": to_ms(start),
                "end_ms": to_ms(end), "outcome": "Scheduled", "created_ms": booked, "modified_ms": booked})
            self.pools["meetings"][meeting["id"]] = meeting

    def _settle_meetings(self) -> None:
        """Booked meetings that ended before the day began get their outcome."""
        for meeting in [row for row in self.pools["meetings"].values() if row["end_ms"] <= self.start_ms]:
            meeting["outcome"] = self.rng.choices(MEETING_OUTCOMES, weights=PAST_MEETING_WEIGHTS)[0]
            self._touch("meetings", meeting)
            del self.pools["meetings"][meeting["id"]]

    def _run_campaigns(self, today: str) -> None:
        """Planned campaigns start, running ones spend and end (a few are aborted)."""
        for campaign in self.pools["campaigns"].values():
            status = campaign["status"]
            if status == "Planned" and campaign["start_date"] <= today:
                campaign["status"] = "In Progress"
            elif status == "In Progress" and campaign["end_date"] < today:
                campaign["status"] = "Completed" if self.rng.random() < 0.9 else "Aborted"
            elif status == "In Progress" and self.rng.random() < CAMPAIGN_SPEND_RATE:
                budget = campaign["budgeted_cost"] or 0.0
                campaign["actual_cost"] = (campaign["actual_cost"] or 0.0) + float(round(
                    budget * self.rng.uniform(0.01, 0.06)))
            else:
                continue
            self._touch("campaigns", campaign)

    def _delete_some(self, table: str, count: int) -> None:
        """Rows stored before the tick, picked by id (deleted ones stay so: a miss deletes nothing)."""
        last = self.stored_max[table]
        for row_id in self.rng.sample(range(1, last + 1), min(count, last)):
            row = self._row(table, row_id)
            if row is not None and not row["deleted"]:
                self._flag_deleted(table, row)

    # -- line items and writing ----------------------------------------------------------------
    def _sync_line_items(self) -> None:
        """Line items follow their deals: new deals get theirs, deleted deals take theirs along, and a
        deal whose amount changed (or that lost a line) has one line adjusted so they sum to it."""
        deals = self.deals
        affected = sorted({deal_id for deal_id, deal in deals.touched.items()
                           if deal["deleted"] or deal_id in deals.amount_changed} | set(self.line_removals))
        lines: dict[int, list[dict[str, Any]]] = {deal_id: [] for deal_id in affected}
        if affected:
            self._load("line_items", "SELECT * FROM line_items WHERE deleted = 0 AND deal_id IN"
                       " (SELECT value FROM json_each(?)) ORDER BY id", (json.dumps(affected),))
            for line in self.rows["line_items"].values():
                if line["deal_id"] in lines and not line["deleted"]:
                    lines[line["deal_id"]].append(line)
        for deal_id in affected:
            deal, live = deals.known[deal_id], lines[deal_id]
            moment = max(deal["modified_ms"], self.line_removals.get(deal_id, 0))
            if deal["deleted"]:
                for line in live:
                    self._flag_deleted("line_items", line, deal["modified_ms"])
                continue
            if deal_id in self.line_removals and len(live) > 1:
                smallest = min(live, key=lambda line: (_total(line), line["id"]))
                self._flag_deleted("line_items", smallest, moment)
                live.remove(smallest)
            self._balance(deal, live, moment)
        ids = itertools.count(self.next_id["line_items"])
        for deal in deals.created.values():
            for line in deal_line_items(self.rng, deal, self.sellable, ids, deal["created_ms"], deal["modified_ms"]):
                self._add("line_items", {**line, "deleted": deal["deleted"]})
                self.deletions["line_items"] += deal["deleted"]  # a deal created and deleted in this tick

    def _balance(self, deal: dict[str, Any], live: list[dict[str, Any]], moment: int) -> None:
        amount = deal["amount"]
        if amount is None:
            return
        if not live:
            self._add("line_items", {"deal_id": deal["id"], "product_id": self.rng.choice(self.sellable),
                                     "quantity": 1.0, "unit_price": float(amount), "created_ms": moment,
                                     "modified_ms": moment})
            return
        delta = amount - sum(_total(line) for line in live)
        if abs(delta) < 0.005:
            return
        biggest = max(live, key=lambda line: (_total(line), -line["id"]))
        if _total(biggest) + delta > 0:
            _set_total(biggest, _total(biggest) + delta)
        else:  # the amount fell below the other lines: one line carries it all
            _set_total(biggest, amount)
            for line in live:
                if line is not biggest:
                    self._flag_deleted("line_items", line, moment)
        self._touch("line_items", biggest, moment)

    def changes(self) -> dict[str, int]:
        return {table: len(self.dirty[table] | self.new[table]) for table in self.tables}

    def write(self) -> None:
        self._sync_line_items()
        for table in self.tables:
            updated = [self.rows[table][row_id] for row_id in sorted(self.dirty[table])]
            if updated:
                columns = [name for name in updated[0] if name != "id"]
                self.conn.executemany(f"UPDATE {table} SET {', '.join(f'{name} = :{name}' for name in columns)}"
                                      " WHERE id = :id", updated)
            insert_rows(self.conn, table, [self.rows[table][row_id] for row_id in sorted(self.new[table])])


def _total(line: dict[str, Any]) -> float:
    return (line["quantity"] or 0) * (line["unit_price"] or 0)


def _set_total(line: dict[str, Any], total: float) -> None:
    """Keep the quantity when the unit price stays exact to the cent, else make it a single unit."""
    quantity = line["quantity"] or 1.0
    price = round(total / quantity, 2)
    if price * quantity != total:
        quantity, price = 1.0, total
    line["quantity"], line["unit_price"] = float(quantity), float(price)
