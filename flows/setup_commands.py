"""`okr-sync setup`: check (both CRMs) or create (HubSpot) the objects okr-sync writes into.

Salesforce objects are metadata an admin deploys with the Salesforce CLI
(connectors/salesforce/metadata); okr-sync only checks them. HubSpot custom objects can be made
through the API, so `setup hubspot` does it (it needs the crm.schemas.custom.write scope).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape

from connectors.errors import ConnectorConfigError, ConnectorError
from flows import alerts
from flows.sources import SOURCE_NAMES, make_source
from flows.terminal import console, fail

setup_app = typer.Typer(help="Check or create okr-sync's objects in the CRMs.", invoke_without_command=True)




def check_all() -> tuple[int, int]:
    """Check every CRM whose credentials are set; returns (problems found, CRMs checked)."""
    problems = checked = 0
    for name in SOURCE_NAMES:
        try:
            source = make_source(name, os.environ)
        except ConnectorConfigError:
            console.print(f"{name}: not configured, skipped")
            continue
        checked += 1
        try:
            found = source.check_setup()
            found += alerts.setup_problems(source)  # tasks and posts (flows.alerts)
        except ConnectorError as error:
            found = [str(error)]
        finally:
            source.close()
        problems += len(found)
        if found:
            console.print(f"[red]{name}: {len(found)} problem(s)[/]")
            for problem in found:
                console.print(f"  - {escape(problem)}", highlight=False)
        else:
            console.print(f"[green]{name}: every okr-sync object and field is in place[/]")
    return problems, checked


def create_hubspot() -> None:
    """Create what is missing in the HubSpot portal and say what was done (nothing, the second time)."""
    source = make_source("hubspot", os.environ)
    try:
        done = source.setup()  # type: ignore[attr-defined]
        done += alerts.setup(source)  # okr_alert_key on tasks and notes
    finally:
        source.close()
    for action in done:
        console.print(f"- {escape(action)}", highlight=False)
    console.print("[green]HubSpot portal ready[/]" + ("" if done else ": nothing to do, everything was in place"))


@setup_app.callback()
def setup(
    context: typer.Context,
    check: Annotated[bool, typer.Option("--check", help="Describe okr-sync's objects in every configured CRM "
                                                        "and say precisely what is missing.")] = False,
) -> None:
    """`setup --check`: verify the CRM objects and fields okr-sync writes; `setup hubspot`: create them."""
    if context.invoked_subcommand is not None:
        return
    if not check:
        raise fail("say what to do: `okr-sync setup --check` or `okr-sync setup hubspot`", 2)
    problems, checked = check_all()
    if not checked:
        raise fail("no CRM is configured: set the Salesforce or HubSpot credentials (see README)", 2)
    if problems:
        raise fail(f"{problems} problem(s): deploy or create what is missing, then check again", 1)


@setup_app.command("hubspot")
def setup_hubspot() -> None:
    """Create okr-sync's custom objects, properties and associations in the HubSpot portal (idempotent)."""

    try:
        create_hubspot()
    except ConnectorConfigError as error:
        raise fail(str(error), 2) from None
    except ConnectorError as error:
        raise fail(str(error), 1) from None
