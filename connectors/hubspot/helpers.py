"""Small pieces of the HubSpot connector: retries, rate limits, error text, values, search requests.

Record mapping lives in connectors.hubspot.mappers; these helpers only parse HubSpot's
all-string values (UTC datetimes, ms epochs, numbers) and build keyset search requests on a
stream's cursor property (hs_lastmodifieddate; contacts lastmodifieddate).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar, overload

import requests
import urllib3
from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.hubspot import raw_pages, settings
from connectors.incremental import Cursor
from connectors.ratelimit import CallCount, Clock, CompositeLimiter, Sleep, SlidingWindowLimiter, with_margin

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- errors and retries -------------------------------------------------------------------------
def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a hubspot-api-client ApiException (each API package has its own class)."""
    if type(exc).__module__.startswith("hubspot.") and isinstance(getattr(exc, "status", None), int):
        return exc.status  # type: ignore[attr-defined]
    return None


def api_message(exc: BaseException) -> str:
    """HubSpot's own error message and category, for reports (never headers, never the token)."""
    status = api_status(exc)
    if status is None:
        return f"{type(exc).__name__}: {exc}"
    body = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    category = data.get("category") or data.get("errorType") or getattr(exc, "reason", "") or "error"
    raw = body.decode(errors="replace") if isinstance(body, bytes) else body
    message = data.get("message") or raw or ""
    return f"HTTP {status} {category}: {message}".strip()


def _body(exc: BaseException) -> dict[str, Any]:
    body = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        data = {}
    return data if isinstance(data, dict) else {}


