"""Bulk API 2.0 extraction: the real simple-salesforce client over HTTPS against a private sandbox.

Also the job under faults: an expiring session (renewed with refresh-token credentials, a clear
error without them) and transient failures during the job's creation, polls and results calls.
"""

from __future__ import annotations

import gc
import re
import secrets
import traceback
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_none

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.incremental import Cursor
from connectors.salesforce import SalesforceSource
from connectors.salesforce import helpers as salesforce_helpers
from connectors.salesforce.auth import RefreshTokenLogin
from connectors.salesforce.helpers import bulk_soql, bulk_threshold_from_env, csv_record
from connectors.salesforce.mappers import MAPPERS
from connectors.salesforce.settings import BULK_THRESHOLD, BULK_THRESHOLD_ENV, STREAMS
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.ids import sf_id
from connectors.sandbox.salesforce_api import set_api_usage
from connectors.sandbox.salesforce_bulk import job_polls, set_polls_to_complete
from connectors.sandbox.server import SandboxServer
from connectors.store import SyncState, make_engine
from tests.conftest import private_sandbox
from tests.connectors.salesforce.test_config import ForwardTo
from tests.stores import store_url

JOB = re.compile(r"/jobs/query/[^/]+$")
SECRET, REFRESH = "client-secret-do-not-print", "refresh-token-do-not-print"
REFRESH_ENV = {"SALESFORCE_CLIENT_ID": "okr-sync-app", "SALESFORCE_CLIENT_SECRET": SECRET,
               "SALESFORCE_REFRESH_TOKEN": REFRESH}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-bulk", seed=11, deals=500, owners=6, accounts=40,
                         calls_per_deal=3.0) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_service(org: SandboxServer) -> Iterator[None]:
    """No fault plan, the org's own token and real usage figures after each test (some change them)."""
    token = org.token
    yield
    org.set_faults("salesforce", None)
    set_api_usage(org.state, None)
    org.state.set_meta("token", token)


