"""Marketing campaigns: GET /marketing/v3/campaigns through the client's generic request method.

hubspot-api-client 12 has no campaigns API; its generic method is `hubspot.Client.api_request(options)`
with options {"method", "path", "qs", "body", "headers", "base_url"}. It builds the request with
`hubspot.utils.requests.http_request_builder.Request` (the token as a Bearer header, `qs` url-encoded)
and sends it with a bare `requests.<method>(url, headers=..., data=...)`: no timeout, no CA bundle
(the client's `ssl_ca_cert` is for the generated APIs only), the client's `host` ignored (it reads
`base_url`), and 4xx / 5xx responses returned rather than raised. `GenericRequests` therefore builds
each request with that same builder and sends it over its own `requests.Session` with the source's
host, CA bundle and (connect, read) timeout, raising an ApiException for an HTTP error, so the
source's retries, rate limits and error messages (connectors.hubspot.helpers) treat it like any
other call.

The campaigns API has no search, no modified-date filter and no archived list, so every run lists
all campaigns, 100 a page (`list_campaigns`), and `store_campaigns` diffs the list with the store:
listed campaigns that are new or whose updatedAt differs from the stored modified_at are written,
stored ones the list no longer holds are marked is_deleted (the full list is the truth), the rest
are neither rewritten nor counted. Nothing is written before the whole list is read, so a failed
run never marks a campaign deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import requests
from hubspot.crm.objects import ApiException
from hubspot.utils.requests.http_request_builder import Request
from sqlalchemy import select
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.hubspot import helpers, settings
from connectors.hubspot.mappers import campaign_row, custom_values
from connectors.incremental import Cursor, is_changed, save_cursor
from connectors.row_checks import map_record
from connectors.store import Campaign, session_scope, upsert_rows

SOURCE = settings.SOURCE
FetchPage = Callable[[str | None], Mapping[str, Any]]


class GenericRequests:
    """Requests the hubspot client's generic method builds, sent with the source's host, CA and timeout."""

    def __init__(self, config: Mapping[str, Any], host: str, ca_bundle: str | None = None) -> None:
        self._config = dict(config)
        self._host = host.rstrip("/")
        self._verify: str | bool = ca_bundle or True
        self._session = requests.Session()
        # Like the SDK's own transport (urllib3): no proxy or CA bundle from the environment, so the
        # campaigns request goes where every other HubSpot request goes.
        self._session.trust_env = False
        self.last_response: requests.Response | None = None  # read by helpers.RateLimits.observe

    def api_request(self, options: Mapping[str, Any],
                    _request_timeout: tuple[float, float] = settings.REQUEST_TIMEOUT) -> Any:
        """Client.api_request(options) over our session: the decoded JSON body, or an ApiException."""
        request = Request(self._config, {"base_url": self._host, **options})
        response = self._session.request(request.get_method(), request.get_url(), timeout=_request_timeout,
                                         verify=self._verify, **request.get_options_for_sending())
        self.last_response = response
        if response.status_code >= 400:
            error = ApiException(status=response.status_code, reason=response.reason)
            error.body = response.content
            error.headers = response.headers
            raise error
        return response.json() if response.content else {}

    def close(self) -> None:
        self.last_response = None
        self._session.close()


def campaign_options(properties: Sequence[str], after: str | None) -> dict[str, Any]:
    """The generic request for one page of GET /marketing/v3/campaigns."""
    qs: dict[str, Any] = {"limit": settings.CAMPAIGN_PAGE_SIZE, "properties": ",".join(properties)}
    if after:
        qs["after"] = after
    return {"method": "GET", "path": settings.CAMPAIGNS_PATH, "qs": qs}


def list_campaigns(fetch: FetchPage) -> list[Mapping[str, Any]]:
    """Every campaign, following `paging.next.after` from the first page (`fetch(after)` reads one)."""
    records: list[Mapping[str, Any]] = []
    after: str | None = None
    seen: set[str] = set()
    while True:
        page = fetch(after)
        records.extend(page.get("results") or [])
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return records
        after = str(after)
        if after in seen:
            raise ConnectorError(f"HubSpot campaigns paging loops at after={after}")
        seen.add(after)


def store_campaigns(engine: Engine, records: Sequence[Mapping[str, Any]], custom: Mapping[str, str],
                    zone: ZoneInfo, reread: bool = False) -> int:
    """Write the listed campaigns that are new or changed (all of them on a `reread`), mark the stored
    ones no longer listed deleted, save the cursor; returns how many rows changed. `zone`: the time
    zone of the rows' dates."""
    rows: dict[str, dict[str, Any]] = {}
    for position, record in enumerate(records, 1):
        def mapped(fields: Mapping[str, Any]) -> dict[str, Any]:
            return campaign_row(fields, zone) | {"custom": custom_values(fields.get("properties") or {}, custom)}

        record_id = record.get("id") if isinstance(record, Mapping) else None
        row = map_record(SOURCE, settings.CAMPAIGN_STREAM, Campaign, None if record_id is None else str(record_id),
                         record, mapped, position)
        rows[row["source_id"]] = row  # listed twice (the list moved while paged): the later one
    columns = Campaign.__table__.c  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        query = select(columns.source_id, columns.modified_at, columns.is_deleted).where(columns.source == SOURCE)
        stored = {source_id: (helpers.naive_utc(modified), bool(deleted))
                  for source_id, modified, deleted in session.execute(query)}
        fresh = [row for source_id, row in rows.items()
                 if reread or is_changed(stored, source_id, row["modified_at"], False)]
        gone = sorted(source_id for source_id, (_, deleted) in stored.items()
                      if source_id not in rows and not deleted)
        upsert_rows(session, Campaign, fresh)
        if gone:
            session.execute(Campaign.__table__.update()  # type: ignore[attr-defined]
                            .where(columns.source == SOURCE, columns.source_id.in_(gone)).values(is_deleted=True))
        save_cursor(session, SOURCE, settings.CAMPAIGN_STREAM, latest(rows.values()), len(fresh) + len(gone))
    return len(fresh) + len(gone)


def latest(rows: Any) -> Cursor:
    """(updatedAt, id) of the campaign changed last: informational, every run lists them all."""
    dated = [row for row in rows if row["modified_at"] is not None]
    if not dated:
        return Cursor()
    top = max(dated, key=lambda row: (row["modified_at"], row["source_id"]))
    return Cursor(top["modified_at"], top["source_id"])
