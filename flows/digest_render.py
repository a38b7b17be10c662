"""The weekly digest (okr_mapping.digest) as the nightly run's markdown artifact and as the report's "This week".

Per team, then per owner: the key results that moved (value and progress before → now), those that
turned at risk or off track, and those achieved in the week.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from html import escape

from sqlalchemy.engine import Engine

from flows.render import STATUS_LABELS
from okr_mapping import OkrConfig
from okr_mapping.digest import Change, Section, WeeklyDigest, weekly_digest

_PARTS = (("moved", "Moved"), ("at_risk", "Turned at risk"), ("achieved", "Achieved"))


def change_text(change: Change) -> str:
    """One line: `Title [group] (period): value a → b, progress x% → y%, status s → t`."""
    after, before = change.after, change.before
    name = change.title + (f" [{change.group}]" if change.group else "") + f" ({change.period})"
    status = STATUS_LABELS.get(after.status, after.status)
    if before is None:
        return f"{name}: {_number(after.value)}, progress {after.progress:.0%}, {status}"
    if before.status != after.status:
        status = f"{STATUS_LABELS.get(before.status, before.status)} → {status}"
    return (f"{name}: {_number(before.value)} → {_number(after.value)}, "
            f"progress {before.progress:.0%} → {after.progress:.0%}, {status}")


def digest_markdown(digests: Sequence[WeeklyDigest]) -> str:
    """The artifact: one part per CRM, its teams then its owners."""
    if not digests:
        return "# Weekly digest\n\nNo CRM was synced.\n"
    lines = [f"# Weekly digest, {digests[0].start.isoformat()} to {digests[0].end.isoformat()}"]
    for digest in digests:
        lines.append(f"\n## {digest.source}")
        if digest.empty:
            lines.append("\nNothing moved this week (no check-in changed).")
            continue
        for heading, sections in (("Per team", digest.teams), ("Per owner", digest.owners)):
            lines.append(f"\n### {heading}")
            for section in sections:
                lines.append(f"\n#### {_md(section.name)}")
                for attribute, label in _PARTS:
                    lines += [f"- {label}: {_md(change_text(change))}" for change in getattr(section, attribute)]
    return "\n".join(lines) + "\n"


def nightly_digest(engine: Engine, config: OkrConfig, sources: Iterable[str], day: date) -> str:
    """The markdown of the week ending at `day` (the day the run measured) for each of `sources`."""
    return digest_markdown([weekly_digest(engine, config, source, day) for source in sources])


def digest_html(digest: WeeklyDigest) -> str:
    """The report's "This week" section (everything escaped)."""
    parts = [f'<section class="digest" id="this-week"><h2>This week</h2>\n<p class="meta">Check-ins from '
             f"{digest.start.isoformat()} to {digest.end.isoformat()}, compared with the last one before.</p>"]
    if digest.empty:
        parts.append("<p>Nothing moved this week (no check-in changed).</p>")
    for heading, sections in (("Per team", digest.teams), ("Per owner", digest.owners)):
        if not sections:
            continue
        parts.append(f"<h3>{heading}</h3>")
        parts += [_section_html(section) for section in sections]
    parts.append("</section>")
    return "\n".join(parts)


def _section_html(section: Section) -> str:
    items = [f'<li class="{attribute}"><strong>{label}:</strong> <span>{escape(change_text(change))}</span></li>'
             for attribute, label in _PARTS for change in getattr(section, attribute)]
    return f'<div class="digest-group"><h4>{escape(section.name)}</h4><ul>{"".join(items)}</ul></div>'


def _number(value: float) -> str:
    """3,825,800 or 35.67: thousands separated, at most two decimals."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _md(text: str) -> str:
    """Text from the config or the CRM, with markdown's active characters escaped."""
    return "".join("\\" + char if char in "\\`*_[]<>#|" else char for char in text)
