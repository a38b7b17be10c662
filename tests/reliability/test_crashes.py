"""Issue 7, crashes: `okr-sync run` SIGKILLed at seeded points, then run again, always converges to a clean run.

Each kill point gets an identical copy of one small org (sync_runs.SPEC) and a store of its own. The sandbox
holds one chosen request of one CRM unanswered (connectors.sandbox.holds), the test SIGKILLs the run while it
waits for that answer, then lets the request go: to the CRM (it was received, the client died before the
answer; a write is applied though the run never confirmed it) or nowhere (lost on the way). A second run then
goes to the end. After it, against a reference run on the same org:

- the store holds the same records, cursors, writeback ledger and check-ins; the KR values are the same;
- each CRM's OKR objects hold the same records, one per external key (no duplicate however often a
  write was repeated);
- the second run re-read only what the first had not stored, plus the lookback window: per CRM and
  entity, the records the sandbox served it are at most the clean run's, less those already stored,
  plus the stored ones inside the window before their stream's cursor (HubSpot's owners and campaigns
  have no modified-date filter and are listed whole every run).

Kill points: per CRM its first request (extraction starts), its first write (between compute and
writeback) and its second write batch (between two write batches), then RANDOM_POINTS request indices
drawn by a seeded RNG over a whole run of either CRM (a random point lands mid-extraction, between the
streams of one CRM and the writes of the other, or among the writes). The other CRM's sync runs on in
parallel until the kill, wherever it is then. Kill points run a few at a time (WORKERS), each in its own
sandbox; each kill point is one test that reports its own outcome.
"""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from connectors import run_lock
from connectors.hubspot import settings as hubspot_settings
from connectors.incremental import DEFAULT_LOOKBACK
from connectors.salesforce.mappers import STREAM_ENTITY as SALESFORCE_STREAM_ENTITY
from connectors.sandbox.holds import ServedRecords, okr_write
from connectors.sandbox.server import CRMS
from connectors.store import RECORD_MODELS, SyncState, make_engine
from tests.reliability.sync_runs import (
    copied_org,
    finished_run,
    kill,
    kr_values,
    okr_records,
    pristine_org,
    start_run,
    store_state,
    wait_held,
)
from tests.stores import store_url

pytestmark = pytest.mark.integration
SEED = 20261127
RANDOM_POINTS = 16
WORKERS = 3  # runs wait on HubSpot's search rate (5 a second) much of the time: 3 at once suit 2 cores

# The records the sandbox serves, by CRM and object, as canonical entities (connectors.store.RECORD_MODELS).
SERVED_ENTITY = {
    "salesforce": {"User": "owner", "Account": "account", "Contact": "contact", "Lead": "lead", "Opportunity": "deal",
                   "OpportunityLineItem": "line_item", "Task": "activity", "Event": "activity", "Case": "case",
                   "Campaign": "campaign"},
    "hubspot": {"owners": "owner", **hubspot_settings.STREAM_ENTITIES},
}
STREAM_ENTITIES = {"salesforce": SALESFORCE_STREAM_ENTITY, "hubspot": {"owners": "owner",
                                                                       **hubspot_settings.STREAM_ENTITIES}}
LISTED_WHOLE = {("hubspot", "owner"), ("hubspot", "campaign")}  # no modified-date filter in these APIs


@dataclass(frozen=True)
class KillPoint:
    crm: str  # whose request is held
    name: str  # what the point is, for the test id
    after: int | None = None  # requests of `crm` let through before the held one (None: from `fraction`)
    fraction: float = 0.0  # a random point: this share of a clean run's requests of `crm` goes through first
    writes_only: bool = False  # count (and hold) only write requests
    deliver: bool = True  # after the kill the held request reaches the CRM (True) or is lost (False)

    def __str__(self) -> str:
        return f"{self.crm}-{self.name}-{'delivered' if self.deliver else 'lost'}"


