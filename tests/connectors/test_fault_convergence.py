"""Both connectors converge under CRM faults: a faulty sync stores exactly what a clean one does.

Real clients over HTTPS against a private sandbox org with the sandbox's seeded FaultPlan: rate
limits, 500/503s and dropped connections; an expiring session; a stream killed mid-way and rerun.
Retry waits are patched to zero (the same tenacity policies otherwise), so only the faults differ.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_none

from connectors.errors import ConnectorError
from connectors.hubspot import HubSpotSource
from connectors.hubspot import settings as hubspot_settings
from connectors.salesforce import SalesforceSource
from connectors.salesforce import helpers as salesforce_helpers
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.server import SandboxServer
from connectors.store import Activity, Deal, Owner, SyncState, make_engine
from tests.conftest import private_sandbox
from tests.connectors.salesforce.test_config import ForwardTo
from tests.stores import store_url

pytestmark = pytest.mark.integration
CRMS = ("salesforce", "hubspot")
DEALS = 300
SEEDS = (7, 1234, 2026)  # each seed is a different (but repeatable) sequence of faults
RERUNS = 3  # a stream that still raises ConnectorError is extracted again, as the next nightly run would
Source = SalesforceSource | HubSpotSource


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "fault-convergence", seed=31, deals=DEALS, owners=8, accounts=40,
                         calls_per_deal=3.0) as server:
        yield server
    gc.collect()


@pytest.fixture(autouse=True)
def fast_retries(org: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Both retry policies without their waits; HubSpot's search window wide enough not to sleep."""
    monkeypatch.setattr(salesforce_helpers, "_retrying", retry(
        retry=retry_if_exception(salesforce_helpers.is_transient), wait=wait_none(),
        stop=stop_after_attempt(salesforce_helpers.RETRY_ATTEMPTS), reraise=True))
    monkeypatch.setattr(hubspot_settings, "SEARCH_RATE_LIMIT", 1000)
    # One search page per association read and commit, so a run killed after a few calls has committed some
    monkeypatch.setattr(hubspot_settings, "ASSOCIATION_BUFFER_PAGES", 1)
    yield
    for crm in CRMS:
        org.set_faults(crm, None)


def _source(org: SandboxServer, crm: str, session: requests.Session | None = None,
            env: dict[str, str] | None = None) -> Source:
    if crm == "salesforce":
        source: Source = SalesforceSource.from_env(env or org.connection_env(), session=session)
        source.query_batch_size = 200  # Salesforce's smallest page: several pages per stream
        return source
    hub = HubSpotSource.from_env(org.connection_env())
    hub._sleep = lambda _seconds: None  # Retry-After and backoff waits
    return hub


def _sync(source: Source, engine: Engine, streams: tuple[str, ...] | None = None,
          reruns: int = 0) -> dict[str, int]:
    """Extract each stream (again, at most `reruns` times, while it raises ConnectorError); calls per stream."""
    calls = {}
    for stream in streams or source.STREAMS:
        before = source.api_calls
        for attempt in range(reruns + 1):
            try:
                source.extract(engine, stream)
                break
            except ConnectorError as error:
                if attempt == reruns:
                    raise
                print(f"rerun of {stream} after: {error}")  # shown with -s or on failure
        calls[stream] = source.api_calls - before
    return calls


def _rows(engine: Engine, source: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every canonical column of every owner, deal and activity row of `source`, in key order."""
    rows = {}
    with Session(engine) as session:
        for model in (Owner, Deal, Activity):
            columns = [column.name for column in model.__table__.columns]  # type: ignore[attr-defined]
            found = [tuple(getattr(row, name) for name in columns)
                     for row in session.exec(select(model).where(model.source == source))]
            keys = [(row[columns.index("source")], row[columns.index("source_id")]) for row in found]
            assert len(keys) == len(set(keys)), f"duplicate {model.__name__} rows"
            rows[model.__name__] = sorted(found, key=lambda row, columns=columns: row[columns.index("source_id")])
    return rows


@pytest.fixture(scope="module")
def clean() -> dict[str, tuple[dict[str, list[tuple[Any, ...]]], dict[str, int]]]:
    """Per CRM: the clean sync's rows and calls per stream (filled by the first test that needs it)."""
    return {}


def _clean_sync(org: SandboxServer, crm: str, tmp_path_factory: pytest.TempPathFactory,
                cache: dict[str, Any]) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, int]]:
    if crm not in cache:
        engine = make_engine(store_url(tmp_path_factory.mktemp('clean'), 'a'))
        with _source(org, crm) as source:
            calls = _sync(source, engine)
        rows = _rows(engine, crm)
        assert len(rows["Deal"]) == DEALS and len(rows["Owner"]) >= 8 and len(rows["Activity"]) > DEALS
        cache[crm] = rows, calls
    return cache[crm]


def _store(tmp_path: Any, name: str) -> Engine:
    return make_engine(store_url(tmp_path, name))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("crm", CRMS)
