"""How a run's KR results are shown: a markdown table (Prefect artifact) and a terminal table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from okr_mapping import KrResult, ObjectiveResult

if TYPE_CHECKING:
    from connectors.ledger import PlannedChange
    from flows.nightly import SyncReport

PLAN_ACTIONS = ("created", "updated", "unchanged")

STATUS_LABELS = {"achieved": "achieved", "on_track": "on track", "at_risk": "at risk", "off_track": "off track"}
COLUMNS = ("Objective", "Key result", "Group", "Value", "Target", "Progress", "Score", "Status", "Forecast")


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
        forecast_text(result),
    )


def forecast_text(result: KrResult) -> str:
    """The projected end value, with the chance of reaching the target when there is one."""
    if result.forecast is None or result.forecast_method == "final":
        return ""
    whole = float(result.value).is_integer() and result.unit != "%"  # a count forecasts whole records
    text = format_value(float(round(result.forecast)) if whole else result.forecast, result.unit)
    return text if result.forecast_confidence is None else f"{text} ({result.forecast_confidence:.0%})"


def text_bar(progress: float, width: int = 10) -> str:
    """Progress as a bar of block characters (clamped to 0-100%), e.g. ██████░░░░ 63%."""
    filled = round(min(max(progress, 0.0), 1.0) * width)
    return "█" * filled + "░" * (width - filled) + f" {progress:.0%}"


def markdown_table(results: Iterable[KrResult]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    progress = COLUMNS.index("Progress")
    for result in results:
        cells = list(result_cells(result))
        cells[progress] = text_bar(result.progress)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def table_rows(report: SyncReport) -> list[dict[str, Any]]:
    """The run's KRs as rows of the Prefect table artifact (one per KR and group, per CRM)."""
    return [{"source": run.source, "key": result.key, "objective": result.objective_title, "key_result": result.title,
             "group": result.group or "", "value": result.value, "target": result.target,
             "progress": result.progress, "score": result.score, "status": result.status,
             "forecast": result.forecast, "forecast_confidence": result.forecast_confidence}
            for run in report.runs for result in run.results]


def markdown_objectives(objectives: Iterable[ObjectiveResult]) -> str:
    """One row per objective: its weighted roll-up score and pace status (children indented)."""
    rows = list(objectives)
    depth = _depths(rows)
    lines = ["| Objective | Period | Score | Status |", "|---|---|---|---|"]
    for objective in rows:
        title = "&nbsp;&nbsp;" * depth[objective.objective_id] + objective.title.replace("|", "\\|")
        lines.append(f"| {title} | {objective.period} | {objective.score:.2f} | "
                     f"{STATUS_LABELS.get(objective.status, objective.status)} |")
    return "\n".join(lines)


def _depths(objectives: list[ObjectiveResult]) -> dict[str, int]:
    """How deep each objective sits in the company -> team -> rep tree (0 at the top)."""
    parents = {objective.objective_id: objective.parent for objective in objectives}
    depths = {}
    for objective_id in parents:
        depth, current, seen = 0, parents[objective_id], {objective_id}
        while current in parents and current not in seen:
            seen.add(current)
            depth, current = depth + 1, parents[current]
        depths[objective_id] = depth
    return depths


