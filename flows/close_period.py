"""`okr-sync close-period PERIOD`: freeze a period's final values and scores, write them back marked final.

The period's key results are computed from the store as of its last day (run `okr-sync run` first, so
the store holds what the CRM holds), stored as final (okr_mapping.period_close), recorded as the
check-in of that day and written back with `final` set (Salesforce: Final__c; HubSpot: okr_final).
Later runs report the frozen values of a closed period, whatever data arrives late. The command
prints the score distribution per team and the KRs that closed at 1.0 twice in a row.

Closing twice changes nothing: the second close says "already closed" (it still sends what the CRM had
not confirmed, so a close whose writeback failed is completed by running it again); `--reopen`
computes and freezes the period afresh. Exit codes: 0 done, 1 the store or the CRM failed, 2 bad
input (config, period, a period not ended yet without `--force`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from flows.terminal import checked_source_and_config, console, fail

if TYPE_CHECKING:  # the CLI imports this module at start: the domain loads only when a close runs
    from sqlalchemy.engine import Engine

    from connectors.okr_records import OkrRecords
    from connectors.results import WritebackResult
    from okr_mapping import KrResult, OkrConfig
    from okr_mapping.period_close import KrFinal, TeamScores
    from okr_mapping.periods import Period


class PeriodNotEnded(ValueError):
    """The period's last day is not measured yet: its values could still move."""


@dataclass
class CloseReport:
    """What one close did: the frozen results, the distribution, the flags, the writeback."""

    source: str
    period: Period
    already_closed: bool
    finals: list[KrFinal] = field(default_factory=list)
    results: list[KrResult] = field(default_factory=list)
    teams: list[TeamScores] = field(default_factory=list)
    not_ambitious: list[KrFinal] = field(default_factory=list)
    writeback: WritebackResult | None = None


def close_period(engine: Engine, config: OkrConfig, config_path: Path, period_spec: str, source: str | None = None,
                 *, force: bool = False, reopen: bool = False, write: bool = True, today: date | None = None,
                 env: dict[str, str] | None = None) -> CloseReport:
    """Close `period_spec` (a label such as 2026-Q3, or any period spec) of `source` in the store of `engine`.

    Raises PeriodNotEnded (unless `force`), ValueError when no key result of the config has that
    period, ConnectorError when the CRM fails (the period stays closed: run it again to complete the
    writeback). `today`: the day of the run (default: today in the config's zone).
    """
    from flows.okr_writeback import config_revision, okr_records
    from okr_mapping import compute_key_results, history, period_close, rollup_objectives
    from okr_mapping.compute import measured_day
    from okr_mapping.owners import crm_users, owner_teams
    from okr_mapping.periods import FiscalCalendar

    chosen = source or config.source
    calendar = FiscalCalendar(config.fiscal_year_start_month)
    day = measured_day(config, today)
    period = calendar.resolve(period_spec, day)
    if period.end >= day and not force:
        raise PeriodNotEnded(f"{period.label} has not ended: its last day {period.end.isoformat()} is not measured "
                             f"yet (the run measures {day.isoformat()}); closing it now freezes values that can "
                             "still move (`--force` closes it anyway)")
    if reopen:
        period_close.reopen(engine, chosen, period.label)
    already = bool(period_close.closed(engine, chosen, period.label))
    last_day = period.end + timedelta(days=config.reporting_lag_days)  # so the run measures the period's last day
    results = [result for result in compute_key_results(engine, config, chosen, last_day)
               if result.period == period.label]
    if not results:
        raise ValueError(f"no key result of the config has the period {period.label}")
    revision = config_revision(config_path)
    if not already:
        period_close.freeze(engine, chosen, results, revision)
        results = period_close.apply_frozen(engine, chosen, results)
    report = CloseReport(source=chosen, period=period, already_closed=already, results=results,
                         finals=period_close.closed(engine, chosen, period.label))
    changes = history.compare(engine, chosen, results, period.end, revision)
    if not already:
        history.record(engine, changes)  # the final check-in, dated the period's last day
    with engine.connect() as conn:
        users, teams = crm_users(conn, chosen), owner_teams(conn, chosen)
    report.teams = period_close.distribution(report.finals, teams)
    report.not_ambitious = period_close.not_ambitious(engine, chosen, report.finals)
    if write:
        records = okr_records(config, results, rollup_objectives(results, config), changes.snapshots, users)
        report.writeback = _write(chosen, config, engine, records, env)
    return report


