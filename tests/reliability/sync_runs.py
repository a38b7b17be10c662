"""What the crash and overlap tests share: one small org generated once and copied per run, `okr-sync run`
as a child process (so it can be SIGKILLed), and the state a run leaves in the store and in the CRMs.

Copying the generated org's directory gives every run an identical, untouched org (its OKR objects
empty) for the cost of a file copy, where generating it again would cost a second or two.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.holds import Hold
from connectors.sandbox.server import CRMS, SandboxServer
from connectors.sandbox.state import open_sandbox
from connectors.store import RECORD_MODELS, SyncState, WritebackLedger, WritebackRejection
from okr_mapping.history import KrSnapshot
from tests.conftest import TEST_ORG, TEST_TIME_ZONE
from tests.flows.conftest import DEMO, ROOT

# Small enough for a run in ~5 s; HubSpot still pages most streams (100 a page), Salesforce reads each in one.
SPEC = OrgSpec(seed=23, deals=120, owners=6, accounts=30, calls_per_deal=2.0, anchor=TEST_ORG.anchor,
               time_zone=TEST_TIME_ZONE)
AS_OF = TEST_ORG.anchor.date()
OKR_OBJECTS = {"salesforce": ("OKR_Objective__c", "OKR_Key_Result__c", "OKR_Check_In__c"),
               "hubspot": ("okr_objective", "okr_key_result", "okr_checkin")}
SYNCED_FIELDS = {"Last_Synced__c", "last_synced"}  # set by each write: not part of what a run computes


def pristine_org(directory: Path) -> Path:
    """Generate the org once in `directory` (closed, so its files can be copied)."""
    state = open_sandbox(directory, SPEC)
    assert state.token  # created now, so every copy accepts the same token
    state.close()
    return directory


@contextmanager
def copied_org(pristine: Path, directory: Path) -> Iterator[SandboxServer]:
    """A running sandbox on a fresh copy of the pristine org."""
    shutil.copytree(pristine, directory)
    with SandboxServer(directory, SPEC) as server:
        yield server


def run_command(url: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "run", "--config", str(DEMO), "--source", "salesforce",
            "--source", "hubspot", "--as-of", AS_OF.isoformat(), "--output", "json", "--database-url", url]


def start_run(env: dict[str, str], url: str, log: Path) -> subprocess.Popen[bytes]:
    """`okr-sync run` of both CRMs as a child process; its stdout and stderr go to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(run_command(url), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def finished_run(env: dict[str, str], url: str) -> tuple[int, dict[str, Any] | None, str]:
    """Run to the end: (exit code, the JSON report when there is one, stderr)."""
    done = subprocess.run(run_command(url), env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    try:
        report = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        report = None
    return done.returncode, report, done.stderr


def wait_held(hold: Hold, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Until `hold` holds its request; fails (naming the run's output) if the run ends first."""
    deadline = time.monotonic() + timeout
    while not hold.held:
        if process.poll() is not None:
            hold.release()
            raise AssertionError(f"the run ended (exit {process.returncode}) before the kill point:\n"
                                 f"{log.read_text(errors='replace')[-4000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no request held within {timeout} s:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.01)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, and reap it (a zombie would still look alive to a lock check)."""
    process.kill()
    process.wait(timeout=30)


def okr_records(org: SandboxServer) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """Every OKR record in each CRM, by object and external key, without the write timestamp. Lookups hold
    the parent's key rather than its CRM id, so orgs whose ids were handed out in another order compare."""
    from connectors.salesforce.settings import OKR_OBJECT_SPECS

    lookups = {field.name: field.reference_to for spec in OKR_OBJECT_SPECS.values() for field in spec.fields
               if field.type == "Lookup"}  # Salesforce: field -> the sObject whose record id it holds
    found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for crm, objects in OKR_OBJECTS.items():
        records = {obj: org.state.custom_records(crm, obj) for obj in objects}
        keys_by_id = {(obj, str(record["id"])): record["unique_key"] for obj in objects for record in records[obj]}
        for obj in objects:
            keys = [record["unique_key"] for record in records[obj]]
            assert all(keys) and len(keys) == len(set(keys)), f"{crm} {obj}: a record without a key, or a duplicate"
            found[crm, obj] = {record["unique_key"]: {
                name: keys_by_id.get((lookups[name], str(value)), value) if name in lookups else value
                for name, value in record["fields"].items() if name not in SYNCED_FIELDS} for record in records[obj]}
        if crm == "hubspot":  # HubSpot links a key result to its objective, a check-in to its key result
            links = org.state.query("SELECT from_object, from_id, to_object, to_id FROM hubspot_custom_associations") \
                if org.state.query("SELECT 1 FROM sqlite_master WHERE name = 'hubspot_custom_associations'") else []
            pairs = [(keys_by_id.get((row[0], str(row[1]))), keys_by_id.get((row[2], str(row[3])))) for row in links]
            found[crm, "associations"] = {f"{one} -> {other}": {} for one, other in sorted(pairs, key=repr)}
    return found


def okr_write_requests(org: SandboxServer) -> dict[str, int]:
    """Write requests each CRM face served so far (sObject Collections, HubSpot batch writes)."""
    from connectors.sandbox.holds import Request, okr_write

    return {crm: sum(count for request, count in org.counters[crm].counts.items()
                     if okr_write(Request(*request.split(" ", 1)))) for crm in CRMS}


def _rows(engine: Engine, model: type[SQLModel], leave_out: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    table = model.__table__  # type: ignore[attr-defined]
    columns = [column for column in table.columns if column.name not in leave_out]
    with engine.connect() as connection:
        rows = connection.execute(select(*columns)).all()
    return sorted((tuple(row) for row in rows), key=repr)


def store_state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """What a run leaves in the store, without what differs between two equal runs (times of writing,
    CRM record ids, per-run counts)."""
    state = {name: _rows(engine, model) for name, model in RECORD_MODELS.items()}
    state["sync_state"] = _rows(engine, SyncState, ("records_last_run", "updated_at"))
    state["writeback_ledger"] = _rows(engine, WritebackLedger, ("record_id", "written_at"))
    state["writeback_rejection"] = _rows(engine, WritebackRejection)
    state["kr_snapshot"] = _rows(engine, KrSnapshot, ("recorded_at",))
    return state


def kr_values(report: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(report["key_results"], key=lambda row: (row["source"], row["key"]))
