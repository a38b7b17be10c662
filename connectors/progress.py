"""Progress of long extracts, published by the connectors for whoever shows it (the CLI's bars).

Connectors only publish: after each committed page (connectors.incremental.save_cursor) the records
stored so far, and a stream's expected size when the CRM says it for free (Salesforce's totalSize).
Listeners run in the extracting thread and must be quick; a failing listener never stops a sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamProgress:
    """Where one stream's extract stands in this process."""

    source: str
    stream: str
    records: int = 0  # stored so far in this run
    total: int | None = None  # what the CRM said the read will return, when it says


Listener = Callable[[StreamProgress], None]

_lock = threading.Lock()
_listeners: list[Listener] = []
_state: dict[tuple[str, str], StreamProgress] = {}


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener` with every stream's progress while the block runs."""
    with _lock:
        _listeners.append(listener)
        _state.clear()
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def publish(source: str, stream: str, *, records: int | None = None, total: int | None = None) -> None:
    """Record a stream's progress and tell the listeners; costs nothing when nobody listens."""
    with _lock:
        if not _listeners:
            return
        current = _state.get((source, stream)) or StreamProgress(source, stream)
        if records is not None:
            current = replace(current, records=records)
        if total is not None:
            current = replace(current, total=total)
        _state[(source, stream)] = current
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(current)
        except Exception:  # a display problem must not fail the sync
            log.debug("progress listener failed", exc_info=True)
