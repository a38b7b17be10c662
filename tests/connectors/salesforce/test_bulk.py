"""Bulk API 2.0 extraction: the real simple-salesforce client over HTTPS against a private sandbox."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.incremental import Cursor
from connectors.salesforce import SalesforceSource
from connectors.salesforce.helpers import bulk_soql, bulk_threshold_from_env, csv_record
from connectors.salesforce.mappers import MAPPERS
from connectors.salesforce.settings import BULK_THRESHOLD, BULK_THRESHOLD_ENV, STREAMS
from connectors.sandbox.ids import sf_id
from connectors.sandbox.salesforce_bulk import job_polls, set_polls_to_complete
from connectors.sandbox.server import SandboxServer
from connectors.store import SyncState, make_engine
from tests.conftest import private_sandbox

JOB = re.compile(r"/jobs/query/[^/]+$")


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-bulk", seed=11, deals=500, owners=6, accounts=40,
                         calls_per_deal=3.0) as server:
        yield server


class Calls:
    """(method, kind) of every response the source's session received."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        path = response.request.path_url.split("?")[0]
        kind = ("results" if path.endswith("/results") else "poll" if JOB.search(path)
                else "create" if path.endswith("/jobs/query") else "rest")
        self.seen.append((str(response.request.method), kind))
        return response

    def count(self) -> Counter[str]:
        return Counter(kind for _method, kind in self.seen)


def bulk_source(org: SandboxServer, threshold: str = "100") -> tuple[SalesforceSource, Calls]:
    source = SalesforceSource.from_env(org.connection_env() | {BULK_THRESHOLD_ENV: threshold})
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
    rest_store = make_engine(f"sqlite:///{tmp_path / 'rest.db'}")
    bulk_store = make_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
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
