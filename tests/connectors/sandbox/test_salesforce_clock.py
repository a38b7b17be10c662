"""The Salesforce face against the org clock, through simple-salesforce: SOQL date literals and
the replication resource `sobjects/{O}/deleted/` (SFType.deleted)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from connectors.sandbox.ids import sf_id
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.tick import tick
from tests.conftest import private_sandbox
from tests.connectors.sandbox.test_salesforce_api import _close_open_sessions, client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-clock", seed=5, deals=200, owners=6, accounts=20,
                         calls_per_deal=2.0) as server:
        yield server
        _close_open_sessions()


@pytest.fixture(scope="module")
def sf(org: SandboxServer) -> Salesforce:
    return client(org)


def query_ids(sf: Salesforce, text: str) -> set[str]:
    return {record["Id"] for record in sf.query_all(text)["records"]}


def quarter_of(day: date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3


def test_close_date_this_quarter_follows_the_org_clock(org: SandboxServer, sf: Salesforce) -> None:
    def expected() -> set[str]:
        today = org.state.clock.astimezone(UTC).date()
        rows = org.state.query("SELECT id, close_date FROM deals WHERE deleted = 0")
        return {sf_id("Opportunity", row["id"]) for row in rows
                if quarter_of(date.fromisoformat(row["close_date"])) == quarter_of(today)}

    before = expected()
    assert before and query_ids(sf, "SELECT Id FROM Opportunity WHERE CloseDate = THIS_QUARTER") == before
    summary = tick(org.state, days=60, seed=3)  # the clock moves into the next quarter
    assert quarter_of(summary.clock.date()) != quarter_of((summary.clock - timedelta(days=60)).date())
    after = expected()
    assert after != before
    assert query_ids(sf, "SELECT Id FROM Opportunity WHERE CloseDate = THIS_QUARTER") == after


def test_datetime_and_activity_date_literals(org: SandboxServer, sf: Salesforce) -> None:
    now = org.state.clock.astimezone(UTC)
    today = now.date()
    created = {sf_id("Opportunity", row["id"]) for row in org.state.query(
        "SELECT id, created_ms FROM deals WHERE deleted = 0")
        if 0 <= (today - datetime.fromtimestamp(row["created_ms"] // 1000, UTC).date()).days <= 90}
    assert created and query_ids(sf, "SELECT Id FROM Opportunity WHERE CreatedDate = LAST_N_DAYS:90") == created
    modified_before = {sf_id("Opportunity", row["id"]) for row in org.state.query(
        "SELECT id, modified_ms FROM deals WHERE deleted = 0")
        if datetime.fromtimestamp(row["modified_ms"] // 1000, UTC).date() < date(today.year, 1, 1)}
    assert query_ids(sf, "SELECT Id FROM Opportunity WHERE SystemModstamp < THIS_YEAR") == modified_before
    calls = {sf_id("Task", row["id"]) for row in org.state.query("SELECT id, ts_ms FROM tasks WHERE deleted = 0")
             if (today.year, today.month) == (lambda d: (d.year, d.month))(
                 datetime.fromtimestamp(row["ts_ms"] // 1000, UTC).date())}
    assert calls and query_ids(sf, "SELECT Id FROM Task WHERE ActivityDate = THIS_MONTH") == calls
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Opportunity WHERE Amount = TODAY")
    assert caught.value.content[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"


def test_deleted_lists_recent_deletions(org: SandboxServer, sf: Salesforce) -> None:
    clock = org.state.clock.astimezone(UTC)
    clock_ms = int(clock.timestamp() * 1000)
    live = [row["id"] for row in org.state.query("SELECT id FROM deals WHERE deleted = 0 ORDER BY id LIMIT 3")]
    ages_ms = (3_600_000, 5 * 86_400_000, 20 * 86_400_000)  # 1 h, 5 days and 20 days before the clock
    with org.state.transaction() as conn:
        for deal_id, age in zip(live, ages_ms, strict=True):
            conn.execute("UPDATE deals SET deleted = 1, modified_ms = ? WHERE id = ?", (clock_ms - age, deal_id))
    expected = {sf_id("Opportunity", row["id"]): row["modified_ms"] for row in org.state.query(
        "SELECT id, modified_ms FROM deals WHERE deleted = 1 AND modified_ms >= ? AND modified_ms < ?",
        (clock_ms - 15 * 86_400_000, clock_ms))}
    assert {sf_id("Opportunity", live[0]), sf_id("Opportunity", live[1])} <= set(expected)
    assert sf_id("Opportunity", live[2]) not in expected

    result = sf.Opportunity.deleted(clock - timedelta(days=15), clock + timedelta(days=1))
    got = {record["id"]: record["deletedDate"] for record in result["deletedRecords"]}
    assert got == {record_id: datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
                   for record_id, ms in expected.items()}
    assert result["latestDateCovered"] == clock.replace(second=0).strftime("%Y-%m-%dT%H:%M:00.000+0000")
    assert result["earliestDateAvailable"] == (clock - timedelta(days=15)).strftime(
        "%Y-%m-%dT%H:%M:00.000+0000")

    window = sf.Opportunity.deleted(clock - timedelta(hours=2), clock)
    assert [record["id"] for record in window["deletedRecords"]] == [sf_id("Opportunity", live[0])]


def test_deleted_rejects_bad_windows(org: SandboxServer, sf: Salesforce) -> None:
    clock = org.state.clock.astimezone(UTC)
    for start, end in ((clock - timedelta(days=16), clock), (clock - timedelta(days=1), clock - timedelta(days=2))):
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.Opportunity.deleted(start, end)
        assert caught.value.status == 400
        assert caught.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceResourceNotFound):
        sf.User.deleted(clock - timedelta(days=1), clock)


def test_deleted_tasks(org: SandboxServer, sf: Salesforce) -> None:
    clock = org.state.clock.astimezone(UTC)
    [row] = org.state.query("SELECT id FROM calls WHERE deleted = 0 ORDER BY id LIMIT 1")
    org.state.query("UPDATE calls SET deleted = 1, modified_ms = ? WHERE id = ?",
                    (int(clock.timestamp() * 1000) - 60_000 * 30, row["id"]))
    result = sf.Task.deleted(clock - timedelta(hours=1), clock)
    assert sf_id("Task", row["id"]) in {record["id"] for record in result["deletedRecords"]}
