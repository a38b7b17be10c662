"""The Salesforce source: incremental extraction into the canonical store and KR writeback.

Uses the real simple-salesforce client. Credentials come only from environment variables;
every page of records is stored together with its cursor in one transaction, so a run that
dies mid-stream resumes where the last committed page ended. Each query starts a lookback
window (10 minutes by default, see settings) before the saved watermark; re-read records the
store holds unchanged are neither rewritten nor counted. Writeback upserts by the
external key and sends only rows whose content changed since the last confirmed write.
A stream whose result is larger than the Bulk threshold (10,000 records by default) is read
past its first REST page with one Bulk API 2.0 query job (bulk.py; see settings for the cost and cursor).
Every response's Sforce-Limit-Info header is watched: the source stops cleanly before using the
last share of the org's daily API allocation (5% by default, see settings). With refresh-token
credentials, a session that expires mid-run is renewed once per failed request and the request is
sent again (a Bulk job's creation, status polls and results calls included). Custom fields from
config (custom_fields.py) are checked by one describe per sObject and land in each row's `custom`
JSON. Module map: settings (streams and constants), mappers (one per stream), helpers (SOQL, CSV,
retries, errors, payloads), auth (login, call and quota hooks), bulk (Bulk API 2.0 jobs), writeback
(write_okrs / plan_okrs: objectives, key results, check-ins), setup_check (check_setup: describes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceOperationError,
    SalesforceResourceNotFound,
)
from sqlalchemy.engine import Engine

from connectors import progress
from connectors.errors import BadPage, ConnectorConfigError, ConnectorError
from connectors.incremental import (
    Cursor,
    changed_rows,
    field_set_digest,
    later,
    load_cursor,
    lookback_from_env,
    save_cursor,
    save_field_set,
    validate_lookback,
)
from connectors.local_dates import DEFAULT_TIME_ZONE, zone_of
from connectors.results import StreamResult
from connectors.salesforce.auth import (
    CREDENTIAL_SETS,
    SECRET_VARIABLES,
    CallCounter,
    QuotaGuard,
    QuotaReserveReached,
    RefreshTokenLogin,
    credential_method,
)
from connectors.salesforce.bulk import BulkJobGone, BulkQueryReader, Page
from connectors.salesforce.custom_fields import (
    CustomField,
    CustomFieldConfig,
    check_fields,
    custom_values,
    missing_object,
    validate_custom_fields,
    with_custom_fields,
)
from connectors.salesforce.helpers import (
    SOURCE,
    api_error,
    bulk_threshold_from_env,
    error_codes,
    incremental_soql,
    make_session,
    min_quota_share_from_env,
    parse_datetime,
    transport_error,
    validate_bulk_threshold,
    with_retry,
    with_timeout,
)
from connectors.salesforce.mappers import MAPPERS, STREAM_ENTITY, map_page
from connectors.salesforce.settings import (
    API_VERSION,
    BULK_MAX_RECORDS,
    BULK_POLL_SECONDS,
    BULK_THRESHOLD,
    BULK_THRESHOLD_ENV,
    LOGIN_DOMAIN,
    LOOKBACK_ENV,
    LOOKBACK_MINUTES,
    MIN_QUOTA_SHARE,
    MIN_QUOTA_SHARE_ENV,
    QUERY_BATCH_SIZE,
    REQUEST_TIMEOUT,
    StreamSpec,
)
from connectors.salesforce.settings import (
    STREAMS as STREAM_SPECS,
)
from connectors.salesforce.writeback import OkrWriter
from connectors.store import session_scope, upsert_rows
from connectors.timeouts import timeout_from_env
from connectors.tls import ca_bundle_from_env

__all__ = ["QuotaReserveReached", "SalesforceSource"]

MAX_LOCATOR_RESTARTS = 3
T = TypeVar("T")


class SalesforceSource(BulkQueryReader, OkrWriter):
    """Extract every sales stream of one org (settings.STREAMS); write OKRs into the OKR custom objects."""

    name = SOURCE
    STREAMS = tuple(STREAM_SPECS)

    def __init__(self, client: Salesforce, calls: CallCounter | None = None, *,
                 lookback: timedelta = timedelta(minutes=LOOKBACK_MINUTES),
                 bulk_threshold: int = BULK_THRESHOLD, min_quota_share: float = MIN_QUOTA_SHARE,
                 refresh: RefreshTokenLogin | None = None,
                 custom_fields: CustomFieldConfig | None = None, time_zone: str = DEFAULT_TIME_ZONE) -> None:
        """Wrap a connected client; `calls` is a counter already hooked on its session, if any.

        `lookback`: how far before the saved watermark each incremental query starts (see
        connectors.salesforce.settings); timedelta(0) continues exactly after the cursor.
        `bulk_threshold`: above how many records a query's rest is read with Bulk API 2.0.
        `min_quota_share`: the share of the daily API allocation left alone (see settings).
        `refresh`: renews an expired session (refresh-token credentials); None: expiry is an error.
        `custom_fields`: entity -> {canonical name: field API name} read into each row's `custom`
        (custom_fields.py); a name that is not a plain API name is refused here, before any call.
        `time_zone`: the config's IANA time zone, whose calendar days the dates of datetimes are
        (connectors.local_dates); changing it re-reads every stream once.
        """
        self.custom_fields = validate_custom_fields(custom_fields)
        self.zone = zone_of(time_zone)
        self.time_zone = time_zone
        self._described: dict[str, dict[str, Any]] = {}  # sObject -> its describe, one call per source
        self._describe_lock = threading.Lock()  # parallel streams: see _checked_custom_fields, _renew_session
        self._session_lock = threading.Lock()
        self._csv_types: dict[str, str] = {}  # custom field -> describe type, for Bulk CSV values
        self.client = client
        self.query_batch_size = QUERY_BATCH_SIZE  # Salesforce may still send smaller pages
        self.lookback = validate_lookback(lookback)
        self.bulk_threshold = validate_bulk_threshold(bulk_threshold)
        self.bulk_max_records = BULK_MAX_RECORDS  # maxRecords of each Bulk results call
        self.bulk_poll_seconds = BULK_POLL_SECONDS
        if calls is None:
            calls = CallCounter()
            client.session.hooks["response"].append(calls)
        self._calls = calls
        self._quota = QuotaGuard(min_quota_share)
        client.session.hooks["response"].append(self._quota)
        self._refresh = refresh

    @property
    def api_calls(self) -> int:
        """HTTP requests made so far by this source."""
        return self._calls.count

    @property
    def api_calls_left(self) -> int | None:
        """The org's daily API requests left (Sforce-Limit-Info of the last answer; None before one)."""
        return self._quota.remaining

    def close(self) -> None:
        """Close the HTTP session (idle keep-alive connections otherwise linger until collected)."""
        self.client.session.close()

    def __enter__(self) -> SalesforceSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ,
                 session: requests.Session | None = None,
                 custom_fields: CustomFieldConfig | None = None,
                 time_zone: str = DEFAULT_TIME_ZONE) -> SalesforceSource:
        """Connect with credentials from environment variables only (see CREDENTIAL_SETS).

        `session` lets a caller bring its own transport (e.g. adapters in tests); otherwise one is
        built, trusting only $OKR_SYNC_CA_BUNDLE when that is set. Either way its requests time out
        after $OKR_SYNC_HTTP_TIMEOUT_SECONDS (connectors.timeouts; default settings.REQUEST_TIMEOUT).
        `custom_fields`, `time_zone`: see __init__ (checked before any login).
        """
        custom_fields = validate_custom_fields(custom_fields)
        zone_of(time_zone)
        read = _read_env(env)
        values = read.values
        session = with_timeout(session or make_session(read.ca_bundle), read.timeout)
        calls = CallCounter()  # hooked before the client logs in, so the login call counts too
        session.hooks["response"].append(calls)
        options: dict[str, Any] = {"session": session, "version": read.version}
        refresh = None
        if read.method == "refresh_token":
            refresh = RefreshTokenLogin(session, read.domain, values["SALESFORCE_CLIENT_ID"],
                                        values["SALESFORCE_CLIENT_SECRET"], values["SALESFORCE_REFRESH_TOKEN"])
            token, instance_url = refresh()
            options |= {"instance_url": instance_url, "session_id": token}
        elif read.method == "session":
            options |= {"instance_url": values["SALESFORCE_INSTANCE_URL"],
                        "session_id": values["SALESFORCE_ACCESS_TOKEN"]}
        elif read.method == "password":
            options |= {"username": values["SALESFORCE_USERNAME"], "password": values["SALESFORCE_PASSWORD"],
                        "security_token": values["SALESFORCE_SECURITY_TOKEN"], "domain": read.domain}
        else:
            options |= {"consumer_key": values["SALESFORCE_CLIENT_ID"],
                        "consumer_secret": values["SALESFORCE_CLIENT_SECRET"], "domain": read.domain}
        try:
            client = Salesforce(**options)
        except SalesforceError as error:
            secrets = tuple(values[name] for name in SECRET_VARIABLES)
            raise api_error(error, "login", secrets) from None
        return cls(client, calls, lookback=read.lookback, bulk_threshold=read.bulk_threshold,
                   min_quota_share=read.min_quota_share, refresh=refresh, custom_fields=custom_fields,
                   time_zone=time_zone)

    @staticmethod
    def check_env(env: Mapping[str, str] = os.environ) -> None:
        """What from_env reads, checked without a call (no login spent): a complete credential set and
        valid settings, else the ConnectorConfigError from_env would raise."""
        _read_env(env)

    # -- the call layer --------------------------------------------------------------------------
    def _call(self, operation: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call: the quota guard before every attempt, transient failures retried, and with
        refresh-token credentials an expired session (401 INVALID_SESSION_ID) renewed once and the
        call sent again."""
        def attempt(*args: Any, **kwargs: Any) -> T:
            self._quota.check(operation)
            return call(*args, **kwargs)

        try:
            return with_retry(attempt, *args, **kwargs)
        except SalesforceExpiredSession:
            if self._refresh is None:
                raise
        self._renew_session()
        return with_retry(attempt, *args, **kwargs)

    def _renew_session(self) -> None:
        """A new access token from the refresh token, used by every later call of this client (one
        renewal at a time when parallel streams find the session expired together)."""
        assert self._refresh is not None
        with self._session_lock:
            token, _instance_url = self._refresh()  # the org's instance does not move mid-run
            self.client.session_id = token
            self.client.headers = {**self.client.headers, "Authorization": f"Bearer {token}"}

    # -- extraction ------------------------------------------------------------------------------
    def extract(self, engine: Engine, stream: str) -> StreamResult:
        """Store the stream's records changed since its cursor; returns counts for this run.

        The query starts `lookback` before the saved watermark; re-read records the store holds
        unchanged are not rewritten nor counted, and the saved cursor never moves backwards.
        With custom fields, the sObject's describe checks them first (once per source); when they
        differ from those the stream was last read with, it is read again from the start and every
        record rewritten (connectors.incremental: field sets).
        """
        if stream not in STREAM_SPECS:
            expected = ", ".join(self.STREAMS)
            raise ValueError(f"unknown Salesforce stream {stream!r}; expected one of {expected}")
        spec = STREAM_SPECS[stream]
        model, _mapper = MAPPERS[stream]
        mapping = self.custom_fields.get(STREAM_ENTITY[stream], {})
        calls_before = self._calls.in_this_thread()  # streams may run in parallel threads: count ours only
        custom = self._checked_custom_fields(spec.sobject, STREAM_ENTITY[stream], mapping)
        spec = with_custom_fields(spec, custom)
        field_set = field_set_digest(mapping, self.time_zone)
        saved = load_cursor(engine, SOURCE, stream, field_set)
        cursor = saved
        stored = 0
        try:
            for records, after in self._pages(spec, saved.start(self.lookback), stream):
                if not records:
                    continue
                cursor = later(saved, after)
                rows = map_page(stream, records, self.zone,
                                lambda record: {"custom": custom_values(record, custom)})
                with session_scope(engine) as session:
                    if not saved.reread:  # a re-read rewrites every record: the stored ones lack fields
                        rows = changed_rows(session, model, SOURCE, rows)
                    upsert_rows(session, model, rows)
                    stored += len(rows)
                    save_cursor(session, SOURCE, stream, cursor, stored)
        except SalesforceError as error:
            raise self._failure(error, f"query of {spec.sobject}") from None
        except SalesforceOperationError as error:  # a Bulk job that failed or was aborted
            raise ConnectorError(f"Salesforce Bulk API 2.0 query of {spec.sobject} failed: {error}") from None
        except requests.exceptions.JSONDecodeError as error:  # an answer that is not JSON: the same next time
            raise BadPage(SOURCE, stream, f"the query of {spec.sobject} {_after(cursor)}",
                          f"is not valid JSON ({error})") from None
        except requests.RequestException as error:  # still dropped or timing out after the retries
            raise self._transport_failure(error, f"query of {spec.sobject}") from None
        if stored == 0:
            with session_scope(engine) as session:
                save_cursor(session, SOURCE, stream, cursor, 0)
        save_field_set(engine, SOURCE, stream, field_set)
        return StreamResult(SOURCE, stream, stored, self._calls.in_this_thread() - calls_before)

    def _checked_custom_fields(self, sobject: str, entity: str,
                               mapping: Mapping[str, str]) -> tuple[CustomField, ...]:
        """The configured custom fields of one stream as the org spells them; the sObject's describe
        is fetched once per source (calls and emails share Task's). No fields: no call."""
        if not mapping:
            return ()
        with self._describe_lock:  # calls and emails (both Task) may be extracted at once: one describe
            return self._checked_fields_locked(sobject, entity, mapping)

    def _checked_fields_locked(self, sobject: str, entity: str, mapping: Mapping[str, str]) -> tuple[CustomField, ...]:
        if sobject not in self._described:
            operation = f"describe of {sobject}"
            try:
                self._described[sobject] = self._call(operation, self.client.restful,
                                                      f"sobjects/{sobject}/describe") or {}
            except SalesforceResourceNotFound:
                raise missing_object(sobject, entity, mapping) from None
            except SalesforceError as error:
                raise self._failure(error, operation) from None
            except requests.RequestException as error:
                raise self._transport_failure(error, operation) from None
        fields = check_fields(sobject, self._described[sobject], entity, mapping)
        self._csv_types.update((field.field, field.type) for field in fields)
        return fields

    def _pages(self, spec: StreamSpec, cursor: Cursor, stream: str | None = None) -> Iterator[Page]:
        """(page, cursor to save with it) after `cursor`; an expired query cursor restarts after the last page.

        The caller stores each page before asking for the next, so the last page handed out is
        the last one committed: a restart from its cursor neither skips nor repeats records.
        `stream`: publish the first query's size as that stream's expected total (connectors.progress).
        """
        restarts = 0  # in a row, without a page stored in between
        announce = stream
        while True:
            try:
                for records, after in self._query_pages(spec, cursor, announce):
                    announce = None  # a restart's query counts only what is left: not the stream's size
                    yield records, after
                    cursor = after
                    restarts = 0
                return
            except BulkJobGone as gone:
                if restarts >= MAX_LOCATOR_RESTARTS:
                    raise ConnectorError(f"Salesforce Bulk API 2.0 job {gone} of {spec.sobject} disappeared "
                                         f"{restarts + 1} times in a row; the next run resumes from the last "
                                         "stored page") from None
            except SalesforceError as error:
                if "INVALID_QUERY_LOCATOR" not in error_codes(error) or restarts >= MAX_LOCATOR_RESTARTS:
                    raise
            restarts += 1

    def _query_pages(self, spec: StreamSpec, cursor: Cursor, stream: str | None = None) -> Iterator[Page]:
        """queryAll pages (deleted rows included), following nextRecordsUrl until done.

        Page one's totalSize decides the path (no extra call): above `bulk_threshold`, everything
        after page one comes from one Bulk API 2.0 job instead of queryMore calls.
        """
        headers = {"Sforce-Query-Options": f"batchSize={self.query_batch_size}"}
        operation = f"query of {spec.sobject}"
        result = self._call(operation, self.client.query, incremental_soql(spec, cursor), include_deleted=True,
                            headers=headers)
        use_bulk = not result["done"] and int(result.get("totalSize") or 0) > self.bulk_threshold
        if stream is not None:
            progress.publish(SOURCE, stream, total=int(result.get("totalSize") or 0))
        while True:
            records = list(result["records"])
            cursor = _cursor_after(records) if records else cursor
            yield records, cursor
            if result["done"]:
                return
            if use_bulk:
                yield from self._bulk_pages(spec, cursor)
                return
            result = self._call(operation, self.client.query_more, result["nextRecordsUrl"],
                                identifier_is_url=True, headers=headers)

    def _failure(self, error: SalesforceError, operation: str) -> ConnectorError:
        """`error` as a ConnectorError naming `operation`, with this client's token kept out of it."""
        return api_error(error, operation, self._secrets())

    def _transport_failure(self, error: requests.RequestException, operation: str) -> ConnectorError:
        """A broken connection as a ConnectorError naming `operation`, without this client's token."""
        return transport_error(error, operation, self._secrets())

    def _secrets(self) -> tuple[str, ...]:
        """What must never reach a message: the session token and any refresh credentials."""
        return (str(self.client.session_id or ""), *(self._refresh.secrets if self._refresh else ()))


class _EnvSettings(NamedTuple):
    """Everything SalesforceSource.from_env reads from the environment, checked."""

    values: dict[str, str]  # the credential and connection variables, stripped ("" when unset)
    method: str  # which credential set is complete (auth.CREDENTIAL_SETS)
    domain: str
    version: str
    ca_bundle: str | None
    timeout: tuple[float, float]
    lookback: timedelta
    bulk_threshold: int
    min_quota_share: float


def _read_env(env: Mapping[str, str]) -> _EnvSettings:
    """The environment's Salesforce settings, each checked before any call (ConnectorConfigError)."""
    values = {name: (env.get(name) or "").strip() for name in (
        *dict.fromkeys(name for names in CREDENTIAL_SETS.values() for name in names), "SALESFORCE_DOMAIN",
        "SALESFORCE_API_VERSION")}
    # the settings first, then the credentials: a bad setting is named even where credentials are missing
    lookback = lookback_from_env(env, LOOKBACK_ENV, LOOKBACK_MINUTES)
    bulk_threshold = bulk_threshold_from_env(env, BULK_THRESHOLD_ENV, BULK_THRESHOLD)
    min_quota_share = min_quota_share_from_env(env, MIN_QUOTA_SHARE_ENV, MIN_QUOTA_SHARE)
    timeout = timeout_from_env(env, REQUEST_TIMEOUT)
    ca_bundle = ca_bundle_from_env(env)
    settings = _EnvSettings(
        values=values, method=credential_method(values), domain=values["SALESFORCE_DOMAIN"] or LOGIN_DOMAIN,
        version=values["SALESFORCE_API_VERSION"] or API_VERSION, ca_bundle=ca_bundle, timeout=timeout,
        lookback=lookback, bulk_threshold=bulk_threshold, min_quota_share=min_quota_share)
    if settings.method == "client_credentials" and settings.domain in ("login", "test"):
        raise ConnectorConfigError(
            "The Salesforce client-credentials flow needs SALESFORCE_DOMAIN set to the org's My "
            "Domain (e.g. 'acme.my' for https://acme.my.salesforce.com); 'login' and 'test' cannot "
            "issue tokens.")
    return settings


def _cursor_after(records: list[dict[str, Any]]) -> Cursor:
    """The (SystemModstamp, Id) cursor just past a non-empty page; an empty one when the last record
    lacks them (mapping the page then stops the stream, before any cursor is saved)."""
    last = records[-1]
    try:
        return Cursor(parse_datetime(last["SystemModstamp"]), last["Id"])
    except (KeyError, TypeError, ValueError):
        return Cursor()


def _after(cursor: Cursor) -> str:
    """Where a query started, for messages."""
    if cursor.watermark is None:
        return "from the start"
    return f"after SystemModstamp {cursor.watermark.isoformat()}" + (f", Id {cursor.last_id}" if cursor.last_id else "")
