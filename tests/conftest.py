"""Shared fixtures: one sandbox (both CRM faces over HTTPS) per test session, fresh stores per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.server import SandboxServer
from connectors.store import make_engine
from tests.stores import on_postgres, postgres_server_url, store_url

# A small org with a fixed "now", so every run of the suite sees the same records. Its users are in
# New York, as config/examples say: an evening call there is the next day in UTC, so every test that
# compares with the org's tables checks local calendar days.
TEST_TIME_ZONE = "America/New_York"
TEST_ORG = OrgSpec(seed=7, deals=600, owners=12, accounts=120, calls_per_deal=3.0,
                   anchor=datetime(2026, 11, 15, 12, 0, tzinfo=UTC), time_zone=TEST_TIME_ZONE)


def pytest_report_header() -> str:
    """Say which database this run's stores live in: `make test` runs the suite once on each."""
    if on_postgres():
        return f"stores: PostgreSQL ({postgres_server_url()})"
    return "stores: SQLite"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """The shared sandbox; tests that write to it must use their own keys or count deltas."""
    with SandboxServer(tmp_path_factory.mktemp("sandbox"), TEST_ORG) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    """An empty canonical store of the test's own (SQLite, or PostgreSQL in the PostgreSQL run)."""
    return make_engine(store_url(tmp_path))


@contextmanager
def private_sandbox(factory: pytest.TempPathFactory, name: str, **spec: int | float | str) -> Iterator[SandboxServer]:
    """A small org of one test module's own, for tests that inject faults or change records."""
    with SandboxServer(factory.mktemp(name), OrgSpec(anchor=TEST_ORG.anchor, **spec)) as server:  # type: ignore[arg-type]
        yield server
