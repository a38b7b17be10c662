"""Helpers of the Salesforce source: SOQL building, Bulk CSV rows, retries, errors, the KR payload.

Everything here is plain functions over dicts, so the source module stays a thin loop over
pages and batches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, TypeVar

import requests
from simple_salesforce import format_soql
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.incremental import Cursor
from connectors.salesforce.settings import (
    CSV_FIELD_TYPES,
    KR_EXTERNAL_ID,
    OKR_OBJECT_SPECS,
    PRIMARY_KEY,
    REPLICATION_KEY,
    OkrObjectSpec,
    StreamSpec,
)

SOURCE = "salesforce"
RETRY_ATTEMPTS = 5
LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"  # sent with 403 for both the daily and the concurrency limit
DAILY_LIMIT = "TotalRequests"  # the org's rolling 24 h allocation: retrying only burns more of it
CONCURRENCY_LIMIT = "ConcurrentPerOrgLongTxn"  # too many long requests at once: worth another try
SESSION_HINT = ("the access token is expired or wrong — refresh SALESFORCE_ACCESS_TOKEN, or for unattended "
                "runs use a refresh token (SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET, "
                "SALESFORCE_REFRESH_TOKEN: the session is renewed by itself), username/password or client "
                "credentials")
MAX_DETAIL = 500  # characters of a non-JSON error body kept in a message
T = TypeVar("T")


# -- transport -----------------------------------------------------------------------------------
def make_session(ca_bundle: str | None = None) -> requests.Session:
    """Our own session (to count calls); with a CA bundle it trusts only that CA, ignoring the env."""
    session = requests.Session()
    if ca_bundle:
        session.verify = ca_bundle
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override `verify`
    return session


def with_timeout(session: requests.Session, timeout: tuple[float, float]) -> requests.Session:
    """`session`, its requests timing out after `timeout` (connect, read) unless a call sets its own:
    simple-salesforce sets none, and an answer that never comes would hold the run forever."""
    send = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if not args:  # `timeout` is the 8th positional parameter: callers pass it by name, if at all
            kwargs.setdefault("timeout", timeout)
        return send(method, url, *args, **kwargs)

    session.request = request  # type: ignore[method-assign]
    return session


def is_transient(error: BaseException) -> bool:
    """429, 5xx, the 403 concurrency limit and broken connections (an answer cut off half way
    included) are worth another try; nothing else."""
    if isinstance(error, SalesforceRefusedRequest):
        return hit_limit(error, CONCURRENCY_LIMIT)
    if isinstance(error, SalesforceGeneralError):
        return error.status == 429 or error.status >= 500
    return isinstance(error, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError)


_retrying = retry(retry=retry_if_exception(is_transient), wait=wait_random_exponential(multiplier=0.5, max=8),
                  stop=stop_after_attempt(RETRY_ATTEMPTS), reraise=True)


def with_retry(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one API call, retrying transient failures with exponential backoff and jitter."""
    return _retrying(call)(*args, **kwargs)


def error_items(error: SalesforceError) -> list[tuple[str, str]]:
    """(errorCode, message) pairs of a Salesforce error response body (a JSON list); [] otherwise."""
    content = error.content
    if not isinstance(content, list):
        return []
    return [(str(item.get("errorCode")), str(item.get("message", ""))) for item in content
            if isinstance(item, dict)]


def error_codes(error: SalesforceError) -> set[str]:
    """The errorCode values of a Salesforce error response body."""
    return {code for code, _message in error_items(error)}


def hit_limit(error: SalesforceError, limit: str) -> bool:
    """Whether `error` is the 403 REQUEST_LIMIT_EXCEEDED of `limit` (DAILY_LIMIT or CONCURRENCY_LIMIT)."""
    return error.status == 403 and any(code == LIMIT_CODE and limit in message
                                       for code, message in error_items(error))


def _detail(error: SalesforceError) -> str:
    """The CRM's own error codes and messages, or the status and the start of a non-JSON body."""
    items = error_items(error)
    if items:
        return "; ".join(f"{code}: {message}" for code, message in items)
    content = error.content
    text = content.decode(errors="replace") if isinstance(content, bytes) else str(content or "")
    text = " ".join(text.split())[:MAX_DETAIL]
    return f"HTTP {error.status}" + (f": {text}" if text else "")


