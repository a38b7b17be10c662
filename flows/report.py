"""`okr-sync report`: one self-contained HTML page of the key results, readable offline.

Per objective (children under their parent) its roll-up; per key result a progress bar, the
numbers, and a burn-up chart of its check-ins (the history the nightly run records) against the
expected pace, with the forecast to the period's end; a breakdown (per owner, team...) shows a
table of its groups instead. It reads the store only: no CRM is called. Everything that comes
from the config or the data is escaped; the page loads nothing (no CSS, script, font or image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from html import escape
from pathlib import Path

from sqlalchemy.engine import Engine

from flows.digest_render import digest_html
from flows.render import STATUS_LABELS, forecast_text, format_value
from flows.report_svg import BurnUp, burnup_svg
from okr_mapping import KrResult, ObjectiveResult, OkrConfig, compute_key_results, history, rollup_objectives
from okr_mapping.compute import measured_day
from okr_mapping.digest import WeeklyDigest, weekly_digest
from okr_mapping.history import KrSnapshot

STATUS_COLOURS = {"achieved": "#1a7f37", "on_track": "#2da44e", "at_risk": "#bf8700", "off_track": "#cf222e"}
_UNKNOWN_COLOUR = "#6e7781"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2rem auto;
  max-width: 980px; padding: 0 1rem; color: #1f2328; }
h1 { margin-bottom: .2rem; } .meta { color: #57606a; margin-top: 0; }
.objective { border-left: 4px solid #d0d7de; padding: .2rem 0 .2rem 1rem; margin-bottom: 1.5rem; }
.objective h2 { margin: .3rem 0; font-size: 1.25rem; }
.kr { border: 1px solid #d0d7de; border-radius: 6px; padding: .6rem .9rem; margin: .7rem 0; }
.kr h3 { margin: 0 0 .3rem; font-size: 1.05rem; }
.numbers { display: flex; flex-wrap: wrap; gap: .3rem 1.4rem; margin: .3rem 0; font-size: .92rem; }
.numbers dt { color: #57606a; } .numbers dd { margin: 0; font-weight: 600; } .numbers div { display: flex; gap: .4rem; }
.bar { background: #eaeef2; border-radius: 4px; height: 12px; width: 100%; min-width: 80px; overflow: hidden; }
.fill { height: 100%; }
.status { display: inline-block; padding: 0 .5rem; border-radius: 10px; color: #fff; font-size: .85rem; }
.burnup { max-width: 100%; height: auto; display: block; margin-top: .4rem; }
.burnup text { fill: #57606a; }
table.breakdown { border-collapse: collapse; width: 100%; font-size: .92rem; }
table.breakdown th, table.breakdown td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eaeef2; }
table.breakdown td.num { text-align: right; } table.breakdown td.progress { width: 25%; }
.legend { color: #57606a; font-size: .85rem; }
.digest { border: 1px solid #d0d7de; border-radius: 6px; padding: .2rem 1rem .6rem; margin-bottom: 1.5rem; }
.digest h3 { margin: .6rem 0 .2rem; font-size: 1.05rem; } .digest h4 { margin: .4rem 0 0; font-size: .95rem; }
.digest ul { margin: .2rem 0; padding-left: 1.2rem; font-size: .92rem; }
@media print { .kr { break-inside: avoid; } }
"""

_LEGEND = ("Charts: the value at each check-in (solid line and points), the expected pace (dashed), "
           "the target (horizontal line) and the forecast to the period's end (dotted).")


