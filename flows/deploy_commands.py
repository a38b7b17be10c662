"""`okr-sync deployments` (prefect.yaml for a work pool) and `okr-sync serve` (one machine, no worker).

Both read the config's `schedule:` (cron, in its `time_zone`) and `orgs:` (one deployment each);
see flows.deployments and docs/scheduling.md. Exit codes as everywhere: 2 for a bad config or file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from flows.terminal import console, fail

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The OKR rules file (YAML).")]
OrgOption = Annotated[list[str] | None, typer.Option(
    "--org", help="Only this org of the config (repeatable); default: every org.")]


def _loaded(config: Path):
    from okr_mapping import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as error:
        raise fail(f"the config has problems:\n{error}", 2) from None


def _chosen(deployments: list, orgs: list[str] | None) -> list:
    if not orgs:
        return deployments
    known = {deployment.org for deployment in deployments}
    unknown = [org for org in orgs if org not in known]
    if unknown:
        names = ", ".join(sorted(str(org) for org in known if org)) or "none (the config has no orgs:)"
        raise fail(f"unknown --org {', '.join(unknown)}; the config's orgs: {names}", 2)
    return [deployment for deployment in deployments if deployment.org in orgs]


def deployments_command(
    config: ConfigOption,
    pool: Annotated[str, typer.Option(help="The Prefect work pool the deployments run on.")] = "okr-sync",
    file: Annotated[Path, typer.Option(help="The prefect.yaml to write; its directory is the project's.")]
    = Path("prefect.yaml"),
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 when the file is not up to "
                                                        "date with the config.")] = False,
) -> None:
    """Write the config's nightly deployments into prefect.yaml: one per org, cron and time zone from the config.

    Then `prefect deploy --all` (from the file's directory) registers them on the Prefect server, and
    `prefect worker start --pool POOL` runs them. Entries of other configs in the file are kept.
    """
    from flows.deployments import DeploymentFileError, nightly_deployments, refreshed_prefect_yaml

    loaded = _loaded(config)
    project = file.resolve().parent
    deployments = nightly_deployments(loaded, config, project)
    try:
        existing = file.read_text(encoding="utf-8") if file.is_file() else None
        text = refreshed_prefect_yaml(existing, deployments, pool)
    except (OSError, UnicodeDecodeError, DeploymentFileError) as error:
        raise fail(f"{file}: {error}", 2) from None
    if check:
        if text != existing:
            raise fail(f"{file} is not up to date with {config}: run okr-sync deployments --config {config}", 1)
        console.print(f"{file}: up to date with {config}")
        return
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as error:
        raise fail(f"cannot write {file}: {error.strerror or error}", 2) from None
    for deployment in deployments:
        console.print(f"nightly_sync/{deployment.name}: '{deployment.cron}' {deployment.timezone}, "
                      f"pool {pool}" + (f", org {deployment.org}" if deployment.org else ""), highlight=False)
    console.print(f"wrote {file}; register with: prefect deploy --all (run from {project})", highlight=False)


def serve_command(config: ConfigOption, org: OrgOption = None) -> None:
    """Serve the config's nightly deployments from this machine until Ctrl-C: no work pool, no worker.

    Each scheduled run starts in a process of its own here, with this shell's environment
    (credentials, store URLs) and the Prefect API of $PREFECT_API_URL.
    """
    from flows.deployments import nightly_deployments

    loaded = _loaded(config)
    chosen = _chosen(nightly_deployments(loaded, config), org)
    runner = [deployment.runner_deployment() for deployment in chosen]
    for deployment in chosen:
        console.print(f"serving nightly_sync/{escape(deployment.name)}: '{deployment.cron}' {deployment.timezone}",
                      highlight=False)
    from prefect import serve

    serve(*runner, print_starting_message=False)
