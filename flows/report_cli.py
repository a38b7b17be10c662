"""`okr-sync report`: write the HTML report from the store (no CRM is called).

Exit codes as everywhere: 2 for bad input (config, option), 1 when the store cannot be read or holds
no records of the source yet (run `okr-sync run` first).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from flows.terminal import console, fail

DEFAULT_OUTPUT = Path("okr-report.html")


def has_records(engine: Engine, source: str) -> bool:
    """Whether the store holds any canonical record (of any entity) or check-in of `source`."""
    from connectors.store import Account, Activity, Campaign, Contact, Deal, Lead, LineItem, Owner, SupportCase
    from okr_mapping.history import KrSnapshot, ensure_tables

    ensure_tables(engine)  # a store that was extracted but never computed has no history tables yet
    with engine.connect() as conn:
        for model in (Deal, Activity, Lead, Account, Contact, SupportCase, Campaign, LineItem, Owner, KrSnapshot):
            table = model.__table__  # type: ignore[attr-defined]
            if conn.execute(select(table.c.source).where(table.c.source == source).limit(1)).first():
                return True
    return False


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL that does not exist (opening it would create an empty store)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def report_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="The OKR rules file (YAML).")],
    source: Annotated[str | None, typer.Option(help="salesforce or hubspot; default: the config's.")] = None,
    as_of: Annotated[str | None, typer.Option(help="Report as of this date (YYYY-MM-DD); default today.")] = None,
    database_url: Annotated[str | None, typer.Option(
        help="Store URL; default $OKR_SYNC_DATABASE_URL or .okr-sync/store.db")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the HTML page.")] = DEFAULT_OUTPUT,
) -> None:
    """Write one self-contained HTML page of the KRs: progress, status, burn-up charts, per-owner tables.

    Reads the local store only (run `okr-sync run` first); no CRM is called. The page loads nothing.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.store import database_url as resolve_url
    from connectors.store import make_engine
    from flows.report import write_report
    from flows.sources import SOURCE_NAMES
    from okr_mapping import ConfigError, load_config

    if source is not None and source not in SOURCE_NAMES:
        raise fail(f"unknown --source {source}; use {' or '.join(SOURCE_NAMES)}", 2)
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise fail(f"--as-of {as_of!r} is not a date like 2026-11-27", 2) from None
    try:
        loaded = load_config(config)
    except ConfigError as error:
        raise fail(f"the config has problems:\n{error}", 2) from None
    chosen = source or loaded.source
    url = resolve_url(database_url)
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise fail(f"no store at {missing}: run `okr-sync run --config {config}` first", 1)
    try:
        engine = make_engine(url)
        if not has_records(engine, chosen):
            raise fail(f"the store has no {chosen} records: run `okr-sync run --config {config} "
                       f"--source {chosen}` first", 1)
        written = write_report(engine, loaded, chosen, day, output, config_name=str(config))
    except SQLAlchemyError as error:
        raise fail(f"cannot read the store: {error.__class__.__name__}: {str(error).splitlines()[0]}", 1) from None
    except OSError as error:
        raise fail(f"cannot write {output}: {error}", 1) from None
    console.print(f"Report written to {written}", highlight=False, soft_wrap=True)


def demo_report(config: Path, data_dir: Path, as_of: date) -> Path:
    """The demo ends with the HTML report of its Salesforce KRs (progress, burn-up charts, per-owner tables)."""
    from connectors.store import make_engine
    from flows.report import write_report
    from okr_mapping import load_config

    path = write_report(make_engine(f"sqlite:///{data_dir / 'store.db'}"), load_config(config), "salesforce", as_of,
                        data_dir / "report.html", config_name=str(config))
    console.print(f"Report: {path.resolve()} (open it in a browser; it loads nothing from the network)")
    return path

