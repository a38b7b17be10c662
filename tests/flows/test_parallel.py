"""CRMs synced at once, each CRM's streams a few at a time, retries only for transient failures,
and a Prefect global concurrency limit that caps the runs syncing one CRM at once."""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.ratelimit import CallCount
from connectors.results import StreamResult
from connectors.salesforce.helpers import ConnectionLost
from flows import nightly
from flows.parallel import PARALLEL_STREAMS, crm_limit, crm_slot, run_parallel, stream_limit
from flows.retries import is_transient
from tests.conftest import TEST_ORG
from tests.flows.conftest import DEMO

AS_OF = TEST_ORG.anchor.date()
STREAMS = tuple(f"s{index}" for index in range(8))
STREAM_SECONDS = 0.4  # well above the cost of starting a task run, so the gauges see the real overlap


# -- run_parallel -------------------------------------------------------------------------------
class Gauge:
    """How many calls run at once, at most."""

    def __init__(self) -> None:
        self.lock, self.now, self.peak = threading.Lock(), 0, 0

    def __enter__(self) -> Gauge:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *_exc: object) -> None:
        with self.lock:
            self.now -= 1


def test_run_parallel_keeps_the_order_the_limit_and_the_callers_context() -> None:
    gauge, var = Gauge(), contextvars.ContextVar("var", default="unset")
    var.set("caller's")

    def call(item: int) -> tuple[int, str]:
        with gauge:
            time.sleep(0.05)
        return item, var.get()

    outcome = run_parallel(call, list(range(10)), limit=3)
    assert outcome.error is None and outcome.done == [(item, "caller's") for item in range(10)]
    assert gauge.peak == 3


def test_after_a_failure_no_new_item_starts_and_the_first_failure_is_kept() -> None:
    started: list[int] = []

    def call(item: int) -> int:
        started.append(item)
        if item in (1, 2):
            time.sleep(0.05)
            raise ValueError(f"item {item}")
        time.sleep(0.2)
        return item

    outcome = run_parallel(call, list(range(8)), limit=3)
    assert str(outcome.error) == "item 1" and outcome.done == [0]
    assert sorted(started) == [0, 1, 2]


def test_stream_limits_and_their_override() -> None:
    assert stream_limit("salesforce", {}) == PARALLEL_STREAMS["salesforce"] == 4
    assert stream_limit("hubspot", {}) == 3
    assert stream_limit("hubspot", {"OKR_SYNC_PARALLEL_STREAMS": "1"}) == 1
    with pytest.raises(ConnectorConfigError, match="OKR_SYNC_PARALLEL_STREAMS"):
        stream_limit("hubspot", {"OKR_SYNC_PARALLEL_STREAMS": "many"})


def test_call_count_is_exact_across_threads_and_per_thread() -> None:
    count, mine = CallCount(), []

    def work() -> None:
        for _ in range(1000):
            count.add()
        mine.append(count.in_this_thread())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count.count == 8000 and mine == [1000] * 8 and count.in_this_thread() == 0


def test_only_transient_failures_are_worth_a_retry() -> None:
    assert is_transient(ConnectionLost("dropped"))
    assert not is_transient(ConnectorError("Salesforce rejected the session (INVALID_SESSION_ID)"))
    assert not is_transient(ConnectorConfigError("HUBSPOT_ACCESS_TOKEN is not set"))
    wrapped = ConnectorError("HubSpot extract of deals failed")
    wrapped.__cause__ = ValueError("a bug")
    assert not is_transient(wrapped)
    wrapped.__cause__ = ConnectionResetError("reset by peer")  # what the connector wrapped decides
    assert is_transient(wrapped)


# -- through the flow, with fake CRMs -----------------------------------------------------------
@dataclass
class FakeSource:
    """A CRM whose streams take a while; `fail` maps a stream to errors raised by its next attempts."""

    name: str
    gauges: dict[str, Gauge]
    fail: dict[str, list[Exception]] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)
    STREAMS: tuple[str, ...] = STREAMS
    api_calls: int = 0
    api_calls_left: int | None = None

    def extract(self, _engine, stream: str) -> StreamResult:
        self.attempts[stream] += 1
        with self.gauges[self.name], self.gauges["all"]:
            time.sleep(STREAM_SECONDS)
        if self.fail.get(stream):
            raise self.fail[stream].pop(0)
        return StreamResult(self.name, stream, 1, 1)

    def close(self) -> None:
        pass


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeSource]:
    gauges = {"salesforce": Gauge(), "hubspot": Gauge(), "all": Gauge()}
    sources = {name: FakeSource(name, gauges) for name in ("salesforce", "hubspot")}
    monkeypatch.setattr(nightly, "make_source", lambda name, **_: sources[name])
    monkeypatch.setattr(nightly, "extract_stream",
                        nightly.extract_stream.with_options(retry_delay_seconds=0, retry_jitter_factor=None))
    return sources


