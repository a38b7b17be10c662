"""Fixtures: an in-memory store and small helpers to put deals, calls and owners in it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from connectors.store import Activity, Deal, Owner, make_engine
from tests.stores import memory_store_url

_ids = itertools.count(1)

Adder = Callable[..., None]


@pytest.fixture
def engine() -> Engine:
    return make_engine(memory_store_url())


def _insert(engine: Engine, model: Any, row: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(model.__table__), [row])


@pytest.fixture
def add_deal(engine: Engine) -> Adder:
    """Insert one deal; defaults describe a won Salesforce deal closed 2026-11-10 by owner u1."""

    def add(**fields: Any) -> None:
        row: dict[str, Any] = {
            "source": "salesforce",
            "source_id": f"D{next(_ids)}",
            "owner_id": "u1",
            "deal_type": "New Business",
            "stage": "Closed Won",
            "amount": 1000.0,
            "is_closed": True,
            "is_won": True,
            "created_date": date(2026, 10, 1),
            "close_date": date(2026, 11, 10),
            "is_deleted": False,
            "custom": {},
        }
        row.update(fields)
        _insert(engine, Deal, row)

    return add


@pytest.fixture
def add_call(engine: Engine) -> Adder:
    def add(**fields: Any) -> None:
        row: dict[str, Any] = {
            "source": "salesforce",
            "source_id": f"A{next(_ids)}",
            "kind": "call",
            "owner_id": "u1",
            "activity_date": date(2026, 11, 10),
            "duration_seconds": 300,
            "is_deleted": False,
            "custom": {},
        }
        row.update(fields)
        _insert(engine, Activity, row)

    return add


@pytest.fixture
def add_owner(engine: Engine) -> Adder:
    def add(
        source_id: str, email: str | None, team: str | None, source: str = "salesforce", **extra: Any
    ) -> None:
        row = {"source": source, "source_id": source_id, "email": email, "team": team, "custom": {}, **extra}
        _insert(engine, Owner, row)

    return add
