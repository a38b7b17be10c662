"""The nightly sync: extract each CRM incrementally, compute the KRs, write them back.

One flow run per night. Per source CRM: every stream is extracted into the store (each
stream commits its own cursor, so a failed run resumes where it stopped), the KRs are
computed from that CRM's records, and the results are upserted into the same CRM's
OKR custom object. The run leaves a markdown artifact with the KR table.

CRMs are synced independently: one failing does not stop the other. A run in which a CRM
failed or rejected records still writes its artifact, then fails with `SyncFailed`, which
carries the report so the CLI can show what did happen.

In plan mode (`okr-sync plan`) the CRMs are extracted and the KRs computed as usual (that
writes only to the local store), then, instead of a writeback, each CRM gets the list of
what a run would create / update / leave unchanged, judged from the writeback ledger
without any API call.

A writing run records each KR's check-in (okr_mapping.history) and writes objectives, key results
and check-ins (flows.okr_writeback) unless a safety gate trips (okr_mapping.guards): then nothing
is written or recorded for that CRM and the run fails with the reason, unless `force` is set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.ledger import PlannedChange
from connectors.okr_records import OkrRecords
from connectors.results import StreamResult, WritebackResult
from connectors.store import make_engine
from flows.okr_writeback import config_revision, okr_records
from flows.render import markdown_report, table_rows
from flows.sources import Source, make_source
from okr_mapping import (
    KrResult,
    ObjectiveResult,
    OkrConfig,
    compute_key_results,
    guards,
    history,
    load_config,
    rollup_objectives,
)
from okr_mapping.compute import measured_day
from okr_mapping.history import HistoryChanges
from okr_mapping.owners import crm_users


@dataclass
class SourceRun:
    """What one CRM contributed to a run."""

    source: str
    streams: list[StreamResult] = field(default_factory=list)
    results: list[KrResult] = field(default_factory=list)
    objectives: list[ObjectiveResult] = field(default_factory=list)  # roll-up of `results` (weights, tree)
    writeback: WritebackResult | None = None
    plan: list[PlannedChange] | None = None  # plan mode: what a writeback would do, per KR
    api_calls: int = 0
    api_calls_left: int | None = None  # the CRM's daily quota left after the run, when it says
    error: str | None = None
    blocked: list[str] = field(default_factory=list)  # safety gates that stopped (or, in plan mode, would stop) it
    history: HistoryChanges | None = None  # the check-ins recorded, corrections and target changes found

    @property
    def records_extracted(self) -> int:
        return sum(stream.records for stream in self.streams)

    @property
    def problems(self) -> list[str]:
        """Why this CRM's sync is not a full success (a failure, or records it rejected)."""
        found = [f"{self.source}: {self.error}"] if self.error else []
        if self.writeback is not None and self.writeback.failed:
            found.append(f"{self.source}: {self.writeback.failed} record(s) rejected (retried next run)")
        if self.plan is None and self.writeback is None:  # stopped by a gate (forced runs wrote anyway)
            found += [f"{self.source}: writeback stopped: {reason} (check the data; `--force` writes anyway)"
                      for reason in self.blocked]
        return found


@dataclass
class SyncReport:
    config_path: str
    as_of: date
    runs: list[SourceRun] = field(default_factory=list)

    def rows(self) -> list[dict]:
        """Every KR result as a JSON-friendly dict, tagged with its source CRM."""
        return [{"source": run.source, **result.as_row()} for run in self.runs for result in run.results]

    @property
    def problems(self) -> list[str]:
        return [problem for run in self.runs for problem in run.problems]


class SyncFailed(ConnectorError):
    """A run that completed what it could; `report` holds it, the message says what went wrong."""

    def __init__(self, report: SyncReport) -> None:
        super().__init__("; ".join(report.problems))
        self.report = report


@lru_cache(maxsize=8)
def store_engine(database_url: str | None) -> Engine:
    """One engine (and one schema check) per store URL for the whole process."""
    return make_engine(database_url)


@task(cache_policy=NONE)
def extract_stream(source: Source, database_url: str | None, stream: str) -> StreamResult:
    """Pull one stream's new and changed records into the store."""
    result = source.extract(store_engine(database_url), stream)
    get_run_logger().info("%s %s: %d record(s) extracted", source.name, stream, result.records)
    return result


@task(cache_policy=NONE)
def compute_results(config: OkrConfig, database_url: str | None, source_name: str, as_of: date) -> list[KrResult]:
    """Evaluate every KR of the config over one source's records (pure SQL over the store)."""
    return compute_key_results(store_engine(database_url), config, source=source_name, as_of=as_of)