def markdown_report(report: SyncReport) -> str:
    """The run artifact: per source, what was extracted, the KR table and what was written."""
    parts = [f"# OKR sync as of {report.as_of.isoformat()}"]
    for run in report.runs:
        parts.append(f"## {run.source}")
        streams = ", ".join(f"{stream.stream} {stream.records}" for stream in run.streams)
        left = "" if run.api_calls_left is None else f" ({run.api_calls_left:,} left in the CRM's daily quota)"
        parts.append(f"Records extracted: {streams}. API calls: {run.api_calls}{left}.")
        if run.objectives:
            parts.append(markdown_objectives(run.objectives))
        parts.append(markdown_table(run.results))
        if run.error:
            parts.append(f"**Failed:** {run.error}")
        if run.writeback is not None:
            wb = run.writeback
            parts.append(f"Writeback: {wb.created} created, {wb.updated} updated, {wb.unchanged} unchanged, "
                         f"{wb.failed} failed.")
            parts.extend(f"- rejected: {error}" for error in wb.errors)
        sent = run.alerts.sent if run.alerts is not None else None
        if sent is not None and (sent.created or sent.reconciled or sent.failed or sent.skipped):
            parts.append(f"Alerts: {sent.created} created, {sent.reconciled} recovered after a crash, "
                         f"{sent.failed} failed (sent next run), {sent.skipped} waiting for their key result.")
            parts.extend(f"- not sent: {error}" for error in sent.errors)
        parts.extend(f"**Writeback stopped by a safety gate:** {reason}" for reason in run.blocked
                     if run.writeback is None and run.plan is None)
        if run.plan is not None:
            parts.append(f"Plan (nothing written): {plan_totals_text(run.plan)}.")
            parts.extend(f"- {change.key}: {change.action}" + (f" ({describe_changes(change)})"
                         if change.action == "updated" else "") for change in run.plan
                         if change.action != "unchanged")
    return "\n\n".join(parts)


def rich_table(results: Iterable[KrResult], title: str,
               objectives: Iterable[ObjectiveResult] = ()) -> Table:
    """Objectives as sections (with their roll-up score and status when given), one row per KR; a
    breakdown's groups indented under its title."""
    rolled = {objective.objective_id: objective for objective in objectives}
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("Key result", overflow="fold", max_width=48)
    for column in ("Value", "Target", "Progress", "Score"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Forecast", justify="right", no_wrap=True)
    styles = {"achieved": "bold green", "on_track": "green", "at_risk": "yellow", "off_track": "red"}
    objective, heading = None, None
    for result in results:
        if result.objective_id != objective:
            objective = result.objective_id
            table.add_section()
            section = f"[bold]{escape(result.objective_title)}[/] ({result.period})"
            summary = rolled.get(objective)
            if summary is None:
                table.add_row(section)
            else:
                status = STATUS_LABELS.get(summary.status, summary.status)
                table.add_row(section, "", "", "", f"[bold]{summary.score:.2f}[/]",
                              f"[{styles.get(summary.status, '')}]{status}[/]")
        label = escape(result.title)
        if result.group is not None:
            if heading != (result.objective_id, result.kr_id):
                table.add_row(f"  {label}")
            label = f"    {escape(result.group)}"
        heading = (result.objective_id, result.kr_id)
        cells = result_cells(result)
        status = f"[{styles.get(result.status, '')}]{cells[7]}[/]"
        table.add_row(f"  {label}" if result.group is None else label, *cells[3:7], status, cells[8])
    return table


def plan_totals(plan: Sequence[PlannedChange]) -> dict[str, int]:
    return {action: sum(change.action == action for change in plan) for action in PLAN_ACTIONS}


def plan_totals_text(plan: Sequence[PlannedChange]) -> str:
    return ", ".join(f"{count} {action}" for action, count in plan_totals(plan).items())


def _plain(value: Any) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe_changes(change: PlannedChange, separator: str = "; ") -> str:
    """An updated KR's changed fields as `field: old → new` (old `?` when the ledger did not keep it)."""
    return separator.join(f"{c.field}: {_plain(c.old) if change.old_known else '?'} → {_plain(c.new)}"
                          for c in change.changes)


def plan_table(plan: Sequence[PlannedChange], title: str) -> Table:
    """One row per KR key: what a run would do in the CRM, with old → new for changed fields."""
    table = Table(title=title, title_justify="left")
    table.add_column("Record", overflow="fold", max_width=48)
    table.add_column("Action", no_wrap=True)
    table.add_column("Changes (field: old → new)", overflow="fold")
    styles = {"created": "green", "updated": "yellow", "unchanged": "dim"}
    for change in plan:
        if change.action == "updated":
            detail = escape(describe_changes(change, "\n"))
        elif change.action == "created":
            detail = f"new record ({len(change.changes)} fields)"
        else:
            detail = ""
        kind = change.object.replace("_", " ")
        table.add_row(f"{kind}: {escape(change.key)}", f"[{styles[change.action]}]{change.action}[/]", detail)
    return table
