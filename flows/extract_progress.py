"""Progress bars for the CLI while a run extracts: one line per CRM stream with the records stored so far.

The connectors publish (connectors.progress); this draws what they say with rich, on stderr so piped
output (`run --json`) stays clean, and only on a terminal: logs and CI output get no redraw noise.
A stream whose size the CRM told (Salesforce's totalSize) gets a real bar; the others a pulsing one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from connectors import progress


@contextmanager
def extract_progress(console: Console) -> Iterator[Progress]:
    """Show every stream's progress while the block runs (nothing when `console` is not a terminal)."""
    bars = Progress(TextColumn("{task.description:<22}"), BarColumn(), TextColumn("{task.fields[count]}"),
                    TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)
    tasks: dict[tuple[str, str], TaskID] = {}
    lock = threading.Lock()

    def show(update: progress.StreamProgress) -> None:
        with lock:
            key = (update.source, update.stream)
            if key not in tasks:
                tasks[key] = bars.add_task(f"{update.source} {update.stream}", total=None, count="")
            total = update.total if update.total and update.total >= update.records else None
            count = f"{update.records:,} of {total:,}" if total else f"{update.records:,} records"
            bars.update(tasks[key], completed=update.records, total=total, count=count)

    with bars, progress.listening(show):
        yield bars
