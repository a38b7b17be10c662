"""The writeback ledger: payloads kept, plans computed from it alone, old stores upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.ledger import fingerprint, pending_rows, plan_rows, record_written
from connectors.store import WritebackLedger, make_engine

ROW = {"key": "grow-revenue.revenue", "Name": "Close $28M", "Target__c": 28000000.0, "Current_Value__c": 12.5}


def _entry(engine: Engine, target: str, key: str) -> WritebackLedger:
    with Session(engine) as session:
        entry = session.get(WritebackLedger, (target, key))
        assert entry is not None
        return entry


def test_record_written_stores_the_payload(store: Engine) -> None:
    record_written(store, "hubspot", [(ROW["key"], fingerprint(ROW), "42", ROW)])
    entry = _entry(store, "hubspot", ROW["key"])
    assert entry.payload == ROW and entry.record_id == "42"


def test_pending_rows_then_record_written_leaves_nothing_pending(store: Engine) -> None:
    [(row, digest)] = pending_rows(store, "salesforce", [ROW])
    record_written(store, "salesforce", [(row["key"], digest, "a0X1", row)])
    entry = _entry(store, "salesforce", ROW["key"])
    assert entry.fingerprint == digest and entry.record_id == "a0X1" and entry.payload == ROW
    assert pending_rows(store, "salesforce", [ROW]) == []


def test_plan_shows_created_updated_with_old_and_new_and_unchanged(store: Engine) -> None:
    same = {**ROW, "key": "same"}
    record_written(store, "hubspot", [(ROW["key"], fingerprint(ROW), "1", ROW), ("same", fingerprint(same), "2", same)])
    changed = {**ROW, "Target__c": 30000000.0}
    fresh = {**ROW, "key": "fresh"}
    plan = {change.key: change for change in plan_rows(store, "hubspot", [changed, same, fresh])}
    assert {key: change.action for key, change in plan.items()} == {
        ROW["key"]: "updated", "same": "unchanged", "fresh": "created"}
    [diff] = plan[ROW["key"]].changes
    assert (diff.field, diff.old, diff.new) == ("Target__c", 28000000.0, 30000000.0)
    assert plan[ROW["key"]].old_known and plan[ROW["key"]].record_id == "1"
    assert {c.field for c in plan["fresh"].changes} == {"Name", "Target__c", "Current_Value__c"}
    assert plan_rows(store, "salesforce", [ROW])[0].action == "created"  # the ledger is per target


def test_plan_of_a_row_written_without_payload_marks_old_values_unknown(store: Engine) -> None:
    record_written(store, "salesforce", [(ROW["key"], "0" * 64, None, None)])
    [change] = plan_rows(store, "salesforce", [ROW])
    assert change.action == "updated" and not change.old_known


def test_float_noise_is_no_change(store: Engine) -> None:
    record_written(store, "hubspot", [(ROW["key"], fingerprint(ROW), "1", ROW)])
    noisy = {**ROW, "Current_Value__c": 12.5 + 1e-12}
    assert plan_rows(store, "hubspot", [noisy])[0].action == "unchanged"


def test_make_engine_adds_the_payload_column_to_an_old_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # the table as okr-sync created it before payloads
        connection.execute("CREATE TABLE writeback_ledger (target VARCHAR NOT NULL, key VARCHAR NOT NULL, "
                            "fingerprint VARCHAR NOT NULL, record_id VARCHAR, written_at DATETIME NOT NULL, "
                            "PRIMARY KEY (target, key))")
        connection.execute("INSERT INTO writeback_ledger VALUES ('salesforce', 'k', ?, 'a0X', "
                           "'2026-01-01 00:00:00.000000')", (fingerprint(ROW | {"key": "k"}),))
    engine = make_engine(f"sqlite:///{path}")
    assert "payload" in {column["name"] for column in inspect(engine).get_columns("writeback_ledger")}
    assert _entry(engine, "salesforce", "k").payload is None
    assert plan_rows(engine, "salesforce", [ROW | {"key": "k"}])[0].action == "unchanged"
    record_written(engine, "salesforce", [("k", "x", "a0X", {"key": "k"})])
    engine.dispose()
    again = make_engine(f"sqlite:///{path}")  # idempotent: a second start changes nothing
    assert _entry(again, "salesforce", "k").payload == {"key": "k"}
    again.dispose()
