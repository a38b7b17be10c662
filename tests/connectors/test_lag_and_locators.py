"""Two cursor traps of the real CRMs, injected by the sandbox's FaultPlan, against the real clients.

- Salesforce query locators expire (`locator_expiry`): the source restarts a query after its last
  committed page (connectors.salesforce `_pages`), so the store still ends as a clean run's does.
  A Bulk 2.0 job whose results expire mid-read (its locator finds the job gone) fails the stream;
  the next run converges.
- HubSpot search lags behind writes (`index_lag_ms`): a record modified earlier can surface after
  one modified later, once the saved cursor has passed it. The lookback window
  (connectors.incremental) re-reads that stretch and picks it up; without it the record is lost.
Retry waits are patched to zero, HubSpot's search window widened, so only the faults differ.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_none

from connectors.errors import ConnectorError
from connectors.hubspot import HubSpotSource
from connectors.hubspot import settings as hubspot_settings
from connectors.incremental import LOOKBACK_ENV
from connectors.salesforce import SalesforceSource
from connectors.salesforce import helpers as salesforce_helpers
from connectors.salesforce.settings import BULK_THRESHOLD_ENV
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.hubspot_search import index_delay_ms
from connectors.sandbox.ids import hs_id
from connectors.sandbox.server import SandboxServer
from connectors.store import Activity, Deal, LineItem, make_engine
from tests.conftest import private_sandbox
from tests.stores import store_url

pytestmark = pytest.mark.integration
DEALS = 400
LAG_MS = 4000  # long enough that the middle sync fits in the window even on a loaded machine
RERUNS = 3  # a stream that still raises ConnectorError is extracted again, as the next nightly run would


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "lag-and-locators", seed=53, deals=DEALS, owners=6, accounts=30,
                         calls_per_deal=3.0) as server:
        yield server
    gc.collect()


@pytest.fixture(autouse=True)
def fast_retries(org: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(salesforce_helpers, "_retrying", retry(
        retry=retry_if_exception(salesforce_helpers.is_transient), wait=wait_none(),
        stop=stop_after_attempt(salesforce_helpers.RETRY_ATTEMPTS), reraise=True))
    monkeypatch.setattr(hubspot_settings, "SEARCH_RATE_LIMIT", 1000)
    yield
    org.set_faults("salesforce", None)
    org.set_faults("hubspot", None)


def _store(tmp_path: Any, name: str) -> Engine:
    return make_engine(store_url(tmp_path, name))


def _rows(engine: Engine, source: str, models: tuple[type[SQLModel], ...] = (Deal, Activity, LineItem)
          ) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of every row of `models` from `source`, in source-id order (no duplicates)."""
    rows = {}
    with Session(engine) as session:
        for model in models:
            columns = [column.name for column in model.__table__.columns]  # type: ignore[attr-defined]
            found = [tuple(getattr(row, name) for name in columns)
                     for row in session.exec(select(model).where(model.source == source))]  # type: ignore[attr-defined]
            key = columns.index("source_id")
            assert len({row[key] for row in found}) == len(found), f"duplicate {model.__name__} rows"
            rows[model.__name__] = sorted(found, key=lambda row, key=key: row[key])
    return rows


# -- Salesforce: expired query locators ------------------------------------------------------------
def _salesforce(org: SandboxServer, **env: str) -> SalesforceSource:
    source = SalesforceSource.from_env(org.connection_env() | env)
    source.query_batch_size = 200  # Salesforce's smallest page: many queryMore calls per stream
    source.bulk_poll_seconds = 0.01
    return source


def _sync(source: SalesforceSource, engine: Engine, streams: tuple[str, ...], reruns: int = 0) -> int:
    """Extract each stream, again while it raises ConnectorError (at most `reruns` times); reruns used."""
    used = 0
    for stream in streams:
        for attempt in range(reruns + 1):
            try:
                source.extract(engine, stream)
                break
            except ConnectorError as error:
                if attempt == reruns:
                    raise
                used += 1
                print(f"rerun of {stream} after: {error}")  # shown with -s or on failure
    return used


SF_STREAMS = SalesforceSource.STREAMS  # at 200 a page: about 20 queryMore calls in all, up to 6 a stream