def kill_points() -> list[KillPoint]:
    rng = random.Random(SEED)
    named = [point for crm in CRMS for point in (
        KillPoint(crm, "first-request", after=0, deliver=rng.random() < 0.5),
        KillPoint(crm, "first-write", after=0, writes_only=True, deliver=rng.random() < 0.5),
        KillPoint(crm, "second-write", after=1, writes_only=True, deliver=rng.random() < 0.5))]
    drawn = []
    for _ in range(RANDOM_POINTS):
        crm, fraction = rng.choice(CRMS), rng.random()
        drawn.append(KillPoint(crm, f"request-at-{fraction:.2f}", fraction=fraction, deliver=rng.random() < 0.5))
    return named + drawn


POINTS = kill_points()


@dataclass
class Reference:
    store: dict[str, list[tuple[Any, ...]]]
    krs: list[dict[str, Any]]
    okr_records: dict[tuple[str, str], dict[str, dict[str, Any]]]
    served: dict[str, Counter[str]]  # per CRM: records served per entity
    requests: dict[str, int]  # per CRM: requests of a whole run


@dataclass
class Outcome:
    point: KillPoint
    held: str  # the request the run was killed on
    exit_code: int
    stderr: str
    store: dict[str, list[tuple[Any, ...]]] | None = None
    krs: list[dict[str, Any]] | None = None
    okr_records: dict[tuple[str, str], dict[str, dict[str, Any]]] | None = None
    reread: list[str] | None = None  # entities the rerun read more of than allowed, with the figures
    lock_left: run_lock.Holder | None = None


def _by_entity(crm: str, served: ServedRecords) -> Counter[str]:
    counts: Counter[str] = Counter()
    for obj, count in served.records.items():
        counts[SERVED_ENTITY[crm].get(obj, obj)] += count
    return counts


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pristine_org(tmp_path_factory.mktemp("crash-org") / "org")


