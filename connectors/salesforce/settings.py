"""Constants of the Salesforce source: API version, streams and their fields, the KR object.

Kept apart from the code (as in dlt verified sources) so that what okr-sync reads and writes
in an org can be reviewed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

API_VERSION = "62.0"
QUERY_BATCH_SIZE = 2000  # Sforce-Query-Options batchSize: Salesforce allows 200-2000
WRITE_BATCH_SIZE = 200  # sObject Collections take at most 200 records per call
# Writeback retries within a run (writeback.py OkrWriter._write_batch). A record refused in its own
# entry of the sObject Collections answer with one of these codes only (all its errors) was refused
# for a passing reason, not for its content: Salesforce answers UNABLE_TO_LOCK_ROW ("unable to obtain
# exclusive access to this record") when another transaction holds the row's lock (the sandbox sends
# it for a FaultPlan's partial_failure and for a "row_lock" rule: connectors.sandbox.rejections /
# salesforce_writes). Those records alone are sent again in one more call per batch after each wait
# of WRITE_RETRY_WAITS (seconds); still refused after the last, they are reported as refused and sent
# again next run. Every other code (FIELD_CUSTOM_VALIDATION_EXCEPTION, STRING_TOO_LONG, INVALID_FIELD,
# a whole-call 400...) is the record's own fault and is never retried within the run.
TRANSIENT_WRITE_ERRORS = frozenset({"UNABLE_TO_LOCK_ROW"})
WRITE_RETRY_WAITS: tuple[float, ...] = (1.0, 3.0)  # a lock is usually released within seconds
REPLICATION_KEY = "SystemModstamp"  # changes on user AND automated updates, unlike LastModifiedDate
PRIMARY_KEY = "Id"
LOGIN_DOMAIN = "login"
# (connect, read) seconds per request, $OKR_SYNC_HTTP_TIMEOUT_SECONDS (connectors.timeouts): Salesforce
# itself ends a query after 120 s (QUERY_TIMEOUT), so a read waiting longer waits for a lost answer.
REQUEST_TIMEOUT = (10.0, 120.0)

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

# Bulk API 2.0 (bulk.py, SalesforceSource._bulk_pages). Every stream starts with its REST queryAll page; when
# that page is not the last and its totalSize (the whole result's size, sent with page one: the
# size check costs no extra call) is above the threshold, the rest is read by one Bulk 2.0 queryAll
# job from the cursor after page one: create + polls + one results call per BULK_MAX_RECORDS
# records, instead of one queryMore per QUERY_BATCH_SIZE records. Bulk queries carry no ORDER BY
# (Salesforce: it disables PK chunking and can make jobs time out), so chunks arrive unordered: they
# are stored in QUERY_BATCH_SIZE pages that keep the cursor where the job started, and the page
# that ends the job moves it to the greatest (SystemModstamp, Id) the job returned. A run that dies
# mid-job therefore repeats the job's window next time (re-read unchanged rows are not counted).
# $OKR_SYNC_SF_BULK_THRESHOLD (a non-negative integer) or SalesforceSource(bulk_threshold=...)
# overrides the default; Salesforce itself advises Bulk 2.0 above ~2,000 records.
BULK_THRESHOLD_ENV = "OKR_SYNC_SF_BULK_THRESHOLD"
BULK_THRESHOLD = 10_000
# The job's steps go through the same call layer as every REST call (bulk.py): each is retried on
# transient failures and, with refresh-token credentials, repeated once after renewing an expired session.
BULK_MAX_RECORDS = 50_000  # maxRecords of each results call (simple-salesforce's default too)
BULK_POLL_SECONDS = 0.5  # the first status poll after this wait; each later wait doubles, up to:
BULK_POLL_MAX_SECONDS = 8.0  # a 10 s job costs 5 polls, a 60 s one 11 (simple-salesforce polls every 2 s)
BULK_JOB_TIMEOUT_SECONDS = 86_400  # a job still running after this fails (simple-salesforce's 24 h too)
# Daily API allocation guard (SalesforceSource._call). Every response's `Sforce-Limit-Info:
# api-usage=USED/MAX` header is read by a response hook (no extra call). Before each request after
# the first, when MAX - USED is below MIN_QUOTA_SHARE of MAX, the source stops with a ConnectorError:
# the rest of the org's rolling 24 h allocation is left to the org's other integrations and users.
# Pages already stored stay committed, so the next run resumes from the last one. A Bulk 2.0 job's
# creation, each of its status polls and each results call are checked like any other request.
# $OKR_SYNC_SF_MIN_QUOTA_SHARE (0 <= x < 1; 0 disables) or SalesforceSource(min_quota_share=...).
MIN_QUOTA_SHARE_ENV = "OKR_SYNC_SF_MIN_QUOTA_SHARE"
MIN_QUOTA_SHARE = 0.05
# What the CSV of a Bulk result holds as text: fields whose REST value is not a string (custom
# fields get their type from the describe call that checks them, see custom_fields.py)
CSV_FIELD_TYPES = {
    "IsActive": "boolean", "IsClosed": "boolean", "IsWon": "boolean", "IsDeleted": "boolean",
    "IsConverted": "boolean",
    "Amount": "double", "Probability": "double", "Quantity": "double", "UnitPrice": "double",
    "TotalPrice": "double", "BudgetedCost": "double", "ActualCost": "double", "ExpectedRevenue": "double",
    "CallDurationInSeconds": "int", "DurationInMinutes": "int",
}

# Custom fields from config (custom_fields.py): a plain API name, so it can go into a SELECT list
# as it is; relationship paths (Owner.Name) and anything else are refused at construction.
CUSTOM_FIELD_NAME = r"[A-Za-z][A-Za-z0-9_]*"


@dataclass(frozen=True)
class StreamSpec:
    """One extracted stream: the sObject, the fields read, an optional fixed filter (SOQL text).

    Relationship fields (`Product2.Name`) come back nested in REST JSON and as dotted CSV
    columns in Bulk 2.0; helpers.csv_record nests the latter so one mapper reads both.
    """

    sobject: str
    fields: tuple[str, ...]
    where: str | None = None


_AUDIT = ("CreatedDate", "SystemModstamp", "IsDeleted")
# Task fields both Task streams read (calls and emails are Task subtypes; meetings are Events)
_TASK = ("Id", "Subject", "OwnerId", "WhatId", "ActivityDate")

# Stream name -> what it reads; the mapper of each (mappers.py) names its canonical table.
STREAMS: dict[str, StreamSpec] = {
    "users": StreamSpec("User", (
        "Id", "Name", "Email", "IsActive", "Department", "Division", "SystemModstamp")),
    "accounts": StreamSpec("Account", (
        "Id", "Name", "OwnerId", "BillingCountry", "Industry", "Type", *_AUDIT)),
    "opportunities": StreamSpec("Opportunity", (
        "Id", "Name", "OwnerId", "AccountId", "Type", "StageName", "Amount", "Probability", "IsClosed",
        "IsWon", "CreatedDate", "CloseDate", "LeadSource", "SystemModstamp", "IsDeleted")),
    "line_items": StreamSpec("OpportunityLineItem", (
        "Id", "OpportunityId", "Product2Id", "Product2.Name", "Product2.Family", "Quantity", "UnitPrice",
        "TotalPrice", *_AUDIT)),
    "calls": StreamSpec("Task", (
        *_TASK, "CallDurationInSeconds", "CallType", "CallDisposition", "SystemModstamp", "IsDeleted"),
        where="TaskSubtype = 'Call'"),
    "emails": StreamSpec("Task", (*_TASK, "SystemModstamp", "IsDeleted"), where="TaskSubtype = 'Email'"),
    "meetings": StreamSpec("Event", (
        "Id", "Subject", "OwnerId", "WhatId", "StartDateTime", "EndDateTime", "DurationInMinutes",
        "ActivityDate", "SystemModstamp", "IsDeleted")),
    "leads": StreamSpec("Lead", (
        "Id", "FirstName", "LastName", "Name", "Email", "Company", "Country", "OwnerId", "LeadSource", "Status",
        "IsConverted", "ConvertedDate", "ConvertedAccountId", "ConvertedContactId", *_AUDIT)),
    "contacts": StreamSpec("Contact", (
        "Id", "FirstName", "LastName", "Name", "Email", "AccountId", "OwnerId", "LeadSource", *_AUDIT)),
    "cases": StreamSpec("Case", (
        "Id", "Subject", "AccountId", "OwnerId", "Status", "Priority", "Origin", "IsClosed", "ClosedDate",
        *_AUDIT)),
    "campaigns": StreamSpec("Campaign", (
        "Id", "Name", "Type", "Status", "IsActive", "OwnerId", "StartDate", "EndDate", "BudgetedCost",
        "ActualCost", "ExpectedRevenue", *_AUDIT)),
}

# -- writeback: the OKR custom objects (metadata in connectors/salesforce/metadata/) ---------------
# One table per object says which row key feeds which field, with what type: the payload helpers
# (helpers.okr_payload), the setup check (setup_check.py) and the tests over the shipped metadata
# and the sandbox's describe all read it, so the four cannot drift apart.
FieldType = Literal["Text", "Number", "Date", "DateTime", "Lookup", "Owner", "Checkbox"]
EXTERNAL_ID = "Key__c"  # Text(255), External ID, Unique, case-sensitive, on every OKR object
SYNCED_FIELD = "Last_Synced__c"  # left out of the ledger fingerprint: it changes on every write
KEY_LENGTH = 255  # Key__c is never cut (two keys could collide): a longer key is rejected per record
NAME_LENGTH = 80  # the standard Name field of a custom object: Text(80)
NUMBER_DIGITS = (18, 4)  # every Number field: progress, score... are ratios (1 = 100 %), not percents
OWNER_FIELD = "OwnerId"  # standard on every custom object; None in a row leaves the default owner


@dataclass(frozen=True)
class OkrField:
    """One field okr-sync writes: the row key it comes from and the field's type in the org.

    A row without `source` leaves the field out of the write (a None value clears it); Text is
    cut to `length` (except Key__c); `template` formats the value first; a Lookup is set through
    the parent's external id (`Field__r: {"Key__c": ...}`), so parents are never queried for Ids.
    """

    name: str
    source: str
    type: FieldType
    length: int = 0
    reference_to: str | None = None
    template: str = "{}"

    @property
    def relationship(self) -> str:
        """The relationship a Lookup is set through: Objective_Record__c -> Objective_Record__r."""
        return self.name.removesuffix("__c") + "__r"

    def describe_text(self) -> str:
        """The type as Setup shows it (Text(255), Number(18, 4), Lookup(OKR_Objective__c)...)."""
        if self.type == "Text":
            return f"Text({self.length})"
        if self.type == "Number":
            return f"Number({NUMBER_DIGITS[0]}, {NUMBER_DIGITS[1]})"
        if self.type in ("Lookup", "Owner"):
            return f"Lookup({self.reference_to})"
        return self.type


@dataclass(frozen=True)
class OkrObjectSpec:
    """One OKR custom object: its API name and the fields written into it (Key__c first)."""

    kind: str  # objective | key_result | checkin (connectors.okr_records.OKR_OBJECTS)
    name: str
    fields: tuple[OkrField, ...]

    @property
    def collection_path(self) -> str:
        return f"composite/sobjects/{self.name}/{EXTERNAL_ID}"

    @property
    def custom_fields(self) -> tuple[str, ...]:
        """The custom fields this object must have (Last_Synced__c included, Name and OwnerId not)."""
        return (*(field.name for field in self.fields if field.name.endswith("__c")), SYNCED_FIELD)


def _text(source: str, name: str, length: int, template: str = "{}") -> OkrField:
    return OkrField(name, source, "Text", length, template=template)


def _number(source: str, name: str) -> OkrField:
    return OkrField(name, source, "Number")


def _lookup(source: str, name: str, parent: str) -> OkrField:
    return OkrField(name, source, "Lookup", reference_to=parent)


OBJECTIVE_OBJECT = "OKR_Objective__c"
KR_OBJECT = "OKR_Key_Result__c"
CHECKIN_OBJECT = "OKR_Check_In__c"
_KEY = OkrField(EXTERNAL_ID, "key", "Text", KEY_LENGTH)
_OWNER = OkrField(OWNER_FIELD, "owner_id", "Owner", reference_to="User")
_FINAL = OkrField("Final__c", "final", "Checkbox")  # a closed period's frozen result (okr-sync close-period)

OKR_OBJECT_SPECS: dict[str, OkrObjectSpec] = {spec.kind: spec for spec in (
    OkrObjectSpec("objective", OBJECTIVE_OBJECT, (
        _KEY, _text("title", "Name", NAME_LENGTH), _text("objective_id", "Objective_Id__c", 255),
        _text("period", "Period__c", 40), OkrField("Period_Start__c", "period_start", "Date"),
        OkrField("Period_End__c", "period_end", "Date"), _number("progress", "Progress__c"),
        _number("score", "Score__c"), _text("status", "Status__c", 40), _number("weight", "Weight__c"),
        _lookup("parent_key", "Parent_Objective__c", OBJECTIVE_OBJECT), _OWNER)),
    OkrObjectSpec("key_result", KR_OBJECT, (
        _KEY, _text("title", "Name", NAME_LENGTH), _text("objective_title", "Objective__c", 255),
        _text("group", "Group__c", 255), _text("metric", "Metric__c", 255), _text("period", "Period__c", 40),
        _text("status", "Status__c", 40), _text("unit", "Unit__c", 40), _text("pace", "Pace__c", 40),
        _number("value", "Current_Value__c"), _number("baseline", "Baseline__c"), _number("target", "Target__c"),
        _number("progress", "Progress__c"), _number("score", "Score__c"),
        _number("expected_progress", "Expected_Progress__c"), _number("forecast", "Forecast__c"),
        _number("forecast_confidence", "Forecast_Confidence__c"),
        _lookup("objective_key", "Objective_Record__c", OBJECTIVE_OBJECT), _FINAL, _OWNER)),
    OkrObjectSpec("checkin", CHECKIN_OBJECT, (
        _KEY, _text("as_of", "Name", NAME_LENGTH, template="Check-in {}"),
        _lookup("kr_key", "Key_Result__c", KR_OBJECT), OkrField("As_Of__c", "as_of", "Date"),
        _number("value", "Value__c"), _number("target", "Target__c"), _number("progress", "Progress__c"),
        _number("score", "Score__c"), _number("expected_progress", "Expected_Progress__c"),
        _number("forecast", "Forecast__c"), _number("forecast_confidence", "Forecast_Confidence__c"),
        _text("status", "Status__c", 40), _text("note", "Note__c", 255), _FINAL, _OWNER)),
)}

# The key result object under its former names (tests, check_writeback_target, the recorded cassettes)
KR_SPEC = OKR_OBJECT_SPECS["key_result"]
KR_EXTERNAL_ID = EXTERNAL_ID
KR_COLLECTION_PATH = KR_SPEC.collection_path
KR_SYNCED_FIELD = SYNCED_FIELD
KR_KEY_LENGTH = KEY_LENGTH
KR_TEXT_FIELDS = {field.source: (field.name, field.length) for field in KR_SPEC.fields  # cut before sending
                  if field.type == "Text" and field.name != EXTERNAL_ID}
# The one table of text lengths; metadata/ and the sandbox's describe must agree (tests/.../test_metadata.py)
KR_TEXT_LENGTHS = {KR_EXTERNAL_ID: KR_KEY_LENGTH, **dict(KR_TEXT_FIELDS.values())}
KR_NUMBER_FIELDS = {field.source: field.name for field in KR_SPEC.fields if field.type == "Number"}
KR_FIELDS = (KR_EXTERNAL_ID, *(field for field, _ in KR_TEXT_FIELDS.values()), *KR_NUMBER_FIELDS.values(),
             *(field.name for field in KR_SPEC.fields if field.type in ("Lookup", "Checkbox")), KR_SYNCED_FIELD)
