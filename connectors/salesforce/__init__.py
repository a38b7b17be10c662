"""The Salesforce source: incremental extraction into the canonical store and KR writeback.

Uses the real simple-salesforce client. Credentials come only from environment variables;
every page of records is stored together with its cursor in one transaction, so a run that
dies mid-stream resumes where the last committed page ended. Each query starts a lookback
window (10 minutes by default, see settings) before the saved watermark; re-read records the
store holds unchanged are neither rewritten nor counted. Writeback upserts by the
external key and sends only rows whose content changed since the last confirmed write.
A stream whose result is larger than the Bulk threshold (10,000 records by default) is read
past its first REST page with one Bulk API 2.0 query job (see settings for the cost and cursor).
Every response's Sforce-Limit-Info header is watched: the source stops cleanly before using the
last share of the org's daily API allocation (5% by default, see settings). With refresh-token
credentials, a session that expires mid-run is renewed once per failed request and the request is
sent again.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceOperationError,
    SalesforceResourceNotFound,
)
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.incremental import (
    Cursor,
    changed_rows,
    later,
    load_cursor,
    lookback_from_env,
    save_cursor,
    validate_lookback,
)
from connectors.ledger import PlannedChange, pending_rows, plan_rows, record_written
from connectors.results import StreamResult, WritebackResult
from connectors.salesforce.helpers import (
    MAPPERS,
    SOURCE,
    api_error,
    bulk_soql,
    bulk_threshold_from_env,
    csv_record,
    describe_errors,
    error_codes,
    incremental_soql,
    kr_payload,
    make_session,
    min_quota_share_from_env,
    parse_datetime,
    parse_limit_info,
    redact,
    sf_datetime,
    transport_error,
    validate_bulk_threshold,
    validate_min_quota_share,
    with_retry,
)
from connectors.salesforce.settings import (
    API_VERSION,
    BULK_MAX_RECORDS,
    BULK_POLL_SECONDS,
    BULK_THRESHOLD,
    BULK_THRESHOLD_ENV,
    KR_COLLECTION_PATH,
    KR_EXTERNAL_ID,
    KR_FIELDS,
    KR_OBJECT,
    KR_SYNCED_FIELD,
    LOGIN_DOMAIN,
    LOOKBACK_ENV,
    LOOKBACK_MINUTES,
    MIN_QUOTA_SHARE,
    MIN_QUOTA_SHARE_ENV,
    QUERY_BATCH_SIZE,
    WRITE_BATCH_SIZE,
    StreamSpec,
)
from connectors.salesforce.settings import (
    STREAMS as STREAM_SPECS,
)
from connectors.store import session_scope, upsert_rows

__all__ = ["SalesforceSource"]

# Each way to authenticate, with the variables it needs (checked in this order).
CREDENTIAL_SETS = {
    "session": ("SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN"),
    "password": ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN"),
    "refresh_token": ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET", "SALESFORCE_REFRESH_TOKEN"),
    "client_credentials": ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"),
}
_SECRET_VARIABLES = ("SALESFORCE_ACCESS_TOKEN", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN",
                     "SALESFORCE_CLIENT_SECRET", "SALESFORCE_REFRESH_TOKEN")
MAX_LOCATOR_RESTARTS = 3
T = TypeVar("T")


class _CallCounter:
    """A requests response hook counting every HTTP call this source makes (login included)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        self.count += 1
        return response


class QuotaReserveReached(ConnectorError):
    """The org's daily API allocation is down to the reserve okr-sync leaves alone: stopped cleanly."""


class _QuotaGuard:
    """A response hook reading `Sforce-Limit-Info: api-usage=USED/MAX`; check() refuses the next
    request once MAX - USED is below `share` of MAX. Before the first response nothing is known,
    so the first request always goes out."""

    def __init__(self, share: float) -> None:
        self.share = validate_min_quota_share(share)
        self.used: int | None = None
        self.maximum: int | None = None

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self.used, self.maximum = usage
        return response

    @property
    def remaining(self) -> int | None:
        if self.used is None or self.maximum is None:
            return None
        return max(self.maximum - self.used, 0)

    def check(self, operation: str) -> None:
        remaining = self.remaining
        if remaining is None or not self.maximum or remaining >= self.share * self.maximum:
            return
        raise QuotaReserveReached(
            f"Salesforce {operation} stopped before its next request: only {remaining} of the org's "
            f"{self.maximum} daily API requests are left ({remaining / self.maximum:.1%}), below the "
            f"{self.share:.0%} reserve okr-sync leaves for others ({MIN_QUOTA_SHARE_ENV}). Everything "
            "stored so far is kept: the next run resumes from the last committed page once the rolling "
            "24-hour allocation has room again.")