def api_error(error: SalesforceError, operation: str, secrets: tuple[str, ...] = ()) -> ConnectorError:
    """A ConnectorError whose message stands alone, naming `operation` (e.g. "query of User").

    Carries the CRM's error code and message, never a credential: any of `secrets` found in the
    text (it should not be there) is blanked out.
    """
    if isinstance(error, SalesforceAuthenticationFailed):
        message = f"Salesforce login failed ({error.code}): {error.auth_message}"
    elif error.status == 401 or "INVALID_SESSION_ID" in error_codes(error):
        code = ", ".join(sorted(error_codes(error))) or f"HTTP {error.status}"
        message = f"Salesforce rejected the session ({code}) during the {operation}: {SESSION_HINT}."
    elif hit_limit(error, DAILY_LIMIT):
        message = (f"Salesforce's daily API request quota for this org is used up ({_detail(error)}), so the "
                   f"{operation} stopped. Everything stored or written so far is kept: the run can resume "
                   "later, once the rolling 24-hour allocation has room again.")
    elif is_transient(error):
        message = f"Salesforce {operation} failed after {RETRY_ATTEMPTS} attempts: {_detail(error)}"
    else:
        message = f"Salesforce {operation} failed: {_detail(error)}"
    return ConnectorError(redact(message, secrets))


class ConnectionLost(ConnectorError):
    """A connection that broke or timed out on every attempt: reported cleanly, resumed next run."""


def redact(message: str, secrets: tuple[str, ...]) -> str:
    """The message with every non-empty secret blanked out (a last guard; messages are built without them)."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    return message


def transport_error(error: requests.RequestException, operation: str,
                    secrets: tuple[str, ...] = ()) -> ConnectionLost:
    """A ConnectorError for a connection that broke (or timed out) through the retries, naming `operation`."""
    kind = "timed out" if isinstance(error, requests.Timeout) else "lost its connection"
    message = (f"Salesforce {operation} {kind} ({type(error).__name__}: {error}); transient failures are "
               f"tried {RETRY_ATTEMPTS} times. Everything stored so far is kept: the next run resumes "
               "from the last committed page.")
    return ConnectionLost(redact(message, secrets))


# -- extraction ----------------------------------------------------------------------------------
def incremental_soql(spec: StreamSpec, cursor: Cursor) -> str:
    """The stream's query after `cursor`, in (SystemModstamp, Id) order, built with format_soql only.

    Many records can share one SystemModstamp, so the cursor is a (timestamp, Id) pair: records
    at the same second but with a higher Id are still new.
    """
    return format_soql("SELECT {fields:literal} FROM {sobject:literal}{where:literal} "
                       "ORDER BY {key:literal}, {pk:literal}", fields=", ".join(spec.fields),
                       sobject=spec.sobject, where=incremental_where(spec, cursor), key=REPLICATION_KEY,
                       pk=PRIMARY_KEY)


def incremental_where(spec: StreamSpec, cursor: Cursor) -> str:
    """The stream's fixed filter AND the (SystemModstamp, Id) > cursor condition, as " WHERE ..." or ""."""
    conditions = [spec.where] if spec.where else []
    if cursor.watermark is not None and cursor.last_id:
        conditions.append(format_soql(
            "(({key:literal} > {mark}) OR ({key:literal} = {mark} AND {pk:literal} > {last}))",
            key=REPLICATION_KEY, pk=PRIMARY_KEY, mark=cursor.watermark, last=cursor.last_id))
    elif cursor.watermark is not None:
        conditions.append(format_soql("{key:literal} >= {mark}", key=REPLICATION_KEY, mark=cursor.watermark))
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def bulk_soql(spec: StreamSpec, cursor: Cursor) -> str:
    """The stream's Bulk 2.0 query after `cursor`: as incremental_soql, without ORDER BY (see settings)."""
    return format_soql("SELECT {fields:literal} FROM {sobject:literal}{where:literal}",
                       fields=", ".join(spec.fields), sobject=spec.sobject, where=incremental_where(spec, cursor))


def bulk_threshold_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    """$OKR_SYNC_SF_BULK_THRESHOLD (`name`) as a record count; unset or empty gives `default`."""
    text = (env.get(name) or "").strip().replace("_", "")
    if not text:
        return default
    if not (text.isascii() and text.isdecimal()):
        raise ConnectorConfigError(f"{name} must be a non-negative integer number of records, got {text!r}")
    return int(text)


