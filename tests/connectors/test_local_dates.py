"""connectors.local_dates: the calendar day of a CRM datetime in the company's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from connectors.errors import ConnectorConfigError
from connectors.hubspot.mappers import Labels
from connectors.incremental import field_set_digest
from connectors.local_dates import local_date, local_midnight, zone_of

NEW_YORK, AUCKLAND = ZoneInfo("America/New_York"), ZoneInfo("Pacific/Auckland")


def test_an_evening_call_in_new_york_is_that_day_not_the_next_utc_day() -> None:
    moment = datetime(2026, 9, 30, 23, 30, tzinfo=UTC)  # 19:30 in New York (EDT)
    assert local_date(moment, NEW_YORK) == date(2026, 9, 30)
    assert local_date(moment, ZoneInfo("UTC")) == date(2026, 9, 30)
    assert local_date(datetime(2026, 10, 1, 2, 0, tzinfo=UTC), NEW_YORK) == date(2026, 9, 30)
    assert local_date(datetime(2026, 9, 30, 12, 0, tzinfo=UTC), AUCKLAND) == date(2026, 10, 1)


def test_naive_means_utc_and_none_stays_none() -> None:
    assert local_date(datetime(2026, 10, 1, 2, 0), NEW_YORK) == date(2026, 9, 30)
    assert local_date(None, NEW_YORK) is None


def test_local_midnight_follows_daylight_saving() -> None:
    assert local_midnight(date(2026, 7, 1), NEW_YORK) == datetime(2026, 7, 1, 4, tzinfo=UTC)
    assert local_midnight(date(2026, 12, 1), NEW_YORK) == datetime(2026, 12, 1, 5, tzinfo=UTC)
    for day in (date(2026, 3, 8), date(2026, 11, 1)):  # the days the clocks change
        assert local_date(local_midnight(day, NEW_YORK), NEW_YORK) == day


def test_hubspot_labels_date_datetimes_in_their_zone() -> None:
    assert Labels(zone=NEW_YORK).day("2026-10-01T03:59:59.000Z") == date(2026, 9, 30)
    assert Labels(zone=NEW_YORK).day("1790827200000") == date(2026, 10, 1)  # 2026-10-01T04:00Z
    assert Labels().day("2026-10-22T23:30:00-05:00") == date(2026, 10, 23)
    assert Labels(zone=NEW_YORK).day("") is None


def test_an_unknown_zone_is_refused_with_a_hint() -> None:
    with pytest.raises(ConnectorConfigError, match="IANA name"):
        zone_of("Europe/Berlim")
    assert zone_of(None) == ZoneInfo("UTC")


def test_the_field_set_changes_with_the_time_zone_only_when_not_utc() -> None:
    assert field_set_digest({}) is None and field_set_digest({}, "UTC") is None
    assert field_set_digest({}, "America/New_York") != field_set_digest({}, "Europe/Berlin")
    assert field_set_digest({"region": "Region__c"}) == field_set_digest({"region": "Region__c"}, "UTC")
    assert field_set_digest({"region": "Region__c"}, "Europe/Berlin") != field_set_digest({"region": "Region__c"})
