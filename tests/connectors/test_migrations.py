"""Store migrations: head matches the models, stores older than migrations are adopted, a store at head costs one
query, processes starting at once migrate once, and the revisions go down to nothing and up again.

Every test runs on SQLite, and on PostgreSQL too when $OKR_SYNC_TEST_POSTGRES_URL names a server (each test then
gets a database of its own, dropped after).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Index, MetaData, Table, create_engine, event, func, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from connectors.ledger import record_written
from connectors.migrations import STORE_SCHEMA
from connectors.migrations.cli import main
from connectors.migrations.legacy import FIRST_RELEASE
from connectors.migrations.runner import (
    FIRST_REVISION,
    Layer,
    SchemaTooNew,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    schema_transaction,
)
from connectors.store import make_engine
from tests.stores import new_postgres_database, postgres_server_url

POSTGRES_SERVER = postgres_server_url()
BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_SERVER else [])]  # no PostgreSQL variant without a server
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """A new, empty store's URL: a SQLite file in `directory`, or a database of its own on the test server."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'store.db'}"
        return
    yield new_postgres_database("okr_migrations")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


def schema_diff(engine: Engine, layer: Layer) -> list[Any]:
    """What autogenerate finds between the store and `layer`'s models: [] when the migrations match them."""
    names = {table.name for table in layer.tables()}
    opts = {"include_name": lambda name, type_, _parent: type_ != "table" or name in names,
            "include_object": lambda _obj, name, type_, _reflected, _other: type_ != "table" or name in names}
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection, opts=opts), SQLModel.metadata)


def index_names(engine: Engine, table: str) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes(table)}


def version_rows(engine: Engine, layer: Layer) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text(f"SELECT version_num FROM {layer.version_table}")).scalars())


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_an_empty_store_upgraded_to_head_matches_the_models(url: str) -> None:
    engine = make_engine(url)
    assert schema_diff(engine, STORE_SCHEMA) == []
    assert version_rows(engine, STORE_SCHEMA) == [head_revision(STORE_SCHEMA)]
    assert {"ix_deal_live_close_v2", "ix_deal_live_created"} <= index_names(engine, "deal")
    engine.dispose()


def test_the_schema_check_sees_a_store_that_differs_from_the_models(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_deal_live_close_v2"))
    assert [diff[0] for diff in schema_diff(engine, STORE_SCHEMA)] == ["add_index"]
    engine.dispose()


def test_the_first_release_the_stop_gaps_know_is_revision_0001(url: str) -> None:
    engine = create_engine(url)
    with schema_transaction(engine, STORE_SCHEMA) as connection:
        command.upgrade(alembic_config(STORE_SCHEMA, connection), FIRST_REVISION)
    tables = set(inspect(engine).get_table_names()) - {STORE_SCHEMA.version_table}
    assert {table: set(index_names(engine, table)) for table in tables} == {
        table: set(indexes) for table, indexes in FIRST_RELEASE.items()}
    engine.dispose()


def _old_store(url: str) -> Engine:
    """A store as okr-sync made it before migrations: no writeback_rejection table, no payload or direction
    column (nor the index that covers direction), the retired close-date index instead of its successor."""
    old = MetaData()
    left_out = {("writeback_ledger", "payload"), ("activity", "direction")}
    for table in STORE_SCHEMA.tables():
        if table.name not in FIRST_RELEASE or table.name == "writeback_rejection":  # later tables: none before
            continue
        copy = Table(table.name, old, *[Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                                        for c in table.columns if (table.name, c.name) not in left_out])
        for index in table.indexes:
            if index.name not in ("ix_deal_live_close_v2", "ix_activity_live_date"):
                Index(index.name, *[copy.c[column.name] for column in index.columns])
    deal = old.tables["deal"]
    Index("ix_deal_live_close", deal.c.source, deal.c.is_deleted, deal.c.close_date)
    engine = create_engine(url)
    old.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(old.tables["writeback_ledger"]), [{
            "target": "salesforce", "key": "k", "fingerprint": "f", "record_id": "a0X",
            "written_at": datetime(2026, 1, 1, tzinfo=UTC)}])
        connection.execute(insert(deal), [{"source": "salesforce", "source_id": "D1", "is_closed": True,
                                           "is_won": True, "is_deleted": False, "custom": {}}])
    return engine


