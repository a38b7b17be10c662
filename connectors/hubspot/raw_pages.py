"""The high-volume HubSpot reads decoded from their JSON, without the SDK's generated models.

Turning a page into the generated models costs the client far more CPU than everything else in a
sync: every model instance builds its own Configuration (logger set-up included) and every
createdAt/updatedAt/archivedAt goes through dateutil. So the search pages, the archived list pages
and the v4 association batch reads ask the generated method for the raw urllib3 response
(`_preload_content=False`: a non-2xx answer still raises the SDK's ApiException, see
helpers.call_api) and this module turns the JSON into what the connector reads.

`Record` has the attributes of the SDK's SimplePublicObject that the connector reads, with the
values the SDK would give, except that updatedAt and archivedAt stay ISO strings (only
helpers.parse_time reads them, and only when needed). An answer that is not the expected shape
raises WrongShape: call_api reports it as an UnreadableAnswer, so the stream stops with a BadPage
naming the request instead of reading a wrong page as an empty one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.hubspot import settings

_CHARSET = re.compile(r"charset=([a-zA-Z\-\d]+)[\s;]?")  # the SDK's own pattern (api_client.py)


class WrongShape(ValueError):
    """A 2xx answer that is not JSON, or not the JSON its request returns; the message completes
    "the answer to the <method> request ..."."""


@dataclass(frozen=True, slots=True)
class Record:
    """A CRM object of a search or list page: what the connector reads of SimplePublicObject."""

    id: str | None
    properties: dict[str, str | None]
    updated_at: str | None = None  # ISO text, as sent (helpers.parse_time reads it)
    archived: bool | None = None
    archived_at: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """A search or list page: its records and the `after` of the next page (None on the last)."""

    results: list[Record]
    after: str | None = None


def answer_json(body: bytes | str, content_type: str | None) -> Any:
    """The decoded JSON of an answer's body, in the charset its Content-Type names (else UTF-8), as
    the SDK decodes it. An empty or broken body is a WrongShape: it is no page at all."""
    try:
        if isinstance(body, bytes):
            match = _CHARSET.search(content_type or "")
            body = body.decode(match.group(1) if match else "utf-8")
        return json.loads(body)
    except (ValueError, LookupError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WrongShape(f"is not valid JSON ({error})") from None


def records_page(answer: Any) -> Page:
    """A search page (POST /crm/v3/objects/{type}/search) or list page (GET /crm/v3/objects/{type}).

    As the SDK reads one: no `results` is an empty page, property values and ids that are not
    strings become their str(), a `paging` without a usable next `after` ends the paging."""
    results = _list(_object(answer, "the answer"), "results", "the answer")
    return Page([_record(item, position) for position, item in enumerate(results, 1)], _after(answer))


def association_targets(answer: Any) -> dict[str, list[tuple[int, bool]]]:
    """From-id -> (to-id, has a primary association type) of each target, of a v4 batch read
    (POST /crm/v4/associations/{from}/{to}/batch/read). Ids without associations come back as
    errors of a 207 and are absent here (or have no targets)."""
    targets: dict[str, list[tuple[int, bool]]] = {}
    for position, result in enumerate(_list(_object(answer, "the answer"), "results", "the answer"), 1):
        where = f"result {position}"
        source = _object(result, where).get("from")
        source_id = _object(source, f"{where}'s from").get("id") if source is not None else None
        if source_id is None:
            raise WrongShape(f"is not the JSON expected ({where} has no from id)")
        targets[str(source_id)] = [_target(target, f"{where}'s target {number}")
                                   for number, target in enumerate(_list(result, "to", where), 1)]
    return targets


def _target(target: Any, where: str) -> tuple[int, bool]:
    """(toObjectId, whether one of its association types is primary), read as the SDK reads them."""
    specs = [_object(spec, f"{where}'s association type") for spec in _list(_object(target, where),
                                                                            "associationTypes", where)]
    try:
        number = int(str(target.get("toObjectId")))  # the SDK reads it as a str: "30" and 30 alike
        type_ids = {int(spec["typeId"]) for spec in specs if spec.get("typeId") is not None}
    except (TypeError, ValueError):
        raise WrongShape(f"is not the JSON expected ({where} has no numeric toObjectId or typeId)") from None
    return number, not type_ids.isdisjoint(settings.PRIMARY_ASSOCIATION_TYPE_IDS)


def _record(item: Any, position: int) -> Record:
    where = f"result {position}"
    fields = _object(item, where)
    properties = fields.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise WrongShape(f"is not the JSON expected ({where}'s properties are {_kind(properties)}, not an object)")
    elif not all(value is None or type(value) is str for value in properties.values()):
        properties = {name: value if value is None else str(value) for name, value in properties.items()}
    record_id = fields.get("id")
    archived = fields.get("archived")
    return Record(None if record_id is None else str(record_id), properties,
                  _text(fields, "updatedAt", where), None if archived is None else bool(archived),
                  _text(fields, "archivedAt", where))


def _text(fields: Mapping[str, Any], name: str, where: str) -> str | None:
    """A date-time field: the SDK fails on anything but text, and so does this."""
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise WrongShape(f"is not the JSON expected ({where}'s {name} is {_kind(value)}, not a date-time text)")
    return value


def _after(answer: Mapping[str, Any]) -> str | None:
    paging = answer.get("paging")
    following = paging.get("next") if isinstance(paging, Mapping) else None
    after = following.get("after") if isinstance(following, Mapping) else None
    return None if after is None else str(after)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WrongShape(f"is not the JSON expected ({where} is {_kind(value)}, not an object)")
    return value


def _list(fields: Mapping[str, Any], name: str, where: str) -> list[Any]:
    value = fields.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise WrongShape(f"is not the JSON expected ({where}'s {name} is {_kind(value)}, not a list)")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
                                         int: "a number", float: "a number"}.get(type(value), type(value).__name__)