@task(cache_policy=NONE)
def write_back(source: Source, database_url: str | None, records: OkrRecords) -> WritebackResult:
    """Upsert objectives, key results and check-ins into the CRM's OKR objects; unchanged rows are not sent.

    The connector checks its target objects before the first row it sends, so a run with
    nothing to write makes no call at all.
    """
    outcome = source.write_okrs(store_engine(database_url), records)
    get_run_logger().info("%s writeback: %d created, %d updated, %d unchanged, %d failed",
                          source.name, outcome.created, outcome.updated, outcome.unchanged, outcome.failed)
    for rejection in outcome.rejected:
        get_run_logger().warning("%s rejected %s %s: %s", source.name, rejection.object, rejection.key,
                                 rejection.message)
    return outcome


@task(cache_policy=NONE)
def plan_writeback(source: Source, database_url: str | None, records: OkrRecords) -> list[PlannedChange]:
    """What a writeback of `records` would do, from the ledger alone: no API call."""
    plan = source.plan_okrs(store_engine(database_url), records)
    counts = Counter(change.action for change in plan)
    get_run_logger().info("%s plan: %d created, %d updated, %d unchanged", source.name, counts["created"],
                          counts["updated"], counts["unchanged"])
    return plan


@flow(name="nightly_sync", log_prints=True)
def nightly_sync(config_path: str, sources: list[str] | None = None, database_url: SecretStr | None = None,
                 as_of: date | None = None, write: bool = True, plan: bool = False, force: bool = False) -> SyncReport:
    """Sync every source CRM named in `sources` (default: the config's `source`).

    `write=False` computes without writing; `plan=True` also computes, then plans the writeback
    from the ledger instead of doing it (no write request to any CRM). `force`: write even when a
    safety gate trips.

    `database_url` is a secret parameter: a URL with a password never shows in Prefect's UI.
    """
    config = load_config(Path(config_path))  # fail fast, before any API call
    for warning in config.warnings:
        get_run_logger().warning("%s", warning)
    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    day = as_of or config.today()  # in the config's time zone
    report = SyncReport(config_path=config_path, as_of=day)
    for name in sources or [config.source]:
        report.runs.append(_sync_source(name, config, url, day, write and not plan, plan, force,
                                        config_revision(Path(config_path))))
    create_markdown_artifact(key="okr-kr-table", markdown=markdown_report(report),
                             description=f"Key results as of {day.isoformat()}")
    create_table_artifact(key="okr-kr-values", table=table_rows(report),
                          description=f"Key result values as of {day.isoformat()}, one row per KR, group and CRM")
    if report.problems:
        raise SyncFailed(report)
    return report


def _sync_source(name: str, config: OkrConfig, database_url: str | None, day: date, write: bool,
                 plan: bool = False, force: bool = False, revision: str | None = None) -> SourceRun:
    """Extract, compute and write back one CRM; a connector failure is recorded, not raised."""
    run = SourceRun(source=name)
    try:
        source = make_source(name, custom_fields=config.crm_custom_fields(name), time_zone=config.time_zone)
    except ConnectorError as error:
        run.error = str(error)
        return run
    try:
        for stream in source.STREAMS:
            run.streams.append(extract_stream(source, database_url, stream))
        run.results = compute_results(config, database_url, name, day)
        run.objectives = rollup_objectives(run.results, config)
        if write or plan:
            _write_or_plan(run, source, config, database_url, day, plan, force, revision)
    except ConnectorError as error:
        get_run_logger().error("%s sync failed: %s", name, error)
        run.error = str(error)
    except Exception as error:  # an unforeseen failure: keep its traceback in the log, still sync the rest
        get_run_logger().exception("%s sync failed unexpectedly", name)
        run.error = f"unexpected {type(error).__name__}: {error}"
    finally:
        source.close()
        run.api_calls = source.api_calls
        run.api_calls_left = source.api_calls_left
    return run


def _write_or_plan(run: SourceRun, source: Source, config: OkrConfig, database_url: str | None, day: date,
                   plan: bool, force: bool, revision: str | None) -> None:
    """Check-ins, safety gates, then the writeback (or its plan) of one CRM's results."""
    engine = store_engine(database_url)
    measured = measured_day(config, day)
    changes = history.compare(engine, run.source, run.results, measured, revision)
    run.blocked = guards.tripped(history.previous_snapshots(engine, run.source, measured), run.results,
                                 guards.growing_keys(config, run.results))
    with engine.connect() as conn:
        users = crm_users(conn, run.source)
    latest = history.latest_day(engine, run.source)
    checkins = history.open_checkins(engine, run.source, measured, changes)
    # A day before the latest check-in is the past recomputed: only its check-ins go to the CRM
    records = okr_records(config, run.results, run.objectives, checkins, users,
                          current=latest is None or measured >= latest)
    if plan:
        run.plan = plan_writeback(source, database_url, records)
        return
    if run.blocked and not force:
        for reason in run.blocked:
            get_run_logger().error("%s writeback stopped: %s", run.source, reason)
        return
    history.record(engine, changes)
    run.history = changes
    run.writeback = write_back(source, database_url, records)
