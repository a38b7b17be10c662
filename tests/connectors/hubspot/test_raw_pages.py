"""The search, archived list and association reads decoded from raw JSON (connectors.hubspot.raw_pages):
the same records as the SDK's models on real sandbox answers, a body cut off half way retried, and
an answer that is not JSON or not the JSON expected still a BadPage naming the stream and request."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.errors import BadPage
from connectors.hubspot import HubSpotSource, helpers, raw_pages, settings
from connectors.incremental import Cursor
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.server import SandboxServer
from connectors.store import Deal
from tests.conftest import private_sandbox

pytestmark = pytest.mark.integration
DEALS = settings.SEARCH_STREAMS["deals"]


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A small org with a few archived deals, so that the archived list has records to compare."""
    with private_sandbox(tmp_path_factory, "hs-raw-pages", seed=29, deals=80, owners=4, accounts=15,
                         calls_per_deal=0.5) as server:
        stamp = server.state.next_modstamp_ms()
        with server.state.transaction() as conn:
            conn.execute("UPDATE deals SET deleted = 1, modified_ms = ? WHERE id IN"
                         " (SELECT id FROM deals ORDER BY id LIMIT 6)", (stamp,))
        yield server


@pytest.fixture
def source(org: SandboxServer) -> Iterator[HubSpotSource]:
    with HubSpotSource.from_env(org.connection_env()) as hubspot_source:
        yield hubspot_source


def _as_read(record: Any) -> tuple[Any, ...]:
    """What the connector reads of a record, times as instants (the SDK parses them, raw_pages does not)."""
    return (record.id, record.properties or {}, helpers.parse_time(record.updated_at), record.archived,
            helpers.parse_time(record.archived_at))


def _sdk_associated_ids(response: Any) -> dict[str, str]:
    """The association choice as it was made on the SDK's models (before raw_pages)."""
    chosen: dict[str, str] = {}
    for result in response.results or []:
        candidates = [(not any(spec.type_id in settings.PRIMARY_ASSOCIATION_TYPE_IDS
                               for spec in target.association_types or []), int(target.to_object_id))
                      for target in result.to or []]
        if candidates:
            chosen[str(result._from.id)] = str(min(candidates)[1])
    return chosen


def test_raw_pages_read_what_the_sdk_models_read(org: SandboxServer, source: HubSpotSource) -> None:
    api, properties = source._api, DEALS.read_properties(())
    request = helpers.search_request(Cursor(), properties, settings.SEARCH_PAGE_SIZE, DEALS.cursor_property)
    modelled = api.search.do_search(DEALS.object_type, request).results
    raw = source._call(api.search.do_search, DEALS.object_type, request, decode=raw_pages.records_page)
    assert raw.after is None and len(raw.results) == len(modelled) > 50
    assert {r.id: _as_read(r) for r in raw.results} == {m.id: _as_read(m) for m in modelled}

    listed = api.objects.get_page(DEALS.object_type, limit=100, properties=list(properties), archived=True)
    raw_listed = source._call(api.objects.get_page, DEALS.object_type, limit=100, properties=list(properties),
                              archived=True, decode=raw_pages.records_page)
    assert len(raw_listed.results) == len(listed.results) == 6
    assert all(record.archived and record.archived_at for record in raw_listed.results)
    assert [_as_read(r) for r in raw_listed.results] == [_as_read(m) for m in listed.results]

    ids = [record.id for record in raw.results]
    model_request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=record_id) for record_id in ids])
    expected = _sdk_associated_ids(api.associations.get_page(DEALS.object_type, DEALS.association[0], model_request))
    links = source._call(api.associations.get_page, DEALS.object_type, DEALS.association[0],
                         {"inputs": [{"id": record_id} for record_id in ids]}, decode=helpers.associated_ids)
    assert links == expected and len(links) == len(ids)


def test_a_raw_answer_still_reports_the_daily_quota(org: SandboxServer, source: HubSpotSource) -> None:
    org.set_faults("hubspot", FaultPlan(daily_quota=10_000))
    try:
        request = helpers.search_request(Cursor(), ("dealname",), 1, DEALS.cursor_property)
        source._call(source._api.search.do_search, DEALS.object_type, request, decode=raw_pages.records_page)
    finally:
        org.set_faults("hubspot", None)
    assert source.api_calls_left is not None and 0 < source.api_calls_left <= 10_000
    assert source.api_calls == 1


