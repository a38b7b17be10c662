"""`okr-sync deployments`: prefect.yaml entries from the config, kept in step with it; the schedule's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.deployments import FLOW_ENTRYPOINT
from okr_mapping.deployment_config import cron_problem
from tests.flows.conftest import DEMO, ROOT

MULTI = ROOT / "config" / "examples" / "multi-org.yaml"
runner = CliRunner()


def _deployments(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["deployments"]


def test_the_committed_prefect_yaml_is_the_demo_configs() -> None:
    result = runner.invoke(app, ["deployments", "--config", str(DEMO), "--check",
                                 "--file", str(ROOT / "prefect.yaml")])
    assert result.exit_code == 0, result.output
    (demo,) = _deployments(ROOT / "prefect.yaml")
    assert demo["parameters"] == {"config_path": "config/examples/demo.yaml"}
    assert demo["schedules"] == [{"cron": "0 2 * * *", "timezone": "America/New_York", "active": True}]
    assert demo["entrypoint"] == FLOW_ENTRYPOINT and demo["concurrency_limit"] == 1


def test_one_deployment_per_org_with_the_configs_cron_and_time_zone(tmp_path: Path) -> None:
    target = tmp_path / "prefect.yaml"
    result = runner.invoke(app, ["deployments", "--config", str(MULTI), "--pool", "night-pool", "--file", str(target)])
    assert result.exit_code == 0, result.output
    entries = {entry["name"]: entry for entry in _deployments(target)}
    assert list(entries) == ["acme-emea", "acme-us", "globex"]
    for name, entry in entries.items():
        assert entry["parameters"] == {"config_path": str(MULTI), "org": name}
        assert entry["schedules"] == [{"cron": "30 1 * * *", "timezone": "Europe/Berlin", "active": True}]
        assert entry["work_pool"]["name"] == "night-pool" and f"org:{name}" in entry["tags"]
    assert "secret" not in target.read_text().replace("secret_block", "").lower()


def test_a_refresh_replaces_the_configs_entries_and_keeps_the_others(tmp_path: Path) -> None:
    target = tmp_path / "prefect.yaml"
    target.write_text(yaml.safe_dump({"name": "mine", "pull": [{"step": 1}], "deployments": [
        {"name": "other", "entrypoint": "x.py:f", "parameters": {"config_path": "other.yaml"}},
        {"name": "globex", "entrypoint": FLOW_ENTRYPOINT, "parameters": {"config_path": str(MULTI)}}]}))
    assert runner.invoke(app, ["deployments", "--config", str(MULTI), "--file", str(target)]).exit_code == 0
    data = yaml.safe_load(target.read_text())
    assert data["name"] == "mine" and data["pull"] == [{"step": 1}]
    assert [entry["name"] for entry in data["deployments"]] == ["other", "acme-emea", "acme-us", "globex"]
    check = runner.invoke(app, ["deployments", "--config", str(MULTI), "--file", str(target), "--check"])
    assert check.exit_code == 0, check.output


def test_check_fails_when_the_file_is_behind_the_config(tmp_path: Path) -> None:
    target, config = tmp_path / "prefect.yaml", tmp_path / "demo.yaml"
    config.write_text(DEMO.read_text(encoding="utf-8"), encoding="utf-8")
    assert runner.invoke(app, ["deployments", "--config", str(config), "--file", str(target)]).exit_code == 0
    with config.open("a", encoding="utf-8") as file:
        file.write('\nschedule: {cron: "0 4 * * 1-5"}\n')
    result = runner.invoke(app, ["deployments", "--config", str(config), "--file", str(target), "--check"])
    assert result.exit_code == 1 and "not up to date" in result.output


def test_a_name_used_by_another_config_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "prefect.yaml"
    target.write_text(yaml.safe_dump({"deployments": [{"name": "demo", "parameters": {"config_path": "x.yaml"}}]}))
    result = runner.invoke(app, ["deployments", "--config", str(DEMO), "--file", str(target)])
    assert result.exit_code == 2 and "already has a deployment named 'demo'" in " ".join(result.output.split())


@pytest.mark.parametrize("command", ["deployments", "serve"])
def test_a_bad_config_exits_2_naming_the_line(command: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(DEMO.read_text(encoding="utf-8") + '\nschedule: {cron: "0 26 * * *"}\n', encoding="utf-8")
    result = runner.invoke(app, [command, "--config", str(config)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "bad.yaml:" in output and "the hour field '26' must be 0-23" in output and "Traceback" not in output


@pytest.mark.parametrize("command", ["deployments", "serve"])
def test_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--config" in result.output


def test_serve_refuses_an_unknown_org() -> None:
    result = runner.invoke(app, ["serve", "--config", str(MULTI), "--org", "nope"])
    assert result.exit_code == 2 and "acme-emea, acme-us, globex" in " ".join(result.output.split())


CRONS = ["0 2 * * *", "30 1 * * 1-5", "*/15 * * * *", "0 0 1 jan,jul *", "0 6 * * mon-fri", "5 4 * * 7",
         "0 0-23/2 * * *", "@daily", "0 2 * *", "0 24 * * *", "60 * * * *", "0 2 * * 8", "0 2 0 * *",
         "0 2 * 13 *", "0 5-1 * * *", "*/0 * * * *", "x 2 * * *", "0 2 * * * *", "0 2 * * funday", "1,2,x * * * *"]


STRICTER = {"0 5-1 * * *", "0 2 * * * *"}  # croniter's wrap-around ranges and seconds field: refused here


@pytest.mark.parametrize("expression", CRONS)
def test_the_cron_check_agrees_with_prefect(expression: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=expression, timezone="Europe/Berlin")
        prefect_accepts = True
    except ValidationError:
        prefect_accepts = False
    assert (cron_problem(expression) is None) == (prefect_accepts and expression not in STRICTER), \
        cron_problem(expression)
