"""Per-record rejections a test injects into the sandbox's writeback objects.

A real org refuses single records for its own reasons: a validation rule an admin added, a row
locked by another transaction (Salesforce UNABLE_TO_LOCK_ROW), a property value the portal does not
accept. `SandboxServer.reject(...)` adds a rule; each CRM face asks `match` for every record it is
asked to write and refuses the matching ones the way that CRM does (Salesforce: a failed entry in
the sObject Collections answer; HubSpot: see connectors.sandbox.hubspot_writes), writing the rest.
`clear` removes the cause, so the next run succeeds. A FaultPlan's `partial_failure`
(connectors.sandbox.faults) refuses records too, at random, as row locks (`match` draws for each).
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from typing import Literal

from connectors.sandbox.faults import current_request_faults

# validation: the record alone is refused (Salesforce FIELD_CUSTOM_VALIDATION_EXCEPTION in the
#   Collections answer; HubSpot: see hubspot_writes); row_lock: Salesforce UNABLE_TO_LOCK_ROW for the
#   record alone; malformed: the whole request carrying the record is refused with a 400 (a value the
#   API cannot parse; HubSpot's batch endpoints refuse a whole batch for one invalid input), so a
#   client must split the batch to find it.
RejectionKind = Literal["validation", "row_lock", "malformed"]


@dataclass(frozen=True)
class RejectionRule:
    crm: str  # salesforce | hubspot
    object: str  # the CRM's object name: OKR_Key_Result__c, okr_key_result, ...
    key_pattern: str  # fnmatch pattern over the record's unique key (Key__c / okr_key ...)
    kind: RejectionKind = "validation"
    message: str = "Rejected by a validation rule"


# What a record refused by a fault plan's partial_failure says: busy in another transaction, try again
BUSY_MESSAGES = {"salesforce": "unable to obtain exclusive access to this record",
                 "hubspot": "The record is being updated by another request; retry later"}


class RejectionRules:
    """The rules in force (in memory: a test sets them, a restart forgets them); thread-safe."""

    def __init__(self) -> None:
        self._rules: list[RejectionRule] = []
        self._lock = threading.Lock()
        self.rejected = 0  # records refused so far, for tests that count

    def add(self, rule: RejectionRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self, crm: str | None = None) -> None:
        with self._lock:
            self._rules = [rule for rule in self._rules if crm is not None and rule.crm != crm]

    def match(self, crm: str, obj: str, key: str | None) -> RejectionRule | None:
        """The first rule refusing this record, counted as one rejection; else a row lock when the
        request's fault plan draws a partial failure for it; None: write it."""
        with self._lock:
            for rule in self._rules:
                if rule.crm == crm and rule.object.lower() == obj.lower() and key is not None \
                        and fnmatch.fnmatchcase(key, rule.key_pattern):
                    self.rejected += 1
                    return rule
        faults = current_request_faults()
        if key is not None and faults is not None and faults.draw("partial_failure", faults.plan.partial_failure):
            with self._lock:
                self.rejected += 1
            return RejectionRule(crm, obj, key, "row_lock", BUSY_MESSAGES.get(crm, "record busy"))
        return None
