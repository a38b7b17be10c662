"""How `okr-sync explain` shows a key result's explanation, with links into the CRM where known.

Links need the org's address, which the store does not keep: Salesforce's comes from
SALESFORCE_INSTANCE_URL, HubSpot's portal from HUBSPOT_PORTAL_ID. Without them ids are shown alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from rich.console import Console
from rich.markup import escape

from flows.render import STATUS_LABELS, format_value
from okr_mapping.explain import ContributingRecord, Explanation, SideExplanation

# Canonical entity -> the CRM's object (an activity's depends on its kind).
SALESFORCE_OBJECTS = {"deal": "Opportunity", "account": "Account", "contact": "Contact", "lead": "Lead",
                      "case": "Case", "campaign": "Campaign", "line_item": "OpportunityLineItem",
                      "call": "Task", "email": "Task", "meeting": "Event"}
HUBSPOT_OBJECT_TYPES = {"deal": "0-3", "account": "0-2", "contact": "0-1", "case": "0-5", "line_item": "0-8",
                        "call": "0-48", "email": "0-49", "meeting": "0-47"}  # HubSpot has no leads or campaigns


def record_link(source: str, entity: str, record: ContributingRecord,
                env: Mapping[str, str] | None = None) -> str | None:
    """The record's page in its CRM, or None when the org's address is unknown (or the CRM has no such object)."""
    environment = os.environ if env is None else env
    kind = record.kind if entity == "activity" else entity
    if source == "salesforce":
        instance = environment.get("SALESFORCE_INSTANCE_URL", "").rstrip("/")
        sobject = SALESFORCE_OBJECTS.get(kind or "")
        if instance and sobject:
            return f"{instance}/lightning/r/{sobject}/{record.id}/view"
    elif source == "hubspot":
        portal = environment.get("HUBSPOT_PORTAL_ID", "").strip()
        type_id = HUBSPOT_OBJECT_TYPES.get(kind or "")
        if portal and type_id:
            return f"https://app.hubspot.com/contacts/{portal}/record/{type_id}/{record.id}"
    return None


def _plain(value: float | None, unit: str | None = None) -> str:
    if value is None:
        return "(undefined)"
    return format_value(value, unit) if unit in ("USD", "%", "days") else format_value(value, None)


def _side_lines(e: Explanation, side: SideExplanation, env: Mapping[str, str] | None) -> Iterator[str]:
    title = "Metric" if side.name == "metric" else side.name.capitalize() if "." not in side.name else side.name
    yield f"[bold]{escape(title)}[/]: {escape(side.measure_words)} ({escape(side.measure)})"
    for text in side.filters or ["(no filter)"]:
        yield f"  where {escape(text)}"
    yield (f"  dated by {side.time_field} from {e.period.start} to {e.period.end} (both included); "
           f"{e.source} records only; deleted records skipped")
    yield "  SQL:"
    yield from (f"    {escape(line)}" for line in side.sql.splitlines())
    if side.parameters:
        yield f"    parameters: {escape(repr(side.parameters))}"
    value_unit = None if side.name.endswith(("numerator", "denominator")) else e.unit
    yield f"  value: {_plain(side.value, value_unit)} over {side.row_count} record(s)"
    measured = f" with {side.field} set" if side.field else ""
    shown = f", showing {len(side.records)}" if len(side.records) < side.total_records else ""
    yield f"  records{measured}: {side.total_records}{shown}"
    for record in side.records:
        cells = [record.id, record.day.isoformat() if record.day else "-"]
        if record.kind:
            cells.append(record.kind)
        if side.field:
            cells.append(f"{side.field}={_plain(record.value)}")
        link = record_link(e.source, side.entity, record, env)
        if link:
            cells.append(link)
        yield "    " + escape("  ".join(cells))
    if side.store_rows == 0:
        yield (f"  [yellow]the store holds no {side.entity} records from {e.source}: run "
               f"`okr-sync run --source {e.source}` first[/]")


def explanation_lines(e: Explanation, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The explanation as rich-markup lines (config text escaped)."""
    yield f"[bold]{escape(e.ref)}[/]: {escape(e.title)} ({e.kr_type})"
    yield (f"Objective: {escape(e.objective_title)}; period {e.period.label} ({e.period.start} – {e.period.end}); "
           f"source {e.source}; as of {e.as_of}")
    if e.metric:
        kind = f", {e.metric_kind}" if e.metric_kind else ""
        formula = f": {escape(e.formula)}" if e.formula else ""
        yield f"Metric {escape(e.metric)}{kind}{formula}" + (f"; unit {escape(e.unit)}" if e.unit else "")
    if e.breakdown:
        yield f"Breakdown by {escape(e.breakdown)}: {len(e.groups)} group(s)"
        for g in e.groups:
            mark = "→" if g.label == e.group else " "
            yield (f"  {mark} {escape(g.label)}: {_plain(g.value, e.unit)} of {_plain(g.target, e.unit)}, "
                   f"{g.progress:.0%}, {STATUS_LABELS.get(g.status, g.status)}")
        if e.group is not None:
            yield f"Explaining group {escape(e.group)} (choose another with --group)"
    for side in e.sides:
        yield ""
        yield from _side_lines(e, side, env)
    r = e.result
    if r is not None:
        yield ""
        yield "[bold]Numbers[/]"
        rows = [
            ("value", _plain(r.value, e.unit), e.value_how),
            ("baseline", _plain(r.baseline, e.unit), e.baseline_how),
            ("target", _plain(r.target, e.unit), e.target_how),
            ("progress", f"{r.progress:.1%}", e.progress_formula),
            ("score", f"{r.score:.2f}", e.score_how),
            ("expected", f"{r.expected_progress:.1%}", e.expected_how),
            ("status", STATUS_LABELS.get(r.status, r.status), e.status_how),
        ]
        for name, number, how in rows:
            yield f"  {name:<9} {escape(number):>14}  {escape(how)}"
    for note in e.notes:
        yield f"[yellow]note:[/] {escape(note)}"


def print_explanation(console: Console, e: Explanation, env: Mapping[str, str] | None = None) -> None:
    for line in explanation_lines(e, env):
        console.print(line, highlight=False, soft_wrap=True)
