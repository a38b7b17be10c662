"""The sandbox org's persistent state: one SQLite file in the sandbox data directory.

Both CRM faces read the same logical tables (owners, accounts, deals, calls, products, line items,
emails, meetings, leads, cases, campaigns), which is what makes them one org. Records written
through the APIs (OKR custom objects) live in `custom_records`, kept apart per CRM as they would be
in two real systems.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connectors.local_dates import local_date, local_midnight, zone_of
from connectors.sandbox.generator import GENERATOR_VERSION, OrgSpec, generate_org
from connectors.sandbox.rejections import RejectionRules

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS owners (
    id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, team TEXT, region TEXT,
    is_active INTEGER, created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY, name TEXT, country TEXT, industry TEXT, account_type TEXT, owner_id INTEGER,
    created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS deals (
    id INTEGER PRIMARY KEY, name TEXT, account_id INTEGER, owner_id INTEGER, deal_type TEXT, stage TEXT,
    amount REAL, probability REAL, created_date TEXT, close_date TEXT, lead_source TEXT,
    created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY, owner_id INTEGER, deal_id INTEGER, subject TEXT, ts_ms INTEGER,
    duration_s INTEGER, direction TEXT, outcome TEXT, created_ms INTEGER, modified_ms INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY, name TEXT, family TEXT, list_price REAL, is_active INTEGER,
    created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS line_items (
    id INTEGER PRIMARY KEY, deal_id INTEGER, product_id INTEGER, quantity REAL, unit_price REAL,
    created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS emails (
    id INTEGER PRIMARY KEY, owner_id INTEGER, deal_id INTEGER, subject TEXT, ts_ms INTEGER, direction TEXT,
    created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meetings (
    id INTEGER PRIMARY KEY, owner_id INTEGER, deal_id INTEGER, subject TEXT, start_ms INTEGER, end_ms INTEGER,
    outcome TEXT, created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS leads (
    id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, company TEXT, country TEXT,
    owner_id INTEGER, lead_source TEXT, status TEXT, lifecycle TEXT, account_id INTEGER, converted_ms INTEGER,
    created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY, account_id INTEGER, owner_id INTEGER, subject TEXT, status TEXT, priority TEXT,
    origin TEXT, created_ms INTEGER, closed_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY, name TEXT, campaign_type TEXT, status TEXT, start_date TEXT, end_date TEXT,
    budgeted_cost REAL, actual_cost REAL, expected_revenue REAL, owner_id INTEGER,
    created_ms INTEGER, modified_ms INTEGER, deleted INTEGER NOT NULL DEFAULT 0);
CREATE VIEW IF NOT EXISTS tasks AS
    SELECT id, owner_id, deal_id, subject, ts_ms, duration_s, direction, outcome, 'Call' AS subtype,
           created_ms, modified_ms, deleted FROM calls
    UNION ALL
    SELECT id + 1000000000, owner_id, deal_id, subject, ts_ms, NULL, direction, NULL, 'Email',
           created_ms, modified_ms, deleted FROM emails;
CREATE INDEX IF NOT EXISTS ix_deals_live_modified ON deals (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_products_live_modified ON products (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_line_items_live_modified ON line_items (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_emails_live_modified ON emails (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_meetings_live_modified ON meetings (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_leads_live_modified ON leads (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_cases_live_modified ON cases (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_campaigns_live_modified ON campaigns (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_calls_live_modified ON calls (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_owners_live_modified ON owners (deleted, modified_ms, id);
CREATE INDEX IF NOT EXISTS ix_accounts_live_modified ON accounts (deleted, modified_ms, id);
CREATE TABLE IF NOT EXISTS custom_records (
    crm TEXT NOT NULL, object TEXT NOT NULL, id INTEGER NOT NULL, unique_key TEXT,
    fields TEXT NOT NULL, created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL,
    PRIMARY KEY (crm, object, id), UNIQUE (crm, object, unique_key));
"""

