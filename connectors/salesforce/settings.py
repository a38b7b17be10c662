"""Constants of the Salesforce source: API version, streams and their fields, the KR object.

Kept apart from the code (as in dlt verified sources) so that what okr-sync reads and writes
in an org can be reviewed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "62.0"
QUERY_BATCH_SIZE = 2000  # Sforce-Query-Options batchSize: Salesforce allows 200-2000
WRITE_BATCH_SIZE = 200  # sObject Collections take at most 200 records per call
REPLICATION_KEY = "SystemModstamp"  # changes on user AND automated updates, unlike LastModifiedDate
PRIMARY_KEY = "Id"
LOGIN_DOMAIN = "login"

# Lookback (connectors.incremental): each incremental query starts at SystemModstamp >= (saved
# watermark - lookback), because a record can commit with a SystemModstamp earlier than a cursor
# already saved. SOQL datetime literals carry whole seconds, so the window opens at the second at
# or before that instant. Re-read records that the store already holds unchanged (same
# SystemModstamp and IsDeleted) are neither rewritten nor counted. Cost: a quiet night re-reads
# only the records modified in the last LOOKBACK_MINUTES before the watermark, so a stream still
# costs 1 query unless more than QUERY_BATCH_SIZE records fall in that window.
# $OKR_SYNC_LOOKBACK_MINUTES (a non-negative integer; 0 = exact cursor continuation, no re-read)
# or SalesforceSource(lookback=timedelta(...)) overrides the default.
LOOKBACK_ENV = "OKR_SYNC_LOOKBACK_MINUTES"
LOOKBACK_MINUTES = 10


@dataclass(frozen=True)
class StreamSpec:
    """One extracted stream: the sObject, the fields read, an optional fixed filter (SOQL text)."""

    sobject: str
    fields: tuple[str, ...]
    where: str | None = None


STREAMS: dict[str, StreamSpec] = {
    "users": StreamSpec("User", (
        "Id", "Name", "Email", "IsActive", "Department", "Division", "SystemModstamp")),
    "opportunities": StreamSpec("Opportunity", (
        "Id", "Name", "OwnerId", "AccountId", "Type", "StageName", "Amount", "Probability", "IsClosed",
        "IsWon", "CreatedDate", "CloseDate", "LeadSource", "SystemModstamp", "IsDeleted")),
    "calls": StreamSpec("Task", (
        "Id", "Subject", "OwnerId", "WhatId", "ActivityDate", "CallDurationInSeconds", "CallDisposition",
        "SystemModstamp", "IsDeleted"), where="TaskSubtype = 'Call'"),
}

# -- writeback: the OKR_Key_Result__c custom object (metadata in connectors/salesforce/metadata/)
KR_OBJECT = "OKR_Key_Result__c"
KR_EXTERNAL_ID = "Key__c"
KR_COLLECTION_PATH = f"composite/sobjects/{KR_OBJECT}/{KR_EXTERNAL_ID}"
KR_SYNCED_FIELD = "Last_Synced__c"  # left out of the ledger fingerprint: it changes on every write
KR_KEY_LENGTH = 255  # Key__c is never cut (two keys could collide): a longer key is rejected per record
KR_TEXT_FIELDS = {  # KR row key -> (field, max length); every one is cut to fit before it is sent
    "title": ("Name", 80),
    "objective_title": ("Objective__c", 255),
    "group": ("Group__c", 255),
    "metric": ("Metric__c", 255),
    "period": ("Period__c", 40),
    "status": ("Status__c", 40),
    "unit": ("Unit__c", 40),
}
# The one table of text lengths; metadata/ and the sandbox's describe must agree (tests/.../test_metadata.py)
KR_TEXT_LENGTHS = {KR_EXTERNAL_ID: KR_KEY_LENGTH, **dict(KR_TEXT_FIELDS.values())}
KR_NUMBER_FIELDS = {  # KR row key -> Number(18, 4) field
    "value": "Current_Value__c",
    "baseline": "Baseline__c",
    "target": "Target__c",
    "progress": "Progress__c",
    "score": "Score__c",
    "expected_progress": "Expected_Progress__c",
}
KR_FIELDS = (KR_EXTERNAL_ID, *(field for field, _ in KR_TEXT_FIELDS.values()), *KR_NUMBER_FIELDS.values(),
             KR_SYNCED_FIELD)
