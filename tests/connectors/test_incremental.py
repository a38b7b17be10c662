"""The lookback window of both connectors: late commits, quiet reruns, the window's edge, settings.

Real clients over HTTPS against an org of this module's own; a late commit is simulated by
giving a record a modification time before the saved watermark (but inside the window).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import ConnectorConfigError
from connectors.hubspot import HubSpotSource
from connectors.hubspot import settings as hubspot_settings
from connectors.hubspot.helpers import cursor_key
from connectors.incremental import (
    LOOKBACK_ENV,
    Cursor,
    field_set_digest,
    later,
    load_cursor,
    lookback_from_env,
    save_cursor,
    save_field_set,
)
from connectors.salesforce import SalesforceSource
from connectors.salesforce import settings as salesforce_settings
from connectors.sandbox.ids import hs_id, sf_id
from connectors.sandbox.server import SandboxServer
from connectors.store import Deal, make_engine, session_scope
from tests.conftest import private_sandbox
from tests.stores import store_url

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SOURCES = [SalesforceSource, HubSpotSource]
# source class -> (deals stream, the deal's id in that CRM)
DEALS = {SalesforceSource: ("opportunities", lambda n: sf_id("Opportunity", n)),
         HubSpotSource: ("deals", lambda n: hs_id("deals", n))}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "lookback", seed=9, deals=150, owners=4, accounts=20,
                         calls_per_deal=2.0) as server:
        yield server


def connect(org: SandboxServer, source_class: type, minutes: int | None = None) -> Any:
    env = dict(org.connection_env())
    if minutes is not None:
        env[LOOKBACK_ENV] = str(minutes)
    return source_class.from_env(env)


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def newest_whole_second(org: SandboxServer, deal: int) -> int:
    """Move `deal` to a whole second after every record, so the next watermark is exactly that."""
    newest = max(org.state.query(f"SELECT MAX(modified_ms) FROM {table}")[0][0] for table in ("deals", "calls"))
    stamp = (newest // 1000 + 2) * 1000
    with org.state.transaction() as conn:
        conn.execute("UPDATE deals SET modified_ms = ? WHERE id = ?", (stamp, deal))
    return stamp


def late_commit(org: SandboxServer, deal: int, modified_ms: int) -> float:
    """Change `deal` with a modification time of the past (a transaction committing late)."""
    with org.state.transaction() as conn:
        conn.execute("UPDATE deals SET amount = amount + 1, modified_ms = ? WHERE id = ?", (modified_ms, deal))
    return org.state.query("SELECT amount FROM deals WHERE id = ?", (deal,))[0][0]


def stored_amount(store: Engine, source: str, source_id: str) -> float | None:
    with Session(store) as session:
        deal = session.get(Deal, (source, source_id))
    assert deal is not None
    return deal.amount


@pytest.mark.parametrize(("minutes", "deal", "picked_up"), [(10, 11, True), (0, 12, False)])
@pytest.mark.parametrize("source_class", SOURCES)
def test_a_late_commit_inside_the_window_is_picked_up_only_with_lookback(
        org: SandboxServer, store: Engine, source_class: type, minutes: int, deal: int, picked_up: bool) -> None:
    stream, crm_id = DEALS[source_class]
    deal += 10 if source_class is HubSpotSource else 0  # each case changes a deal of its own
    with connect(org, source_class, minutes) as source:
        assert source.lookback == timedelta(minutes=minutes)
        source.extract(store, stream)
        saved = load_cursor(store, source.name, stream)
        assert saved.watermark is not None
        amount = late_commit(org, deal, to_ms(saved.watermark) - 5 * 60_000)  # 5 min before the cursor
        result = source.extract(store, stream)
        assert result.records == (1 if picked_up else 0)
        assert (stored_amount(store, source.name, crm_id(deal)) == amount) is picked_up
        assert load_cursor(store, source.name, stream) == saved  # the cursor never moves backwards
        assert source.extract(store, stream).records == 0


@pytest.mark.parametrize("source_class", SOURCES)
def test_a_quiet_rerun_rereads_the_window_but_reports_and_rewrites_nothing(
        org: SandboxServer, store: Engine, source_class: type) -> None:
    stream, _ = DEALS[source_class]
    top = newest_whole_second(org, 30)
    with org.state.transaction() as conn:  # three more deals inside the window before the watermark
        conn.execute("UPDATE deals SET modified_ms = ? WHERE id IN (31, 32, 33)", (top - 3 * 60_000,))
    with connect(org, source_class) as source:
        assert source.lookback == timedelta(minutes=10)  # the default
        for name in source.STREAMS:
            source.extract(store, name)
        cursors = {name: load_cursor(store, source.name, name) for name in source.STREAMS}
        statements: list[tuple[str, Any]] = []

        def spy(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
            statements.append((statement, parameters))

        event.listen(store, "before_cursor_execute", spy)
        try:
            again = {name: source.extract(store, name) for name in source.STREAMS}
        finally:
            event.remove(store, "before_cursor_execute", spy)
    assert {name: result.records for name, result in again.items()} == dict.fromkeys(source.STREAMS, 0)
    # one query per stream (HubSpot: one search + the archived list; owners are two full lists)
    assert all(result.api_calls <= 2 for result in again.values())
    assert again[stream].api_calls == (1 if source_class is SalesforceSource else 2)
    assert {name: load_cursor(store, source.name, name) for name in source.STREAMS} == cursors
    writes = [sql for sql, _ in statements if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes and all("sync_state" in sql for sql in writes)  # only the cursors, no record rewritten
    deal_reads = [params for sql, params in statements if sql.lstrip().upper().startswith("SELECT")
                  and "FROM deal" in sql and "source_id IN" in sql]
    assert len(deal_reads) == 1 and len(deal_reads[0]) - 1 >= 4  # one SELECT for the re-read page: 30-33


@pytest.mark.parametrize("source_class", SOURCES)
def test_the_window_starts_exactly_lookback_before_the_watermark(
        org: SandboxServer, store: Engine, source_class: type) -> None:
    stream, crm_id = DEALS[source_class]
    edge, outside = (41, 42) if source_class is SalesforceSource else (43, 44)
    with connect(org, source_class, 10) as source:
        top = newest_whole_second(org, 40)
        source.extract(store, stream)
        assert to_ms(load_cursor(store, source.name, stream).watermark) == top
        at_edge = late_commit(org, edge, top - 10 * 60_000)  # exactly lookback before: inside
        before_edge = late_commit(org, outside, top - 10 * 60_000 - 1)  # 1 ms earlier: outside
        assert source.extract(store, stream).records == 1
        assert stored_amount(store, source.name, crm_id(edge)) == at_edge
        assert stored_amount(store, source.name, crm_id(outside)) != before_edge


@pytest.mark.parametrize(("value", "minutes"), [(None, 10), ("", 10), ("0", 0), (" 25 ", 25), ("1440", 1440)])
def test_lookback_minutes_from_the_environment(value: str | None, minutes: int) -> None:
    env = {} if value is None else {LOOKBACK_ENV: value}
    assert lookback_from_env(env) == timedelta(minutes=minutes)
    with HubSpotSource.from_env({hubspot_settings.TOKEN_ENV: "pat-x", **env}) as source:
        assert source.lookback == timedelta(minutes=minutes)


@pytest.mark.parametrize("value", ["-5", "abc", "1.5", "10m", "\uff11"])
def test_a_bad_lookback_names_the_variable(value: str) -> None:
    with pytest.raises(ConnectorConfigError, match=LOOKBACK_ENV):
        lookback_from_env({LOOKBACK_ENV: value})
    with pytest.raises(ConnectorConfigError, match=LOOKBACK_ENV):
        HubSpotSource.from_env({hubspot_settings.TOKEN_ENV: "pat-x", LOOKBACK_ENV: value})
    with pytest.raises(ConnectorConfigError, match=LOOKBACK_ENV):  # before any login is tried
        SalesforceSource.from_env({"SALESFORCE_INSTANCE_URL": "https://x.invalid", "SALESFORCE_ACCESS_TOKEN": "t",
                                   LOOKBACK_ENV: value})


def test_settings_document_one_variable_and_default() -> None:
    assert salesforce_settings.LOOKBACK_ENV == hubspot_settings.LOOKBACK_ENV == LOOKBACK_ENV
    assert salesforce_settings.LOOKBACK_MINUTES == hubspot_settings.LOOKBACK_MINUTES == 10
    with pytest.raises(ConnectorConfigError):
        HubSpotSource("pat-x", lookback=timedelta(minutes=-1))


def test_cursors_only_move_forward() -> None:
    noon = datetime(2026, 11, 15, 12, tzinfo=UTC)
    saved = Cursor(noon, "9")
    assert saved.start(timedelta(0)) == saved
    assert saved.start(timedelta(minutes=10)) == Cursor(noon - timedelta(minutes=10))
    assert Cursor().start(timedelta(minutes=10)) == Cursor()
    assert later(saved, Cursor(noon - timedelta(minutes=1), "99")) == saved
    assert later(saved, Cursor(noon, "A")) == Cursor(noon, "A")  # Salesforce Ids compare as text
    assert later(saved, Cursor(noon, "10"), cursor_key) == Cursor(noon, "10")  # HubSpot ids as numbers
    assert later(Cursor(), saved) == saved and later(saved, Cursor()) == saved


def test_a_changed_field_set_rereads_the_stream_until_one_run_completes(tmp_path) -> None:
    engine = make_engine(store_url(tmp_path, 'fs'))
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        save_cursor(session, "salesforce", "accounts", Cursor(moment, "001A"), 3)
    assert load_cursor(engine, "salesforce", "accounts") == Cursor(moment, "001A")
    digest = field_set_digest({"region": "Region__c"})
    assert digest and digest == field_set_digest({"region": "Region__c"}) != field_set_digest({"region": "Zone__c"})
    assert field_set_digest({}) is None
    assert load_cursor(engine, "salesforce", "accounts", digest) == Cursor(reread=True)
    with session_scope(engine) as session:  # a page of the re-read: the set is not yet trusted
        save_cursor(session, "salesforce", "accounts", Cursor(moment, "001B"), 1)
    assert load_cursor(engine, "salesforce", "accounts", digest) == Cursor(reread=True)
    save_field_set(engine, "salesforce", "accounts", digest)
    assert load_cursor(engine, "salesforce", "accounts", digest) == Cursor(moment, "001B")
    assert load_cursor(engine, "salesforce", "accounts") == Cursor(reread=True)  # the mapping was removed