def is_daily_limit(exc: BaseException) -> bool:
    """A 429 for the portal's daily quota (policyName DAILY): no retry helps before tomorrow."""
    return api_status(exc) == 429 and str(_body(exc).get("policyName", "")).upper() == "DAILY"


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: rate limits (not the daily one), server errors, dropped or refused connections."""
    status = api_status(exc)
    if status is not None:
        return (status == 429 and not is_daily_limit(exc)) or status >= 500
    if isinstance(exc, requests.exceptions.SSLError):  # the generic request method (campaigns): not transient
        return False
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError
                      | requests.exceptions.ConnectionError | requests.exceptions.Timeout
                      | requests.exceptions.ChunkedEncodingError)


class UnreadableAnswer(Exception):
    """An answer that is not JSON: the client would read it as an empty result. Not transient (the same
    answer comes back); the source reports it as a BadPage of the stream it was reading."""

    def __init__(self, request: str, problem: str) -> None:
        super().__init__(f"the answer to {request} {problem}")
        self.request, self.problem = request, problem


def _unreadable(fn: Callable[..., Any]) -> str | None:
    """Why the body of the answer `fn` (a generated API method) just read is not JSON; None when it is.

    The generated clients take an unparsable body for a model with every field None (a search page
    with no results), so the body is checked here instead."""
    client = getattr(getattr(fn, "__self__", None), "api_client", None)
    data = getattr(getattr(client, "last_response", None), "data", None)
    if not isinstance(data, str | bytes) or not data:
        return None
    try:
        json.loads(data)
    except ValueError as error:
        return f"is not valid JSON ({error})"
    return None


def retry_after_seconds(exc: BaseException | None) -> float | None:
    headers = getattr(exc, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:  # an HTTP date: fall back to backoff
        return None


class wait_retry_after(wait_base):
    """Sleep what the server asked for in Retry-After, else exponential backoff with jitter."""

    def __init__(self, fallback: wait_base, maximum: float) -> None:
        self.fallback, self.maximum = fallback, maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        asked = retry_after_seconds(outcome.exception() if outcome else None)
        return min(asked, self.maximum) if asked is not None else self.fallback(retry_state)


# -- rate limits --------------------------------------------------------------------------------
def tier_from_env(env: Mapping[str, str]) -> str:
    """$OKR_SYNC_HUBSPOT_TIER (free, starter, professional, enterprise, increased; default professional)."""
    tier = (env.get(settings.TIER_ENV) or "").strip().lower() or settings.DEFAULT_TIER
    if tier not in settings.TIER_LIMITS:
        raise ConnectorConfigError(
            f"{settings.TIER_ENV} must be one of {', '.join(settings.TIER_LIMITS)}, got {env.get(settings.TIER_ENV)!r}")
    return tier


class RateLimits:
    """HubSpot's request limits as the client keeps them (see settings, "Client-side rate limits"):
    every request waits for a slot of the tier's 10-second window, a search also for one of the
    per-second search window. Read from settings when built, so tests can scale the windows down."""

    def __init__(self, tier: str = settings.DEFAULT_TIER, *, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        if tier not in settings.TIER_LIMITS:
            raise ConnectorConfigError(f"unknown HubSpot tier {tier!r}; tiers: {', '.join(settings.TIER_LIMITS)}")
        self.tier = tier
        self.overall = SlidingWindowLimiter(
            with_margin(settings.TIER_LIMITS[tier], settings.RATE_LIMIT_MARGIN), settings.RATE_WINDOW_SECONDS,
            name=f"HubSpot {tier}", clock=clock, sleep=sleep)
        self.daily_remaining: int | None = None  # the portal's daily quota left, as its last answer said
        self.search = CompositeLimiter([self.overall, SlidingWindowLimiter(
            settings.SEARCH_RATE_LIMIT, settings.SEARCH_WINDOW_SECONDS + settings.SEARCH_WINDOW_MARGIN_SECONDS,
            name="HubSpot search", clock=clock, sleep=sleep)])

    def __repr__(self) -> str:
        return f"RateLimits({self.tier!r}, {self.search!r})"

    def acquire(self, fn: Callable[..., Any]) -> float:
        """Wait for the slots `fn` (a generated API method) needs; returns the seconds waited."""
        limiter = self.search if getattr(fn, "__name__", "") == "do_search" else self.overall
        waited = limiter.acquire()
        if waited:
            log.debug("HubSpot rate limit: waited %.2f s before %s", waited, getattr(fn, "__name__", fn))
        return waited

    def observe(self, fn: Callable[..., Any]) -> None:
        """Count requests the server reports in its window beyond ours (X-HubSpot-RateLimit-Max minus
        -Remaining, when its -Interval-Milliseconds is our window): another app using the quota.
        `fn` is a generated API method (its api_client's urllib3 response) or a method of an object
        that keeps its own `last_response` (connectors.hubspot.campaigns: a requests response)."""
        owner = getattr(fn, "__self__", None)
        client = getattr(owner, "api_client", owner)
        response = getattr(client, "last_response", None)
        getheader = getattr(response, "getheader", None) or getattr(getattr(response, "headers", None), "get", None)
        if getheader is None:
            return
        daily = getheader("X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None and str(daily).strip().isdigit():
            self.daily_remaining = int(daily)
        try:
            limit = int(getheader("X-HubSpot-RateLimit-Max"))
            remaining = int(getheader("X-HubSpot-RateLimit-Remaining"))
            interval = int(getheader("X-HubSpot-RateLimit-Interval-Milliseconds"))
        except (TypeError, ValueError):
            return
        if interval == round(self.overall.window * 1000):
            self.overall.observe_used(limit - remaining)


class CallCounter(CallCount):
    """Requests sent to HubSpot, retries included (each attempt costs API quota); thread-safe."""


@overload
def call_api(counter: CallCounter, fn: Callable[..., T], *args: Any,
             sleep: Callable[[float], None] = ..., limits: RateLimits | None = ...,
             timeout: tuple[float, float] | None = ..., decode: None = ..., **kwargs: Any) -> T: ...


@overload
def call_api(counter: CallCounter, fn: Callable[..., Any], *args: Any,
             sleep: Callable[[float], None] = ..., limits: RateLimits | None = ...,
             timeout: tuple[float, float] | None = ..., decode: Callable[[Any], R], **kwargs: Any) -> R: ...


def call_api(counter: CallCounter, fn: Callable[..., Any], *args: Any,
             sleep: Callable[[float], None] = time.sleep, limits: RateLimits | None = None,
             timeout: tuple[float, float] | None = None, decode: Callable[[Any], Any] | None = None,
             **kwargs: Any) -> Any:
    """Call one generated API method with retries on transient failures; other errors raise at once.

    Each attempt first waits for its rate limit slots (`limits`) and gives up on an answer after
    `timeout` (connect, read) seconds (default settings.REQUEST_TIMEOUT), a transient failure. A
    429 for the daily quota raises a ConnectorError at once: nothing succeeds before the quota resets.

    With `decode` the SDK's models are skipped (connectors.hubspot.raw_pages: they cost more CPU
    than the rest of a sync): the method returns the raw answer, whose body is read within the
    attempt (one broken off half way is retried like a dropped connection), and `decode` turns its
    JSON into the result; a body that is not JSON or not the shape `decode` expects is an
    UnreadableAnswer. A non-2xx answer raises the SDK's ApiException either way.
    """
    name = getattr(fn, "__name__", fn)

    def attempt() -> Any:
        if limits is not None:
            limits.acquire(fn)
        counter.add()
        raw: Any = None
        body: bytes | str = b""
        try:
            if decode is None:
                result = fn(*args, _request_timeout=timeout or settings.REQUEST_TIMEOUT, **kwargs)
            else:
                raw = fn(*args, _request_timeout=timeout or settings.REQUEST_TIMEOUT, _preload_content=False,
                         **kwargs)
                body = raw.data  # urllib3 reads the whole body here (ProtocolError when it breaks off)
        except (json.JSONDecodeError, requests.exceptions.JSONDecodeError) as exc:  # the generic method (requests)
            raise UnreadableAnswer(f"the {name} request", f"is not valid JSON ({exc})") from None
        except Exception as exc:
            if is_daily_limit(exc):
                raise ConnectorError(
                    "HubSpot's daily API limit is used up (429, policyName DAILY); nothing more can be read"
                    " or written today. The run can resume tomorrow, when the daily quota resets:"
                    " the saved cursors keep what was synced so far.") from exc
            raise
        if limits is not None:
            limits.observe(fn)
        if decode is not None:
            try:
                return decode(raw_pages.answer_json(body, raw.headers.get("content-type")))
            except raw_pages.WrongShape as error:
                raise UnreadableAnswer(f"the {name} request", str(error)) from None
        problem = _unreadable(fn)
        if problem is not None:
            raise UnreadableAnswer(f"the {name} request", problem)
        return result

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("HubSpot call %s failed (%s); retry %d of %d", name,
                    api_message(error) if error else "?", state.attempt_number, settings.RETRY_ATTEMPTS - 1)

    retrying = Retrying(
        stop=stop_after_attempt(settings.RETRY_ATTEMPTS),
        wait=wait_retry_after(wait_random_exponential(multiplier=settings.RETRY_WAIT_INITIAL,
                                                      max=settings.RETRY_WAIT_MAX), settings.RETRY_WAIT_MAX),
        retry=retry_if_exception(is_transient), sleep=sleep, before_sleep=before_sleep, reraise=True)
    return retrying(attempt)


# -- values -------------------------------------------------------------------------------------
def parse_time(value: Any) -> datetime | None:
    """A UTC datetime from an ISO string, a ms epoch string or a client-parsed datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return EPOCH + timedelta(milliseconds=int(text))
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_ms(moment: datetime) -> int:
    """Exact ms epoch (integer arithmetic: no float rounding at the cursor's edge)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return (aware - EPOCH) // timedelta(milliseconds=1)


def to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def to_wire(value: Any) -> str:
    """A property value as HubSpot stores it: a string; None clears the property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else format(round(value, 9), ".15g")
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def iso_ms(moment: datetime) -> str:
    aware = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}Z"


