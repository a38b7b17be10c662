"""Calendar dates of CRM datetimes, in the company's time zone.

CRMs keep datetimes in UTC. A sales team in New York counts a call made at 7 pm on the 30th as the
30th's, where its UTC date is the 31st: every connector turns a datetime into a date here, in the
config's time zone (OkrConfig.time_zone), so that both CRMs file a record under the same day as
the people who set the targets. Date-only fields (a Salesforce CloseDate) are calendar dates already
and stay as they are.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.errors import ConnectorConfigError

DEFAULT_TIME_ZONE = "UTC"


def zone_of(name: str | ZoneInfo | None) -> ZoneInfo:
    """The zone of an IANA name (None: UTC); an unknown name is refused before any call."""
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConnectorConfigError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None


def local_date(moment: datetime | None, zone: ZoneInfo) -> date | None:
    """The calendar day of `moment` in `zone` (a naive datetime is UTC, as the CRMs send them)."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone).date()


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The moment `day` begins in `zone`, in UTC (how a CRM stores a date picked in that zone)."""
    return datetime.combine(day, time(), zone).astimezone(UTC)
