"""The canonical store: what connectors produce, whatever CRM it came from.

Every row carries its `source` ("salesforce" or "hubspot") and the CRM's own id, so the
same logical org synced from both CRMs lives side by side and rules can pick one source.
Values are normalised here (dates as dates, amounts as floats, stage labels, owner emails)
so that okr_mapping never needs to know which CRM a record came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Index, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine

from connectors.migrations import STORE_SCHEMA
from connectors.migrations.runner import migrate

DATABASE_URL_ENV = "OKR_SYNC_DATABASE_URL"
DEFAULT_DATABASE_PATH = Path(".okr-sync") / "store.db"

SOURCES = ("salesforce", "hubspot")


class Owner(SQLModel, table=True):
    """A CRM user who owns deals and activities (Salesforce User, HubSpot owner)."""

    __tablename__ = "owner"
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    email: str | None = Field(default=None, index=True)
    name: str | None = None
    team: str | None = None
    region: str | None = None
    is_active: bool = True
    modified_at: datetime | None = None
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class Deal(SQLModel, table=True):
    """An opportunity / deal; amounts in the org currency, dates as calendar dates."""

    __tablename__ = "deal"
    # Metrics read one source's live deals over a date range (see connectors/migrations/legacy.py). The close-date
    # index covers the fields rules filter, group and aggregate on, so a quarter is one range scan.
    __table_args__ = (
        # covering: the deal fields rules filter, group and sum on, and probability (the pipeline forecast)
        Index("ix_deal_live_close_v2", "source", "is_deleted", "close_date", "is_won", "is_closed", "amount",
              "owner_id", "deal_type", "stage", "lead_source", "created_date", "account_id", "probability"),
        Index("ix_deal_live_created", "source", "is_deleted", "created_date"),
    )
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    name: str | None = None
    owner_id: str | None = None
    account_id: str | None = None
    deal_type: str | None = None  # "New Business" | "Renewal" | "Upsell" (CRM label)
    stage: str | None = None  # stage label, e.g. "Closed Won"
    amount: float | None = None
    probability: float | None = None  # 0-100
    is_closed: bool = False
    is_won: bool = False
    created_date: date | None = None
    close_date: date | None = None
    lead_source: str | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class Activity(SQLModel, table=True):
    """A sales activity: `kind` is "call", "email" or "meeting" (Task subtypes / Event; engagements).

    `activity_date` is the call's or email's date, a meeting's start date; `duration_seconds` a
    call's length or a meeting's planned span; `direction` "inbound" / "outbound" where known.
    """

    __tablename__ = "activity"
    __table_args__ = (
        Index("ix_activity_live_date", "source", "is_deleted", "activity_date", "kind", "direction", "outcome",
              "duration_seconds", "owner_id", "deal_id"),
    )
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    kind: str = "call"
    subject: str | None = None
    owner_id: str | None = None
    deal_id: str | None = None
    activity_date: date | None = None
    duration_seconds: int | None = None
    outcome: str | None = None
    direction: str | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class Account(SQLModel, table=True):
    """A customer or prospect company (Salesforce Account, HubSpot company)."""

    __tablename__ = "account"
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    name: str | None = None
    owner_id: str | None = None
    country: str | None = None
    industry: str | None = None
    account_type: str | None = None  # "Customer" | "Prospect" (CRM label)
    created_date: date | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class Contact(SQLModel, table=True):
    """A person at an account (Salesforce Contact; HubSpot contact, every lifecycle stage)."""

    __tablename__ = "contact"
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    name: str | None = None
    email: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    lead_source: str | None = None
    lifecycle_stage: str | None = None  # HubSpot lifecycle stage label, e.g. "Customer"; None in Salesforce
    created_date: date | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class Lead(SQLModel, table=True):
    """A Salesforce lead, converted or not (HubSpot keeps leads as contacts with a lifecycle stage)."""

    __tablename__ = "lead"
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    name: str | None = None
    email: str | None = None
    company: str | None = None
    country: str | None = None
    owner_id: str | None = None
    lead_source: str | None = None
    status: str | None = None
    is_converted: bool = False
    converted_date: date | None = None
    converted_account_id: str | None = None
    converted_contact_id: str | None = None
    created_date: date | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class SupportCase(SQLModel, table=True):
    """A support case (Salesforce Case, HubSpot ticket); times kept to the second for SLA metrics."""

    __tablename__ = "support_case"
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    subject: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    status: str | None = None  # status / pipeline stage label
    priority: str | None = None  # "High" | "Medium" | "Low"
    origin: str | None = None  # "Phone" | "Email" | "Web"
    is_closed: bool = False
    created_at: datetime | None = None
    closed_at: datetime | None = None
    created_date: date | None = None
    closed_date: date | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class Campaign(SQLModel, table=True):
    """A marketing campaign (Salesforce Campaign); costs and expected revenue in the org currency."""

    __tablename__ = "campaign"
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    name: str | None = None
    campaign_type: str | None = None
    status: str | None = None
    is_active: bool = False
    owner_id: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    budgeted_cost: float | None = None
    actual_cost: float | None = None
    expected_revenue: float | None = None
    created_date: date | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


class LineItem(SQLModel, table=True):
    """A product line of a deal (OpportunityLineItem with its Product2; HubSpot line item)."""

    __tablename__ = "line_item"
    source: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    deal_id: str | None = Field(default=None, index=True)
    product_id: str | None = None
    product_name: str | None = None
    product_family: str | None = None
    quantity: float | None = None
    unit_price: float | None = None
    total_price: float | None = None
    created_date: date | None = None
    modified_at: datetime | None = None
    is_deleted: bool = False
    custom: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default={}))


# Every table of canonical CRM records (what a stream writes into), by entity name.
RECORD_MODELS: dict[str, type[SQLModel]] = {
    "owner": Owner, "account": Account, "contact": Contact, "lead": Lead, "deal": Deal,
    "line_item": LineItem, "activity": Activity, "case": SupportCase, "campaign": Campaign,
}


class SyncState(SQLModel, table=True):
    """The incremental cursor of one stream: (timestamp, id) of the last record stored."""

    __tablename__ = "sync_state"
    source: str = Field(primary_key=True)
    stream: str = Field(primary_key=True)
    watermark: datetime | None = None
    last_id: str | None = None
    records_last_run: int = 0
    updated_at: datetime | None = None
    field_set: str | None = None  # digest of the custom fields the stream was read with (incremental.py)


class WritebackLedger(SQLModel, table=True):
    """What okr-sync last wrote for one KR key into one CRM, so unchanged rows are not re-sent."""

    __tablename__ = "writeback_ledger"
    target: str = Field(primary_key=True)  # "salesforce" | "hubspot"
    key: str = Field(primary_key=True)
    fingerprint: str
    record_id: str | None = None
    written_at: datetime
    # The payload last written (as the connector sent it, without the sync timestamp), so
    # `okr-sync plan` can show old -> new; None for rows written before this column existed.
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class WritebackRejection(SQLModel, table=True):
    """A record a CRM refused (validation rule, locked row, missing field), kept until it is written:
    the next run sends it again (the ledger never confirmed it) and reports it while it fails."""

    __tablename__ = "writeback_rejection"
    target: str = Field(primary_key=True)  # "salesforce" | "hubspot"
    object: str = Field(primary_key=True)  # objective | key_result | checkin
    key: str = Field(primary_key=True)
    message: str
    first_seen: datetime
    last_seen: datetime
    attempts: int = 1


class RunLockHolder(SQLModel, table=True):
    """Who holds the store's run lock (connectors.run_lock): a row while a run holds it."""

    __tablename__ = "run_lock"
    name: str = Field(primary_key=True)  # the lock: "sync", one run at a time per store
    token: str  # the holder's own random id: only it renews or releases the row
    pid: int
    host: str
    started_at: datetime
    expires_at: datetime | None = None  # SQLite: the lease's end, renewed while the run lives; PostgreSQL: None
    label: str | None = None  # what holds it, e.g. its Prefect flow run


