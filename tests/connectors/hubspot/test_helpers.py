"""Pure helpers: cursor filters, value parsing, canonical mapping, retry decisions (no network)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import urllib3
from hubspot.crm.objects.exceptions import ApiException, ServiceException

from connectors.hubspot import helpers
from connectors.incremental import Cursor


def _compact(request: Any) -> list[list[tuple[str, str, str]]]:
    return [[(f["property_name"], f["operator"], f["value"]) for f in group["filters"]]
            for group in request.to_dict()["filter_groups"]]


def test_first_run_searches_everything_oldest_change_first() -> None:
    request = helpers.search_request(Cursor(), ("dealname",), 200).to_dict()
    assert request["filter_groups"] == [] and request["limit"] == 200 and request["after"] is None
    assert request["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]


def test_cursor_becomes_two_ored_filter_groups_in_ms() -> None:
    cursor = Cursor(datetime(2026, 10, 22, 21, 3, 23, 456000, tzinfo=UTC), "20000000042")
    stamp = "1792703003456"
    assert _compact(helpers.search_request(cursor, ("dealname",), 200)) == [
        [("hs_lastmodifieddate", "EQ", stamp), ("hs_object_id", "GT", "20000000042")],
        [("hs_lastmodifieddate", "GT", stamp)]]


def test_a_cursor_without_id_includes_its_whole_timestamp() -> None:
    cursor = Cursor(datetime(2026, 10, 22, 21, 3, 23, 456000, tzinfo=UTC))
    assert _compact(helpers.search_request(cursor, ("dealname",), 200)) == [
        [("hs_lastmodifieddate", "GTE", "1792703003456")]]


def test_a_tie_group_is_paged_by_id_within_its_timestamp() -> None:
    stamp = datetime(2026, 10, 22, 21, 3, 23, 456000, tzinfo=UTC)
    first = helpers.tie_request(stamp, None, ("dealname",), 200)
    assert _compact(first) == [[("hs_lastmodifieddate", "EQ", "1792703003456")]]
    assert first.to_dict()["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    assert _compact(helpers.tie_request(stamp, "20000000042", ("dealname",), 200)) == [
        [("hs_lastmodifieddate", "EQ", "1792703003456"), ("hs_object_id", "GT", "20000000042")]]


def test_contacts_page_on_their_own_cursor_property() -> None:
    cursor = Cursor(datetime(2026, 10, 22, 21, 3, 23, 456000, tzinfo=UTC), "50042")
    request = helpers.search_request(cursor, ("email",), 200, "lastmodifieddate")
    assert _compact(request) == [[("lastmodifieddate", "EQ", "1792703003456"), ("hs_object_id", "GT", "50042")],
                                 [("lastmodifieddate", "GT", "1792703003456")]]
    assert request.to_dict()["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    tie = helpers.tie_request(cursor.watermark, None, ("email",), 200, "lastmodifieddate")  # type: ignore[arg-type]
    assert _compact(tie) == [[("lastmodifieddate", "EQ", "1792703003456")]]


def test_cursor_positions_order_numerically_with_no_id_before_any_id() -> None:
    stamp = datetime(2026, 10, 22, tzinfo=UTC)
    assert helpers.cursor_key(Cursor()) < helpers.cursor_key(Cursor(stamp)) < \
        helpers.cursor_key(Cursor(stamp, "9")) < helpers.cursor_key(Cursor(stamp, "10"))


def test_values_parse_to_utc() -> None:
    assert helpers.parse_time("2026-10-22T21:03:23.000Z") == datetime(2026, 10, 22, 21, 3, 23, tzinfo=UTC)
    assert helpers.parse_time("1792703003456") == datetime(2026, 10, 22, 21, 3, 23, 456000, tzinfo=UTC)
    assert helpers.parse_time("") is None and helpers.to_float("") is None
    assert helpers.to_ms(datetime(2026, 10, 22, 21, 3, 23, 456000, tzinfo=UTC)) == 1792703003456


def test_kr_values_become_stable_wire_strings() -> None:
    assert helpers.to_wire(0.1 + 0.2) == "0.3" and helpers.to_wire(500000.0) == "500000"
    assert helpers.to_wire(None) == "" and helpers.to_wire(True) == "true"
    assert helpers.to_wire(float("nan")) == ""
    assert helpers.to_wire(date(2026, 12, 31)) == "2026-12-31"
    props = helpers.key_result_properties({"key": "k", "title": "T", "value": 2.5, "group": None})
    assert props["okr_key"] == "k" and props["name"] == "T" and props["current_value"] == "2.5"
    assert props["group"] == "" and "last_synced" not in props


def test_transient_failures_are_rate_limits_server_errors_and_connections() -> None:
    limited = ApiException(status=429)
    limited.headers = {"Retry-After": "2"}
    assert helpers.is_transient(limited) and helpers.retry_after_seconds(limited) == 2.0
    assert helpers.is_transient(ServiceException(status=503))
    assert helpers.is_transient(urllib3.exceptions.NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    assert not helpers.is_transient(ApiException(status=400)) and not helpers.is_transient(ValueError("x"))
    assert not helpers.is_transient(ApiException(status=0, reason="certificate verify failed"))


def test_call_api_counts_every_attempt() -> None:
    counter, waits = helpers.CallCounter(), []
    outcomes: list[object] = [ServiceException(status=502), "ok"]

    def flaky(**_kwargs: object) -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert helpers.call_api(counter, flaky, sleep=waits.append) == "ok"
    assert counter.count == 2 and len(waits) == 1


def test_the_primary_association_wins_then_the_lowest_id() -> None:
    from hubspot.crm.associations.v4 import (
        ApiClient,
        AssociationSpecWithLabel,
        BatchResponsePublicAssociationMultiWithLabel,
        MultiAssociatedObjectWithLabel,
        PublicAssociationMultiWithLabel,
        PublicObjectId,
    )

    def target(number: int, *type_ids: int) -> MultiAssociatedObjectWithLabel:
        return MultiAssociatedObjectWithLabel(to_object_id=str(number), association_types=[
            AssociationSpecWithLabel(type_id=type_id, category="HUBSPOT_DEFINED") for type_id in type_ids])

    moment = datetime(2026, 1, 1, tzinfo=UTC)
    response = BatchResponsePublicAssociationMultiWithLabel(status="COMPLETE", started_at=moment, completed_at=moment,
                                                            results=[
        PublicAssociationMultiWithLabel(_from=PublicObjectId(id="1"), to=[target(30, 341), target(40, 5, 341)]),
        PublicAssociationMultiWithLabel(_from=PublicObjectId(id="2"), to=[target(30, 206), target(20, 206)]),
        PublicAssociationMultiWithLabel(_from=PublicObjectId(id="3"), to=[])])
    answer = ApiClient().sanitize_for_serialization(response)  # the JSON HubSpot sends: read raw (raw_pages)
    assert helpers.associated_ids(answer) == {"1": "40", "2": "20"}