class _RefreshTokenLogin:
    """OAuth 2.0 refresh-token grant: POST {domain}/services/oauth2/token for an access token.

    Holds the client secret and refresh token; neither ever appears in a message or repr.
    """

    def __init__(self, session: requests.Session, domain: str, client_id: str, client_secret: str,
                 refresh_token: str) -> None:
        self._session = session
        self.token_url = f"https://{domain}.salesforce.com/services/oauth2/token"
        self._form = {"grant_type": "refresh_token", "client_id": client_id, "client_secret": client_secret,
                      "refresh_token": refresh_token}
        self.secrets = (client_secret, refresh_token)

    def __repr__(self) -> str:
        return f"_RefreshTokenLogin({self.token_url!r})"

    def __call__(self) -> tuple[str, str]:
        """(access token, instance URL), or a ConnectorError without any secret."""
        try:
            response = self._session.post(self.token_url, data=self._form,
                                          headers={"Accept": "application/json"})
        except requests.RequestException as error:
            raise transport_error(error, "refresh-token login", self.secrets) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        token, instance_url = body.get("access_token"), body.get("instance_url")
        if response.status_code != 200 or not token or not instance_url:
            code = body.get("error") or f"HTTP {response.status_code}"
            detail = body.get("error_description") or "no access token in the answer"
            raise ConnectorError(redact(
                f"Salesforce login failed ({code}): {detail} (refresh-token grant at {self.token_url}; "
                "check SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET and SALESFORCE_REFRESH_TOKEN)",
                self.secrets))
        return str(token), str(instance_url)