class AlertLedger(SQLModel, table=True):
    """One alert (task or celebration post) per CRM: `queued` when its transition is recorded, `pending`
    just before the request that creates it, `sent` with the CRM record's id after
    (connectors.alert_ledger), so no transition is alerted twice nor lost."""

    __tablename__ = "alert_ledger"
    target: str = Field(primary_key=True)  # "salesforce" | "hubspot"
    key: str = Field(primary_key=True)  # okr_mapping.alerts: <kr key>|<group>|<transition>|<period end>|<day>
    kind: str  # task | post
    kr_key: str
    state: str = Field(index=True)  # queued | pending | sent
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # the alert row, as queued
    record_id: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


def database_url(explicit: str | None = None) -> str:
    """The store's SQLAlchemy URL: explicit, then $OKR_SYNC_DATABASE_URL, then a local SQLite file."""
    if explicit:
        return explicit
    from_env = os.environ.get(DATABASE_URL_ENV)
    if from_env:
        return from_env
    DEFAULT_DATABASE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DATABASE_PATH}"


def make_engine(url: str | None = None) -> Engine:
    """Create the engine and bring the store's tables to the latest migration (connectors/migrations).

    SQLite gets WAL so a reader never blocks the sync, and a busy timeout so a writer waits for another
    (parallel stream extraction, a second process) instead of failing with "database is locked".
    """
    resolved = database_url(url)
    engine = create_engine(resolved)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may itself wait for a writer
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    migrate(engine, STORE_SCHEMA)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def upsert_rows(session: Session, model: type[SQLModel], rows: Iterable[dict[str, Any]]) -> int:
    """Insert or replace canonical rows by primary key; returns the row count.

    Uses the dialect's native upsert (SQLite / PostgreSQL ON CONFLICT) so a re-extracted
    record overwrites its previous version instead of duplicating it. The rows go as one
    executemany of a single statement, far cheaper than one giant multi-row VALUES.
    """
    batch = list(rows)
    if not batch:
        return 0
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table)
    keys = [column.name for column in table.primary_key.columns]
    updates = {name: statement.excluded[name] for name in batch[0] if name not in keys}
    session.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), batch)
    return len(batch)