@pytest.fixture(scope="module")
def reference(pristine: Path, tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Reference:
    """A clean run on an identical org: what every crashed-and-rerun one must end with."""
    directory = tmp_path_factory.mktemp("crash-reference")
    with copied_org(pristine, directory / "org") as org:
        served = {crm: org.count_served(crm) for crm in CRMS}
        url = store_url(directory)
        code, report, stderr = finished_run({**cli_env, **org.connection_env()}, url)
        assert code == 0 and report is not None, stderr[-4000:]
        engine = make_engine(url)
        reference = Reference(store_state(engine), kr_values(report), okr_records(org),
                              {crm: _by_entity(crm, served[crm]) for crm in CRMS},
                              {crm: org.calls(crm) for crm in CRMS})
        engine.dispose()
    assert all(reference.store[name] for name in ("deal", "activity", "owner", "writeback_ledger", "kr_snapshot"))
    records = reference.okr_records
    assert len(records["hubspot", "associations"]) == len(records["hubspot", "okr_key_result"]) + len(
        records["hubspot", "okr_checkin"]) > 0  # each key result and check-in linked to its parent
    return reference


def _stored(engine: Engine, crm: str, lookback: timedelta) -> tuple[Counter[str], Counter[str]]:
    """Per entity of `crm`: the records stored, and those a rerun may read again (inside the lookback window
    before the earliest cursor of the entity's streams; all of them while one of its streams has none)."""
    with engine.connect() as connection:
        cursors = {row.stream: row.watermark for row in connection.execute(
            select(SyncState.stream, SyncState.watermark).where(SyncState.source == crm))}
        stored: Counter[str] = Counter()
        window: Counter[str] = Counter()
        for entity in set(STREAM_ENTITIES[crm].values()):
            table = RECORD_MODELS[entity].__table__  # type: ignore[attr-defined]
            mine = table.c.source == crm
            stored[entity] = connection.execute(select(func.count()).select_from(table).where(mine)).scalar() or 0
            marks = [cursors.get(stream) for stream, each in STREAM_ENTITIES[crm].items() if each == entity]
            if any(mark is None for mark in marks):
                window[entity] = stored[entity]
                continue
            since = min(_aware(mark) for mark in marks if mark is not None) - lookback
            window[entity] = connection.execute(select(func.count()).select_from(table).where(
                mine, table.c.modified_at >= since)).scalar() or 0
    return stored, window


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def crash_and_rerun(point: KillPoint, pristine: Path, directory: Path, env: dict[str, str],
                    reference: Reference) -> Outcome:
    with copied_org(pristine, directory / "org") as org:
        run_env = {**env, **org.connection_env()}
        url = store_url(directory)
        after = point.after if point.after is not None else int(point.fraction * reference.requests[point.crm])
        hold = org.hold(point.crm, after, okr_write if point.writes_only else None)
        log = directory / "killed-run.log"
        process = start_run(run_env, url, log)
        wait_held(hold, process, log)
        kill(process)
        hold.release(point.deliver)
        hold.join(30)
        engine = make_engine(url)
        before = {crm: _stored(engine, crm, DEFAULT_LOOKBACK) for crm in CRMS}
        served = {crm: org.count_served(crm) for crm in CRMS}
        code, report, stderr = finished_run(run_env, url)
        outcome = Outcome(point, str(hold.request), code, stderr)
        if code != 0 or report is None:
            return outcome
        outcome.store, outcome.krs, outcome.okr_records = store_state(engine), kr_values(report), okr_records(org)
        outcome.lock_left = run_lock.current_holder(engine)
        outcome.reread = []
        for crm in CRMS:
            stored, window = before[crm]
            read = _by_entity(crm, served[crm])
            for entity in sorted(stored):
                allowed = reference.served[crm][entity] - stored[entity] + window[entity]
                if (crm, entity) not in LISTED_WHOLE and read[entity] > allowed:
                    outcome.reread.append(f"{crm} {entity}: read {read[entity]}, at most {allowed} allowed (clean "
                                          f"run {reference.served[crm][entity]}, stored {stored[entity]}, "
                                          f"{window[entity]} in the lookback window)")
        engine.dispose()
    return outcome


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, pristine: Path, reference: Reference,
             tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> dict[str, Future[Outcome]]:
    """Every kill point this session runs (`-k` may pick some), a few at once; each test waits for its own."""
    chosen = [item.callspec.params["point"] for item in request.session.items
              if "point" in getattr(getattr(item, "callspec", None), "params", {})]
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="kill-point")
    futures = {str(point): pool.submit(crash_and_rerun, point, pristine, tmp_path_factory.mktemp("kill"), cli_env,
                                       reference) for point in chosen}
    pool.shutdown(wait=False)
    return futures


def test_the_kill_points_are_at_least_twenty_and_cover_both_crms_and_the_named_points() -> None:
    assert len({str(point) for point in POINTS}) == len(POINTS) >= 20
    assert {point.crm for point in POINTS} == set(CRMS)
    assert {point.name for point in POINTS} >= {"first-request", "first-write", "second-write"}


@pytest.mark.parametrize("point", POINTS, ids=str)
def test_a_run_killed_here_and_run_again_ends_as_a_clean_run(point: KillPoint, outcomes: dict[str, Future[Outcome]],
                                                             reference: Reference) -> None:
    outcome = outcomes[str(point)].result(timeout=600)
    assert outcome.exit_code == 0, f"killed on {outcome.held}; the rerun failed:\n{outcome.stderr[-4000:]}"
    assert outcome.store is not None and outcome.krs is not None and outcome.okr_records is not None
    for name, rows in reference.store.items():
        assert outcome.store[name] == rows, f"killed on {outcome.held}: the store's {name} differs"
    assert outcome.krs == reference.krs, f"killed on {outcome.held}: other KR values"
    assert outcome.okr_records == reference.okr_records, f"killed on {outcome.held}: other OKR records in the CRMs"
    assert outcome.reread == [], f"killed on {outcome.held}: the rerun read again what was stored"
    assert outcome.lock_left is None, "the rerun left the store's run lock behind"
