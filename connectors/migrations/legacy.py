"""Stores made before migrations existed: brought to revision 0001 by the stop-gaps okr-sync ran on every start
until then, so the runner can stamp them 0001 and upgrade them like any other.

Before migrations, `create_all` made the tables and two stop-gaps added what it cannot: the columns and indexes
added to existing tables later. They run once more, in the migration's transaction and under its lock. They
describe revision 0001, not the current models: what a later revision adds is left to that revision.
"""

from __future__ import annotations

from sqlalchemy import Table, inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from connectors.migrations.runner import owned_tables

# The tables of revision 0001 and their indexes (besides primary keys).
FIRST_RELEASE: dict[str, tuple[str, ...]] = {
    "account": (), "activity": ("ix_activity_live_date",), "campaign": (), "contact": (),
    "deal": ("ix_deal_live_close_v2", "ix_deal_live_created"), "lead": (), "line_item": ("ix_line_item_deal_id",),
    "owner": ("ix_owner_email",), "support_case": (), "sync_state": (), "writeback_ledger": (),
    "writeback_rejection": (),
}

# Indexes later ones replaced: dropped from stores an older okr-sync created.
RETIRED_INDEXES = ("ix_deal_source_close", "ix_activity_source_date", "ix_deal_live_close")

# Columns added to existing tables after their first release: (table, column, SQL type); all nullable.
ADDED_COLUMNS = (("writeback_ledger", "payload", "JSON"), ("activity", "direction", "VARCHAR"),
                 ("sync_state", "field_set", "VARCHAR"))


def adopt_older_store(connection: Connection) -> None:
    """Bring a store an older okr-sync made (tables, no version table) to the first released schema."""
    tables = [table for table in owned_tables("connectors") if table.name in FIRST_RELEASE]
    SQLModel.metadata.create_all(connection, tables=tables)  # the tables it lacks
    add_missing_columns(connection)
    add_missing_indexes(connection, tables)


def add_missing_indexes(connection: Connection, tables: list[Table]) -> None:
    """Create the first release's indexes an older store lacks, and drop retired ones.

    `create_all` skipped tables that existed, and their new indexes with them. Metric queries filter
    `source = ? AND is_deleted IS false AND <time field> BETWEEN ...`, hence indexes led by
    (source, is_deleted, date); the first build on a large store takes a few seconds, once.
    """
    if connection.dialect.name not in ("sqlite", "postgresql"):
        return
    inspector = inspect(connection)
    existing = {
        (table, index["name"]) for table in inspector.get_table_names() for index in inspector.get_indexes(table)
    }
    for table in tables:
        for index in table.indexes:
            if index.name in FIRST_RELEASE[table.name] and (table.name, index.name) not in existing:
                index.create(connection)
    for name in sorted({name for _table, name in existing if name in RETIRED_INDEXES}):
        connection.execute(text(f"DROP INDEX IF EXISTS {name}"))


def add_missing_columns(connection: Connection) -> None:
    """Add the columns `create_all` could not add to a table an older okr-sync created."""
    if connection.dialect.name not in ("sqlite", "postgresql"):
        return
    inspector = inspect(connection)
    for table, column, sql_type in ADDED_COLUMNS:
        if column not in {existing["name"] for existing in inspector.get_columns(table)}:
            connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
