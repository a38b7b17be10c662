"""The CLI's extract progress: what the connectors publish becomes one bar per stream on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from connectors import progress
from flows.extract_progress import extract_progress


def test_each_stream_gets_a_bar_with_its_records_and_total() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with extract_progress(console) as bars:
        progress.publish("salesforce", "opportunities", total=4000)
        progress.publish("salesforce", "opportunities", records=2000)
        progress.publish("hubspot", "deals", records=250)
        progress.publish("hubspot", "deals", records=500)
        tasks = {task.description: task for task in bars.tasks}
        bars.refresh()
    assert set(tasks) == {"salesforce opportunities", "hubspot deals"}
    assert tasks["salesforce opportunities"].total == 4000 and tasks["salesforce opportunities"].completed == 2000
    assert tasks["hubspot deals"].total is None and tasks["hubspot deals"].completed == 500
    drawn = out.getvalue()
    assert "2,000 of 4,000" in drawn and "500 records" in drawn


def test_nothing_is_drawn_off_a_terminal_and_nothing_is_kept_after() -> None:
    out = io.StringIO()
    with extract_progress(Console(file=out, force_terminal=False)):
        progress.publish("hubspot", "deals", records=10)
    assert out.getvalue() == ""
    seen: list[progress.StreamProgress] = []
    progress.publish("hubspot", "deals", records=20)  # nobody listens: dropped, and no error
    with progress.listening(seen.append):
        progress.publish("hubspot", "calls", records=3)
    assert seen == [progress.StreamProgress("hubspot", "calls", 3, None)]


def test_a_failing_listener_does_not_stop_the_publisher() -> None:
    def broken(_update: progress.StreamProgress) -> None:
        raise RuntimeError("display gone")

    with progress.listening(broken):
        progress.publish("salesforce", "users", records=1)  # no exception
