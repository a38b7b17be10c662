from pathlib import Path

import pytest

from okr_mapping import ConfigError, OkrConfig, check_file, load_config, parse_config
from okr_mapping.loader import parse_yaml

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
metrics:
  closed_won_revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
objectives:
  - id: grow
    title: Grow
    key_results:
      - {id: revenue, metric: closed_won_revenue, target: 500000}
"""


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config/x.yaml")
    return caught.value


def test_demo_config_loads_without_issues() -> None:
    config = load_config(ROOT / "config" / "examples" / "demo.yaml")
    assert isinstance(config, OkrConfig)
    assert config.warnings == []
    kr_count = sum(len(objective.key_results) for objective in config.objectives)
    assert kr_count >= 6
    assert any(kr.breakdown == "owner" for o in config.objectives for kr in o.key_results)
    assert any(kr.type == "decrease" for o in config.objectives for kr in o.key_results)


def test_good_config_uses_defaults() -> None:
    config = parse_config(GOOD)
    assert config.source == "salesforce"
    assert config.fiscal_year_start_month == 1
    assert config.scoring.on_track == 0.95
    assert config.objectives[0].period == "current"


def test_positions_are_one_based_for_keys_and_values() -> None:
    _data, source_map, _issues = parse_yaml(GOOD)
    key = ("objectives", 0, "key_results", 0, "target")
    assert source_map.values[key].line == 7
    assert source_map.values[key].column == GOOD.splitlines()[6].index("500000") + 1
    assert source_map.keys[("metrics",)].line == 1
    assert source_map.keys[("metrics",)].column == 1


def test_error_deep_in_file_has_its_line_and_column() -> None:
    text = GOOD + "\n".join(
        [
            "  - id: second",
            "    title: Second",
            "    key_results:",
            "      - {id: a, metric: closed_won_revenue, target: 10}",
            "      - {id: b, metric: closed_won_revenue, target: 20}",
            "      - {id: c, metric: closed_won_revenu, target: 30}",
            "",
        ]
    )
    error = _error(text)
    assert len(error.issues) == 1
    issue = error.issues[0]
    assert (issue.line, issue.column) == (13, 25)
    assert issue.key_path == "objectives[1].key_results[2].metric"
    assert issue.suggestion == "closed_won_revenue"
    assert str(error) == (
        "config/x.yaml:13:25: error: objectives[1].key_results[2].metric: "
        "unknown metric 'closed_won_revenu' — did you mean 'closed_won_revenue'?"
    )


def test_unknown_key_points_at_the_key_with_suggestion() -> None:
    error = _error(GOOD.replace("    title: Grow", "    title: Grow\n    perod: current"))
    issue = error.issues[0]
    assert issue.key_path == "objectives[0].perod"
    assert (issue.line, issue.column) == (6, 5)
    assert issue.suggestion == "period"


def test_unknown_key_inside_union_member_suggests_from_that_member() -> None:
    text = GOOD.replace("target: 500000", "target: {change: '+10%', versus: previous_period}")
    issue = _error(text).issues[0]
    assert issue.key_path == "objectives[0].key_results[0].target.versus"
    # No close match, so the keys of the change target (not of the key result) are listed.
    assert issue.message == "unknown setting 'versus' (allowed here: change, vs)"


def test_misspelt_change_key_gives_one_clear_issue() -> None:
    text = GOOD.replace("target: 500000", "target: {chnge: '+10%'}")
    issues = _error(text).issues
    assert [issue.suggestion for issue in issues] == ["change"]


def test_all_issues_are_collected_from_schema_and_meaning_checks() -> None:
    text = GOOD.replace("metric: closed_won_revenue, target: 500000", "metric: revenue, target: 5, type: up")
    text = text.replace("objectives:", "sorce: hubspot\nobjectives:")
    messages = [issue.message for issue in _error(text).issues]
    assert any("unknown setting 'sorce'" in message for message in messages)
    assert any("'up' is not allowed" in message for message in messages)
    assert any("unknown metric 'revenue'" in message for message in messages)


def test_yaml_syntax_error_becomes_config_error_with_line() -> None:
    error = _error("metrics:\n  a: {entity: deal\nobjectives: []\n")
    issue = error.issues[0]
    assert issue.file == "config/x.yaml"
    assert issue.line == 3
    assert "not valid YAML" in issue.message


def test_duplicate_keys_are_reported() -> None:
    error = _error(GOOD.replace("    title: Grow", "    title: Grow\n    title: Grow again"))
    issue = error.issues[0]
    assert "appears twice" in issue.message
    assert issue.line == 6


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_and_non_mapping() -> None:
    assert "empty" in str(_error(""))
    assert "mapping of settings" in str(_error("- just\n- a list\n"))


def test_unused_metric_is_a_warning_not_an_error(tmp_path: Path) -> None:
    text = GOOD.replace("metrics:\n", "metrics:\n  spare: {entity: activity, measure: count}\n")
    path = tmp_path / "okr.yaml"
    path.write_text(text)
    config = load_config(path)
    assert [issue.level for issue in config.warnings] == ["warning"]
    assert config.warnings[0].line == 2
    assert check_file(path) == config.warnings


def test_check_file_returns_errors_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "okr.yaml"
    path.write_text(GOOD.replace("closed_won_revenue, target", "nope, target"))
    issues = check_file(path)
    assert [issue.level for issue in issues] == ["warning", "error"]  # closed_won_revenue is now unused
    assert "unknown metric 'nope'" in issues[1].message
    assert issues[1].file == str(path)


def test_merge_keys_may_be_overridden_without_duplicate_error() -> None:
    text = GOOD.replace(
        "metrics:\n",
        "metrics:\n  base: &won {entity: deal, measure: count, where: {is_won: true}}\n"
        "  won_amount: {<<: *won, measure: sum(amount)}\n",
    ).replace("metric: closed_won_revenue, target: 500000", "metric: won_amount, target: 5")
    config = parse_config(text)
    assert config.metrics["won_amount"].measure == "sum(amount)"  # type: ignore[union-attr]
    assert config.metrics["won_amount"].where == {"is_won": True}  # type: ignore[union-attr]


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(ConfigError, match="too much"):
        parse_config("\n".join(lines) + "\n")