class SalesforceSource:
    """Extract users, opportunities and calls from one org; write KR rows into OKR_Key_Result__c."""

    name = SOURCE
    STREAMS = tuple(STREAM_SPECS)

    def __init__(self, client: Salesforce, calls: _CallCounter | None = None, *,
                 lookback: timedelta = timedelta(minutes=LOOKBACK_MINUTES),
                 bulk_threshold: int = BULK_THRESHOLD, min_quota_share: float = MIN_QUOTA_SHARE,
                 refresh: _RefreshTokenLogin | None = None) -> None:
        """Wrap a connected client; `calls` is a counter already hooked on its session, if any.

        `lookback`: how far before the saved watermark each incremental query starts (see
        connectors.salesforce.settings); timedelta(0) continues exactly after the cursor.
        `bulk_threshold`: above how many records a query's rest is read with Bulk API 2.0.
        `min_quota_share`: the share of the daily API allocation left alone (see settings).
        `refresh`: renews an expired session (refresh-token credentials); None: expiry is an error.
        """
        self.client = client
        self.query_batch_size = QUERY_BATCH_SIZE  # Salesforce may still send smaller pages
        self.lookback = validate_lookback(lookback)
        self.bulk_threshold = validate_bulk_threshold(bulk_threshold)
        self.bulk_max_records = BULK_MAX_RECORDS  # maxRecords of each Bulk results call
        self.bulk_poll_seconds = BULK_POLL_SECONDS
        self._target_checked = False
        if calls is None:
            calls = _CallCounter()
            client.session.hooks["response"].append(calls)
        self._calls = calls
        self._quota = _QuotaGuard(min_quota_share)
        client.session.hooks["response"].append(self._quota)
        self._refresh = refresh

    @property
    def api_calls(self) -> int:
        """HTTP requests made so far by this source."""
        return self._calls.count

    def close(self) -> None:
        """Close the HTTP session (idle keep-alive connections otherwise linger until collected)."""
        self.client.session.close()

    def __enter__(self) -> SalesforceSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ,
                 session: requests.Session | None = None) -> SalesforceSource:
        """Connect with credentials from environment variables only (see CREDENTIAL_SETS).

        `session` lets a caller bring its own transport (e.g. adapters in tests); otherwise one is
        built, trusting only $OKR_SYNC_CA_BUNDLE when that is set.
        """
        values = {name: (env.get(name) or "").strip() for name in (
            *dict.fromkeys(name for names in CREDENTIAL_SETS.values() for name in names), "SALESFORCE_DOMAIN",
            "SALESFORCE_API_VERSION", "OKR_SYNC_CA_BUNDLE")}
        lookback = lookback_from_env(env, LOOKBACK_ENV, LOOKBACK_MINUTES)  # checked before any login
        bulk_threshold = bulk_threshold_from_env(env, BULK_THRESHOLD_ENV, BULK_THRESHOLD)
        min_quota_share = min_quota_share_from_env(env, MIN_QUOTA_SHARE_ENV, MIN_QUOTA_SHARE)
        method = _credential_method(values)
        session = session or make_session(values["OKR_SYNC_CA_BUNDLE"] or None)
        calls = _CallCounter()  # hooked before the client logs in, so the login call counts too
        session.hooks["response"].append(calls)
        domain = values["SALESFORCE_DOMAIN"] or LOGIN_DOMAIN
        version = values["SALESFORCE_API_VERSION"] or API_VERSION
        options: dict[str, Any] = {"session": session, "version": version}
        refresh = None
        if method == "refresh_token":
            refresh = _RefreshTokenLogin(session, domain, values["SALESFORCE_CLIENT_ID"],
                                         values["SALESFORCE_CLIENT_SECRET"], values["SALESFORCE_REFRESH_TOKEN"])
            token, instance_url = refresh()
            options |= {"instance_url": instance_url, "session_id": token}
        elif method == "session":
            options |= {"instance_url": values["SALESFORCE_INSTANCE_URL"],
                        "session_id": values["SALESFORCE_ACCESS_TOKEN"]}
        elif method == "password":
            options |= {"username": values["SALESFORCE_USERNAME"], "password": values["SALESFORCE_PASSWORD"],
                        "security_token": values["SALESFORCE_SECURITY_TOKEN"], "domain": domain}
        else:
            if domain in ("login", "test"):
                raise ConnectorConfigError(
                    "The Salesforce client-credentials flow needs SALESFORCE_DOMAIN set to the org's My "
                    "Domain (e.g. 'acme.my' for https://acme.my.salesforce.com); 'login' and 'test' cannot "
                    "issue tokens.")
            options |= {"consumer_key": values["SALESFORCE_CLIENT_ID"],
                        "consumer_secret": values["SALESFORCE_CLIENT_SECRET"], "domain": domain}
        try:
            client = Salesforce(**options)
        except SalesforceError as error:
            secrets = tuple(values[name] for name in _SECRET_VARIABLES)
            raise api_error(error, "login", secrets) from None
        return cls(client, calls, lookback=lookback, bulk_threshold=bulk_threshold,
                   min_quota_share=min_quota_share, refresh=refresh)

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
        """A new access token from the refresh token, used by every later call of this client."""
        assert self._refresh is not None
        token, _instance_url = self._refresh()  # the org's instance does not move mid-run
        self.client.session_id = token
        self.client.headers = {**self.client.headers, "Authorization": f"Bearer {token}"}

    # -- extraction ------------------------------------------------------------------------------
    def extract(self, engine: Engine, stream: str) -> StreamResult:
        """Store the stream's records changed since its cursor; returns counts for this run.

        The query starts `lookback` before the saved watermark; re-read records the store holds
        unchanged are not rewritten nor counted, and the saved cursor never moves backwards.
        """
        if stream not in STREAM_SPECS:
            expected = ", ".join(self.STREAMS)
            raise ValueError(f"unknown Salesforce stream {stream!r}; expected one of {expected}")
        spec = STREAM_SPECS[stream]
        model, mapper = MAPPERS[stream]
        calls_before = self.api_calls
        saved = load_cursor(engine, SOURCE, stream)
        cursor = saved
        stored = 0
        try:
            for records, after in self._pages(spec, saved.start(self.lookback)):
                if not records:
                    continue
                cursor = later(saved, after)
                with session_scope(engine) as session:
                    rows = changed_rows(session, model, SOURCE, [mapper(record) for record in records])
                    upsert_rows(session, model, rows)
                    stored += len(rows)
                    save_cursor(session, SOURCE, stream, cursor, stored)
        except SalesforceError as error:
            raise self._failure(error, f"query of {spec.sobject}") from None
        except SalesforceOperationError as error:  # a Bulk job that failed or was aborted
            raise ConnectorError(f"Salesforce Bulk API 2.0 query of {spec.sobject} failed: {error}") from None
        except requests.RequestException as error:  # still dropped or timing out after the retries
            raise self._transport_failure(error, f"query of {spec.sobject}") from None
        if stored == 0:
            with session_scope(engine) as session:
                save_cursor(session, SOURCE, stream, cursor, 0)
        return StreamResult(SOURCE, stream, stored, self.api_calls - calls_before)

    def _pages(self, spec: StreamSpec, cursor: Cursor) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
        """(page, cursor to save with it) after `cursor`; an expired query cursor restarts after the last page.

        The caller stores each page before asking for the next, so the last page handed out is
        the last one committed: a restart from its cursor neither skips nor repeats records.
        """
        restarts = 0
        while True:
            try:
                for records, after in self._query_pages(spec, cursor):
                    yield records, after
                    cursor = after
                return
            except SalesforceError as error:
                if "INVALID_QUERY_LOCATOR" not in error_codes(error) or restarts >= MAX_LOCATOR_RESTARTS:
                    raise
                restarts += 1

    def _query_pages(self, spec: StreamSpec, cursor: Cursor) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
        """queryAll pages (deleted rows included), following nextRecordsUrl until done.

        Page one's totalSize decides the path (no extra call): above `bulk_threshold`, everything
        after page one comes from one Bulk API 2.0 job instead of queryMore calls.
        """
        headers = {"Sforce-Query-Options": f"batchSize={self.query_batch_size}"}
        operation = f"query of {spec.sobject}"
        result = self._call(operation, self.client.query, incremental_soql(spec, cursor), include_deleted=True,
                            headers=headers)
        use_bulk = not result["done"] and int(result.get("totalSize") or 0) > self.bulk_threshold
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

    def _bulk_pages(self, spec: StreamSpec, cursor: Cursor) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
        """The records after `cursor` from one Bulk 2.0 queryAll job, in pages of query_batch_size.

        The job's CSV is unordered (no ORDER BY, see settings): every page keeps `cursor` but the
        last, which carries the greatest (SystemModstamp, Id) the job returned.
        """
        self._quota.check(f"Bulk API 2.0 query of {spec.sobject}")
        job = getattr(self.client.bulk2, spec.sobject)
        chunks = job.query_all(bulk_soql(spec, cursor), max_records=self.bulk_max_records,
                               wait=self.bulk_poll_seconds)  # typed int, a float works
        newest = cursor
        held: list[dict[str, Any]] = []  # one page held back: only the job's last page moves the cursor
        for text in chunks:
            self._quota.check(f"Bulk API 2.0 query of {spec.sobject}")  # before the next results call
            for row in csv.DictReader(io.StringIO(text)):
                record = csv_record(row)
                newest = later(newest, Cursor(parse_datetime(record["SystemModstamp"]), record["Id"]))
                if len(held) == self.query_batch_size:
                    yield held, cursor
                    held = []
                held.append(record)
        yield held, newest

    # -- writeback -------------------------------------------------------------------------------
    def check_writeback_target(self) -> None:
        """Fail early, naming what is missing, when the org lacks the deployed KR custom object."""
        try:
            describe = self._call(f"describe of {KR_OBJECT}", self.client.restful, f"sobjects/{KR_OBJECT}/describe")
        except SalesforceResourceNotFound:
            raise ConnectorError(
                f"Salesforce object {KR_OBJECT} does not exist in this org: deploy "
                "connectors/salesforce/metadata (see its README.md) before writing key results.") from None
        except SalesforceError as error:
            raise self._failure(error, f"describe of {KR_OBJECT}") from None
        except requests.RequestException as error:
            raise self._transport_failure(error, f"describe of {KR_OBJECT}") from None
        fields = {field["name"]: field for field in (describe or {}).get("fields", [])}
        problems = []
        missing = [name for name in KR_FIELDS if name not in fields]
        if missing:
            problems.append("missing fields " + ", ".join(missing))
        key = fields.get(KR_EXTERNAL_ID)
        if key is not None and not (key.get("externalId") and key.get("unique")):
            problems.append(f"{KR_EXTERNAL_ID} must be an External ID marked Unique")
        read_only = [name for name in KR_FIELDS if name in fields and not fields[name].get("updateable")]
        if read_only:
            problems.append("fields not writable by this user: " + ", ".join(read_only))
        if problems:
            raise ConnectorError(f"Salesforce object {KR_OBJECT} is not ready for writeback: "
                                 + "; ".join(problems) + " (deploy connectors/salesforce/metadata).")
        self._target_checked = True

    def plan_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> list[PlannedChange]:
        """What write_key_results would do with `rows`, judged from the ledger alone: no API call."""
        return plan_rows(engine, SOURCE, _ledger_rows(rows))

    def write_key_results(self, engine: Engine, rows: list[dict[str, Any]]) -> WritebackResult:
        """Upsert changed KR rows by Key__c, 200 per call; rejected rows are sent again next run."""
        counts = Counter(str(row["key"]) for row in rows)
        duplicates = sorted(key for key, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate key result keys: {', '.join(duplicates[:5])}")
        result = WritebackResult(target=SOURCE)
        calls_before = self.api_calls
        pending = pending_rows(engine, SOURCE, _ledger_rows(rows))
        result.unchanged = len(rows) - len(pending)
        if pending and not self._target_checked:  # a run with nothing to write costs no call at all
            self.check_writeback_target()
        synced = sf_datetime(datetime.now(UTC))
        batches = -(-len(pending) // WRITE_BATCH_SIZE)
        for number, start in enumerate(range(0, len(pending), WRITE_BATCH_SIZE), start=1):
            batch = pending[start:start + WRITE_BATCH_SIZE]
            records = [{"attributes": {"type": KR_OBJECT}, **{name: value for name, value in row.items()
                                                              if name != "key"}, KR_SYNCED_FIELD: synced}
                       for row, _digest in batch]
            outcomes = self._upsert(records, f"batch {number} of {batches}")
            record_written(engine, SOURCE, _tally(batch, outcomes, result))
        result.api_calls = self.api_calls - calls_before
        return result

    def _upsert(self, records: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
        """One sObject Collections upsert call (allOrNone false): a result per record, in order."""
        try:
            return self._call(f"upsert of {KR_OBJECT} records ({which})", self.client.restful,
                              KR_COLLECTION_PATH, method="PATCH",
                              json={"allOrNone": False, "records": records}) or []
        except SalesforceError as error:
            raise self._failure(error, f"upsert of {KR_OBJECT} records ({which})") from None
        except requests.RequestException as error:
            raise self._transport_failure(error, f"upsert of {KR_OBJECT} records ({which})") from None

    def _failure(self, error: SalesforceError, operation: str) -> ConnectorError:
        """`error` as a ConnectorError naming `operation`, with this client's token kept out of it."""
        return api_error(error, operation, self._secrets())

    def _transport_failure(self, error: requests.RequestException, operation: str) -> ConnectorError:
        """A broken connection as a ConnectorError naming `operation`, without this client's token."""
        return transport_error(error, operation, self._secrets())

    def _secrets(self) -> tuple[str, ...]:
        """What must never reach a message: the session token and any refresh credentials."""
        return (str(self.client.session_id or ""), *(self._refresh.secrets if self._refresh else ()))


def _ledger_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KR rows as sent to Salesforce (OKR_Key_Result__c fields, with `key`)."""
    return [{"key": str(row["key"]), **kr_payload(row)} for row in rows]


def _tally(batch: list[tuple[Mapping[str, Any], str]], outcomes: list[dict[str, Any]],
           result: WritebackResult) -> list[tuple[str, str, str | None, Mapping[str, Any]]]:
    """Count one batch's outcomes into `result`; returns the confirmed (key, digest, id, payload) writes."""
    written = []
    for (row, digest), outcome in zip(batch, outcomes, strict=True):
        if outcome.get("success"):
            written.append((row["key"], digest, outcome.get("id"), row))
            if outcome.get("created"):
                result.created += 1
            else:
                result.updated += 1
        else:
            result.failed += 1
            result.errors.append(f"key {row['key']}: {describe_errors(outcome)}")
    return written


def _cursor_after(records: list[dict[str, Any]]) -> Cursor:
    """The (SystemModstamp, Id) cursor just past a non-empty page."""
    last = records[-1]
    return Cursor(parse_datetime(last["SystemModstamp"]), last["Id"])


def _credential_method(values: Mapping[str, str]) -> str:
    """The first complete set of credentials, or a ConnectorConfigError naming what is missing."""
    for method, names in CREDENTIAL_SETS.items():
        if all(values[name] for name in names):
            return method
    partial = [(method, [name for name in names if not values[name]])
               for method, names in CREDENTIAL_SETS.items() if any(values[name] for name in names)]
    if partial:
        details = "; ".join(f"for the {method.replace('_', ' ')} login also set {', '.join(missing)}"
                            for method, missing in partial)
        raise ConnectorConfigError(f"Salesforce credentials are incomplete: {details}.")
    options = " or ".join("(" + " + ".join(names) + ")" for names in CREDENTIAL_SETS.values())
    raise ConnectorConfigError(f"No Salesforce credentials in the environment: set {options}.")
