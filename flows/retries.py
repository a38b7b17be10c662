"""Which task failures Prefect retries: only transient ones, and only in tasks that are safe to repeat.

The connectors already retry each HTTP call (tenacity, seconds apart). A task-level retry is the
slower second chance, minutes later, for an outage that outlasted those: a connection that kept
dropping, 429 / 5xx answers, a store that was locked or unreachable. A wrong token, a used-up daily
quota, a missing setup, data the CRM serves unreadable (BadData) or a bug fails the same way every
time, so it is not retried.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import requests
import urllib3
from sqlalchemy.exc import DBAPIError, OperationalError

from connectors.errors import BadData, ConnectorConfigError
from connectors.hubspot import helpers as hubspot_helpers
from connectors.salesforce import QuotaReserveReached
from connectors.salesforce import helpers as salesforce_helpers

# Attempts after the first, and the waits before them (seconds; Prefect adds up to 50% jitter).
EXTRACT_RETRIES, EXTRACT_RETRY_DELAYS = 2, [60, 300]
COMPUTE_RETRIES, COMPUTE_RETRY_DELAYS = 1, [30]
WRITEBACK_RETRIES, WRITEBACK_RETRY_DELAYS = 1, [120]
RETRY_JITTER = 0.5


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and what caused it (connectors wrap the client's error, some `from None`)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(error: BaseException) -> bool:
    """Whether another attempt later may succeed where this one failed."""
    if isinstance(error, ConnectorConfigError | QuotaReserveReached | BadData):  # the same next time
        return False
    for link in _chain(error):
        if isinstance(link, salesforce_helpers.ConnectionLost):
            return True
        if hubspot_helpers.is_daily_limit(link):  # (Salesforce's daily 403 is not transient to it either)
            return False
        if salesforce_helpers.is_transient(link) or hubspot_helpers.is_transient(link):
            return True
        if isinstance(link, OperationalError):
            return _store_unavailable(link)
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, requests.ConnectionError | urllib3.exceptions.HTTPError):
            return True
    return False


def _store_unavailable(error: OperationalError) -> bool:
    """A lost or refused connection, a locked database; not SQLite's other OperationalErrors (a missing
    table or column), which are mistakes that a repeat would only meet again."""
    if isinstance(error.orig, sqlite3.OperationalError):
        return any(word in str(error.orig).lower() for word in ("locked", "busy"))
    return True


def retry_if_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry a failed run only when its error is transient."""
    error = state.data if isinstance(state.data, BaseException) else None
    return error is not None and is_transient(error)
