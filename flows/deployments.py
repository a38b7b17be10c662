"""The nightly deployments of a config: one per org (or one for a config without orgs), scheduled by
the config's cron in its time zone, as prefect.yaml entries (`prefect deploy --all`, for a work pool)
and as served deployments (`okr-sync serve`, one machine, no worker).

A deployment passes only the config path and the org's name: the org's credentials and store are
resolved inside each run (flows.credentials), so prefect.yaml and the Prefect database hold no secret.
Each deployment runs at most once at a time (concurrency_limit 1): a slow night never overlaps the
next one on the same org's cursors, ledger and API quota.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from okr_mapping import OkrConfig
from okr_mapping.deployment_config import Org

FLOW_ENTRYPOINT = "flows/nightly.py:nightly_sync"
DEFAULT_POOL = "okr-sync"
PROJECT_NAME = "okr-sync"
HEADER = """\
# Prefect deployments of okr-sync's nightly sync. Generated from the config by
#     okr-sync deployments --config CONFIG [--pool POOL]
# which rewrites the entries of that config (and keeps the others): edit the config's schedule:
# and orgs:, then generate again. Register them with `prefect deploy --all` run from this directory:
# without a pull step, Prefect records this directory as where workers load the code from (add a
# git_clone pull step for workers on other machines). See docs/scheduling.md.
"""


class DeploymentFileError(Exception):
    """prefect.yaml cannot take the config's deployments (unreadable, or a name used by another config)."""


@dataclass(frozen=True)
class NightlyDeployment:
    """One scheduled nightly_sync: which config and org, when, and under which name."""

    name: str
    config_path: str  # as the run receives it: relative to the project directory when inside it
    org: str | None
    cron: str
    timezone: str
    description: str

    @property
    def parameters(self) -> dict[str, Any]:
        return {"config_path": self.config_path, **({"org": self.org} if self.org else {})}

    @property
    def tags(self) -> list[str]:
        return ["okr-sync", *([f"org:{self.org}"] if self.org else [])]

    def prefect_yaml_entry(self, pool: str) -> dict[str, Any]:
        """The deployment as a prefect.yaml `deployments:` item."""
        return {"name": self.name, "description": self.description, "entrypoint": FLOW_ENTRYPOINT,
                "parameters": self.parameters, "tags": self.tags, "concurrency_limit": 1,
                "schedules": [{"cron": self.cron, "timezone": self.timezone, "active": True}],
                "work_pool": {"name": pool, "work_queue_name": None, "job_variables": {}}}

    def runner_deployment(self) -> Any:
        """The deployment for `prefect.serve` (the flow is loaded by module path in each run's process)."""
        from prefect.deployments.runner import EntrypointType
        from prefect.schedules import Cron

        from flows.nightly import nightly_sync

        return nightly_sync.to_deployment(
            name=self.name, schedules=[Cron(self.cron, timezone=self.timezone)], parameters=self.parameters,
            description=self.description, tags=self.tags, concurrency_limit=1,
            entrypoint_type=EntrypointType.MODULE_PATH)


def nightly_deployments(config: OkrConfig, config_path: Path,
                        project_dir: Path | None = None) -> list[NightlyDeployment]:
    """The config's deployments; `project_dir`: where runs start (config path relative to it when
    inside it; None: the config's absolute path, as a served deployment on this machine uses it)."""
    path = config_path.resolve()
    shown = str(path)
    if project_dir is not None and path.is_relative_to(project_dir.resolve()):
        shown = path.relative_to(project_dir.resolve()).as_posix()
    orgs: list[Org | None] = list(config.orgs) or [None]
    deployments = []
    for org in orgs:
        name = org.name if org else _slug(config_path.stem)
        crms = ", ".join(org.sources if org and org.sources else [config.source])
        what = f"org {org.name} ({crms})" if org else crms
        deployments.append(NightlyDeployment(
            name=name, config_path=shown, org=org.name if org else None, cron=config.schedule.cron,
            timezone=config.time_zone,
            description=f"okr-sync nightly sync of {what} with {config_path.name}"))
    return deployments


def refreshed_prefect_yaml(existing: str | None, deployments: list[NightlyDeployment], pool: str) -> str:
    """prefect.yaml's text with the deployments of this config replaced (entries of other configs kept)."""
    data = _read(existing)
    ours = {deployment.config_path for deployment in deployments}
    names = {deployment.name for deployment in deployments}
    kept = []
    for entry in data.get("deployments") or []:
        params = (entry.get("parameters") or {}) if isinstance(entry, dict) else {}
        if params.get("config_path") in ours:
            continue  # this config's: generated again below
        if isinstance(entry, dict) and entry.get("name") in names:
            raise DeploymentFileError(
                f"prefect.yaml already has a deployment named '{entry['name']}' for "
                f"{params.get('config_path') or 'another flow'}; rename the org (or the config file)")
        kept.append(entry)
    import prefect

    document = {"name": data.get("name") or PROJECT_NAME,  # a file's own version stays: --check survives upgrades
                "prefect-version": data.get("prefect-version") or prefect.__version__,
                "build": data.get("build"), "push": data.get("push")}
    if data.get("pull") is not None:
        document["pull"] = data["pull"]
    document["deployments"] = kept + [deployment.prefect_yaml_entry(pool) for deployment in deployments]
    return HEADER + "\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def _read(existing: str | None) -> dict[str, Any]:
    if not existing or not existing.strip():
        return {}
    try:
        data = yaml.safe_load(existing)
    except yaml.YAMLError as error:
        raise DeploymentFileError(f"prefect.yaml is not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise DeploymentFileError("prefect.yaml must be a mapping with a deployments: list")
    return data


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "okr-sync"
