from okr_mapping.errors import ConfigError, Issue, did_you_mean, format_path


def test_format_path() -> None:
    assert format_path(("objectives", 0, "key_results", 2, "target")) == "objectives[0].key_results[2].target"
    assert format_path(()) == ""


def test_did_you_mean() -> None:
    assert did_you_mean("closed_won_revenu", ["closed_won_revenue", "win_rate"]) == "closed_won_revenue"
    assert did_you_mean("Deal", ["deal", "activity"]) == "deal"
    assert did_you_mean("zzz", ["deal", "activity"]) is None
    assert did_you_mean(5, ["deal"]) is None


def test_render_without_position_or_path() -> None:
    assert Issue("error", "the config file does not exist", file="a.yaml").render() == (
        "a.yaml: error: the config file does not exist"
    )


def test_config_error_splits_levels_and_renders_lines() -> None:
    error = ConfigError(
        [
            Issue("warning", "unused", ("metrics", "x"), "a.yaml", 2, 3),
            Issue("error", "bad", ("source",), "a.yaml", 1, 9, suggestion="hubspot"),
        ]
    )
    assert len(error.errors) == 1 and len(error.warnings) == 1
    assert str(error).splitlines() == [
        "a.yaml:2:3: warning: metrics.x: unused",
        "a.yaml:1:9: error: source: bad — did you mean 'hubspot'?",
    ]