CLOCK_META_KEY = "clock"  # the org's simulated "now" (ISO UTC), advanced by `okr-sync sandbox tick`
TICKS_META_KEY = "ticks"  # how many ticks the org has had
VERSION_META_KEY = "generator_version"  # the generator version that seeded the org (none: version 1)
ENTITY_TABLES = {"owner": "owners", "account": "accounts", "deal": "deals", "call": "calls", "product": "products",
                 "line_item": "line_items", "email": "emails", "meeting": "meetings", "lead": "leads",
                 "case": "cases", "campaign": "campaigns"}
INSERT_BATCH = 5_000


class SandboxState:
    """Thread-safe access to the sandbox database (the HTTP servers run in threads)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "sandbox.db"
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        self._zone: ZoneInfo | None = None
        self.rejections = RejectionRules()  # per-record write refusals a test injects (rejections.py)
        # The org's calendar in SQL: Salesforce date fields and HubSpot dates picked in the portal's zone
        self._conn.create_function("local_date", 1, self._local_date)  # not deterministic: the zone can change
        self._conn.create_function("local_midnight_ms", 1, self._local_midnight_ms)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- set-up ---------------------------------------------------------------------------
    @property
    def is_seeded(self) -> bool:
        return self.get_meta("spec") is not None

    def seed(self, spec: OrgSpec) -> dict[str, int]:
        """Load a generated org in batches (streamed: memory stays flat for any size)."""
        with self.transaction():
            return self._fill(spec)

    def _fill(self, spec: OrgSpec) -> dict[str, int]:
        counts = dict.fromkeys(ENTITY_TABLES, 0)
        pending: dict[str, list[dict[str, Any]]] = {entity: [] for entity in ENTITY_TABLES}
        for entity, row in generate_org(spec):
            pending[entity].append(row)
            counts[entity] += 1
            if len(pending[entity]) >= INSERT_BATCH:
                self._insert(ENTITY_TABLES[entity], pending[entity])
                pending[entity] = []
        for entity, rows in pending.items():
            self._insert(ENTITY_TABLES[entity], rows)
        self.set_meta("spec", json.dumps(spec.to_json()))
        self._zone = None
        self.set_meta(VERSION_META_KEY, str(GENERATOR_VERSION))
        if self.get_meta("token") is None:
            self.set_meta("token", secrets.token_urlsafe(24))
        return counts

    @property
    def is_outdated(self) -> bool:
        """Seeded by another generator version (one without the newer tables, say)?"""
        return self.is_seeded and self.get_meta(VERSION_META_KEY) != str(GENERATOR_VERSION)

    def regenerate(self, time_zone: str | None = None) -> dict[str, int]:
        """Generate the org afresh from its stored spec (in `time_zone` when given): same token, clock
        back at the anchor.

        The logical tables are dropped and created again (in one transaction), the tick count and
        the records written through the APIs go, since they refer to the old rows.
        """
        spec = self.spec if time_zone is None else replace(self.spec, time_zone=time_zone)
        with self.transaction() as conn:
            conn.execute("DROP VIEW IF EXISTS tasks")
            for table in ENTITY_TABLES.values():
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("DELETE FROM custom_records")
            conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (CLOCK_META_KEY, TICKS_META_KEY))
            return self._fill(spec)

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        placeholders = ", ".join(f":{name}" for name in columns)
        self._conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows
        )

    @property
    def spec(self) -> OrgSpec:
        raw = self.get_meta("spec")
        if raw is None:
            raise RuntimeError(f"sandbox at {self.data_dir} has no org yet")
        return OrgSpec.from_json(json.loads(raw))

    @property
    def zone(self) -> ZoneInfo:
        """The org's time zone (its spec's): the calendar its date fields are in."""
        if self._zone is None:
            self._zone = zone_of(self.spec.time_zone) if self.is_seeded else ZoneInfo("UTC")
        return self._zone

    def _local_date(self, ms: int | None) -> str | None:
        """SQL local_date(ms): the org's calendar date (YYYY-MM-DD) of a millisecond timestamp."""
        if ms is None:
            return None
        day = local_date(datetime.fromtimestamp(ms / 1000, UTC), self.zone)
        return day.isoformat() if day else None

    def _local_midnight_ms(self, day: str | None) -> int | None:
        """SQL local_midnight_ms(date): when that day begins in the org's zone, in ms."""
        if day is None:
            return None
        return int(local_midnight(date.fromisoformat(day), self.zone).timestamp()) * 1000

    @property
    def token(self) -> str:
        token = self.get_meta("token")
        if token is None:
            token = secrets.token_urlsafe(24)
            self.set_meta("token", token)
        return token

    # -- access -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def clock(self) -> datetime:
        """The org's simulated "now": the spec's anchor until a tick advances it."""
        raw = self.get_meta(CLOCK_META_KEY)
        return datetime.fromisoformat(raw) if raw is not None else self.spec.anchor

    @property
    def local_clock(self) -> datetime:
        """The org's clock in its own time zone (what "today" is for its users)."""
        return self.clock.astimezone(self.zone)

    def set_clock(self, moment: datetime) -> None:
        self.set_meta(CLOCK_META_KEY, moment.isoformat())

    def next_modstamp_ms(self) -> int:
        """A write time: wall clock, but never before the org's clock (its anchor, or the last tick)."""
        return max(int(time.time() * 1000), int(self.clock.timestamp() * 1000) + 1000)

    # -- custom objects (writeback targets) --------------------------------------------------
    def custom_records(self, crm: str, obj: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT id, unique_key, fields, created_ms, modified_ms FROM custom_records"
            " WHERE crm = ? AND object = ? ORDER BY id", (crm, obj))
        return [{**dict(row), "fields": json.loads(row["fields"])} for row in rows]

    def upsert_custom(self, crm: str, obj: str, unique_key: str, fields: dict[str, Any]) -> tuple[int, bool]:
        """Create or update one custom record by its unique key; returns (id, created)."""
        now = self.next_modstamp_ms()
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id, fields FROM custom_records WHERE crm = ? AND object = ? AND unique_key = ?",
                (crm, obj, unique_key)).fetchone()
            if row is not None:
                merged = {**json.loads(row["fields"]), **fields}
                conn.execute("UPDATE custom_records SET fields = ?, modified_ms = ? WHERE crm = ? AND"
                             " object = ? AND id = ?", (json.dumps(merged), now, crm, obj, row["id"]))
                return row["id"], False
            next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM custom_records WHERE crm = ?"
                                   " AND object = ?", (crm, obj)).fetchone()[0]
            conn.execute("INSERT INTO custom_records (crm, object, id, unique_key, fields, created_ms,"
                         " modified_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (crm, obj, next_id, unique_key, json.dumps(fields), now, now))
            return next_id, True


def open_sandbox(data_dir: Path, spec: OrgSpec | None = None, time_zone: str | None = None) -> SandboxState:
    """Open the sandbox in `data_dir`, generating the org on first use (kept across restarts).

    An org seeded by another generator version is generated again from its stored spec (so a
    persisted demo org gains the tables added since); `spec` only applies to an empty directory.
    `time_zone`: the org's, when given (the demo's config's): an org in another one is generated again.
    """
    state = SandboxState(data_dir)
    if not state.is_seeded:
        spec = spec or OrgSpec()
        state.seed(replace(spec, time_zone=time_zone) if time_zone else spec)
    elif time_zone and state.spec.time_zone != time_zone:
        logger.warning("Sandbox org in %s is in time zone %s; regenerating it in %s (clock, ticks and written"
                       " records reset).", data_dir, state.spec.time_zone, time_zone)
        state.regenerate(time_zone)
    elif state.is_outdated:
        version = state.get_meta(VERSION_META_KEY) or "1"
        logger.warning("Sandbox org in %s was generated by generator version %s; regenerating it with version %s "
                       "from its stored spec (clock, ticks and written records reset).",
                       data_dir, version, GENERATOR_VERSION)
        state.regenerate()
    return state
