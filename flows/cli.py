"""The `okr-sync` command line: demo, run, plan, validate and the CRM sandbox.

Exit codes: 0 success, 1 failure (a CRM or the store failed, or another run holds the store's
lock: connectors.run_lock.StoreLocked), 2 bad input (config, missing credentials). Errors are one
readable message, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from flows.close_period import close_period_command
from flows.deploy_commands import deployments_command, serve_command
from flows.report_cli import report_command
from flows.setup_commands import setup_app
from flows.terminal import checked_source_and_config, console, errors
from flows.terminal import fail as _fail

# Prefect reads these at import: no telemetry (no network here) and a quiet local API server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

app = typer.Typer(help="Compute sales OKRs from Salesforce and HubSpot and write progress back.",
                  no_args_is_help=True, add_completion=False)
sandbox_app = typer.Typer(help="The bundled local Salesforce + HubSpot sandbox.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(setup_app, name="setup")
app.command("report")(report_command)
app.command("deployments")(deployments_command)
app.command("serve")(serve_command)
app.command("close-period")(close_period_command)


DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "examples" / "demo.yaml"
DEMO_DIR = Path(".okr-sync/demo")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The OKR rules file (YAML).")]


class _KnownErrorTracebacks(logging.Filter):
    """Prefect logs every task and flow failure with a traceback; ours carry a readable message."""

    def filter(self, record: logging.LogRecord) -> bool:
        from connectors.errors import ConnectorError
        from okr_mapping import ConfigError

        if record.exc_info and isinstance(record.exc_info[1], ConnectorError | ConfigError):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_known_tracebacks() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_KnownErrorTracebacks())


def _run_sync(config: Path, sources: list[str] | None, database_url: str | None, as_of: date | None,
              write: bool, plan: bool = False, force: bool = False):
    """Check the config and credentials, then run the nightly flow; known failures become exit codes.

    The checks run before the flow so that bad input reads as one message, not a flow-run traceback.
    """
    from pydantic import SecretStr

    from connectors.errors import ConnectorConfigError, ConnectorError
    from flows.extract_progress import extract_progress
    from flows.nightly import SyncFailed, nightly_sync
    from flows.sources import SOURCE_NAMES, check_credentials
    from okr_mapping import ConfigError, load_config

    unknown = [name for name in sources or [] if name not in SOURCE_NAMES]
    if unknown:
        raise _fail(f"unknown --source {', '.join(unknown)}; use {' or '.join(SOURCE_NAMES)}", 2)
    try:
        chosen = sources or [load_config(config).source]
        for name in chosen:
            check_credentials(name)
        _quiet_known_tracebacks()
        # A SecretStr, so Prefect stores the flow run's parameter masked: the URL may carry a password
        secret_url = SecretStr(database_url) if database_url else None
        with extract_progress(errors):
            return nightly_sync(str(config), sources=chosen, database_url=secret_url, as_of=as_of, write=write,
                                plan=plan, force=force)
    except ConfigError as error:
        raise _fail(f"the config has problems:\n{error}", 2) from None
    except ConnectorConfigError as error:
        raise _fail(str(error), 2) from None
    except SyncFailed as failure:
        return failure.report
    except ConnectorError as error:
        raise _fail(str(error), 1) from None


def _finish(report) -> None:
    """Exit 1, naming each problem, when a CRM failed or rejected records; the report is shown already."""
    if report.problems:
        raise _fail("the sync did not fully succeed:\n" + "\n".join(f"- {p}" for p in report.problems), 1)


@app.command()
def validate(config: ConfigOption) -> None:
    """Check a rules file and report every problem with its file, line and key, and OKR-practice warnings."""
    from okr_mapping import ConfigError, load_config
    from okr_mapping.hygiene import practice_warnings

    try:
        loaded = load_config(config)
    except ConfigError as error:
        raise _fail(f"the config has problems:\n{error}", 2) from None
    warnings = loaded.warnings + practice_warnings(loaded)
    for warning in warnings:
        errors.print(escape(str(warning)), highlight=False)
    count = sum(len(objective.key_results) for objective in loaded.objectives)
    counted = [_plural(len(loaded.objectives), "objective"), _plural(count, "key result")]
    counted += [_plural(len(warnings), "warning")] if warnings else []
    console.print(f"{config}: OK ({', '.join(counted)})")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


SourceOption = Annotated[list[str] | None, typer.Option(
    "--source", help="CRM to sync (repeatable); default: the config's.")]
OutputOption = Annotated[str, typer.Option(help="table or json")]
AsOfOption = Annotated[str | None, typer.Option(help="Compute as of this date (YYYY-MM-DD); default today.")]
DatabaseUrlOption = Annotated[str | None, typer.Option(
    help="Store URL; default $OKR_SYNC_DATABASE_URL or .okr-sync/store.db")]


def _checked_options(output: str, as_of: str | None) -> date | None:
    """Validate the options `run` and `plan` share; returns the as-of date (None: today)."""
    if output not in ("table", "json"):
        raise _fail("--output must be 'table' or 'json'", 2)
    try:
        return date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise _fail(f"--as-of {as_of!r} is not a date like 2026-11-27", 2) from None


@app.command()
def run(
    config: ConfigOption,
    source: SourceOption = None,
    output: OutputOption = "table",
    as_of: AsOfOption = None,
    database_url: DatabaseUrlOption = None,
    no_writeback: Annotated[bool, typer.Option("--no-writeback", help="Compute but write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Write even when a safety gate trips (values that "
                                                        "jump or fall to zero since the last check-in).")] = False,
) -> None:
    """Sync a real org: credentials come from environment variables (see README)."""
    day = _checked_options(output, as_of)
    report = _run_sync(config, source, database_url, day, not no_writeback, force=force)
    if output == "json":
        print(json.dumps(_json_report(report), indent=2))
    else:
        _print_report(report)
    _finish(report)


@app.command()
def plan(
    config: ConfigOption,
    source: SourceOption = None,
    output: OutputOption = "table",
    as_of: AsOfOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Show what `run` would write to each CRM (created / updated / unchanged, old → new), writing nothing.

    The CRMs are read (new and changed records go into the local store, as in a run) so the KRs
    are fresh; the plan itself comes from the store's writeback ledger, without any write request.
    """
    day = _checked_options(output, as_of)
    report = _run_sync(config, source, database_url, day, False, plan=True)
    if output == "json":
        print(json.dumps(_json_plan(report), indent=2, default=str))
    else:
        _print_plan(report)
    _finish(report)


