"""Alerts in the nightly run: find this run's status transitions, queue them, send them to the CRM.

Called from flows.nightly._write_or_plan, per CRM:

- `find`: the transitions of this run's results since their previous check-in (okr_mapping.alerts);
- writing run: `queue` them in the alert ledger just before the check-ins are recorded (so none
  is lost if sending fails or the run dies: later runs no longer see the transition), and after
  the writeback (the KR records exist in the CRM, so tasks and posts can point at them) `send`
  every queued alert of the CRM;
- plan mode: `plan` lists what a run would send (this run's transitions and alerts still queued),
  from the ledger alone.

No alert is found when the writeback is stopped by a safety gate (nothing is recorded either: the
next run sees the same transition) nor for a past day recomputed (`current` False): its
transitions are history, not news.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from sqlalchemy.engine import Engine

from connectors import alert_ledger
from connectors.alert_ledger import AlertResult
from okr_mapping import KrResult, OkrConfig, history
from okr_mapping import alerts as domain


@dataclass
class AlertsOutcome:
    """One CRM's alerts in a run: found this run, and what was sent (or, in plan mode, would be)."""

    found: list[dict[str, Any]] = field(default_factory=list)
    planned: list[Mapping[str, Any]] | None = None  # plan mode: what a run would send
    sent: AlertResult | None = None

    def lines(self) -> list[str]:
        """What `okr-sync plan` prints for the alerts."""
        return [_describe(row) for row in self.planned or []]


def find(engine: Engine, config: OkrConfig, source: str, results: Sequence[KrResult], day: date
         ) -> list[dict[str, Any]]:
    """The alert rows of this run's transitions (day: the measured day).

    A transition already queued since the KR's previous check-in, under another day, is left out:
    the run that queued it died before recording its check-ins (alerts are queued first, so a crash
    between the two never loses one), and this run sees the same transition again.
    """
    previous = history.previous_snapshots(engine, source, day)
    found = domain.transitions(config, results, previous, day)
    raised = alert_ledger.of_key_results(engine, source, [alert.kr_key for alert in found])
    rows = []
    for alert in found:
        since = previous[alert.kr_key].as_of.isoformat()
        if not any(entry.key != alert.key and entry.payload.get("transition") == alert.transition
                   and str(entry.payload.get("day")) > since for entry in raised if entry.kr_key == alert.kr_key):
            rows.append(dict(alert.as_row()))
    return rows


def queue(engine: Engine, source: str, rows: Sequence[Mapping[str, Any]]) -> int:
    return alert_ledger.queue(engine, source, rows)


def plan(engine: Engine, source: str, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return alert_ledger.unsent(engine, source, rows)


@task(cache_policy=NONE)
def send(source: Any, engine: Engine) -> AlertResult:
    """Send the CRM's queued alerts. Not retried as a task: each alert is its own exactly-once step
    (connectors.alert_ledger), and what fails stays queued for the next run."""
    result = sender(source).send(engine)
    logger = get_run_logger()
    logger.info("%s alerts: %d created, %d recovered after a crash, %d failed, %d waiting for their key result",
                source.name, result.created, result.reconciled, result.failed, result.skipped)
    for error in result.errors:
        logger.warning("%s %s", source.name, error)
    return result


def sender(source: Any) -> Any:
    """The alert sender of a CRM connector."""
    if source.name == "salesforce":
        from connectors.salesforce.alerts import SalesforceAlerts

        return SalesforceAlerts(source)
    if source.name == "hubspot":
        from connectors.hubspot.alerts import HubSpotAlerts

        return HubSpotAlerts.of(source)
    raise ValueError(f"no alerts for source {source.name!r}")


def setup_problems(source: Any) -> list[str]:
    """What the CRM lacks for alerts (`okr-sync setup --check`)."""
    if source.name == "salesforce":
        from connectors.salesforce.alerts import setup_problems as salesforce_problems

        return salesforce_problems(source._describe_okr_object("Task", fresh=True))
    if source.name == "hubspot":
        from connectors.hubspot.alerts import property_problems

        return property_problems(source._call, source._api)
    return []


def setup(source: Any) -> list[str]:
    """Create what HubSpot lacks for alerts (`okr-sync setup hubspot`)."""
    from connectors.hubspot.alerts import setup_properties

    return setup_properties(source._call, source._api)


def _describe(row: Mapping[str, Any]) -> str:
    what = "celebration post" if row.get("kind") == "post" else "task"
    return f"would create {what} for {row.get('owner') or 'no owner'}: '{row.get('subject')}'"