def _write(name: str, config: OkrConfig, engine: Engine, records: OkrRecords, env: dict[str, str] | None
           ) -> WritebackResult:
    from flows.sources import make_source

    source = make_source(name, env=env, custom_fields=config.crm_custom_fields(name), time_zone=config.time_zone)
    try:
        return source.write_okrs(engine, records)
    finally:
        source.close()


def print_report(report: CloseReport) -> None:
    """The close on the terminal: what was frozen and written, the bands per team, the flags."""
    label = report.period.label
    if report.already_closed:
        closed_at = min(row.closed_at for row in report.finals).date().isoformat()
        console.print(f"{label} ({report.source}) is already closed (on {closed_at}): the final values stay as "
                      "they are (`--reopen` to compute them afresh).", highlight=False)
    else:
        console.print(f"{label} ({report.source}) closed: {len(report.finals)} key result(s) frozen as of "
                      f"{report.period.end.isoformat()}.", highlight=False)
    if report.writeback is not None:
        outcome = report.writeback
        console.print(f"Written back marked final: {outcome.created} created, {outcome.updated} updated, "
                      f"{outcome.unchanged} unchanged, {outcome.failed} failed.", highlight=False)
    console.print("\nScore distribution per team (red 0-0.4, yellow 0.4-0.6, sweet spot 0.6-0.7, green 0.7-1):")
    for team in report.teams:
        bands = ", ".join(f"{name} {count}" for name, count in team.bands.items())
        console.print(f"  {escape(team.team)}: {team.count} KR(s), mean {team.mean:.2f} — {bands}", highlight=False)
    for row in report.not_ambitious:
        group = f" [{row.group}]" if row.group else ""
        console.print(escape(f"  not ambitious enough: {row.objective_id}.{row.kr_id}{group} closed at 1.0 in "
                             f"{label} and in the period before"), highlight=False)


def close_period_command(
    period: Annotated[str, typer.Argument(help="The period to close, e.g. 2026-Q3.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="The OKR rules file (YAML).")],
    source: Annotated[str | None, typer.Option(help="salesforce or hubspot; default: the config's.")] = None,
    database_url: Annotated[str | None, typer.Option(
        help="Store URL; default $OKR_SYNC_DATABASE_URL or .okr-sync/store.db")] = None,
    force: Annotated[bool, typer.Option(help="Close a period that has not ended yet.")] = False,
    reopen: Annotated[bool, typer.Option(help="Forget the frozen values and close the period afresh.")] = False,
    no_writeback: Annotated[bool, typer.Option("--no-writeback", help="Freeze in the store only.")] = False,
) -> None:
    """Freeze a period's final values and scores and write them back marked final; print the score
    distribution per team and the KRs not ambitious enough (1.0 twice in a row)."""
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.errors import ConnectorConfigError, ConnectorError
    from connectors.store import database_url as resolve_url
    from connectors.store import make_engine

    loaded = checked_source_and_config(source, config)
    try:
        report = close_period(make_engine(resolve_url(database_url)), loaded, config, period, source, force=force,
                              reopen=reopen, write=not no_writeback)
    except (PeriodNotEnded, ValueError) as error:
        raise fail(str(error), 2) from None
    except ConnectorConfigError as error:
        raise fail(f"the period is closed in the store, but cannot be written back: {error}", 2) from None
    except ConnectorError as error:
        raise fail(f"the period is closed in the store, but the writeback failed: {error} (run the same "
                   "command again to send what is missing)", 1) from None
    except SQLAlchemyError as error:
        raise fail(f"cannot use the store: {error.__class__.__name__}: {str(error).splitlines()[0]}", 1) from None
    print_report(report)
