"""Run one layer's Alembic migrations programmatically, safely when several processes start at once.

Each layer (connectors: the canonical store; okr_mapping: the check-in history) owns its tables, its script
directory and its version table, so the import direction flows -> okr_mapping -> connectors holds for the schema
too. There is no alembic.ini: the script location is the package directory and the connection is handed to env.py
through `config.attributes["connection"]`.

An up-to-date store costs one small query (its revision against the head, read once per process). Otherwise the
migration runs in one transaction, under `pg_advisory_xact_lock` on PostgreSQL and `BEGIN IMMEDIATE` on SQLite, so
a second process waits for the first and then finds nothing to do.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Table, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

# The first released schema: what a store made before migrations existed is brought to, then stamped with.
FIRST_REVISION = "0001"

# Alembic's `context` and `op` are module-level proxies: two threads migrating at once would swap them.
_IN_PROCESS = threading.Lock()


class SchemaTooNew(RuntimeError):
    """The store was migrated by a newer okr-sync: this one must not guess at a schema it does not know."""


@dataclass(frozen=True)
class Layer:
    """One package's share of the store: its tables, migration scripts and version table."""

    package: str  # the top-level package whose SQLModel tables this layer migrates
    script_location: Path
    version_table: str
    # Brings a store an older okr-sync created (the tables, no version table) to FIRST_REVISION, in the
    # migration's transaction; the runner stamps it afterwards.
    adopt: Callable[[Connection], None]

    @property
    def lock_key(self) -> int:
        """The PostgreSQL advisory lock of this layer's migrations (stable across processes and versions)."""
        return zlib.crc32(self.version_table.encode())

    def tables(self) -> list[Table]:
        """The tables whose models live in this layer's package (the modules must have been imported)."""
        return owned_tables(self.package)


def owned_tables(package: str) -> list[Table]:
    """The SQLModel tables defined in `package`, by name: SQLModel.metadata holds every layer's."""
    found: dict[str, Table] = {}
    seen: set[type] = set()
    pending: list[type] = [SQLModel]
    while pending:
        for model in pending.pop().__subclasses__():
            if model in seen:
                continue
            seen.add(model)
            pending.append(model)
            table = model.__dict__.get("__table__")
            if isinstance(table, Table) and model.__module__.split(".")[0] == package:
                found[table.name] = table
    return [found[name] for name in sorted(found)]


def migrate(engine: Engine, layer: Layer) -> None:
    """Bring `layer`'s tables in the store to the head revision; one query when they are there already."""
    head = head_revision(layer)
    if current_revision(engine, layer) == head:
        return
    with _IN_PROCESS, schema_transaction(engine, layer) as connection:
        current = MigrationContext.configure(connection, opts={"version_table": layer.version_table}
                                             ).get_current_revision()
        if current == head:  # another process migrated while this one waited for the lock
            return
        if current is not None and current not in _known_revisions(layer):
            raise SchemaTooNew(f"the store's {layer.package} schema is at revision {current}, which this okr-sync "
                               f"does not know (its latest is {head}): a newer okr-sync migrated it; upgrade okr-sync")
        config = alembic_config(layer, connection)
        if current is None and _has_tables(connection, layer):
            layer.adopt(connection)
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def downgrade(engine: Engine, layer: Layer, revision: str) -> None:
    """Take `layer`'s tables down to `revision` ("base": none left), in one locked transaction."""
    with _IN_PROCESS, schema_transaction(engine, layer) as connection:
        command.downgrade(alembic_config(layer, connection), revision)


def current_revision(engine: Engine, layer: Layer) -> str | None:
    """The store's revision of `layer`; None when it has no version table (new, or made before migrations)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text(f"SELECT version_num FROM {layer.version_table}")).scalar()
    except DBAPIError:  # no version table yet: one failed statement is cheaper than reflecting first
        return None


def head_revision(layer: Layer) -> str:
    """The latest revision of `layer`'s scripts (read once per process; raises when the scripts branch)."""
    head = _script(layer.script_location).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {layer.script_location / 'versions'}")
    return head


@cache
def _script(location: Path) -> ScriptDirectory:
    return ScriptDirectory(str(location))


def revisions(layer: Layer) -> list[tuple[str, str]]:
    """(revision, first line of its docstring) of `layer`'s scripts, newest first."""
    return [(script.revision, script.doc) for script in _script(layer.script_location).walk_revisions()]


def _known_revisions(layer: Layer) -> set[str]:
    return {revision for revision, _doc in revisions(layer)}


def alembic_config(layer: Layer, connection: Connection | None = None) -> Config:
    """An Alembic config without an ini file: the layer's scripts, and the connection env.py runs on."""
    config = Config()
    config.set_main_option("script_location", str(layer.script_location))
    config.attributes["connection"] = connection
    config.attributes["layer"] = layer
    return config


@contextmanager
def schema_transaction(engine: Engine, layer: Layer) -> Iterator[Connection]:
    """One transaction that only one process holds at a time: the migration runs in it whole or not at all.

    SQLite: the driver does not wrap DDL in a transaction by itself, so the connection goes to autocommit and
    `BEGIN IMMEDIATE` takes the write lock up front (others wait through their busy timeout). PostgreSQL: a
    transaction-scoped advisory lock, released by the commit. Alembic sees the transaction and leaves it to us.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
            connection.commit()  # SQLAlchemy's own bookkeeping; the driver has nothing left to commit
            return
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(layer.lock_key)))
            yield connection


def _has_tables(connection: Connection, layer: Layer) -> bool:
    existing = set(inspect(connection).get_table_names())
    return any(table.name in existing for table in layer.tables())


def run_environment(context: Any) -> None:
    """The body of each layer's env.py: configure Alembic on the connection the runner passed, then migrate."""
    config = context.config
    connection: Connection | None = config.attributes.get("connection")
    layer: Layer | None = config.attributes.get("layer")
    if connection is None or layer is None:
        raise RuntimeError("run migrations through connectors.migrations.runner (or `python -m "
                           "connectors.migrations` / `python -m okr_mapping.migrations`), not the alembic command")
    names = {table.name for table in layer.tables()}

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or name in names

    def include_object(_object: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
        return type_ != "table" or name in names

    context.configure(
        connection=connection, target_metadata=SQLModel.metadata, version_table=layer.version_table,
        include_name=include_name, include_object=include_object, render_item=_render_item, compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _render_item(type_: str, obj: Any, _context: Any) -> str | bool:
    """Autogenerate writes plain SQLAlchemy types: a revision must not depend on sqlmodel's helpers."""
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False