@pytest.fixture(scope="module")
def clean_salesforce(org: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """The rows a fault-free sync of the Salesforce streams stores. The Salesforce cases compare
    against it before the HubSpot cases (last in this module) modify any deal."""
    clean = _store(tmp_path_factory.mktemp("clean"), "clean")
    with _salesforce(org) as source:
        _sync(source, clean, SF_STREAMS)
    expected = _rows(clean, "salesforce")
    assert len(expected["Deal"]) == DEALS and len(expected["Activity"]) > 2 * DEALS
    return expected


@pytest.mark.parametrize("seed", (4, 11))
def test_salesforce_restarts_expired_query_locators_and_stores_what_a_clean_run_does(
        org: SandboxServer, tmp_path: Any, clean_salesforce: dict[str, list[Any]], seed: int) -> None:
    faulty = _store(tmp_path, "faulty")
    org.set_faults("salesforce", FaultPlan(locator_expiry=0.3, seed=seed))
    with _salesforce(org) as source:
        reruns = _sync(source, faulty, SF_STREAMS, reruns=RERUNS)
    expired = org.faults["salesforce"].injected.get("locator_expiry", 0)
    org.set_faults("salesforce", None)
    assert expired >= 3, "the plan did not bite"
    assert _rows(faulty, "salesforce") == clean_salesforce
    assert reruns == 0, "the source gave up on a stream instead of restarting its query"


def test_salesforce_restarts_a_bulk_read_whose_job_expired_from_its_last_stored_page(
        org: SandboxServer, tmp_path: Any, clean_salesforce: dict[str, list[Any]]) -> None:
    """Above the Bulk threshold the rest of a query comes from one Bulk 2.0 job, whose locators last
    as long as the job: an expired one finds the job gone (404 NOT_FOUND). The read restarts from
    the last stored page (REST page one, then a new job), so even with every locator expiring each
    restart stores one more page and the stream completes in the same run."""
    engine = _store(tmp_path, "bulk")
    org.set_faults("salesforce", FaultPlan(locator_expiry=1.0))
    with _salesforce(org, **{BULK_THRESHOLD_ENV: "100"}) as source:
        source.bulk_max_records = 20  # page one by REST (200), then results chunks of 20 from the job
        source.extract(engine, "opportunities")
    assert org.faults["salesforce"].injected.get("locator_expiry", 0) >= 1
    org.set_faults("salesforce", None)
    assert _rows(engine, "salesforce", (Deal,)) == {"Deal": clean_salesforce["Deal"]}


# -- HubSpot: search index lag ---------------------------------------------------------------------
def _hubspot(org: SandboxServer, lookback_minutes: str) -> HubSpotSource:
    source = HubSpotSource.from_env(org.connection_env() | {LOOKBACK_ENV: lookback_minutes})
    source._sleep = lambda _seconds: None  # Retry-After and backoff waits
    return source


def _lagging_pair(org: SandboxServer, taken: set[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(deal, stamp) for an EARLY record with a long index delay and a LATER one with a short delay."""
    live = [row["id"] for row in org.state.query("SELECT id FROM deals WHERE deleted = 0 ORDER BY id")
            if row["id"] not in taken]  # archived deals never show in search
    base = org.state.next_modstamp_ms()
    for shift in range(200):
        early_stamp, late_stamp = base + shift, base + shift + 1
        early = [n for n in live if index_delay_ms(n, early_stamp, LAG_MS) >= LAG_MS * 0.9]
        late = [n for n in live if n not in early[:1] and index_delay_ms(n, late_stamp, LAG_MS) <= LAG_MS * 0.1]
        if early and late:
            return (early[0], early_stamp), (late[0], late_stamp)
    raise AssertionError("no deal pair with the wanted delays")  # pragma: no cover


def _modify(org: SandboxServer, number: int, stamp: int) -> None:
    with org.state.transaction() as conn:
        conn.execute("UPDATE deals SET amount = amount + 1, modified_ms = ? WHERE id = ?", (stamp, number))


def _stored_amount(engine: Engine, number: int) -> float | None:
    with Session(engine) as session:
        deal = session.exec(select(Deal).where(Deal.source == "hubspot",
                                               Deal.source_id == hs_id("deals", number))).one()
        return deal.amount


def _wait_until(moment_ms: int) -> None:
    time.sleep(max(0.0, moment_ms / 1000 - time.time()))


_TAKEN: set[int] = set()  # deals already used by an earlier case: each case modifies its own


@pytest.mark.parametrize(("lookback", "caught_up"), [("1", True), ("0", False)])
def test_hubspot_search_lag_is_covered_by_the_lookback_window(
        org: SandboxServer, tmp_path: Any, lookback: str, caught_up: bool) -> None:
    engine = _store(tmp_path, "lag")
    org.set_faults("hubspot", FaultPlan(index_lag_ms=LAG_MS))
    with _hubspot(org, lookback) as source:
        source.extract(engine, "deals")  # the initial sync: every stored record is long indexed
    (early, early_stamp), (late, late_stamp) = _lagging_pair(org, _TAKEN)
    _TAKEN.update((early, late))
    early_delay, late_delay = (index_delay_ms(early, early_stamp, LAG_MS), index_delay_ms(late, late_stamp, LAG_MS))
    assert early_stamp < late_stamp and early_delay > late_delay
    _modify(org, early, early_stamp)
    _modify(org, late, late_stamp)
    amounts = {number: _stored_amount(engine, number) for number in (early, late)}

    _wait_until(late_stamp + late_delay + 20)  # the later record is searchable, the earlier one not yet
    with _hubspot(org, lookback) as source:
        source.extract(engine, "deals")
    assert time.time() * 1000 < early_stamp + early_delay, "too slow: the early record was no longer lagging"
    assert _stored_amount(engine, late) == amounts[late] + 1  # the cursor is now past the early record
    assert _stored_amount(engine, early) == amounts[early]
    assert org.faults["hubspot"].injected.get("index_lag", 0) >= 1

    _wait_until(early_stamp + early_delay + 20)  # the lag is over
    with _hubspot(org, lookback) as source:
        source.extract(engine, "deals")
    org.set_faults("hubspot", None)
    truth = _store(tmp_path, "truth")  # what a full read of the org stores now
    with _hubspot(org, lookback) as source:
        source.extract(truth, "deals")
    if caught_up:
        assert _rows(engine, "hubspot", (Deal,)) == _rows(truth, "hubspot", (Deal,))
    else:  # no lookback: the early record surfaced behind the saved cursor and is lost for good
        assert _stored_amount(engine, early) == amounts[early] != _stored_amount(truth, early)
        assert _stored_amount(engine, late) == _stored_amount(truth, late)
