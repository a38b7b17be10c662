"""Custom fields from config: which extra HubSpot properties each stream reads into `custom`.

The config maps a canonical entity to {canonical name: property internal name}, e.g.
{"account": {"region": "region"}}. Names are checked when the source is built (they go into
search requests), and against the portal once per object type before a stream's first search
(GET /crm/v3/properties/{type}), so a typo stops that stream with a message naming the object,
the property and the config entry, before anything is extracted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from connectors.errors import ConnectorConfigError
from connectors.hubspot import settings
from connectors.store import RECORD_MODELS

CustomFields = Mapping[str, Mapping[str, str]]
_NAME = re.compile(settings.CUSTOM_FIELD_PATTERN)


def validate(custom_fields: CustomFields | None) -> dict[str, dict[str, str]]:
    """The config's custom fields as plain dicts, or a ConnectorConfigError naming the bad entry."""
    if not custom_fields:
        return {}
    if not isinstance(custom_fields, Mapping):
        raise ConnectorConfigError(f"HubSpot custom fields must map entities to fields, got {custom_fields!r}")
    checked: dict[str, dict[str, str]] = {}
    for entity, fields in custom_fields.items():
        if entity not in RECORD_MODELS:
            raise ConnectorConfigError(f"custom fields: unknown entity {entity!r}; entities:"
                                       f" {', '.join(RECORD_MODELS)}")
        if not fields:
            continue
        if entity in settings.NO_CUSTOM_FIELDS:
            raise ConnectorConfigError(f"custom fields for {entity!r} cannot be read from HubSpot:"
                                       f" {settings.NO_CUSTOM_FIELDS[entity]}")
        if not isinstance(fields, Mapping):
            raise ConnectorConfigError(f"custom fields of {entity!r} must map names to HubSpot properties,"
                                       f" got {fields!r}")
        for name, prop in fields.items():
            if not isinstance(name, str) or not name.strip():
                raise ConnectorConfigError(f"custom fields of {entity!r}: a name must be a non-empty string,"
                                           f" got {name!r}")
            if not isinstance(prop, str) or not _NAME.fullmatch(prop):
                raise ConnectorConfigError(
                    f"custom field {entity}.{name}: {prop!r} is not a HubSpot property internal name"
                    " (lower-case letters, digits and underscores, starting with a letter)")
        checked[entity] = dict(fields)
    return checked


def for_stream(custom_fields: Mapping[str, dict[str, str]], stream: str) -> dict[str, str]:
    """The custom fields a stream reads: those of its entity."""
    return custom_fields.get(settings.STREAM_ENTITIES[stream], {})


def missing(object_type: str, entity: str, fields: Mapping[str, str], present: Iterable[str]) -> None:
    """Raise a ConnectorConfigError for the first configured property the portal lacks."""
    names = set(present)
    for name, prop in fields.items():
        if prop not in names:
            raise ConnectorConfigError(
                f"HubSpot {object_type} has no property {prop} (custom field {entity}.{name} in the config):"
                " check its internal name in Settings > Data Management > Properties")