def _json_plan(report) -> dict:
    from flows.render import plan_totals

    runs = [{"source": run.source, "error": run.error, "records_extracted": run.records_extracted,
             "api_calls": run.api_calls, "totals": None if run.plan is None else plan_totals(run.plan),
             "changes": None if run.plan is None else [change.as_dict() for change in run.plan],
             "guards": run.blocked,
             "alerts": None if run.alerts is None else [dict(row) for row in run.alerts.planned or []]}
            for run in report.runs]
    return {"as_of": report.as_of.isoformat(), "runs": runs}


def _print_plan(report) -> None:
    from flows.render import plan_table, plan_totals_text

    for run in report.runs:
        console.print(f"[bold]{run.source}[/]: extracted {run.records_extracted} new or changed record(s) "
                      f"with {run.api_calls} API call(s); nothing written")
        if run.error:
            errors.print(f"  [red]failed:[/] {escape(run.error)}", highlight=False)
        if run.plan is not None:
            console.print(plan_table(run.plan, f"Plan for {run.source}, as of {report.as_of}"))
            console.print(f"  {run.source} totals: {plan_totals_text(run.plan)}", highlight=False)
        for line in run.alerts.lines() if run.alerts is not None else []:
            console.print(f"  alerts: {escape(line)}", highlight=False)
        for reason in run.blocked:
            errors.print(f"  [yellow]a run would stop here:[/] {escape(reason)} (`run --force` writes anyway)",
                         highlight=False)


def _json_report(report) -> dict:
    """The KR rows plus, per CRM, what the run extracted and wrote (for scripts and monitors)."""
    runs = [{"source": run.source, "records_extracted": run.records_extracted, "api_calls": run.api_calls,
             "streams": {stream.stream: stream.records for stream in run.streams}, "error": run.error,
             "writeback": None if run.writeback is None else {
                 name: getattr(run.writeback, name)
                 for name in ("created", "updated", "unchanged", "failed", "errors")},
             "objectives": [objective.as_row() for objective in run.objectives]}
            for run in report.runs]
    return {"as_of": report.as_of.isoformat(), "runs": runs, "key_results": report.rows()}