class _CutBody:
    """A raw answer whose body breaks off half way the first `cuts` times it is read."""

    def __init__(self, body: bytes, cuts: list[int]) -> None:
        self._body, self._cuts, self.headers = body, cuts, {"content-type": "application/json;charset=utf-8"}

    @property
    def data(self) -> bytes:
        if self._cuts[0]:
            self._cuts[0] -= 1
            raise urllib3.exceptions.ProtocolError("Connection broken", urllib3.exceptions.IncompleteRead(10, 20))
        return self._body


def test_a_body_broken_off_while_read_is_retried() -> None:
    counter, waits, cuts = helpers.CallCounter(), [], [2]
    seen: list[dict[str, Any]] = []

    def do_search(*_args: Any, **kwargs: Any) -> _CutBody:
        seen.append(kwargs)
        return _CutBody(b'{"results": [{"id": "7", "properties": {"hs_lastmodifieddate": "1"}}]}', cuts)

    page = helpers.call_api(counter, do_search, "deals", {}, sleep=waits.append, decode=raw_pages.records_page)
    assert [record.id for record in page.results] == ["7"]
    assert counter.count == 3 and len(waits) == 2 and all(kwargs["_preload_content"] is False for kwargs in seen)


WRONG = {
    "not JSON": (b'{"results": [{"id": "1"', "is not valid JSON"),
    "empty": (b"", "is not valid JSON"),
    "a list": (b"[]", "the answer is a list, not an object"),
    "results not a list": (b'{"results": {"id": "1"}}', "the answer's results is an object, not a list"),
    "a result not an object": (b'{"results": ["1"]}', "result 1 is a string, not an object"),
    "properties not an object": (b'{"results": [{"id": "1", "properties": ["dealname"]}]}',
                                 "result 1's properties are a list, not an object"),
    "a number for a time": (b'{"results": [{"id": "1", "properties": {}, "updatedAt": 5}]}',
                            "result 1's updatedAt is a number, not a date-time text"),
}


def _serving(real: Callable[..., Any], body: bytes) -> Callable[..., Any]:
    """`real` (a generated method) whose raw answer's body is replaced by `body`."""

    @functools.wraps(real)
    def serve(*args: Any, **kwargs: Any) -> SimpleNamespace:
        answer = real(*args, **kwargs)
        assert answer.data  # the real body, read off the connection
        return SimpleNamespace(data=body, headers=answer.headers)

    return serve


@pytest.mark.parametrize(("body", "problem"), list(WRONG.values()), ids=list(WRONG))
def test_a_search_page_of_the_wrong_shape_is_a_bad_page_naming_the_stream(
        monkeypatch: pytest.MonkeyPatch, source: HubSpotSource, store: Engine, body: bytes, problem: str) -> None:
    monkeypatch.setattr(source._api.search, "do_search", _serving(source._api.search.do_search, body))
    with pytest.raises(BadPage) as failure:
        source.extract(store, "deals")
    message = str(failure.value)
    assert "HubSpot" in message and "deals" in message and "the do_search request" in message, message
    assert problem in message, message
    assert source.api_calls == 1  # not retried: the same answer would come back
    with Session(store) as session:
        assert not session.exec(select(Deal)).all()


@pytest.mark.parametrize(("api", "method", "body", "problem"), [
    ("objects", "get_page", b'{"results": [], "paging": {"next": {"after": "x"}}, "x', "is not valid JSON"),
    ("associations", "get_page", b'{"results": [{"to": []}]}', "result 1 has no from id"),
    ("associations", "get_page", b'{"results": [{"from": {"id": "1"}, "to": [{"toObjectId": "x"}]}]}',
     "result 1's target 1 has no numeric toObjectId or typeId"),
], ids=["archived list not JSON", "association without from", "association to no id"])
def test_an_archived_or_association_page_of_the_wrong_shape_is_a_bad_page(
        monkeypatch: pytest.MonkeyPatch, source: HubSpotSource, store: Engine, api: str, method: str, body: bytes,
        problem: str) -> None:
    target = getattr(source._api, api)
    monkeypatch.setattr(target, method, _serving(getattr(target, method), body))
    with pytest.raises(BadPage) as failure:
        source.extract(store, "deals")
    message = str(failure.value)
    assert "deals" in message and f"the {method} request" in message and problem in message, message
