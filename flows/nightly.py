"""The nightly sync: extract each CRM incrementally, compute the KRs, write them back.

One flow run per night. Per source CRM: every stream is extracted into the store (each
stream commits its own cursor, so a failed run resumes where it stopped), the KRs are
computed from that CRM's records, and the results are upserted into the same CRM's
OKR custom object. The run leaves a markdown artifact with the KR table, and one with the
weekly digest (flows.digest_render).

CRMs are synced independently and at the same time: one failing does not stop the other. A
CRM's streams are extracted in parallel threads, a few at a time within its rate limits, and a
run syncs a CRM holding a slot of the Prefect concurrency limit `okr-sync-<crm>` when an admin
made one, which caps the orgs syncing one CRM at once across runs (flows.parallel). A run in
which a CRM failed or rejected records still writes its artifact, then fails with `SyncFailed`,
which carries the report so the CLI can show what did happen.

`org` names one of the config's `orgs:`: its CRMs, its credentials (environment prefix, Prefect
Secret blocks) and its store are resolved inside the run (flows.credentials); a deployment per org
(flows.deployments) passes only the config path and the org's name. Tasks retry only transient
failures, and only where repeating is safe (see each task and flows.retries).

In plan mode (`okr-sync plan`) the CRMs are extracted and the KRs computed as usual (that
writes only to the local store), then, instead of a writeback, each CRM gets the list of
what a run would create / update / leave unchanged, judged from the writeback ledger
without any API call.

A writing run records each KR's check-in (okr_mapping.history) and writes objectives, key results
and check-ins (flows.okr_writeback) unless a safety gate trips (okr_mapping.guards): then nothing
is written or recorded for that CRM and the run fails with the reason, unless `force` is set.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache, partial
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from connectors import run_lock
from connectors.errors import BadData, ConnectorConfigError, ConnectorError
from connectors.ledger import PlannedChange
from connectors.okr_records import OkrRecords
from connectors.results import StreamResult, WritebackResult
from connectors.store import make_engine
from flows import alerts, retries
from flows.alerts import AlertsOutcome
from flows.credentials import connection_env, store_url, where_from
from flows.digest_render import nightly_digest
from flows.okr_writeback import config_revision, okr_records
from flows.parallel import crm_slot, run_parallel, stream_limit
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
    alerts: AlertsOutcome | None = None  # tasks and celebration posts found, sent or planned (flows.alerts)

    @property
    def records_extracted(self) -> int:
        return sum(stream.records for stream in self.streams)

    @property
    def problems(self) -> list[str]:
        """Why this CRM's sync is not a full success (a failure, or records it rejected)."""
        found = [f"{self.source}: {self.error}"] if self.error else []
        if self.writeback is not None and self.writeback.failed:
            found.append(f"{self.source}: {self.writeback.failed} record(s) rejected (retried next run)")
        if self.alerts is not None and self.alerts.sent is not None and self.alerts.sent.failed:
            found.append(f"{self.source}: {self.alerts.sent.failed} alert(s) not sent (sent next run)")
        if self.plan is None and self.writeback is None:  # stopped by a gate (forced runs wrote anyway)
            found += [f"{self.source}: writeback stopped: {reason} (check the data; `--force` writes anyway)"
                      for reason in self.blocked]
        return found


@dataclass
class SyncReport:
    config_path: str
    as_of: date
    runs: list[SourceRun] = field(default_factory=list)
    org: str | None = None  # the config's org this run synced (None: the environment's)
    flow_run_id: str | None = None  # the Prefect flow run, whose artifacts hold this report

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


_ENGINES_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def _cached_engine(database_url: str | None) -> Engine:
    return make_engine(database_url)


def store_engine(database_url: str | None) -> Engine:
    """One engine (and one schema check) per store URL for the whole process; the lock keeps
    parallel CRMs and streams from creating the same store's tables twice at once."""
    with _ENGINES_LOCK:
        return _cached_engine(database_url)


