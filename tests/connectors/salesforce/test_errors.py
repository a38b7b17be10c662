"""Salesforce API errors reach the flow as ConnectorErrors with messages that stand alone.

Real client over HTTPS against a private sandbox, whose injected faults cannot reach other tests.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceRefusedRequest
from sqlalchemy.engine import Engine
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_none

from connectors.errors import ConnectorError
from connectors.salesforce import SalesforceSource, helpers
from connectors.salesforce.settings import STREAMS, StreamSpec
from connectors.sandbox.salesforce_api import CONCURRENT_LIMIT_MESSAGE, inject_faults
from connectors.sandbox.server import SandboxServer
from tests.conftest import private_sandbox

QUOTA = "daily API request quota for this org is used up (REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.)"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "sf-errors",
                         seed=3, deals=40, owners=4, accounts=10, calls_per_deal=1.0) as server:
        yield server


@pytest.fixture
def source(org: SandboxServer) -> Iterator[SalesforceSource]:
    inject_faults(org.state, count=0)  # no fault left over from a failed test
    with SalesforceSource.from_env(org.connection_env()) as connected:
        yield connected
    gc.collect()


def kr_rows(count: int) -> list[dict[str, Any]]:
    prefix = f"test-sf-err-{uuid.uuid4().hex[:10]}"
    return [{"key": f"{prefix}-{index}", "title": f"KR {index}", "objective_title": "Grow", "group": None,
             "metric": "closed_won_revenue", "period": "2026-Q4", "status": "on_track", "unit": "USD",
             "value": 1.0, "baseline": 0.0, "target": 2.0, "progress": 0.5, "score": 0.5,
             "expected_progress": 0.5} for index in range(count)]


def failure(call: Any, *args: Any) -> str:
    """The message of the ConnectorError `call(*args)` raises."""
    with pytest.raises(ConnectorError) as caught:
        call(*args)
    message = str(caught.value)
    del caught
    return message


def test_an_invalid_field_names_the_query_and_the_field(monkeypatch: pytest.MonkeyPatch, store: Engine,
                                                        source: SalesforceSource) -> None:
    users = STREAMS["users"]
    monkeypatch.setitem(STREAMS, "users", StreamSpec("User", (*users.fields, "Team_Size__c")))
    message = failure(source.extract, store, "users")
    assert message.startswith("Salesforce query of User failed: INVALID_FIELD: ")
    assert "No such column 'Team_Size__c' on entity 'User'" in message
    assert source.client.session_id not in message


def test_a_concurrency_403_is_retried(org: SandboxServer, store: Engine, source: SalesforceSource) -> None:
    inject_faults(org.state, status=403, message=CONCURRENT_LIMIT_MESSAGE)
    result = source.extract(store, "users")
    assert result.records == 4 and result.api_calls == 2
    source.check_writeback_target()  # described once per source: the fault then hits the upsert
    inject_faults(org.state, status=403, message=CONCURRENT_LIMIT_MESSAGE)
    written = source.write_key_results(store, kr_rows(2))
    assert (written.created, written.failed, written.api_calls) == (2, 0, 2)


def test_a_concurrency_403_that_persists_stops_after_the_retries(
        monkeypatch: pytest.MonkeyPatch, org: SandboxServer, store: Engine, source: SalesforceSource) -> None:
    monkeypatch.setattr(helpers, "_retrying", retry(  # the same policy without the waits
        retry=retry_if_exception(helpers.is_transient), wait=wait_none(),
        stop=stop_after_attempt(helpers.RETRY_ATTEMPTS), reraise=True))
    inject_faults(org.state, status=403, count=helpers.RETRY_ATTEMPTS, message=CONCURRENT_LIMIT_MESSAGE)
    message = failure(source.extract, store, "users")
    assert message == (f"Salesforce query of User failed after {helpers.RETRY_ATTEMPTS} attempts: "
                       f"REQUEST_LIMIT_EXCEEDED: {CONCURRENT_LIMIT_MESSAGE}")
    assert source.api_calls == helpers.RETRY_ATTEMPTS


def test_the_daily_quota_stops_extraction_at_once(org: SandboxServer, store: Engine,
                                                  source: SalesforceSource) -> None:
    inject_faults(org.state, status=403)
    message = failure(source.extract, store, "opportunities")
    assert QUOTA in message and "query of Opportunity" in message and "resume later" in message
    assert source.api_calls == 1  # not retried: each try would use up more of the allocation
    assert source.extract(store, "opportunities").records == 40


def test_the_daily_quota_stops_writeback_and_the_rows_go_next_run(org: SandboxServer, store: Engine,
                                                                  source: SalesforceSource) -> None:
    rows = kr_rows(3)
    source.check_writeback_target()
    inject_faults(org.state, status=403)
    message = failure(source.write_key_results, store, rows)
    assert QUOTA in message and "upsert of OKR_Key_Result__c records (batch 1 of 1)" in message
    assert source.write_key_results(store, rows).created == 3


def test_the_daily_quota_on_the_target_check(org: SandboxServer, source: SalesforceSource) -> None:
    inject_faults(org.state, status=403)
    message = failure(source.check_writeback_target)
    assert QUOTA in message and "describe of OKR_Key_Result__c" in message


def test_server_errors_name_the_code_after_the_retries(monkeypatch: pytest.MonkeyPatch, org: SandboxServer,
                                                       store: Engine, source: SalesforceSource) -> None:
    monkeypatch.setattr(helpers, "_retrying", retry(
        retry=retry_if_exception(helpers.is_transient), wait=wait_none(), stop=stop_after_attempt(2),
        reraise=True))
    source.check_writeback_target()
    inject_faults(org.state, status=503, count=2)
    message = failure(source.write_key_results, store, kr_rows(1))
    assert message.startswith("Salesforce upsert of OKR_Key_Result__c records (batch 1 of 1) failed after ")
    assert message.endswith("SERVER_UNAVAILABLE: Server is temporarily unavailable, please try again later.")


@pytest.mark.parametrize(("error", "transient"), [
    (SalesforceRefusedRequest("u", 403, "query", [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                                                    "message": CONCURRENT_LIMIT_MESSAGE}]), True),
    (SalesforceRefusedRequest("u", 403, "query", [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                                                    "message": "TotalRequests Limit exceeded."}]), False),
    (SalesforceRefusedRequest("u", 403, "query", [{"errorCode": "INSUFFICIENT_ACCESS",
                                                    "message": "ConcurrentPerOrgLongTxn"}]), False),
    (SalesforceRefusedRequest("u", 403, "query", b"<html>Forbidden</html>"), False),
    (SalesforceGeneralError("u", 429, "query", []), True),
    (SalesforceGeneralError("u", 502, "query", "Bad Gateway"), True),
])
def test_which_errors_are_retried(error: Exception, transient: bool) -> None:
    assert helpers.is_transient(error) is transient


def test_a_non_json_error_body_is_shortened_and_a_token_is_blanked() -> None:
    error = SalesforceGeneralError("u", 502, "query", "<html> Bad   Gateway sess-123 </html>" + "x" * 900)
    message = str(helpers.api_error(error, "query of User", ("sess-123",)))
    assert message.startswith("Salesforce query of User failed after 5 attempts: HTTP 502: <html> Bad Gateway "
                              "[redacted] </html>xx")
    assert len(message) < 600
