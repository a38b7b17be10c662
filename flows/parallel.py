"""Running a run's CRMs, and each CRM's streams, in parallel threads inside one flow run.

Each call runs in a copy of the caller's context, so the Prefect tasks it calls are task runs of
the same flow run (with its logger and tags), as Prefect's own ThreadPoolTaskRunner does it.

How many streams of one CRM are read at once (PARALLEL_STREAMS) stays within the CRM's limits:
- Salesforce counts requests per day (the quota guard watches it) and allows 25 long-running
  (> 20 s) requests at once per org: 4 streams leave the rest to the org's other integrations.
- HubSpot allows 190 requests per 10 s and 5 searches per second per portal: the source's own
  limiters (connectors.ratelimit, shared by its streams and thread-safe) keep every request within
  them whatever the parallelism, so 3 streams only fill the waits between answers.
`OKR_SYNC_PARALLEL_STREAMS` overrides both (1: one stream at a time, as before).

Across flow runs (several orgs on one worker, or on many), a run holds one slot of the Prefect
global concurrency limit `okr-sync-<crm>` while it syncs that CRM, when an admin created the limit
(docs/scheduling.md: `prefect gcl create okr-sync-hubspot --limit 2`): at most that many orgs talk
to one CRM at once, so at most limit x PARALLEL_STREAMS of its streams. Without the limit, no cap
and no wait. (One slot per CRM sync rather than a tag on every task: Prefect acquires tag slots
for each task run through one shared event loop, which made one CRM's tasks wait for the other's.)
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from connectors.errors import ConnectorConfigError

T = TypeVar("T")
R = TypeVar("R")

PARALLEL_STREAMS: dict[str, int] = {"salesforce": 4, "hubspot": 3}
PARALLEL_ENV = "OKR_SYNC_PARALLEL_STREAMS"
MAX_PARALLEL_STREAMS = 8


def crm_limit(crm: str) -> str:
    """The name of the Prefect global concurrency limit of `crm`'s syncs across runs."""
    return f"okr-sync-{crm}"


@contextmanager
def crm_slot(crm: str) -> Iterator[None]:
    """Hold a slot of `crm`'s global concurrency limit while syncing it (waiting for one when all are
    taken); a no-op when no such limit exists (asked first, so Prefect logs no warning for it)."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectNotFound

    name = crm_limit(crm)
    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        yield
        return
    with concurrency(name, occupy=1):
        yield


def stream_limit(crm: str, env: Mapping[str, str] | None = None) -> int:
    """How many of `crm`'s streams one run extracts at once."""
    raw = (os.environ if env is None else env).get(PARALLEL_ENV, "").strip()
    if not raw:
        return PARALLEL_STREAMS.get(crm, 1)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARALLEL_STREAMS:
        raise ConnectorConfigError(f"{PARALLEL_ENV} must be a whole number from 1 to {MAX_PARALLEL_STREAMS}, "
                                   f"got {raw!r}")
    return int(raw)


@dataclass
class Outcome(Generic[R]):
    """The results of the calls that ran, in input order, and the first failure (in input order)."""

    done: list[R] = field(default_factory=list)
    error: BaseException | None = None


def run_parallel(fn: Callable[[T], R], items: Sequence[T], limit: int) -> Outcome[R]:
    """`fn` over `items`, at most `limit` at a time, each in a copy of the caller's context.

    After a failure no further item starts (as a sequential loop would stop); the running ones
    finish, so every stream that completed keeps its committed cursor and shows in the report.
    """
    failed = threading.Event()
    skipped = object()

    def call(item: T) -> R | object:
        if failed.is_set():
            return skipped
        try:
            return fn(item)
        except BaseException:
            failed.set()
            raise

    outcome: Outcome[R] = Outcome()
    if limit <= 1 or len(items) <= 1:
        for item in items:
            try:
                outcome.done.append(fn(item))
            except Exception as error:
                outcome.error = error
                break
        return outcome
    with ThreadPoolExecutor(max_workers=min(limit, len(items)), thread_name_prefix="okr-sync") as pool:
        futures = [pool.submit(contextvars.copy_context().run, call, item) for item in items]
        for future in futures:
            error = future.exception()
            if error is not None:
                outcome.error = outcome.error or error
            elif (result := future.result()) is not skipped:
                outcome.done.append(result)  # type: ignore[arg-type]
    return outcome
