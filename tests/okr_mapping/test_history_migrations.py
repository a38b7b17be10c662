"""History migrations: okr_mapping's own scripts and version table, beside the store's and independent of them.

SQLite always; PostgreSQL too when $OKR_SYNC_TEST_POSTGRES_URL names a server (see tests/connectors/test_migrations).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, inspect
from sqlmodel import Session, SQLModel

from connectors.migrations import STORE_SCHEMA
from connectors.migrations.runner import current_revision, downgrade, head_revision
from connectors.store import make_engine
from okr_mapping import history
from okr_mapping.history import HISTORY_SCHEMA, KrCorrection, KrSnapshot
from tests.connectors.test_migrations import BACKENDS, fresh_database, schema_diff, statements, version_rows


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


def _snapshot(day: date) -> KrSnapshot:
    return KrSnapshot(source="salesforce", key="grow.revenue", as_of=day, objective_id="grow", kr_id="revenue",
                      period="2026-Q4", period_start=date(2026, 10, 1), period_end=date(2026, 12, 31), value=1.0,
                      baseline=0.0, target=2.0, progress=0.5, score=0.5, expected_progress=0.5, status="on_track",
                      recorded_at=datetime(2026, 11, 1, tzinfo=UTC))


def test_every_table_of_the_models_belongs_to_exactly_one_layer() -> None:
    store = {table.name for table in STORE_SCHEMA.tables()}
    kept = {table.name for table in HISTORY_SCHEMA.tables()}
    assert not store & kept
    assert store | kept == set(SQLModel.metadata.tables)
    # the first released tables (history.HISTORY_TABLES) and those added since by a migration
    assert kept == {table.name for table in history.HISTORY_TABLES} | {"kr_final"}


def test_the_history_upgraded_to_head_matches_the_models_beside_the_store(url: str) -> None:
    engine = make_engine(url)
    assert not {table.name for table in history.HISTORY_TABLES} & set(inspect(engine).get_table_names())
    history.ensure_tables(engine)
    assert schema_diff(engine, HISTORY_SCHEMA) == []
    assert schema_diff(engine, STORE_SCHEMA) == []
    assert version_rows(engine, HISTORY_SCHEMA) == [head_revision(HISTORY_SCHEMA)]
    assert version_rows(engine, STORE_SCHEMA) == [head_revision(STORE_SCHEMA)]
    engine.dispose()


def test_history_tables_older_than_migrations_are_kept_and_stamped(url: str) -> None:
    older = create_engine(url)
    old = MetaData()  # an okr-sync from before target changes were logged
    for table in (KrSnapshot.__table__, KrCorrection.__table__):  # type: ignore[attr-defined]
        table.to_metadata(old)
    old.create_all(older)
    with Session(older) as session:
        session.add(_snapshot(date(2026, 11, 1)))
        session.commit()
    older.dispose()
    engine = make_engine(url)
    history.ensure_tables(engine)
    assert version_rows(engine, HISTORY_SCHEMA) == [head_revision(HISTORY_SCHEMA)]
    assert schema_diff(engine, HISTORY_SCHEMA) == []
    assert [s.as_of for s in history.snapshots(engine, "salesforce")] == [date(2026, 11, 1)]
    engine.dispose()


def test_history_at_head_costs_one_query_per_engine_then_none(url: str) -> None:
    engine = make_engine(url)
    history.ensure_tables(engine)
    engine.dispose()
    again = make_engine(url)
    with statements() as seen:
        history.ensure_tables(again)
        history.ensure_tables(again)
    assert seen == [f"SELECT version_num FROM {HISTORY_SCHEMA.version_table}"]
    again.dispose()


def test_the_history_goes_down_to_base_and_up_again_without_touching_the_store(url: str) -> None:
    engine = make_engine(url)
    history.ensure_tables(engine)
    history.record(engine, history.HistoryChanges(snapshots=[_snapshot(date(2026, 11, 2))]))
    downgrade(engine, HISTORY_SCHEMA, "base")
    assert current_revision(engine, HISTORY_SCHEMA) is None
    remaining = set(inspect(engine).get_table_names())
    assert not {table.name for table in history.HISTORY_TABLES} & remaining
    assert {table.name for table in STORE_SCHEMA.tables()} <= remaining
    engine.dispose()
    engine = make_engine(url)
    history.ensure_tables(engine)
    assert schema_diff(engine, HISTORY_SCHEMA) == []
    assert history.snapshots(engine, "salesforce") == []  # the rows went with their tables
    engine.dispose()