def _sync(tmp_path: Path) -> nightly.SyncReport:
    return nightly.nightly_sync(str(DEMO), sources=["salesforce", "hubspot"],
                                database_url=f"sqlite:///{tmp_path / 'store.db'}", as_of=AS_OF, write=False)


@pytest.mark.usefixtures("prefect_harness")
def test_crms_sync_at_once_and_each_crm_reads_its_streams_within_its_limit(fakes, tmp_path: Path) -> None:
    started = time.monotonic()
    report = _sync(tmp_path)
    elapsed = time.monotonic() - started
    gauges = fakes["salesforce"].gauges
    assert (gauges["salesforce"].peak, gauges["hubspot"].peak) == (4, 3)
    assert gauges["all"].peak > 4  # both CRMs at the same time
    assert [[stream.stream for stream in run.streams] for run in report.runs] == [list(STREAMS)] * 2
    assert elapsed < len(STREAMS) * STREAM_SECONDS  # one stream at a time: twice that


@pytest.mark.usefixtures("prefect_harness")
def test_a_transient_failure_is_retried_and_a_permanent_one_is_not(fakes, tmp_path: Path) -> None:
    salesforce, hubspot = fakes["salesforce"], fakes["hubspot"]
    salesforce.fail["s2"] = [ConnectionLost("dropped"), ConnectionLost("dropped again")]
    hubspot.fail["s1"] = [ConnectorError("HubSpot extract of s1 failed: HTTP 401")]
    with pytest.raises(nightly.SyncFailed) as failed:
        _sync(tmp_path)
    sf_run, hs_run = failed.value.report.runs
    assert sf_run.error is None and salesforce.attempts["s2"] == 3 and len(sf_run.streams) == len(STREAMS)
    assert "HTTP 401" in hs_run.error and hubspot.attempts["s1"] == 1


@pytest.fixture
def salesforce_limit(prefect_harness: None) -> Iterator[Callable[[], int]]:
    """A global concurrency limit of one Salesforce sync at a time; yields a reader of its slots in use."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    name = crm_limit("salesforce")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        try:
            yield lambda: client.read_global_concurrency_limit_by_name(name).active_slots
        finally:
            client.delete_global_concurrency_limit_by_name(name)


def test_a_crm_slot_admits_as_many_syncs_as_the_limit_allows(salesforce_limit) -> None:
    """Runs are processes of their own on a worker; here two threads stand for two runs."""
    gauges = {crm: Gauge() for crm in ("salesforce", "hubspot")}

    def sync(crm: str) -> None:
        with crm_slot(crm), gauges[crm]:
            time.sleep(0.5)

    threads = [threading.Thread(target=sync, args=(crm,)) for crm in ("salesforce", "hubspot") * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert gauges["salesforce"].peak == 1 and gauges["hubspot"].peak == 2  # hubspot has no limit: no wait
    assert salesforce_limit() == 0  # released


def test_a_run_holds_its_crms_slot_while_it_extracts(fakes, salesforce_limit, tmp_path: Path) -> None:
    seen: list[int] = []
    extract = FakeSource.extract

    def watched(self: FakeSource, engine, stream: str) -> StreamResult:
        if self.name == "salesforce":
            seen.append(salesforce_limit())
        return extract(self, engine, stream)

    fakes["salesforce"].STREAMS = fakes["hubspot"].STREAMS = STREAMS[:2]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FakeSource, "extract", watched)
        _sync(tmp_path)
    assert seen == [1, 1] and salesforce_limit() == 0


def test_a_locked_store_is_transient_and_a_missing_table_is_not() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    locked = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    missing = OperationalError("SELECT ...", {}, sqlite3.OperationalError("no such table: deal"))
    assert is_transient(locked) and not is_transient(missing)