class Calls:
    """(method, kind, status) of every response the source's session received."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        path = response.request.path_url.split("?")[0]
        kind = ("login" if path.startswith("/services/oauth2/") else "results" if path.endswith("/results")
                else "poll" if JOB.search(path) else "create" if path.endswith("/jobs/query") else "rest")
        self.seen.append((str(response.request.method), kind, response.status_code))
        return response

    def count(self, status: int | None = None) -> Counter[str]:
        """Responses by kind (only those with `status`, when given)."""
        return Counter(kind for _method, kind, code in self.seen if status in (None, code))


def bulk_source(org: SandboxServer, threshold: str = "100", env: dict[str, str] | None = None,
                session: requests.Session | None = None) -> tuple[SalesforceSource, Calls]:
    source = SalesforceSource.from_env((env or org.connection_env()) | {BULK_THRESHOLD_ENV: threshold},
                                       session=session)
    source.query_batch_size = 200  # Salesforce's smallest REST page: page one, then Bulk
    source.bulk_max_records = 120  # several results chunks from this small org
    source.bulk_poll_seconds = 0.01
    calls = Calls()
    source.client.session.hooks["response"].append(calls)
    return source, calls


def rows(engine: Engine, model: type[SQLModel]) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return sorted((record.model_dump() for record in session.exec(select(model))),
                      key=lambda row: row["source_id"])


def stream_rows(engine: Engine, stream: str) -> list[dict[str, Any]]:
    """The rows of one stream (calls, emails and meetings share the activity table)."""
    kind = {"calls": "call", "emails": "email", "meetings": "meeting"}.get(stream)
    return [row for row in rows(engine, MAPPERS[stream][0]) if kind is None or row["kind"] == kind]


def test_a_bulk_extract_equals_the_rest_extract_row_for_row(org: SandboxServer, tmp_path: Path) -> None:
    set_polls_to_complete(org.state, 2)
    rest_store = make_engine(store_url(tmp_path, 'rest'))
    bulk_store = make_engine(store_url(tmp_path, 'bulk'))
    source, calls = bulk_source(org)
    with SalesforceSource.from_env(org.connection_env()) as rest, source:
        assert rest.bulk_threshold == BULK_THRESHOLD and source.bulk_threshold == 100
        for stream in STREAMS:  # line items: CSV relationship columns nest as in REST
            polls_before = dict(job_polls(org.state))
            before = calls.count()
            by_rest = rest.extract(rest_store, stream)
            by_bulk = source.extract(bulk_store, stream)
            want, got = stream_rows(rest_store, stream), stream_rows(bulk_store, stream)
            assert got == want and len(got) == by_rest.records == by_bulk.records > 0
            used = calls.count() - before
            if by_bulk.records <= 200:  # one REST page, no job
                assert by_bulk.api_calls == 1 and used["create"] == 0
                continue
            # page one by REST, then one job: create, 2 polls, one results call per 120 records
            new_jobs = [job for job in job_polls(org.state) if job not in polls_before]
            assert len(new_jobs) == 1 and job_polls(org.state)[new_jobs[0]] == 2
            chunks = -(-(by_bulk.records - 200) // 120)
            assert chunks >= 1 and used == Counter({"rest": 1, "create": 1, "poll": 2, "results": chunks})
            assert by_bulk.api_calls == 1 + 1 + 2 + chunks
            assert by_rest.api_calls == -(-by_rest.records // 2000)
        with Session(rest_store) as left, Session(bulk_store) as right:
            for stream in STREAMS:
                a, b = left.get(SyncState, ("salesforce", stream)), right.get(SyncState, ("salesforce", stream))
                assert a is not None and b is not None
                assert (a.watermark, a.last_id) == (b.watermark, b.last_id)


def test_an_incremental_bulk_run_picks_up_only_the_change(org: SandboxServer, store: Engine) -> None:
    set_polls_to_complete(org.state, 1)
    source, calls = bulk_source(org)
    with source:
        full = source.extract(store, "opportunities")
        assert full.records > 300 and source.extract(store, "opportunities").records == 0
        newest = org.state.query("SELECT MAX(modified_ms) FROM deals")[0][0]
        when = (newest // 1000 + 5) * 1000
        changed = list(range(2, 502, 2))  # 250 deals, more than one REST page
        with org.state.transaction() as conn:
            conn.executemany("UPDATE deals SET amount = COALESCE(amount, 0) + 1, modified_ms = ? WHERE id = ?",
                             [(when, number) for number in changed])
        before = calls.count()
        result = source.extract(store, "opportunities")
        used = calls.count() - before
        assert result.records == 250 and used["create"] == 1 and used["results"] == 1
        with Session(store) as session:
            cursor = session.get(SyncState, ("salesforce", "opportunities"))
            stamp = datetime.fromtimestamp(when // 1000, UTC)
            assert cursor is not None and cursor.watermark is not None
            assert cursor.watermark.replace(tzinfo=None) == stamp.replace(tzinfo=None)
            assert cursor.last_id == max(sf_id("Opportunity", number) for number in changed)
            amounts = {row["id"]: row["amount"] for row in org.state.query("SELECT id, amount FROM deals")}
            stored = {deal.source_id: deal for deal in session.exec(select(MAPPERS["opportunities"][0]))}
        for number in changed:
            assert stored[sf_id("Opportunity", number)].amount == pytest.approx(amounts[number])
        assert source.extract(store, "opportunities").records == 0


def test_a_run_that_dies_mid_job_repeats_the_job_window_without_losing_records(
        org: SandboxServer, store: Engine) -> None:
    set_polls_to_complete(org.state, 0)
    source, _calls = bulk_source(org)
    with source:
        original = source._bulk_pages

        def dying(spec: Any, cursor: Cursor) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
            pages = original(spec, cursor)
            yield next(pages)
            raise requests.ConnectionError("network gone mid-job")

        source._bulk_pages = dying  # type: ignore[method-assign]
        with pytest.raises(ConnectorError, match="lost its connection"):
            source.extract(store, "calls")
        with Session(store) as session:
            partial = session.get(SyncState, ("salesforce", "calls"))
            stored_before = len(rows(store, MAPPERS["calls"][0]))
        assert partial is not None and stored_before == 400  # REST page one + one Bulk page
        source._bulk_pages = original  # type: ignore[method-assign]
        resumed = source.extract(store, "calls")
        total = org.state.query("SELECT COUNT(*) FROM calls")[0][0]
        assert len(rows(store, MAPPERS["calls"][0])) == total
        assert resumed.records == total - stored_before  # re-read unchanged rows are not counted


def test_csv_rows_become_the_rest_records() -> None:
    row = {"Id": "006SB000000001AAA", "Name": "", "Amount": "1250.5", "Probability": "10.0", "IsClosed": "false",
           "IsWon": "true", "CallDurationInSeconds": "42", "SystemModstamp": "2026-10-22T21:03:23.000+0000"}
    assert csv_record(row) == {"Id": "006SB000000001AAA", "Name": None, "Amount": 1250.5, "Probability": 10.0,
                               "IsClosed": False, "IsWon": True, "CallDurationInSeconds": 42,
                               "SystemModstamp": "2026-10-22T21:03:23.000+0000"}
    with pytest.raises(ValueError):
        csv_record({"IsWon": "1"})
    query = bulk_soql(STREAMS["calls"], Cursor(datetime(2026, 1, 1, tzinfo=UTC), "00TSB0000000001AAA"))
    assert "ORDER BY" not in query and "TaskSubtype = 'Call'" in query and "SystemModstamp" in query


@pytest.mark.parametrize(("text", "expected"), [
    (None, BULK_THRESHOLD), ("", BULK_THRESHOLD), ("  ", BULK_THRESHOLD), ("0", 0), ("2000", 2000),
    ("25_000", 25_000), (" 500 ", 500)])
def test_the_threshold_variable_is_parsed(text: str | None, expected: int) -> None:
    env = {} if text is None else {BULK_THRESHOLD_ENV: text}
    assert bulk_threshold_from_env(env, BULK_THRESHOLD_ENV, BULK_THRESHOLD) == expected


@pytest.mark.parametrize("text", ["-1", "1.5", "ten", "1e4", "١٢"])
def test_a_bad_threshold_fails_before_any_call(org: SandboxServer, text: str) -> None:
    before = org.calls("salesforce")
    with pytest.raises(ConnectorConfigError, match=BULK_THRESHOLD_ENV):
        SalesforceSource.from_env(org.connection_env() | {BULK_THRESHOLD_ENV: text})
    assert org.calls("salesforce") == before
    with SalesforceSource.from_env(org.connection_env()) as source, pytest.raises(ConnectorConfigError):
        SalesforceSource(source.client, bulk_threshold=-1)


# -- the job under faults ----------------------------------------------------------------------------
@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The source's retry policy without its waits (the same attempts and the same transient errors)."""
    monkeypatch.setattr(salesforce_helpers, "_retrying", retry(
        retry=retry_if_exception(salesforce_helpers.is_transient), wait=wait_none(),
        stop=stop_after_attempt(salesforce_helpers.RETRY_ATTEMPTS), reraise=True))


