"""The report's burn-up chart: one key result's check-ins against its expected pace, as inline SVG.

Inline SVG keeps the page self-contained (no image files, no scripts, no chart library at read
time) and sharp when printed. Each line carries its look as attributes (so the chart
reads the same outside the page) and a class (value-line, pace-line, target-line, forecast-line)
that names it for readers and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from flows.render import format_value

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 16, 40  # margins around the plot area
_MIN_LABEL_GAP = 70  # px between x-axis date labels before one is dropped


@dataclass(frozen=True)
class BurnUp:
    """What one chart shows; `values` and `pace` are (day, value) sorted by day, today's last."""

    title: str
    period_start: date
    period_end: date
    today: date
    values: Sequence[tuple[date, float]]
    pace: Sequence[tuple[date, float]]
    target: float
    forecast: float | None
    unit: str | None
    colour: str


def x_of(chart: BurnUp, day: date) -> float:
    """The x coordinate of `day` (clamped to the period)."""
    span = max(1, (chart.period_end - chart.period_start).days)
    days = min(max((day - chart.period_start).days, 0), span)
    return round(LEFT + (WIDTH - LEFT - RIGHT) * days / span, 2)


def value_range(chart: BurnUp) -> tuple[float, float]:
    """The y axis: from 0 (or the lowest value, when below 0) to a little over the highest."""
    shown = [value for _, value in chart.values] + [value for _, value in chart.pace] + [chart.target]
    if chart.forecast is not None:
        shown.append(chart.forecast)
    low, high = min(0.0, *shown), max(shown)
    if high - low < 1e-9:
        high = low + 1.0
    return low, high + (high - low) * 0.08


def y_of(chart: BurnUp, value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return round(TOP + (HEIGHT - TOP - BOTTOM) * (high - value) / (high - low), 2)


def _points(chart: BurnUp, series: Sequence[tuple[date, float]], bounds: tuple[float, float]) -> str:
    return " ".join(f"{x_of(chart, day)},{y_of(chart, value, bounds)}" for day, value in series)


def _axes(chart: BurnUp, bounds: tuple[float, float]) -> list[str]:
    """Axis lines, three value labels with grid lines, and the dates of start, today and end."""
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#57606a"/>',
             f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#57606a"/>']
    low, high = bounds
    for value in (low, (low + high) / 2, high):
        y = y_of(chart, value, bounds)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{right}" y2="{y}" stroke="#eaeef2"/>')
        parts.append(f'<text class="y-label" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">'
                     f'{escape(format_value(value, chart.unit))}</text>')
    days = [(chart.period_start, "start"), (chart.period_end, "end")]
    today_x = x_of(chart, chart.today)
    if all(abs(today_x - x_of(chart, day)) >= _MIN_LABEL_GAP for day, _ in days):
        days.insert(1, (chart.today, "today"))
    for day, role in days:
        anchor = {"start": "start", "end": "end"}.get(role, "middle")
        parts.append(f'<text class="x-label x-{role}" x="{x_of(chart, day)}" y="{bottom + 18}" '
                     f'text-anchor="{anchor}">{day.isoformat()}</text>')
    return parts


def burnup_svg(chart: BurnUp) -> str:
    """The chart as an <svg> element: target (solid, horizontal), expected pace (dashed), the value
    at each check-in (line and points) and the forecast (dotted, from today to the period's end)."""
    bounds = value_range(chart)
    right = WIDTH - RIGHT
    target_y = y_of(chart, chart.target, bounds)
    parts = _axes(chart, bounds)
    parts.append(f'<line class="target-line" x1="{LEFT}" y1="{target_y}" x2="{right}" y2="{target_y}" '
                 f'stroke="#1f2328" stroke-width="1.5"/>')
    parts.append(f'<text class="target-label" x="{right - 4}" y="{target_y - 5}" text-anchor="end">target '
                 f'{escape(format_value(chart.target, chart.unit))}</text>')
    parts.append(f'<polyline class="pace-line" points="{_points(chart, chart.pace, bounds)}" fill="none" '
                 f'stroke="#8c959f" stroke-width="2" stroke-dasharray="6 4"/>')
    if chart.forecast is not None and chart.values and chart.today < chart.period_end:
        day, value = chart.values[-1]
        parts.append(f'<line class="forecast-line" x1="{x_of(chart, day)}" y1="{y_of(chart, value, bounds)}" '
                     f'x2="{x_of(chart, chart.period_end)}" y2="{y_of(chart, chart.forecast, bounds)}" '
                     f'stroke="#0969da" stroke-width="2" stroke-dasharray="2 4"/>')
    parts.append(f'<polyline class="value-line" fill="none" stroke="{chart.colour}" stroke-width="2.5" '
                 f'points="{_points(chart, chart.values, bounds)}"/>')
    for day, value in chart.values:
        parts.append(f'<circle class="value-point" fill="{chart.colour}" cx="{x_of(chart, day)}" '
                     f'cy="{y_of(chart, value, bounds)}" r="3.5"><title>{day.isoformat()}: '
                     f'{escape(format_value(value, chart.unit))}</title></circle>')
    label = escape(f"Burn-up of {chart.title}: value at each check-in against the expected pace")
    return (f'<svg class="burnup" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'aria-label="{label}" font-family="system-ui, sans-serif" font-size="11">'
            f'<title>{label}</title>' + "".join(parts) + "</svg>")