@app.command()
def explain(
    kr: Annotated[str, typer.Argument(help="The key result: objective-id.kr-id, or kr-id when unique.")],
    config: ConfigOption,
    source: Annotated[str | None, typer.Option(help="salesforce or hubspot; default: the config's.")] = None,
    as_of: AsOfOption = None,
    database_url: DatabaseUrlOption = None,
    limit: Annotated[int, typer.Option(min=0, help="Records to list per query.")] = 20,
    group: Annotated[str | None, typer.Option(help="A breakdown's group: owner email, team or value.")] = None,
) -> None:
    """Show how one key result is computed from the store: metric, SQL, records and every number.

    Reads the local store only (run `okr-sync run` first); no CRM is called.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.store import make_engine
    from flows.explain import print_explanation
    from okr_mapping.explain import ExplainError, explain_key_result

    day = _checked_options("table", as_of)
    loaded = checked_source_and_config(source, config)
    try:
        explanation = explain_key_result(make_engine(database_url), loaded, kr, source, day, group, limit)
    except ExplainError as error:
        raise _fail(str(error), 2) from None
    except SQLAlchemyError as error:
        raise _fail(f"cannot read the store: {error.__class__.__name__}: {str(error).splitlines()[0]}", 1) from None
    print_explanation(console, explanation)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the sandbox and the store keep their state.")] = DEMO_DIR,
    config: ConfigOption = DEMO_CONFIG,
) -> None:
    """Start the bundled sandbox org, run the nightly sync from both CRMs and show the KRs."""
    from connectors.sandbox.server import SandboxServer

    console.print(f"Starting the CRM sandbox in {data_dir / 'sandbox'} (generated on first use)...")
    time_zone = _config_time_zone(config)
    _reset_store_for_a_new_org(data_dir, time_zone)
    with SandboxServer(data_dir / "sandbox", time_zone=time_zone) as sandbox:
        os.environ.update(sandbox.connection_env())
        console.print(f"Salesforce API {sandbox.salesforce_url}, HubSpot API {sandbox.hubspot_url}")
        report = _run_sync(config, ["salesforce", "hubspot"], f"sqlite:///{data_dir / 'store.db'}", None, True)
        calls = {crm: sandbox.calls(crm) for crm in ("salesforce", "hubspot")}
    console.print()
    _print_report(report, table_sources={"salesforce"})
    _print_agreement(report)
    console.print(f"API requests served by the sandbox: Salesforce {calls['salesforce']}, "
                  f"HubSpot {calls['hubspot']}. Run `make demo` again: the org has not changed since, so that run "
                  f"extracts and writes nothing; `okr-sync sandbox tick --data-dir {data_dir / 'sandbox'}` moves "
                  f"the org on by a day.", soft_wrap=True)
    from flows.report_cli import demo_report
    from flows.run_artifacts import show_artifacts

    show_artifacts(report)
    demo_report(config, data_dir, report.as_of)
    _finish(report)


def _config_time_zone(config: Path) -> str:
    """The config's time zone, which the demo org is generated in (UTC when the config does not load:
    the sync then reports why)."""
    from okr_mapping import ConfigError, load_config

    try:
        return load_config(config).time_zone
    except ConfigError:
        return "UTC"


def _reset_store_for_a_new_org(data_dir: Path, time_zone: str) -> None:
    """Delete the demo's store when its sandbox org is about to be generated (again, perhaps in
    another time zone): the store's records, cursors and writeback ledger describe the old org and
    would hide the new one's."""
    from connectors.sandbox.state import SandboxState

    store = data_dir / "store.db"
    if not store.is_file():
        return
    sandbox_dir = data_dir / "sandbox"
    fresh = not (sandbox_dir / "sandbox.db").is_file()
    if not fresh:
        probe = SandboxState(sandbox_dir)
        fresh = not probe.is_seeded or probe.is_outdated or probe.spec.time_zone != time_zone
        probe.close()
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            store.with_name(store.name + suffix).unlink(missing_ok=True)
        console.print(f"The sandbox org will be generated anew, so the demo store {store} was reset.")


