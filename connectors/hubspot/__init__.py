"""The HubSpot source: every sales stream into the canonical store; KR rows back out.

Streams (settings.STREAMS): owners from the owners API; companies, deals, line items, calls,
emails, meetings, contacts, leads (the Leads object) and tickets through the search API, each declared once in
settings.SEARCH_STREAMS (object type, properties, cursor property, association, label lookups)
and mapped by connectors.hubspot.mappers into its table of connectors.store.RECORD_MODELS.
Search streams are read incrementally with a (cursor property, hs_object_id) keyset cursor
(connectors.hubspot.paging), fresh records buffered over up to five pages and stored together
with the cursor after one v4 association read (connectors.hubspot.writer); archived records are
then marked is_deleted (connectors.hubspot.streams). Marketing campaigns have no search: every run
lists them all through the client's generic request method and diffs the list with the store
(connectors.hubspot.campaigns). The first search starts `lookback` (10
minutes by default) before the saved watermark; re-read records the store holds unchanged are
neither rewritten nor counted, so a quiet night costs one search and one archived page a stream.
Custom fields from config (`custom_fields`) are read into each row's `custom` JSON
(connectors.hubspot.custom_fields). Objectives, key results and check-ins are upserted into three
custom objects by their unique `okr_key`, sending only rows that changed
(connectors.hubspot.writeback); `setup` creates the objects (connectors.hubspot.setup). Every
request first waits for client-side rate limit slots (helpers.RateLimits: the tier's 10-second
window from $OKR_SYNC_HUBSPOT_TIER, searches also a per-second one); a 429 for the daily quota
stops the run with a ConnectorError.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import cached_property
from types import SimpleNamespace
from typing import Any

import hubspot
from sqlalchemy.engine import Engine

from connectors.errors import BadPage, ConnectorConfigError, ConnectorError
from connectors.hubspot import custom_fields as custom_fields_module
from connectors.hubspot import helpers, settings
from connectors.hubspot.campaigns import GenericRequests
from connectors.hubspot.custom_fields import CustomFields
from connectors.hubspot.setup import check_setup, run_setup
from connectors.hubspot.streams import StreamReader
from connectors.hubspot.writeback import Writeback
from connectors.incremental import lookback_from_env, validate_lookback
from connectors.ledger import PlannedChange
from connectors.local_dates import DEFAULT_TIME_ZONE, zone_of
from connectors.okr_records import OkrRecords
from connectors.results import StreamResult, WritebackResult
from connectors.timeouts import timeout_from_env
from connectors.tls import ca_bundle_from_env

log = logging.getLogger(__name__)
SOURCE = settings.SOURCE


class HubSpotSource:
    """One HubSpot portal reached with a private app token (see `from_env`)."""

    name = SOURCE
    STREAMS = settings.STREAMS

    def __init__(self, access_token: str, host: str = settings.DEFAULT_HOST, ca_bundle: str | None = None,
                 *, sleep: Callable[[float], None] = time.sleep,
                 lookback: timedelta = timedelta(minutes=settings.LOOKBACK_MINUTES),
                 tier: str = settings.DEFAULT_TIER, rate_limits: helpers.RateLimits | None = None,
                 custom_fields: CustomFields | None = None, time_zone: str = DEFAULT_TIME_ZONE,
                 request_timeout: tuple[float, float] = settings.REQUEST_TIMEOUT) -> None:
        """`lookback`: how far before the saved watermark the first search of a run starts (see
        connectors.hubspot.settings); timedelta(0) continues exactly after the cursor. `tier`: the
        portal's API limit tier, which sets the client-side rate limits (`rate_limits` replaces them,
        e.g. to share one budget between sources of the same portal). `custom_fields`: canonical
        entity -> {canonical name: property internal name}, e.g. {"account": {"region": "region"}},
        read into each row's `custom` (connectors.hubspot.custom_fields). `time_zone`: the config's
        IANA time zone, whose calendar days the dates of datetimes are (connectors.local_dates);
        changing it re-reads every stream once. `request_timeout`: (connect, read) seconds each
        request waits (connectors.timeouts)."""
        self.lookback = validate_lookback(lookback)
        self.request_timeout = request_timeout
        zone_of(time_zone)
        self.custom_fields = custom_fields_module.validate(custom_fields)
        self.rate_limits = rate_limits or helpers.RateLimits(tier)
        if not access_token:
            raise ConnectorConfigError(f"HubSpot access token is empty: set {settings.TOKEN_ENV}")
        options: dict[str, Any] = {"access_token": access_token, "host": host.rstrip("/"),
                                   "retry": False}  # retries are ours (tenacity), not urllib3's
        if ca_bundle:
            options["ssl_ca_cert"] = ca_bundle
        self._client = hubspot.Client.create(**options)
        self.host = host
        self._ca_bundle = ca_bundle
        self._sleep = sleep
        self._calls = helpers.CallCounter()
        self._build_lock = threading.Lock()  # streams extracted in parallel threads share this source
        self._streams = StreamReader(self._call, lambda: self._api, self.lookback, self.custom_fields,
                                     lambda: self._generic, time_zone)

    @property
    def api_calls_left(self) -> int | None:
        """The portal's daily API quota left, as HubSpot's last answer said (None before one)."""
        return self.rate_limits.daily_remaining

    def __repr__(self) -> str:  # never the token
        return f"HubSpotSource(host={self.host!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, custom_fields: CustomFields | None = None,
                 time_zone: str = DEFAULT_TIME_ZONE) -> HubSpotSource:
        """HUBSPOT_ACCESS_TOKEN (required); HUBSPOT_HOST, OKR_SYNC_CA_BUNDLE, OKR_SYNC_LOOKBACK_MINUTES,
        OKR_SYNC_HUBSPOT_TIER, OKR_SYNC_HTTP_TIMEOUT_SECONDS; `custom_fields` and `time_zone` from the
        config (see __init__)."""
        token = (env.get(settings.TOKEN_ENV) or "").strip()
        if not token:
            raise ConnectorConfigError(
                f"HubSpot is not configured: set {settings.TOKEN_ENV} to a private app access token"
                f" (optionally {settings.HOST_ENV} for another API host)")
        host = (env.get(settings.HOST_ENV) or settings.DEFAULT_HOST).strip()
        if not host.startswith(("https://", "http://")):
            raise ConnectorConfigError(f"{settings.HOST_ENV} must be an http(s) URL, got {host!r}")
        ca_bundle = ca_bundle_from_env(env)
        lookback = lookback_from_env(env, settings.LOOKBACK_ENV, settings.LOOKBACK_MINUTES)
        return cls(token, host, ca_bundle, lookback=lookback, tier=helpers.tier_from_env(env),
                   custom_fields=custom_fields, time_zone=time_zone,
                   request_timeout=timeout_from_env(env, settings.REQUEST_TIMEOUT))

    def close(self) -> None:
        """Close the connection pools (idle keep-alive connections hold server threads open)."""
        if "_api" in self.__dict__:
            for api in vars(self._api).values():
                api.api_client.last_response = None  # it holds the socket open past the pool's close
                api.api_client.rest_client.pool_manager.clear()
            del self.__dict__["_api"]
        if "_generic" in self.__dict__:
            self._generic.close()
            del self.__dict__["_generic"]

    def __enter__(self) -> HubSpotSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api_calls(self) -> int:
        """Requests made so far by this source (retries included)."""
        return self._calls.count

    @cached_property
    def _api(self) -> SimpleNamespace:
        """The generated APIs, built once: each `client.crm...` lookup makes a new connection pool.
        Built under a lock (parallel streams ask at once) and cached before the lock is released."""
        with self._build_lock:
            if "_api" not in self.__dict__:
                crm = self._client.crm
                self.__dict__["_api"] = SimpleNamespace(
                    search=crm.objects.search_api, batch=crm.objects.batch_api, objects=crm.objects.basic_api,
                    associations=crm.associations.v4.batch_api, owners=crm.owners.owners_api,
                    pipelines=crm.pipelines.pipelines_api, properties=crm.properties.core_api,
                    property_batch=crm.properties.batch_api, schemas=crm.schemas.core_api)
            return self.__dict__["_api"]

    @cached_property
    def _generic(self) -> GenericRequests:
        """The client's generic request method (Client.api_request) for APIs the SDK lacks: campaigns
        (built once, under the lock as `_api` is)."""
        with self._build_lock:
            if "_generic" not in self.__dict__:
                self.__dict__["_generic"] = GenericRequests(self._client.config, self.host, self._ca_bundle)
            return self.__dict__["_generic"]

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return helpers.call_api(self._calls, fn, *args, sleep=self._sleep, limits=self.rate_limits,
                                timeout=self.request_timeout, **kwargs)

    def _failure(self, exc: BaseException, action: str) -> ConnectorError:
        status = helpers.api_status(exc)
        hint = f"; check {settings.TOKEN_ENV} and the private app's scopes" if status in (401, 403) else ""
        return ConnectorError(f"HubSpot {action} failed: {helpers.api_message(exc)}{hint}")

    # -- extract --------------------------------------------------------------------------------
    def extract(self, engine: Engine, stream: str) -> StreamResult:
        """Bring one stream's new and changed records into the store; returns counts."""
        if stream not in self.STREAMS:
            raise ConnectorError(f"HubSpot has no stream {stream!r}; streams: {', '.join(self.STREAMS)}")
        before = self._calls.in_this_thread()  # streams may run in parallel threads: count ours only
        try:
            if stream == "owners":
                records = self._streams.owners(engine)
            elif stream == settings.CAMPAIGN_STREAM:
                records = self._streams.campaigns(engine)
            else:
                records = self._streams.search(engine, stream)
        except ConnectorError:
            raise
        except helpers.UnreadableAnswer as exc:  # not JSON: the same answer comes back, nothing is stored
            raise BadPage(SOURCE, stream, exc.request, exc.problem) from None
        except Exception as exc:
            if helpers.api_status(exc) is None and not helpers.is_transient(exc):
                raise
            raise self._failure(exc, f"extract of {stream}") from exc
        return StreamResult(SOURCE, stream, records, self._calls.in_this_thread() - before)

    # -- writeback (connectors.hubspot.writeback, connectors.hubspot.setup) ----------------------
    @cached_property
    def _writeback(self) -> Writeback:
        return Writeback(self._call, lambda: self._api, self._failure)

    def write_okrs(self, engine: Engine, records: OkrRecords) -> WritebackResult:
        """Upsert the changed objectives, key results and check-ins by okr_key; refused records are
        reported (result.rejected), kept in the store and sent again next run."""
        before = self.api_calls
        result = WritebackResult(SOURCE)
        try:
            self._writeback.write(engine, records, result)
        finally:
            result.api_calls = self.api_calls - before
        return result

    def plan_okrs(self, engine: Engine, records: OkrRecords) -> list[PlannedChange]:
        """What write_okrs would send, per object, judged from the ledger alone: no API call."""
        return self._writeback.plan(engine, records)

    def write_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> WritebackResult:
        """write_okrs with key results only."""
        return self.write_okrs(engine, OkrRecords(key_results=rows))

    def plan_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> list[PlannedChange]:
        return self.plan_okrs(engine, OkrRecords(key_results=rows))

    def check_setup(self) -> list[str]:
        """What an admin must fix before okr-sync can write (one schemas call); [] when ready."""
        try:
            return check_setup(self._call, self._api)
        except Exception as exc:
            if helpers.api_status(exc) is None and not helpers.is_transient(exc):
                raise
            raise self._failure(exc, "reading custom object schemas") from exc

    def setup(self) -> list[str]:
        """Create the missing OKR objects, properties and associations; returns what it did ([] when
        nothing was missing: then only the schemas were read)."""
        try:
            done = run_setup(self._call, self._api)
        except Exception as exc:
            if helpers.api_status(exc) is None and not helpers.is_transient(exc):
                raise
            raise self._failure(exc, "setting up the OKR custom objects") from exc
        if "_writeback" in self.__dict__:
            del self.__dict__["_writeback"]  # schemas changed: read them again before writing
        return done

    def check_writeback_target(self) -> None:
        """Raise a ConnectorError saying what is missing, unless every OKR object is ready."""
        found = self.check_setup()
        if found:
            raise ConnectorError("HubSpot is not ready for okr-sync's writeback: " + "; ".join(found))