@task(cache_policy=NONE, retries=retries.EXTRACT_RETRIES, retry_delay_seconds=retries.EXTRACT_RETRY_DELAYS,
      retry_jitter_factor=retries.RETRY_JITTER, retry_condition_fn=retries.retry_if_transient)
def extract_stream(source: Source, database_url: str | None, stream: str) -> StreamResult:
    """Pull one stream's new and changed records into the store.

    Retried on transient failures: each page is committed with its cursor, and records the store
    holds unchanged are not rewritten, so a second attempt resumes where the first stopped.
    """
    result = source.extract(store_engine(database_url), stream)
    get_run_logger().info("%s %s: %d record(s) extracted", source.name, stream, result.records)
    return result


@task(cache_policy=NONE, retries=retries.COMPUTE_RETRIES, retry_delay_seconds=retries.COMPUTE_RETRY_DELAYS,
      retry_jitter_factor=retries.RETRY_JITTER, retry_condition_fn=retries.retry_if_transient)
def compute_results(config: OkrConfig, database_url: str | None, source_name: str, as_of: date) -> list[KrResult]:
    """Evaluate every KR of the config over one source's records (pure SQL over the store).

    Retried when the store was unreachable or locked: it only reads, so a repeat is harmless.
    """
    return compute_key_results(store_engine(database_url), config, source=source_name, as_of=as_of)


@task(cache_policy=NONE, retries=retries.WRITEBACK_RETRIES, retry_delay_seconds=retries.WRITEBACK_RETRY_DELAYS,
      retry_jitter_factor=retries.RETRY_JITTER, retry_condition_fn=retries.retry_if_transient)