def test_a_store_older_than_migrations_is_brought_to_the_first_release_and_stamped(url: str) -> None:
    _old_store(url).dispose()
    engine = make_engine(url)
    assert version_rows(engine, STORE_SCHEMA) == [head_revision(STORE_SCHEMA)]
    assert schema_diff(engine, STORE_SCHEMA) == []
    assert "ix_deal_live_close" not in index_names(engine, "deal")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(text("deal"))).scalar() == 1
    record_written(engine, "salesforce", [("k", "g", "a0X", {"key": "k"})])  # the ledger has its payload column
    engine.dispose()


def test_a_store_at_head_costs_one_query_and_runs_no_migration(url: str) -> None:
    make_engine(url).dispose()
    with statements() as seen:
        again = make_engine(url)
    assert seen == [f"SELECT version_num FROM {STORE_SCHEMA.version_table}"]
    assert version_rows(again, STORE_SCHEMA) == [head_revision(STORE_SCHEMA)]
    again.dispose()


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Hold what a migrating process holds, so processes started meanwhile all have to wait for it."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        connection = engine.raw_connection()
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("COMMIT")
            connection.close()
            engine.dispose()
        return
    with engine.connect() as held, held.begin():
        held.execute(select(func.pg_advisory_xact_lock(STORE_SCHEMA.lock_key)))
        yield
    engine.dispose()


def _waiting_for_the_lock(url: str, count: int) -> bool:
    """Whether `count` sessions wait for an advisory lock (PostgreSQL); SQLite cannot tell, so a short pause."""
    engine = create_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            time.sleep(0.5)
            return True
        query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(query).scalar() == count:
                    return True
            time.sleep(0.05)
        return False
    finally:
        engine.dispose()


STARTER = "import sys; from connectors.store import make_engine; print('ready', flush=True); make_engine(sys.argv[1])"


def test_two_processes_starting_at_once_on_a_new_store_migrate_it_once(url: str) -> None:
    with _migration_lock(url):
        starters = [subprocess.Popen([sys.executable, "-c", STARTER, url], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for starter in starters:
            assert starter.stdout is not None and starter.stdout.readline().strip() == "ready"
        assert _waiting_for_the_lock(url, 2)
    for starter in starters:
        _out, errors = starter.communicate(timeout=120)
        assert starter.returncode == 0, errors
    engine = create_engine(url)
    assert version_rows(engine, STORE_SCHEMA) == [head_revision(STORE_SCHEMA)]
    assert schema_diff(engine, STORE_SCHEMA) == []
    engine.dispose()


def test_two_threads_starting_at_once_on_a_new_store_both_succeed(url: str) -> None:
    barrier, engines, errors = threading.Barrier(2), [], []

    def start() -> None:
        barrier.wait()
        try:
            engines.append(make_engine(url))
        except Exception as error:  # reported below, with the thread's traceback lost but its message kept
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(engines) == 2
    assert version_rows(engines[0], STORE_SCHEMA) == [head_revision(STORE_SCHEMA)]
    for engine in engines:
        engine.dispose()


def test_the_revisions_go_down_to_base_and_up_to_head_again(url: str) -> None:
    engine = make_engine(url)
    downgrade(engine, STORE_SCHEMA, "base")
    assert current_revision(engine, STORE_SCHEMA) is None
    assert set(inspect(engine).get_table_names()) == {STORE_SCHEMA.version_table}
    engine.dispose()
    engine = make_engine(url)
    assert version_rows(engine, STORE_SCHEMA) == [head_revision(STORE_SCHEMA)]
    assert schema_diff(engine, STORE_SCHEMA) == []
    engine.dispose()


def test_a_store_migrated_by_a_newer_okr_sync_is_refused(url: str) -> None:
    make_engine(url).dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {STORE_SCHEMA.version_table} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="revision 9999"):
        make_engine(url)


def test_the_revision_command_finds_nothing_to_migrate_when_head_matches_the_models(tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"  # a copy: the command writes its revision beside the real ones
    shutil.copytree(STORE_SCHEMA.script_location, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    assert main(replace(STORE_SCHEMA, script_location=scripts), ["revision", "-m", "nothing yet"]) == 0
    head = head_revision(STORE_SCHEMA)
    written = (scripts / "versions" / f"{int(head) + 1:04d}_nothing_yet.py").read_text(encoding="utf-8")
    assert f"down_revision = '{head}'" in written and "op." not in written.replace("from alembic import op", "")
