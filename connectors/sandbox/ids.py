"""Record ids as each CRM spells them, derived from the sandbox's integer ids (and back)."""

from __future__ import annotations

import string

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX = string.ascii_uppercase + "012345"

# Salesforce key prefixes of the objects the sandbox serves.
SF_PREFIX = {"User": "005", "Account": "001", "Opportunity": "006", "Task": "00T", "OKR_Key_Result__c": "a0K",
             "Product2": "01t", "OpportunityLineItem": "00k", "Event": "00U", "Lead": "00Q", "Contact": "003",
             "Case": "500", "Campaign": "701", "OKR_Objective__c": "a0J", "OKR_Check_In__c": "a0L",
             "FeedItem": "0D5"}
EMAIL_TASK_OFFSET = 1_000_000_000  # Task number of an email = its id in the emails table + this
ALERT_TASK_OFFSET = 2_000_000_000  # Task number of a task created through the API (salesforce_activities.py)
_SF_OBJECT_BY_PREFIX = {prefix: name for name, prefix in SF_PREFIX.items()}

# HubSpot ids are plain integers; offsets keep the object types apart, as in a real portal.
HS_OFFSET = {"owners": 70_000_000, "companies": 10_000_000, "deals": 20_000_000_000, "calls": 40_000_000_000,
             "contacts": 50_000, "line_items": 30_000_000_000, "emails": 41_000_000_000,
             "meetings": 42_000_000_000, "tickets": 1_500_000_000, "products": 5_000_000,
             "leads": 60_000_000}


def sf_id(sobject: str, number: int) -> str:
    """An 18-character Salesforce id with its case-safe checksum suffix."""
    digits = ""
    value = number
    while value:
        value, remainder = divmod(value, 62)
        digits = _BASE62[remainder] + digits
    short = SF_PREFIX[sobject] + "000000" + digits.rjust(6, "0")
    if len(short) != 15:
        raise ValueError(f"id number {number} is too large for a sandbox Salesforce id")
    suffix = ""
    for chunk in (short[0:5], short[5:10], short[10:15]):
        bits = sum(1 << position for position, char in enumerate(chunk) if char.isupper())
        suffix += _SUFFIX[bits]
    return short + suffix


def sf_number(record_id: str) -> tuple[str, int]:
    """(sObject name, integer id) of a sandbox Salesforce id (15 or 18 characters)."""
    if len(record_id) not in (15, 18) or record_id[:3] not in _SF_OBJECT_BY_PREFIX:
        raise ValueError(f"not a sandbox Salesforce id: {record_id!r}")
    number = 0
    for char in record_id[9:15]:
        number = number * 62 + _BASE62.index(char)
    return _SF_OBJECT_BY_PREFIX[record_id[:3]], number


def hs_id(object_type: str, number: int) -> str:
    return str(HS_OFFSET[object_type] + number)


def hs_number(object_type: str, record_id: str) -> int:
    return int(record_id) - HS_OFFSET[object_type]