def naive_utc(moment: datetime | None) -> datetime | None:
    """Comparable with what SQLite gives back (it drops the zone; the store keeps UTC)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment and moment.tzinfo else moment


# -- search requests ----------------------------------------------------------------------------
def _filter(name: str, operator: str, value: str) -> Filter:
    return Filter(property_name=name, operator=operator, value=value)


def cursor_filters(cursor: Cursor, cursor_property: str = settings.CURSOR_PROPERTY) -> list[FilterGroup]:
    """Filter groups (ORed) for the records not yet covered by the cursor (on `cursor_property`).

    (wm, None) covers everything before wm, so ts >= wm is still needed; (wm, id) also covers
    the records at wm up to that id, so ts == wm with a larger id, or ts > wm. The id is sent
    as a string, as every filter value is, and HubSpot compares it as the number it is.
    """
    if cursor.watermark is None:
        return []
    stamp = str(to_ms(cursor.watermark))
    if cursor.last_id is None:
        return [FilterGroup(filters=[_filter(cursor_property, "GTE", stamp)])]
    return [FilterGroup(filters=[_filter(cursor_property, "EQ", stamp),
                                 _filter(settings.ID_PROPERTY, "GT", cursor.last_id)]),
            FilterGroup(filters=[_filter(cursor_property, "GT", stamp)])]


def search_request(cursor: Cursor, properties: tuple[str, ...], limit: int,
                   cursor_property: str = settings.CURSOR_PROPERTY) -> PublicObjectSearchRequest:
    """The first page of the records after the cursor, oldest change first.

    Always a fresh search (no `after`): offset paging skips records modified mid-sync and
    stops at 10,000 results. Ties on the timestamp come back in no documented order.
    """
    return PublicObjectSearchRequest(
        filter_groups=cursor_filters(cursor, cursor_property), properties=list(properties), limit=limit,
        sorts=[{"propertyName": cursor_property, "direction": "ASCENDING"}])  # type: ignore[list-item]


def tie_request(stamp: datetime, after_id: str | None, properties: tuple[str, ...],
                limit: int, cursor_property: str = settings.CURSOR_PROPERTY) -> PublicObjectSearchRequest:
    """A page of the records modified exactly at `stamp` with an id above `after_id`, in id order.

    Sorting by id gives a total order, so a tie group too large for one page still pages
    exactly (one sort per search is all HubSpot allows, hence a search of its own).
    """
    filters = [_filter(cursor_property, "EQ", str(to_ms(stamp)))]
    if after_id is not None:
        filters.append(_filter(settings.ID_PROPERTY, "GT", after_id))
    return PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=filters)], properties=list(properties), limit=limit,
        sorts=[{"propertyName": settings.ID_PROPERTY, "direction": "ASCENDING"}])  # type: ignore[list-item]


def record_stamp(record: Any, cursor_property: str = settings.CURSOR_PROPERTY) -> datetime:
    """A search result's cursor property, hs_lastmodifieddate (contacts: lastmodifieddate), or its
    updatedAt when the property is missing."""
    stamp = parse_time((record.properties or {}).get(cursor_property)) or parse_time(record.updated_at)
    if stamp is None:
        raise ValueError(f"HubSpot record {record.id} has no {cursor_property} and no updatedAt")
    return stamp


def record_number(record: Any) -> int:
    """A record's id as the number HubSpot compares (ids differ in length across object types)."""
    return int(record.id)


