"""Which CRM connectors exist, built from environment variables (never from config files)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from sqlalchemy.engine import Engine

from connectors.ledger import PlannedChange
from connectors.okr_records import OkrRecords
from connectors.results import StreamResult, WritebackResult

SOURCE_NAMES = ("salesforce", "hubspot")


class Source(Protocol):
    """What the flow needs of a CRM connector."""

    name: str
    STREAMS: tuple[str, ...]
    api_calls: int
    api_calls_left: int | None  # the CRM's daily quota left, as its last answer said

    def extract(self, engine: Engine, stream: str) -> StreamResult: ...

    def write_okrs(self, engine: Engine, records: OkrRecords) -> WritebackResult: ...

    def plan_okrs(self, engine: Engine, records: OkrRecords) -> list[PlannedChange]: ...

    def check_setup(self) -> list[str]: ...

    def close(self) -> None: ...


def check_credentials(name: str, env: Mapping[str, str] | None = None) -> None:
    """The connector's credentials and settings from `env` checked without a call to the CRM (a login
    costs API quota): ConnectorConfigError naming what is missing or wrong."""
    environment = os.environ if env is None else env
    if name == "salesforce":
        from connectors.salesforce import SalesforceSource

        SalesforceSource.check_env(environment)
        return
    make_source(name, environment).close()  # HubSpot's client is built without a request


def make_source(name: str, env: Mapping[str, str] | None = None,
                custom_fields: Mapping[str, Mapping[str, str]] | None = None, time_zone: str = "UTC") -> Source:
    """The connector for `name`, configured from `env` (default: the process environment).

    `custom_fields`: entity -> {name: CRM field} the connector reads besides its standard fields
    (OkrConfig.crm_custom_fields); it checks them against the CRM before reading. `time_zone`: the
    config's, whose calendar days the dates of CRM datetimes become (connectors.local_dates).
    """
    environment = os.environ if env is None else env
    options: dict = {"time_zone": time_zone}
    if custom_fields:
        options["custom_fields"] = custom_fields
    if name == "salesforce":
        from connectors.salesforce import SalesforceSource

        return SalesforceSource.from_env(environment, **options)
    if name == "hubspot":
        from connectors.hubspot import HubSpotSource

        return HubSpotSource.from_env(environment, **options)
    raise ValueError(f"unknown source {name!r}; expected one of {', '.join(SOURCE_NAMES)}")
