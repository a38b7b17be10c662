"""Shared connector exceptions (imported by every CRM connector)."""

from __future__ import annotations

CRM_NAMES = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
MAX_SHOWN = 80  # characters of a bad value quoted in a message (a value may be megabytes long)


class ConnectorError(Exception):
    """Base class for connector failures the flow can report cleanly."""


class ConnectorConfigError(ConnectorError):
    """Missing or invalid configuration (e.g. credentials env variables)."""


def shown(value: object) -> str:
    """A value as a message quotes it: its repr, cut to MAX_SHOWN characters."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


class BadData(ConnectorError):
    """A CRM answered a stream with data okr-sync cannot read: the stream stopped before it.

    Nothing from the page holding it was stored and the stream's cursor did not move past it, so
    once the CRM serves it readable (the record is fixed) the next run reads it. The same answer
    comes back on every attempt: it is not retried. The flow writes no key result of that CRM in
    that run (they would be computed from incomplete data) but still reads the CRM's other streams.
    """

    def __init__(self, crm: str, stream: str, detail: str) -> None:
        self.crm, self.stream, self.detail = crm, stream, detail
        super().__init__(f"{CRM_NAMES.get(crm, crm)} {stream}: {detail}. The stream stopped there (nothing of "
                         "that page was stored and its cursor did not move past it); once the data is fixed in "
                         "the CRM, the next run reads it.")


class BadRecord(BadData):
    """One record with a value okr-sync cannot read (a wrong type, a missing required field)."""

    def __init__(self, crm: str, stream: str, record_id: str | None, problem: str, field: str | None = None,
                 position: int | None = None) -> None:
        self.record_id, self.field, self.problem = record_id, field, problem
        if record_id is not None:
            where = f"record {record_id}"
        else:
            where = "a record without an id" + (f" (number {position} of its page)" if position is not None else "")
        super().__init__(crm, stream, f"{where}: {field} {problem}" if field else f"{where}: {problem}")


class BadPage(BadData):
    """A whole answer okr-sync cannot read (not JSON, or not the shape the client expects): `where`
    says which request, `problem` what is wrong with its answer."""

    def __init__(self, crm: str, stream: str, where: str, problem: str) -> None:
        self.where, self.problem = where, problem
        super().__init__(crm, stream, f"the answer to {where} {problem}")