def write_report(engine: Engine, config: OkrConfig, source: str | None, as_of: date | None, path: str | Path,
                 config_name: str = "") -> Path:
    """Compute the key results from the store as a run would, and write the page to `path`."""
    chosen = source or config.source
    results = compute_key_results(engine, config, chosen, as_of)
    by_key: dict[str, list[KrSnapshot]] = {}
    for snapshot in history.snapshots(engine, chosen):
        by_key.setdefault(snapshot.key, []).append(snapshot)
    today = measured_day(config, as_of)
    page = render_report(results, rollup_objectives(results, config), by_key, source=chosen,
                         as_of=as_of or config.today(), today=today, config_name=config_name,
                         week=weekly_digest(engine, config, chosen, today))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def render_report(results: Sequence[KrResult], objectives: Sequence[ObjectiveResult],
                  snapshots: Mapping[str, Sequence[KrSnapshot]], *, source: str, as_of: date, today: date,
                  config_name: str = "", week: WeeklyDigest | None = None) -> str:
    """The page: `snapshots` are the check-ins per KR key; `today` is the day measured (as-of less the
    config's reporting lag); `week`: the weekly digest, shown as "This week" after the objectives."""
    by_objective: dict[str, list[KrResult]] = {}
    for result in results:
        by_objective.setdefault(result.objective_id, []).append(result)
    name = escape(config_name or "(unnamed)")
    body = [f"<h1>OKR report</h1>\n<p class=\"meta report-meta\">Config <strong>{name}</strong>"
            f" · source <strong>{escape(source)}</strong> · as of <strong>{as_of.isoformat()}</strong>"
            + (f" (data measured up to {today.isoformat()})" if today != as_of else "") + "</p>",
            f'<p class="legend">{_LEGEND}</p>']
    if not results:
        body.append("<p>No key result has a period that covers this day.</p>")
    for objective, depth in objective_tree(objectives):
        body.append(_objective_html(objective, depth, by_objective.get(objective.objective_id, []), snapshots, today))
    if week is not None:
        body.append(digest_html(week))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>OKR report · {escape(source)} · {as_of.isoformat()}</title>\n<style>{_CSS}</style>\n"
            "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def objective_tree(objectives: Sequence[ObjectiveResult]) -> list[tuple[ObjectiveResult, int]]:
    """Objectives depth-first in config order, each with its depth (children right under their parent;
    an objective whose parent has no result stands at the top)."""
    known = {objective.objective_id for objective in objectives}
    children: dict[str | None, list[ObjectiveResult]] = {}
    for objective in objectives:
        parent = objective.parent if objective.parent in known else None
        children.setdefault(parent, []).append(objective)
    ordered: list[tuple[ObjectiveResult, int]] = []
    seen: set[str] = set()

    def visit(objective: ObjectiveResult, depth: int) -> None:
        if objective.objective_id in seen:  # a cycle is refused by validation; never loop on one
            return
        seen.add(objective.objective_id)
        ordered.append((objective, depth))
        for child in children.get(objective.objective_id, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return ordered


def clamped(progress: float) -> float:
    """The share of a progress bar that is filled: progress within 0-1."""
    return min(max(progress, 0.0), 1.0)


def _colour(status: str) -> str:
    return STATUS_COLOURS.get(status, _UNKNOWN_COLOUR)


def _status_badge(status: str) -> str:
    label = escape(STATUS_LABELS.get(status, status))
    return f'<span class="status" style="background: {_colour(status)}">{label}</span>'


def progress_bar(result: KrResult) -> str:
    width = f"{clamped(result.progress) * 100:.1f}%"
    return (f'<div class="bar" title="progress {result.progress:.0%}"><div class="fill" '
            f'style="width: {width}; background: {_colour(result.status)}"></div></div>')


def _objective_html(objective: ObjectiveResult, depth: int, results: list[KrResult],
                    snapshots: Mapping[str, Sequence[KrSnapshot]], today: date) -> str:
    parts = [f'<section class="objective depth-{depth}" style="margin-left: {depth * 2}em" '
             f'data-objective="{escape(objective.objective_id)}">',
             f'<h2>{escape(objective.title)}</h2>',
             f'<p class="meta">{escape(objective.period)} ({objective.period_start.isoformat()} to '
             f'{objective.period_end.isoformat()}) · score <strong class="objective-score">{objective.score:.2f}'
             f'</strong> {_status_badge(objective.status)}</p>']
    by_kr: dict[str, list[KrResult]] = {}  # a breakdown's groups together, in the config's KR order
    for result in results:
        by_kr.setdefault(result.kr_id, []).append(result)
    for rows in by_kr.values():
        if rows[0].group is None:
            parts.append(_kr_html(rows[0], snapshots.get(rows[0].key, ()), today))
        else:
            parts.append(_breakdown_html(rows))
    parts.append("</section>")
    return "\n".join(parts)


def _numbers(result: KrResult) -> str:
    cells = [("value", format_value(result.value, result.unit)), ("target", format_value(result.target, result.unit)),
             ("progress", f"{result.progress:.0%}"), ("score", f"{result.score:.2f}")]
    forecast = forecast_text(result)
    if forecast:
        cells.append(("forecast", forecast))
    items = "".join(f'<div><dt>{name}</dt><dd class="{name}">{escape(text)}</dd></div>' for name, text in cells)
    return f'<dl class="numbers">{items}<div><dt>status</dt><dd>{_status_badge(result.status)}</dd></div></dl>'


def _heading(result: KrResult, with_owner: bool = True) -> str:
    owner = f' <span class="meta">· {escape(result.owner)}</span>' if result.owner and with_owner else ""
    return f"<h3>{escape(result.title)}{owner}</h3>"


def _kr_html(result: KrResult, snapshots: Sequence[KrSnapshot], today: date) -> str:
    chart = burnup_svg(burnup(result, snapshots, today))
    return (f'<article class="kr" data-key="{escape(result.key)}">{_heading(result)}{_numbers(result)}'
            f'{progress_bar(result)}{chart}</article>')


def burnup(result: KrResult, snapshots: Sequence[KrSnapshot], today: date) -> BurnUp:
    """The chart's series: each check-in of the KR's period before today, then today's own value; the
    pace runs from the baseline at the period's start through baseline + (target - baseline) x expected
    progress at each of those days to the target at its end (a decrease runs downwards)."""
    day = min(max(today, result.period_start), result.period_end)
    earlier = sorted((s for s in snapshots if s.period_start == result.period_start
                      and result.period_start <= s.as_of < day), key=lambda s: s.as_of)
    values = [(s.as_of, s.value) for s in earlier] + [(day, result.value)]
    pace = [(s.as_of, s.baseline + (s.target - s.baseline) * s.expected_progress) for s in earlier]
    pace.append((day, result.baseline + (result.target - result.baseline) * result.expected_progress))
    pace = [(result.period_start, result.baseline), *pace]
    if day < result.period_end:
        pace.append((result.period_end, result.target))
    forecast = result.forecast if result.forecast_method != "final" else None
    return BurnUp(title=result.title, period_start=result.period_start, period_end=result.period_end, today=day,
                  values=values, pace=pace, target=result.target, forecast=forecast, unit=result.unit,
                  colour=_colour(result.status))


def _breakdown_html(rows: list[KrResult]) -> str:
    first = rows[0]
    lines = [f'<article class="kr breakdown-kr" data-key="{escape(first.objective_id)}.{escape(first.kr_id)}">',
             _heading(first, with_owner=False),  # each group's owner is its row
             f'<p class="meta">per {len(rows)} group(s); mean score '
             f'{sum(row.score for row in rows) / len(rows):.2f}</p>',
             '<table class="breakdown"><thead><tr><th>group</th><th>value</th><th>target</th><th>progress</th>'
             '<th>status</th><th>forecast</th></tr></thead><tbody>']
    for row in rows:
        lines.append(f'<tr class="group-row"><td class="group">{escape(row.group or "")}</td>'
                     f'<td class="num">{escape(format_value(row.value, row.unit))}</td>'
                     f'<td class="num">{escape(format_value(row.target, row.unit))}</td>'
                     f'<td class="progress">{progress_bar(row)}</td><td>{_status_badge(row.status)}</td>'
                     f'<td class="num">{escape(forecast_text(row))}</td></tr>')
    lines.append("</tbody></table></article>")
    return "\n".join(lines)