def cursor_key(cursor: Cursor) -> tuple[int, int]:
    """The cursor's position: (wm, None) sits before every (wm, id); no cursor before all."""
    if cursor.watermark is None:
        return (-1 << 62, -1)
    return (to_ms(cursor.watermark), -1 if cursor.last_id is None else int(cursor.last_id))


# -- canonical records (the mappers live in connectors.hubspot.mappers) ------------------------
def associated_ids(answer: Any) -> dict[str, str]:
    """From-id -> the one associated id of a v4 batch read's JSON (primary type first, then lowest id).

    Ids with no association come back as errors of a 207 and are simply absent here; an answer of
    another shape raises raw_pages.WrongShape.
    """
    return {source: str(min((not primary, number) for number, primary in targets)[1])
            for source, targets in raw_pages.association_targets(answer).items() if targets}


def archived_stamp(record: Any, cursor_property: str = settings.CURSOR_PROPERTY) -> datetime:
    """When an archived record was archived (its last modification when archivedAt is missing)."""
    return parse_time(getattr(record, "archived_at", None)) or record_stamp(record, cursor_property)


def key_result_properties(row: Mapping[str, Any]) -> dict[str, str]:
    """A KR row as custom object properties (wire strings), without last_synced."""
    return {prop: to_wire(row.get(field)) for field, prop in settings.KEY_RESULT_FIELDS.items()}
