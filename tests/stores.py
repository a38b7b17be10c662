"""Stores for tests: SQLite files by default, fresh PostgreSQL databases when the run asks for them.

`make test` runs the suite twice beside a throwaway PostgreSQL server (scripts/with-postgres.sh):
once with SQLite stores, once with `OKR_SYNC_TEST_STORE=postgresql`, when every store a test makes
through `store_url` is a database of its own on that server. Tests that exercise SQLite itself (an
old SQLite file, a missing file) keep writing SQLite URLs by hand.
"""

from __future__ import annotations

import atexit
import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

POSTGRES_URL_ENV = "OKR_SYNC_TEST_POSTGRES_URL"  # the server's URL, set by scripts/with-postgres.sh
STORE_ENV = "OKR_SYNC_TEST_STORE"  # "postgresql": the stores of this run live on that server

_created: list[str] = []
_admin: Engine | None = None


def postgres_server_url() -> str | None:
    """The test PostgreSQL server's URL, when this run has one."""
    return os.environ.get(POSTGRES_URL_ENV) or None


def on_postgres() -> bool:
    """Whether this run keeps its stores on PostgreSQL."""
    backend = os.environ.get(STORE_ENV, "sqlite")
    if backend not in ("sqlite", "postgresql"):
        raise RuntimeError(f"{STORE_ENV}={backend!r}: expected sqlite or postgresql")
    if backend == "postgresql" and not postgres_server_url():
        raise RuntimeError(f"{STORE_ENV}=postgresql needs {POSTGRES_URL_ENV} (run under scripts/with-postgres.sh)")
    return backend == "postgresql"


def new_postgres_database(prefix: str = "okr") -> str:
    """Create an empty database on the test server; it is dropped when the test process exits."""
    global _admin
    server = postgres_server_url()
    if server is None:
        raise RuntimeError(f"{POSTGRES_URL_ENV} is not set")
    if _admin is None:
        _admin = create_engine(server, isolation_level="AUTOCOMMIT", pool_size=1)
        atexit.register(_drop_created)
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with _admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    _created.append(name)
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def store_url(directory: Path, name: str = "store") -> str:
    """A new, empty store's URL: `directory/name.db`, or a fresh PostgreSQL database."""
    if on_postgres():
        return new_postgres_database()
    return f"sqlite:///{directory / f'{name}.db'}"


def memory_store_url() -> str:
    """An in-memory SQLite store, or a fresh PostgreSQL database (the domain's SQL runs on both)."""
    return new_postgres_database() if on_postgres() else "sqlite://"


def _drop_created() -> None:
    if _admin is None:
        return
    with _admin.connect() as conn:
        for name in _created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    _admin.dispose()