def min_quota_share_from_env(env: Mapping[str, str], name: str, default: float) -> float:
    """$OKR_SYNC_SF_MIN_QUOTA_SHARE (`name`) as a share of the daily allocation; unset or empty gives `default`."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0 <= share < 1:
        raise ConnectorConfigError(f"{name} must be a number from 0 (no reserve) up to but not including 1, "
                                   f"e.g. 0.05 for 5% of the daily API allocation; got {text!r}")
    return share


def validate_min_quota_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        raise ConnectorConfigError(f"min_quota_share must be a number with 0 <= share < 1, got {share!r}")
    return float(share)


def parse_limit_info(header: str | None) -> tuple[int, int] | None:
    """(used, max) of a `Sforce-Limit-Info: api-usage=25/5000` header; None when absent or unreadable."""
    match = _API_USAGE.search(header or "")
    return (int(match[1]), int(match[2])) if match else None


_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def validate_bulk_threshold(threshold: int) -> int:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ConnectorConfigError(f"bulk_threshold must be a non-negative integer, got {threshold!r}")
    return threshold


def _csv_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"not a Salesforce CSV boolean: {text!r}")
    return text == "true"


_CSV_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "boolean": _csv_bool, "double": float, "currency": float, "percent": float, "int": int}


def csv_record(row: Mapping[str, str], types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One Bulk 2.0 CSV row as the REST path's record: empty means null, typed fields parsed.

    `types` adds field types (describe's names, e.g. of custom fields) to CSV_FIELD_TYPES. A dotted
    column (`Product2.Name`) is nested as REST nests a relationship: {"Product2": {"Name": ...}},
    and a relationship whose columns are all empty is null, as REST sends it.
    """
    record: dict[str, Any] = {}
    parents: dict[str, dict[str, str]] = {}
    for name, text in row.items():
        parent, dot, child = name.partition(".")
        if dot:
            parents.setdefault(parent, {})[child] = text
            continue
        convert = _CSV_CONVERTERS.get((types or {}).get(name) or CSV_FIELD_TYPES.get(name, ""))
        record[name] = None if text == "" else convert(text) if convert else text
    for parent, columns in parents.items():
        nested = csv_record(columns, types)
        record[parent] = nested if any(value is not None for value in nested.values()) else None
    return record


def parse_datetime(value: str | None) -> datetime | None:
    """Salesforce's "2026-10-22T21:03:23.000+0000" as an aware UTC datetime."""
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# -- writeback -----------------------------------------------------------------------------------
def sf_datetime(moment: datetime) -> str:
    """A datetime in Salesforce's wire format (UTC, milliseconds)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)


def _number(value: Any) -> float | None:
    """Numbers as the Number(18, 4) fields store them, so the ledger sees what the org keeps."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return round(number, 4) if math.isfinite(number) else None


def _date(value: Any) -> str | None:
    """A Date field's wire value ("2026-11-15") from an ISO string, a date or a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def okr_payload(spec: OkrObjectSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of one OKR row as written to `spec`'s object, without Last_Synced__c.

    Keys the row lacks are left out (the org keeps its value), so rows of an older shape do not
    clear newer fields. A Lookup goes through the parent's Key__c (`Objective_Record__r`), or is
    cleared (`Objective_Record__c: None`) when the row says None; OwnerId is sent only when known.
    """
    payload: dict[str, Any] = {}
    for field in spec.fields:
        if field.source not in row:
            continue
        value = row[field.source]
        if field.type == "Text":
            text = _text(value)
            text = None if text is None else field.template.format(text)
            payload[field.name] = text if text is None or field.name == KR_EXTERNAL_ID else text[:field.length]
        elif field.type == "Number":
            payload[field.name] = _number(value)
        elif field.type == "Date":
            payload[field.name] = _date(value)
        elif field.type == "Lookup":
            if value is None:
                payload[field.name] = None
            else:
                payload[field.relationship] = {KR_EXTERNAL_ID: str(value)}
        elif field.type == "Checkbox":
            payload[field.name] = bool(value)
        elif field.type == "Owner" and value is not None:
            payload[field.name] = str(value)
    return payload


def kr_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The OKR_Key_Result__c fields of one KR row, without Last_Synced__c (the ledger's fingerprint)."""
    return okr_payload(OKR_OBJECT_SPECS["key_result"], {**row, "key": str(row["key"])})


def describe_errors(outcome: Mapping[str, Any]) -> str:
    """One line for a failed record of an sObject Collections response."""
    parts = [f"{error.get('statusCode')}: {error.get('message')}" for error in outcome.get("errors") or []]
    return "; ".join(parts) or "rejected without an error message"