def _print_report(report, table_sources: set[str] | None = None) -> None:
    """Per source: what was extracted and written; the KR table for `table_sources` (default all)."""
    from flows.render import rich_table

    for run in report.runs:
        streams = ", ".join(f"{stream.stream}: {stream.records}" for stream in run.streams)
        console.print(f"[bold]{run.source}[/]: extracted {run.records_extracted} new or changed record(s) "
                      f"({streams}) with {run.api_calls} API call(s)")
        if run.error:
            errors.print(f"  [red]failed:[/] {escape(run.error)}", highlight=False)
        if run.writeback is not None:
            wb = run.writeback
            console.print(f"  written back: {wb.created} created, {wb.updated} updated, "
                          f"{wb.unchanged} unchanged, {wb.failed} failed")
            for message in wb.errors:
                errors.print(f"  rejected: {escape(message)}", highlight=False)
    for run in report.runs:
        if run.results and (table_sources is None or run.source in table_sources):
            console.print()
            console.print(rich_table(run.results, f"Key results from {run.source}, as of {report.as_of}",
                                     run.objectives))


def _print_agreement(report) -> None:
    """The demo's promise: one org, two CRMs, the same numbers."""
    by_source = {run.source: {r.key: r.value for r in run.results} for run in report.runs}
    if len(by_source) < 2:
        return
    first, second = list(by_source.values())[:2]
    differing = sorted(key for key in first.keys() | second.keys()
                       if round(first.get(key, float("nan")), 6) != round(second.get(key, float("nan")), 6))
    if differing:
        console.print(f"[red]Salesforce and HubSpot disagree on {len(differing)} KR(s):[/] {', '.join(differing)}")
    else:
        console.print(f"[green]Salesforce and HubSpot give identical values for all {len(first)} KRs.[/]")


@sandbox_app.command("serve")
def sandbox_serve(
    data_dir: Annotated[Path, typer.Option(help="Sandbox state directory (kept across restarts).")]
    = Path(".okr-sync/sandbox"),
    deals: Annotated[int, typer.Option(help="Deals to generate on first start.")] = 3000,
    seed: Annotated[int, typer.Option(help="Generator seed (first start only).")] = 42,
    salesforce_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8443,
    hubspot_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8444,
) -> None:
    """Serve the sandbox org as Salesforce and HubSpot APIs over HTTPS until Ctrl-C."""
    from connectors.sandbox.generator import OrgSpec
    from connectors.sandbox.server import SandboxServer

    try:
        server = SandboxServer(data_dir, OrgSpec(seed=seed, deals=deals),
                               salesforce_port=salesforce_port, hubspot_port=hubspot_port)
    except OSError as error:
        raise _fail(f"cannot listen: {error} (choose other ports with --salesforce-port/--hubspot-port)", 2) \
            from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        console.print(f"Salesforce API: {server.salesforce_url}\nHubSpot API:    {server.hubspot_url}\n"
                      f"CA bundle:      {server.ca_path}\nToken:          {server.token}\n"
                      f"Data directory: {data_dir}\n\nTo sync against it from another shell:")
        for name, value in server.connection_env().items():
            console.print(f"export {name}={value}", highlight=False, soft_wrap=True)
        console.print("\nPress Ctrl-C to stop.")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


@sandbox_app.command("tick")
def sandbox_tick(
    days: Annotated[int, typer.Option(min=1, help="Days of sales activity to simulate.")] = 1,
    data_dir: Annotated[Path, typer.Option(help="Sandbox state directory, as for `serve` (the demo's "
                                                "sandbox lives in .okr-sync/demo/sandbox).")]
    = Path(".okr-sync/sandbox"),
    seed: Annotated[int | None, typer.Option(help="Vary the simulated activity; same seed, same changes.")]
    = None,
) -> None:
    """Advance the sandbox org's clock by N days of deals, stage moves, closes, deletions and calls.

    Safe while `okr-sync sandbox serve` runs on the same data directory.
    """
    from connectors.sandbox.state import SandboxState, open_sandbox
    from connectors.sandbox.tick import tick

    if not (data_dir / "sandbox.db").is_file():
        raise _fail(f"no sandbox org in {data_dir}: run `okr-sync sandbox serve` or `okr-sync demo` first "
                    f"(the demo's sandbox lives in .okr-sync/demo/sandbox)", 2)
    probe = SandboxState(data_dir)
    seeded = probe.is_seeded
    probe.close()
    if not seeded:
        raise _fail(f"no sandbox org in {data_dir}: run `okr-sync sandbox serve` or `okr-sync demo` first", 2)
    state = open_sandbox(data_dir)  # an org of an older generator version is generated again first
    try:
        summary = tick(state, days, seed)
    finally:
        state.close()
    console.print(summary.describe(), highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