def test_a_sync_under_noisy_faults_stores_what_a_clean_one_does(
        org: SandboxServer, crm: str, seed: int, tmp_path, tmp_path_factory, clean) -> None:
    """~10% rate limits, ~5% 500/503, ~3% dropped connections."""
    expected, clean_calls = _clean_sync(org, crm, tmp_path_factory, clean)
    engine = _store(tmp_path, "b")
    org.set_faults(crm, FaultPlan(rate_limit=0.10, server_error=0.025, unavailable=0.025, drop=0.03, seed=seed))
    with _source(org, crm) as source:
        calls = _sync(source, engine, reruns=RERUNS)
    injected = dict(org.faults[crm].injected)
    org.set_faults(crm, None)
    assert injected, "the plan did not bite"
    assert _rows(engine, crm) == expected
    # Each fault costs at most its one retried call: no page re-read, no stream restarted. (Salesforce's
    # api_calls does not see a dropped attempt: its counter is a response hook.)
    # No retry storm: every call beyond the clean run's answers one injected fault. (Issue 7's
    # "within 1.5x a clean run" is a statement about realistic sizes; a sync of 7-18 calls
    # under an ~18% fault rate can exceed it by chance, so it is not asserted here.)
    assert sum(calls.values()) <= sum(clean_calls.values()) + sum(injected.values()), (calls, clean_calls, injected)


def _password_login_session(org: SandboxServer) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(org.ca_path)
    session.mount("https://login.salesforce.com", ForwardTo(org.salesforce_url))
    return session


def test_salesforce_password_client_logs_in_again_when_the_session_expires(
        org: SandboxServer, tmp_path, tmp_path_factory, clean) -> None:
    expected, clean_calls = _clean_sync(org, "salesforce", tmp_path_factory, clean)
    env = {"SALESFORCE_USERNAME": "ops@example.com", "SALESFORCE_PASSWORD": "pw", "SALESFORCE_SECURITY_TOKEN": "t"}
    engine = _store(tmp_path, "b")
    org.set_faults("salesforce", FaultPlan(expire_after=1))
    with _password_login_session(org) as session, _source(org, "salesforce", session, env) as source:
        calls = _sync(source, engine)  # no rerun: simple-salesforce re-logs in on INVALID_SESSION_ID
    expired = org.faults["salesforce"].injected.get("expired", 0)
    assert expired >= 2, (expired, calls, clean_calls)
    assert _rows(engine, "salesforce") == expected
    # Each expiry costs the 401 and one SOAP login. simple-salesforce re-sends the query without our
    # Sforce-Query-Options header (its retry drops `headers`), so that page comes back at the
    # default 2000 records: fewer pages, never missing ones.
    assert sum(calls.values()) <= sum(clean_calls.values()) + 2 * expired


def test_salesforce_session_token_expiry_is_a_clear_error_then_converges(
        org: SandboxServer, tmp_path, tmp_path_factory, clean) -> None:
    expected, _calls = _clean_sync(org, "salesforce", tmp_path_factory, clean)
    _expiry_then_converge(org, "salesforce", tmp_path, expected, "INVALID_SESSION_ID")


def test_hubspot_token_expiry_is_a_clear_error_then_converges(
        org: SandboxServer, tmp_path, tmp_path_factory, clean) -> None:
    expected, _calls = _clean_sync(org, "hubspot", tmp_path_factory, clean)
    _expiry_then_converge(org, "hubspot", tmp_path, expected, "401")


def _expiry_then_converge(org: SandboxServer, crm: str, tmp_path: Any,
                          expected: dict[str, list[tuple[Any, ...]]], named: str) -> None:
    """A token that cannot be renewed: the run stops with a ConnectorError; the next run converges."""
    engine = _store(tmp_path, "b")
    org.set_faults(crm, FaultPlan(expire_after=4))
    with _source(org, crm) as source, pytest.raises(ConnectorError) as caught:
        _sync(source, engine)
    message = str(caught.value)
    assert named in message and org.token not in message
    org.set_faults(crm, None)
    with _source(org, crm) as source:
        _sync(source, engine)
    assert _rows(engine, crm) == expected


@contextmanager
def _drop_after(org: SandboxServer, crm: str, calls: int) -> Iterator[None]:
    """A plan that answers `calls` more requests, then drops every connection."""
    middleware = org.faults[crm]
    middleware.set_plan(FaultPlan())
    choose: Callable[[str], tuple[FaultPlan | None, str | None]] = middleware._choose
    served = 0

    def dropping(path: str) -> tuple[FaultPlan | None, str | None]:
        nonlocal served
        plan, fault = choose(path)
        if plan is None:
            return plan, fault
        served += 1
        return plan, ("drop" if served > calls else fault)

    middleware._choose = dropping  # type: ignore[method-assign]
    try:
        yield
    finally:
        del middleware._choose
        middleware.set_plan(None)


@pytest.mark.parametrize("crm", CRMS)
def test_a_stream_killed_mid_way_resumes_from_its_last_committed_page(
        org: SandboxServer, crm: str, tmp_path, tmp_path_factory, clean) -> None:
    expected, clean_calls = _clean_sync(org, crm, tmp_path_factory, clean)
    engine = _store(tmp_path, "b")
    with _source(org, crm) as source:
        _sync(source, engine, source.STREAMS[:2])
        # Salesforce: 2 of 4 pages answered; HubSpot: 1 of 4 search pages and its association read
        with _drop_after(org, crm, 2), pytest.raises(ConnectorError) as caught:
            source.extract(engine, "calls")
    assert any(word in str(caught.value) for word in ("connection", "ProtocolError", "Connection")), caught.value
    with Session(engine) as session:
        state = session.get(SyncState, (crm, "calls"))
        assert state is not None and state.watermark is not None  # some pages were committed
        stored = len(session.exec(select(Activity).where(Activity.source == crm)).all())
    assert 0 < stored < len(expected["Activity"])
    with _source(org, crm) as source:
        rerun = _sync(source, engine)
    assert _rows(engine, crm) == expected
    assert rerun["calls"] < clean_calls["calls"], (rerun, clean_calls)
