"""Extract progress over real HTTP: what each connector publishes while it stores a stream's pages."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from connectors import progress
from connectors.hubspot import HubSpotSource
from connectors.salesforce import SalesforceSource
from connectors.sandbox.server import SandboxServer


def test_salesforce_publishes_the_query_size_then_the_records_stored_page_by_page(
        sandbox: SandboxServer, store: Engine) -> None:
    seen: list[progress.StreamProgress] = []
    source = SalesforceSource.from_env(sandbox.connection_env())
    source.query_batch_size = 200  # the smallest page Salesforce allows: several pages of the 600 deals
    with progress.listening(seen.append):
        result = source.extract(store, "opportunities")
    source.close()
    mine = [update for update in seen if update.stream == "opportunities"]
    assert mine[0].total == result.records > 400  # page one's totalSize: a full read stores every row
    counts = [update.records for update in mine[1:]]
    assert counts == sorted(counts) and len(counts) >= 3 and counts[-1] == result.records  # one per 200-row page


def test_hubspot_publishes_the_records_stored_as_it_goes(sandbox: SandboxServer, store: Engine) -> None:
    seen: list[progress.StreamProgress] = []
    source = HubSpotSource.from_env(sandbox.connection_env())
    with progress.listening(seen.append):
        result = source.extract(store, "deals")
    source.close()
    counts = [update.records for update in seen if update.stream == "deals" and update.source == "hubspot"]
    assert counts and counts == sorted(counts) and counts[-1] == result.records > 400