def write_back(source: Source, database_url: str | None, records: OkrRecords) -> WritebackResult:
    """Upsert objectives, key results and check-ins into the CRM's OKR objects; unchanged rows are not sent.

    The connector checks its target objects before the first row it sends, so a run with
    nothing to write makes no call at all.

    Retried (once, on a transient failure only) because a repeat cannot duplicate nor undo: every
    record is upserted by its external key, each confirmed batch goes into the ledger at once, and
    the repeat sends only what the ledger does not hold as written (rows the first attempt confirmed
    count as unchanged in the repeat's totals). Records the CRM refused are not errors of the task
    (they are reported and sent again next run), so they never trigger a retry. The check-ins
    were recorded in the store before this task, once.
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
                 as_of: date | None = None, write: bool = True, plan: bool = False, force: bool = False,
                 org: str | None = None) -> SyncReport:
    """Sync every source CRM named in `sources` (default: the org's, else the config's `source`).

    `write=False` computes without writing; `plan=True` also computes, then plans the writeback
    from the ledger instead of doing it (no write request to any CRM). `force`: write even when a
    safety gate trips. `org`: one of the config's `orgs:`, whose credentials and store the run uses.

    `database_url` is a secret parameter: a URL with a password never shows in Prefect's UI. It
    wins over the org's store.

    The run holds its store's lock throughout (connectors.run_lock): a second run of the same store at
    once waits up to $OKR_SYNC_LOCK_WAIT_SECONDS (default 0), then fails with `StoreLocked`.
    """
    config = load_config(Path(config_path))  # fail fast, before any API call
    for warning in config.warnings:
        get_run_logger().warning("%s", warning)
    chosen = config.org(org) if org else None
    if org and chosen is None:
        known = ", ".join(each.name for each in config.orgs) or "none"
        raise ConnectorConfigError(f"{config_path} has no org '{org}' (its orgs: {known})")
    get_run_logger().info("%s", where_from(chosen))
    env = connection_env(chosen)  # Secret blocks are read here, inside the run
    url = database_url.get_secret_value() if isinstance(database_url, SecretStr) else database_url
    url = url or store_url(chosen)
    # One run per store at a time; a second one waits ($OKR_SYNC_LOCK_WAIT_SECONDS) or stops (connectors.run_lock)
    with run_lock.acquire(store_engine(url), label=f"flow run {flow_run.get_name() or flow_run.get_id()}"):
        history.ensure_tables(store_engine(url))  # once, before the CRMs' threads share the store
        day = as_of or config.today()  # in the config's time zone
        report = SyncReport(config_path=config_path, as_of=day, org=org, flow_run_id=flow_run.get_id())
        names = sources or (chosen.sources if chosen and chosen.sources else None) or [config.source]
        sync = partial(_sync_source, config=config, database_url=url, day=day, write=write and not plan, plan=plan,
                       force=force, revision=config_revision(Path(config_path)), env=env)
        synced = run_parallel(sync, names, limit=len(names))  # each CRM records its own failure in its SourceRun
        if synced.error is not None:
            raise synced.error
        report.runs = synced.done
        suffix = f"-{org}" if org else ""
        create_markdown_artifact(key=f"okr-kr-table{suffix}", markdown=markdown_report(report),
                                 description=f"Key results as of {day.isoformat()}" + (f", org {org}" if org else ""))
        create_table_artifact(key=f"okr-kr-values{suffix}", table=table_rows(report),
                              description=f"Key result values as of {day.isoformat()}, one row per KR, group and CRM")
        create_markdown_artifact(key=f"okr-weekly-digest{suffix}", markdown=nightly_digest(
            store_engine(url), config, [run.source for run in report.runs], measured_day(config, day)),
            description=f"What moved in the week to {day.isoformat()}, per team and owner")
        if report.problems:
            raise SyncFailed(report)
        return report


def _sync_source(name: str, config: OkrConfig, database_url: str | None, day: date, write: bool,
                 plan: bool = False, force: bool = False, revision: str | None = None,
                 env: Mapping[str, str] | None = None) -> SourceRun:
    """Extract, compute and write back one CRM; a connector failure is recorded, not raised.

    A stream that met data it cannot read (BadData) stops alone: the CRM's other streams are still
    read, but no key result of the CRM is computed or written, as it would miss those records.
    """
    run = SourceRun(source=name)
    try:
        limit = stream_limit(name, env)
        source = make_source(name, env=env, custom_fields=config.crm_custom_fields(name), time_zone=config.time_zone)
    except ConnectorError as error:
        run.error = str(error)
        return run
    try:
        with crm_slot(name):  # across runs: at most the limit's number of orgs sync this CRM at once
            unreadable: list[BadData] = []

            def extract(stream: str) -> StreamResult | None:
                try:
                    return extract_stream(source, database_url, stream)
                except BadData as error:  # that stream's data, not the CRM: the other streams go on
                    unreadable.append(error)
                    return None

            extracted = run_parallel(extract, source.STREAMS, limit)
            run.streams = [result for result in extracted.done if result is not None]
            if extracted.error is not None:
                raise extracted.error
            if unreadable:
                raise ConnectorError(" ".join(str(error) for error in unreadable) + f" No key result of {name} was "
                                     "computed or written back in this run: the data is incomplete.")
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
    current = latest is None or measured >= latest
    records = okr_records(config, run.results, run.objectives, checkins, users, current=current)
    found = alerts.find(engine, config, run.source, run.results, measured) if current else []  # none for the past
    if plan:
        run.plan = plan_writeback(source, database_url, records)
        run.alerts = AlertsOutcome(found, planned=alerts.plan(engine, run.source, found) if current else [])
        return
    if run.blocked and not force:
        for reason in run.blocked:
            get_run_logger().error("%s writeback stopped: %s", run.source, reason)
        return
    alerts.queue(engine, run.source, found)  # before the check-ins: a crash between never loses an alert
    history.record(engine, changes)
    run.history = changes
    run.writeback = write_back(source, database_url, records)
    if current:  # after the writeback: the tasks and posts point at the KR records
        run.alerts = AlertsOutcome(found, sent=alerts.send(source, engine))
