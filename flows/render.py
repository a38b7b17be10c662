"""How a run's KR results are shown: a markdown table (Prefect artifact) and a terminal table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from okr_mapping import KrResult

if TYPE_CHECKING:
    from flows.nightly import SyncReport

STATUS_LABELS = {"achieved": "achieved", "on_track": "on track", "at_risk": "at risk", "off_track": "off track"}
COLUMNS = ("Objective", "Key result", "Group", "Value", "Target", "Progress", "Score", "Status")


def format_value(value: float, unit: str | None) -> str:
    if unit == "USD":
        return f"${value:,.0f}"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "days":
        return f"{value:.1f} d"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def result_cells(result: KrResult) -> tuple[str, ...]:
    return (
        result.objective_title,
        result.title,
        result.group or "",
        format_value(result.value, result.unit),
        format_value(result.target, result.unit),
        f"{result.progress:.0%}",
        f"{result.score:.2f}",
        STATUS_LABELS.get(result.status, result.status),
    )


def markdown_table(results: Iterable[KrResult]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        cells = (cell.replace("|", "\\|") for cell in result_cells(result))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(report: SyncReport) -> str:
    """The run artifact: per source, what was extracted, the KR table and what was written."""
    parts = [f"# OKR sync as of {report.as_of.isoformat()}"]
    for run in report.runs:
        parts.append(f"## {run.source}")
        streams = ", ".join(f"{stream.stream} {stream.records}" for stream in run.streams)
        parts.append(f"Records extracted: {streams}. API calls: {run.api_calls}.")
        parts.append(markdown_table(run.results))
        if run.error:
            parts.append(f"**Failed:** {run.error}")
        if run.writeback is not None:
            wb = run.writeback
            parts.append(f"Writeback: {wb.created} created, {wb.updated} updated, {wb.unchanged} unchanged, "
                         f"{wb.failed} failed.")
            parts.extend(f"- rejected: {error}" for error in wb.errors)
    return "\n\n".join(parts)


def rich_table(results: Iterable[KrResult], title: str) -> Table:
    """Objectives as sections, one row per KR; a breakdown's groups indented under its title."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("Key result", overflow="fold", max_width=48)
    for column in ("Value", "Target", "Progress", "Score"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    styles = {"achieved": "bold green", "on_track": "green", "at_risk": "yellow", "off_track": "red"}
    objective, heading = None, None
    for result in results:
        if result.objective_id != objective:
            objective = result.objective_id
            table.add_section()
            table.add_row(f"[bold]{escape(result.objective_title)}[/] ({result.period})")
        label = escape(result.title)
        if result.group is not None:
            if heading != (result.objective_id, result.kr_id):
                table.add_row(f"  {label}")
            label = f"    {escape(result.group)}"
        heading = (result.objective_id, result.kr_id)
        cells = result_cells(result)
        status = f"[{styles.get(result.status, '')}]{cells[-1]}[/]"
        table.add_row(f"  {label}" if result.group is None else label, *cells[3:7], status)
    return table