@pytest.fixture
def login_session(org: SandboxServer) -> Iterator[requests.Session]:
    """A session whose refresh-token logins at login.salesforce.com reach the sandbox."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(org.ca_path)
    session.mount("https://login.salesforce.com", ForwardTo(org.salesforce_url))
    yield session
    session.close()
    gc.collect()


class RotatingLogin:
    """The source's refresh-token login, after the org issued a new access token: from each renewal
    on, the sandbox refuses the previous token, so a step sent with a stale header would fail."""

    def __init__(self, org: SandboxServer, login: RefreshTokenLogin) -> None:
        self.org, self.login, self.secrets = org, login, login.secrets
        self.tokens: list[str] = []

    def __call__(self) -> tuple[str, str]:
        self.org.state.set_meta("token", secrets.token_urlsafe(24))
        token, instance_url = self.login()
        self.tokens.append(token)
        return token, instance_url


def clean_read(org: SandboxServer, tmp_path: Path, stream: str) -> tuple[Engine, int, Counter[str]]:
    """The stream read without faults into a store of its own: (store, api_calls, responses by kind)."""
    engine = make_engine(store_url(tmp_path, 'clean'))
    source, calls = bulk_source(org)
    with source:
        result = source.extract(engine, stream)
    assert calls.count()["results"] >= 3 and result.records > 600
    return engine, result.api_calls, calls.count()


def same_store(left: Engine, right: Engine, stream: str) -> bool:
    with Session(left) as one, Session(right) as other:
        a, b = one.get(SyncState, ("salesforce", stream)), other.get(SyncState, ("salesforce", stream))
        cursors = a is not None and b is not None and (a.watermark, a.last_id) == (b.watermark, b.last_id)
    return cursors and stream_rows(left, stream) == stream_rows(right, stream)


def shown(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_a_session_expiring_mid_job_is_renewed_and_each_step_repeated_once(
        org: SandboxServer, tmp_path: Path, login_session: requests.Session) -> None:
    set_polls_to_complete(org.state, 2)
    clean, clean_calls, clean_kinds = clean_read(org, tmp_path, "calls")
    store = make_engine(store_url(tmp_path, 'renewed'))
    source, calls = bulk_source(org, env=REFRESH_ENV, session=login_session)
    assert isinstance(source._refresh, RefreshTokenLogin)
    rotating = RotatingLogin(org, source._refresh)
    source._refresh = rotating  # type: ignore[assignment]
    org.set_faults("salesforce", FaultPlan(expire_after=1))  # page one passes; every later step meets one 401
    with source:
        result = source.extract(store, "calls")
    expired = org.faults["salesforce"].injected.get("expired", 0)
    assert org.faults["salesforce"].injected == {"expired": expired}
    assert same_store(store, clean, "calls") and result.records == len(stream_rows(clean, "calls"))
    rejected = [index for index, (_method, _kind, status) in enumerate(calls.seen) if status == 401]
    # every step of the job after page one met its expiry: creation, both polls and each results call
    assert {calls.seen[index][1] for index in rejected} == {"create", "poll", "results"}
    assert len(rejected) == expired == len(rotating.tokens) == calls.count()["login"]
    for index in rejected:  # one login, then the same step again, with the new token, answered
        method, kind, _status = calls.seen[index]
        assert calls.seen[index + 1] == ("POST", "login", 200) and calls.seen[index + 2] == (method, kind, 200)
    assert calls.count(200) - Counter(login=expired) == clean_kinds  # no step read twice, none skipped
    assert result.api_calls == clean_calls + 2 * expired


@pytest.mark.parametrize("seed", [5, 2026])
def test_transient_faults_during_a_bulk_job_converge(
        org: SandboxServer, tmp_path: Path, fast_retries: None, seed: int) -> None:
    set_polls_to_complete(org.state, 3)
    clean, clean_calls, _kinds = clean_read(org, tmp_path, "calls")
    store = make_engine(store_url(tmp_path, 'faulty'))
    org.set_faults("salesforce", FaultPlan(rate_limit=0.1, server_error=0.05, unavailable=0.05, drop=0.05,
                                           seed=seed))
    source, calls = bulk_source(org)
    with source:
        result = source.extract(store, "calls")
    injected = dict(org.faults["salesforce"].injected)
    org.set_faults("salesforce", None)
    assert same_store(store, clean, "calls") and result.records == len(stream_rows(clean, "calls"))
    failed = Counter(kind for _method, kind, status in calls.seen if status >= 400)
    assert failed["poll"] + failed["results"] > 0, (failed, injected)  # the plan bit inside the job
    # each fault costs at most its one repeated call (a dropped attempt has no response to count)
    assert result.api_calls <= clean_calls + sum(injected.values()), (result.api_calls, clean_calls, injected)


@pytest.mark.parametrize(("seed", "broken"), [(3, "results"), (7, "rest")])
def test_answers_cut_off_half_way_are_asked_again_and_results_resume_where_they_broke(
        org: SandboxServer, tmp_path: Path, fast_retries: None, seed: int, broken: str) -> None:
    """A results chunk streams: a connection lost mid-body asks for the same chunk again and skips
    the rows already stored, so nothing is lost or stored twice; a REST answer cut off is retried."""
    set_polls_to_complete(org.state, 2)
    clean, clean_calls, clean_kinds = clean_read(org, tmp_path, "calls")
    store = make_engine(store_url(tmp_path, 'cut'))
    org.set_faults("salesforce", FaultPlan(cut=0.3, seed=seed))
    source, calls = bulk_source(org)
    with source:
        result = source.extract(store, "calls")
    cut = org.faults["salesforce"].injected.get("cut", 0)
    org.set_faults("salesforce", None)
    assert same_store(store, clean, "calls") and result.records == len(stream_rows(clean, "calls"))
    kinds = calls.count()
    assert kinds[broken] > clean_kinds[broken], (kinds, cut)  # the seed cuts one of these
    assert result.api_calls == clean_calls + cut  # each cut answer costs one more call, nothing else


@pytest.mark.parametrize(("expire_after", "step", "stored"), [(3, "poll", 200), (6, "results", 400)])
def test_an_expiry_without_refresh_credentials_stops_clearly_then_the_next_run_converges(
        org: SandboxServer, tmp_path: Path, expire_after: int, step: str, stored: int) -> None:
    set_polls_to_complete(org.state, 2)  # page one, create, 2 polls, then results chunks of 120 rows
    clean, _calls, _kinds = clean_read(org, tmp_path, "calls")
    store = make_engine(store_url(tmp_path, 'expired'))
    org.set_faults("salesforce", FaultPlan(expire_after=expire_after))
    source, calls = bulk_source(org)
    with source, pytest.raises(ConnectorError) as caught:
        source.extract(store, "calls")
    message, text = str(caught.value), shown(caught.value)
    del caught
    assert message.startswith("Salesforce rejected the session (INVALID_SESSION_ID) during the query of Task")
    assert org.token not in text
    assert org.faults["salesforce"].injected == {"expired": 1} and calls.seen[-1][1:] == (step, 401)
    assert len(stream_rows(store, "calls")) == stored  # the pages committed before the expiry
    org.set_faults("salesforce", None)
    source, _calls = bulk_source(org)
    with source:
        source.extract(store, "calls")
    assert same_store(store, clean, "calls")


@pytest.mark.parametrize(("used", "answered"), [
    (4_750, Counter(rest=1)),  # stopped before the job's creation
    (4_746, Counter(rest=1, create=1, poll=2, results=1)),  # stopped before its second results call
])
def test_the_quota_guard_stops_a_bulk_job_before_its_next_request(
        org: SandboxServer, tmp_path: Path, used: int, answered: Counter[str]) -> None:
    set_polls_to_complete(org.state, 2)
    clean, _calls, _kinds = clean_read(org, tmp_path, "calls")
    store = make_engine(store_url(tmp_path, 'quota'))
    set_api_usage(org.state, used=used, maximum=5_000)  # each call adds one; the 5% reserve is 250
    source, calls = bulk_source(org)
    with source, pytest.raises(ConnectorError) as caught:
        source.extract(store, "calls")
    message = str(caught.value)
    del caught
    assert message.startswith("Salesforce Bulk API 2.0 query of Task stopped before its next request: only 249 ")
    assert calls.count() == answered and len(stream_rows(store, "calls")) == 200  # page one is kept
    set_api_usage(org.state, None)
    source, _calls = bulk_source(org)
    with source:
        source.extract(store, "calls")
    assert same_store(store, clean, "calls")
