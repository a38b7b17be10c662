"""Checks of the `custom_fields` section: CRM fields read into entities under names rules can use.

The CRM names end up in SOQL SELECT lists and HubSpot property lists, so they must be plain API
names; the connectors check them again and ask the CRM (describe / properties) that they exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from okr_mapping.config import CustomField
from okr_mapping.entities import ENTITIES
from okr_mapping.errors import KeyPath, did_you_mean
from okr_mapping.findings import Finding

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
CRM_FIELD_PATTERNS = {
    "salesforce": (re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$"), "an API name such as Region__c"),
    "hubspot": (re.compile(r"^[a-z][a-z0-9_]{0,99}$"), "an internal property name such as region"),
}


# What the CRMs (or their users) call okr-sync's entities, for a "did you mean" when a rule uses
# the CRM's word; keys are lower-case without spaces or '_'.
CRM_ENTITY_NAMES = {
    "opportunity": "deal", "opportunities": "deal", "opp": "deal", "opps": "deal",
    "company": "account", "companies": "account",
    "ticket": "case", "tickets": "case", "cases": "case",
    "task": "activity", "tasks": "activity", "event": "activity", "events": "activity",
    "call": "activity", "calls": "activity", "meeting": "activity", "meetings": "activity",
    "email": "activity", "emails": "activity", "engagement": "activity", "engagements": "activity",
    "activities": "activity",
    "opportunitylineitem": "line_item", "lineitem": "line_item", "lineitems": "line_item",
    "product": "line_item", "products": "line_item",
}


def suggest_entity(name: object) -> str | None:
    """The entity a mistyped or CRM-worded entity name most likely means ('opportunity' -> deal)."""
    if isinstance(name, str):
        alias = CRM_ENTITY_NAMES.get(name.lower().replace(" ", "").replace("_", ""))
        if alias is not None:
            return alias
    return did_you_mean(name, ENTITIES)


def check_custom_fields(fields: Mapping[str, Mapping[str, CustomField]]) -> Iterator[Finding]:
    """Unknown entities, bad or clashing names, CRM names that are not plain API names."""
    for entity_name, named in fields.items():
        base: KeyPath = ("custom_fields", entity_name)
        entity = ENTITIES.get(entity_name)
        if entity is None:
            yield Finding("error", base, f"unknown entity '{entity_name}'; custom fields can extend "
                          f"{', '.join(ENTITIES)}", suggest_entity(entity_name), on_key=True)
            continue
        for name, spec in named.items():
            path = (*base, name)
            if not NAME_PATTERN.match(name):
                yield Finding("error", path, "custom field names use lower-case letters, digits and '_' and "
                              "start with a letter, e.g. region", on_key=True)
            elif name in entity.fields:
                yield Finding("error", path, f"'{name}' is already a field of {entity_name}; pick another name "
                              f"for the custom field", on_key=True)
            crms = [crm for crm in CRM_FIELD_PATTERNS if getattr(spec, crm)]
            if not crms:
                yield Finding("error", path, "name the field in at least one CRM, e.g. salesforce: Region__c "
                              "or hubspot: region")
            for crm in crms:
                pattern, example = CRM_FIELD_PATTERNS[crm]
                if not pattern.match(getattr(spec, crm)):
                    yield Finding("error", (*path, crm), f"'{getattr(spec, crm)}' is not a {crm} field name: "
                                  f"write {example} (letters, digits and '_' only)")
