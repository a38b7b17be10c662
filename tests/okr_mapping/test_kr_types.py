"""stay_above / stay_below, milestones, manual check-ins, per-group overrides and the new periods."""

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import ConfigError, KrResult, compute_key_results, load_config, parse_config
from okr_mapping.errors import Issue

from .conftest import Adder

AS_OF = date(2026, 11, 15)  # mid 2026-Q4

METRICS = """\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}
  deal_size: {entity: deal, measure: avg(amount), where: {is_won: true}}
  calls: {entity: activity, measure: count, where: {kind: call}}
"""


def _config(krs: str, extra: str = "", period: str = "current") -> str:
    return (
        METRICS
        + extra
        + f"objectives:\n  - id: obj\n    title: Objective\n    period: {period}\n    key_results:\n"
        + "".join(f"      - {line}\n" for line in krs.strip().splitlines())
    )


def _by_id(results: list[KrResult]) -> dict[str, KrResult]:
    return {result.kr_id if result.group is None else f"{result.kr_id}:{result.group}": result for result in results}


def _error(text: str, file: str = "config/x.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file)
    return caught.value


@pytest.fixture
def org(add_deal: Adder, add_owner: Adder, add_call: Adder) -> None:
    add_owner("u1", "ann@acme.com", "Enterprise")
    add_owner("u2", "bob@acme.com", "SMB")
    add_deal(owner_id="u1", amount=300)  # 2026-Q4: Ann 300 + 200, Bob 250 -> 750, avg 250
    add_deal(owner_id="u1", amount=200)
    add_deal(owner_id="u2", amount=250)
    add_deal(owner_id="u2", amount=4000, close_date=date(2026, 5, 5))  # 2026-Q2, i.e. H1
    add_call(activity_date=date(2026, 11, 1))


# --- stay_above / stay_below -------------------------------------------------------------------


@pytest.mark.usefixtures("org")
def test_stay_above_and_below_are_binary(engine: Engine) -> None:
    config = parse_config(
        _config(
            """
{id: above-ok, metric: deal_size, type: stay_above, target: 250}
{id: above-no, metric: deal_size, type: stay_above, target: 251}
{id: below-ok, metric: deal_size, type: stay_below, target: 250}
{id: below-no, metric: deal_size, type: stay_below, target: 249.5}
"""
        )
    )
    results = _by_id(compute_key_results(engine, config, as_of=AS_OF))
    # The target itself is on the right side.
    assert (results["above-ok"].progress, results["above-ok"].status) == (1.0, "achieved")
    assert (results["above-no"].progress, results["above-no"].status) == (0.0, "off_track")
    assert (results["below-ok"].progress, results["below-ok"].status) == (1.0, "achieved")
    assert (results["below-no"].progress, results["below-no"].status) == (0.0, "off_track")
    assert results["above-ok"].value == 250 and results["above-ok"].kr_type == "stay_above"


@pytest.mark.usefixtures("org")
def test_stay_above_with_empty_average_is_not_achieved(engine: Engine) -> None:
    config = parse_config(_config("{id: a, metric: deal_size, type: stay_above, target: 0}", period="2025-Q1"))
    [result] = compute_key_results(engine, config, as_of=AS_OF)
    assert (result.progress, result.status) == (0.0, "off_track")


@pytest.mark.usefixtures("org")
def test_stay_above_per_group(engine: Engine) -> None:
    config = parse_config(
        _config("{id: floor, metric: revenue, type: stay_above, breakdown: owner, target: {each: 300}}")
    )
    results = _by_id(compute_key_results(engine, config, as_of=AS_OF))
    assert results["floor:ann@acme.com"].status == "achieved"
    assert results["floor:bob@acme.com"].status == "off_track"


@pytest.mark.parametrize(
    ("kr", "path", "message"),
    [
        ("{id: a, metric: revenue, type: stay_above, baseline: 3, target: 5}", "baseline", "remove the baseline"),
        ("{id: a, type: stay_below, target: 5}", "metric", "needs a metric"),
        ("{id: a, metric: revenue, type: stay_above}", "target", "needs a target"),
        ("{id: a, metric: revenue, type: stay_abov, target: 5}", "type", "stay_above"),
    ],
)
def test_stay_errors(kr: str, path: str, message: str) -> None:
    error = _error(_config(kr))
    [issue] = error.errors
    assert issue.file == "config/x.yaml" and issue.line == 10
    assert issue.key_path == f"objectives[0].key_results[0].{path}"
    assert message in issue.render()


# --- milestones --------------------------------------------------------------------------------


@pytest.mark.usefixtures("org")
def test_milestones_by_flag_and_by_metric(engine: Engine) -> None:
    config = parse_config(
        _config(
            """
{id: live, type: milestone, done: true}
{id: pending, type: milestone, done: false}
{id: called, type: milestone, metric: calls}
{id: big, type: milestone, metric: revenue, title: Any revenue}
""",
            period="2026-Q4",
        ).replace(
            "revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}",
            "revenue: {entity: deal, measure: sum(amount), where: {is_won: true, amount: {gt: 10000}}}",
        ),
        "config/x.yaml",
    )
    results = _by_id(compute_key_results(engine, config, as_of=AS_OF))
    assert (results["live"].value, results["live"].target, results["live"].progress) == (1, 1, 1)
    assert results["live"].status == "achieved" and results["live"].metric == ""
    assert (results["pending"].progress, results["pending"].status) == (0, "on_track")
    assert (results["called"].progress, results["called"].sample_size) == (1, 1)
    assert (results["big"].progress, results["big"].value) == (0, 0)
    # Once the period is over, a milestone not done is off track.
    [late] = [r for r in compute_key_results(engine, config, as_of=date(2027, 1, 2)) if r.kr_id == "pending"]
    assert late.status == "off_track"


@pytest.mark.parametrize(
    ("kr", "path", "message"),
    [
        ("{id: a, type: milestone}", "type", "either done: true/false or a metric"),
        ("{id: a, type: milestone, done: true, metric: calls}", "type", "not both"),
        ("{id: a, type: milestone, done: true, target: 1}", "target", "remove the target"),
        ("{id: a, metric: calls, target: 1, done: true}", "done", "milestones only"),
        ("{id: a, type: milestone, metric: calls, breakdown: owner}", "breakdown", "cannot be broken down"),
        ("{id: a, type: milestone, metric: cals}", "metric", "did you mean 'calls'"),
    ],
)
def test_milestone_errors(kr: str, path: str, message: str) -> None:
    [issue] = _error(_config(kr)).errors
    assert issue.line == 10 and issue.key_path == f"objectives[0].key_results[0].{path}"
    assert message in issue.render()


# --- manual check-ins --------------------------------------------------------------------------

MANUAL = """\
{id: nps, type: manual, target: 90}
{id: admin, type: manual, baseline: 40, target: 30}
{id: fresh, type: manual, target: 10}
"""


def _write(tmp_path: Path, checkins: str, krs: str = MANUAL, name: str = "checkins.yaml") -> Path:
    config = tmp_path / "okrs.yaml"
    config.write_text(_config(krs, extra=f"checkins: {name}\n"), encoding="utf-8")
    (tmp_path / name).write_text(checkins, encoding="utf-8")
    return config


CHECKINS = """\
- {kr: obj.nps, value: 60, date: 2026-10-05, note: first survey}
- {kr: obj.nps, value: 81, date: 2026-11-14}
- {kr: obj.nps, value: 99, date: 2026-11-20, note: "after as_of, not counted yet"}
- {kr: obj.nps, value: 95, date: 2026-09-30, note: "last quarter, not this one"}
- {kr: obj.admin, value: 35, date: 2026-11-01}
"""


def test_manual_uses_latest_checkin_in_period_up_to_as_of(engine: Engine, tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, CHECKINS))
    results = _by_id(compute_key_results(engine, config, as_of=AS_OF))
    nps = results["nps"]
    assert (nps.value, nps.target, nps.progress, nps.sample_size) == (81, 90, 0.9, 1)
    assert nps.metric == "" and nps.title == "Nps" and nps.kr_type == "manual"
    # A manual target below its baseline reads as a decrease: 40 -> 35 of 40 -> 30.
    assert results["admin"].progress == 0.5
    # No check-in yet: value 0, progress 0 (also on the first day of the period).
    fresh = results["fresh"]
    assert (fresh.value, fresh.progress, fresh.sample_size) == (0, 0, 0)
    later = _by_id(compute_key_results(engine, config, as_of=date(2026, 11, 25)))
    assert later["nps"].value == 99 and later["nps"].status == "achieved"
    before_any = _by_id(compute_key_results(engine, config, as_of=date(2026, 10, 1)))
    assert before_any["nps"].value == 0 and before_any["admin"].progress == 0


def test_manual_decrease_without_checkin_has_no_progress(engine: Engine, tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "# nothing yet\n"))
    admin = _by_id(compute_key_results(engine, config, as_of=AS_OF))["admin"]
    assert (admin.value, admin.progress, admin.status) == (0, 0, "off_track")


TWO = "- {kr: obj.nps, value: 1, date: 2026-11-01}\n- {kr: obj.nps, value: 2, date: 2026-11-02}\n"


def test_unknown_checkin_kr_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, TWO.replace("obj.nps, value: 2", "obj.npz, value: 2"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [issue] = caught.value.errors
    assert issue.file == str(tmp_path / "checkins.yaml") and issue.line == 2
    assert "unknown key result 'obj.npz'" in issue.message and issue.suggestion == "obj.nps"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("- {kr: obj.nps, value: 1, dat: 2026-11-01}\n", 1, "unknown key 'dat'"),
        ("- {kr: obj.nps, value: 1}\n", 1, "'date' is required"),
        ("- {kr: obj.nps, value: lots, date: 2026-11-01}\n", 1, "value:"),
        (TWO.replace("2026-11-02", "2026-11-01"), 2, "two check-ins"),
        ("kr: obj.nps\n", 1, "is a list"),
        ("- {kr: obj.nps, value: [1, date: 2026-11-01}\n", 1, "not valid YAML"),
    ],
)
def test_bad_checkins(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    [issue] = caught.value.errors
    assert issue.file == str(tmp_path / "checkins.yaml") and issue.line == line
    assert message in issue.render()


def test_checkin_for_non_manual_kr(tmp_path: Path) -> None:
    krs = MANUAL + "{id: rev, metric: revenue, target: 5}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, "- {kr: obj.rev, value: 1, date: 2026-11-01}\n", krs))
    assert "only manual key results take check-ins" in caught.value.errors[0].message


def test_missing_checkin_file_points_at_the_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    (tmp_path / "checkins.yaml").unlink()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [issue] = caught.value.errors
    assert issue.file == str(path) and issue.line == 5 and issue.key_path == "checkins"


def test_manual_without_checkins_setting_warns() -> None:
    config = parse_config(_config("{id: nps, type: manual, target: 90}"))
    [warning] = [issue for issue in config.warnings if "checkins" in issue.message]
    assert warning.line == 10 and "add checkins:" in warning.message


@pytest.mark.parametrize(
    ("kr", "path", "message"),
    [
        ("{id: a, type: manual, metric: calls, target: 3}", "metric", "remove the metric"),
        ("{id: a, type: manual}", "target", "needs a target"),
        ("{id: a, type: manual, target: {change: '+10%'}}", "target", "number target"),
    ],
)
def test_manual_errors(kr: str, path: str, message: str) -> None:
    [issue] = _error(_config(kr)).errors
    assert issue.key_path == f"objectives[0].key_results[0].{path}" and message in issue.message


# --- per-group overrides -----------------------------------------------------------------------


@pytest.mark.usefixtures("org")
def test_overrides_by_email_and_team(engine: Engine) -> None:
    config = parse_config(
        _config(
            """
{id: rep, metric: revenue, breakdown: owner, target: {each: 1000, overrides: {"ann@acme.com": 500, "zed@acme.com": 9}}}
{id: team, metric: revenue, breakdown: team, target: {each: 100, overrides: {Enterprise: 1000}}}
"""
        ),
        "config/x.yaml",
    )
    warnings: list[Issue] = []
    results = _by_id(compute_key_results(engine, config, as_of=AS_OF, warnings=warnings))
    assert (results["rep:ann@acme.com"].target, results["rep:ann@acme.com"].progress) == (500, 1.0)
    assert (results["rep:bob@acme.com"].target, results["rep:bob@acme.com"].progress) == (1000, 0.25)
    assert (results["team:Enterprise"].target, results["team:Enterprise"].progress) == (1000, 0.5)
    assert results["team:SMB"].target == 100
    assert "rep:zed@acme.com" not in results
    [warning] = warnings
    assert warning.level == "warning" and warning.file == "config/x.yaml" and warning.line == 10
    assert "zed@acme.com" in warning.message


@pytest.mark.usefixtures("org")
def test_override_typo_suggests_a_seen_group(engine: Engine) -> None:
    config = parse_config(
        _config("{id: rep, metric: revenue, breakdown: owner, target: {each: 1, overrides: {ann@acme.con: 2}}}")
    )
    warnings: list[Issue] = []
    compute_key_results(engine, config, as_of=AS_OF, warnings=warnings)
    assert [w.suggestion for w in warnings] == ["ann@acme.com"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{each: 1, overides: {a: 2}}", "did you mean 'overrides'"),
        ("{each: 1, overrides: {a: lots}}", "number"),
        ("{each: 1, overrides: [a]}", ""),
    ],
)
def test_override_errors(target: str, message: str) -> None:
    [issue] = _error(_config(f"{{id: a, metric: revenue, breakdown: owner, target: {target}}}")).errors
    assert issue.line == 10 and issue.key_path.startswith("objectives[0].key_results[0].target")
    assert message in issue.render()


def test_overrides_need_a_breakdown() -> None:
    [issue] = _error(_config("{id: a, metric: revenue, target: {each: 1, overrides: {a: 2}}}")).errors
    assert "needs a breakdown" in issue.message


# --- periods in configs --------------------------------------------------------------------------


@pytest.mark.usefixtures("org")
@pytest.mark.parametrize(
    ("period", "label", "value"),
    [
        ("2026-Q4", "2026-Q4", 750),
        ("2026-H1", "2026-H1", 4000),
        ("current_half", "2026-H2", 750),
        ("FY2026", "FY2026", 4750),
        ("current_year", "FY2026", 4750),
        ("{start: 2026-05-01, end: 2026-11-10}", "2026-05-01_2026-11-10", 4750),
        ("{start: 2026-05-06, end: 2026-11-09}", "2026-05-06_2026-11-09", 0),
    ],
)
def test_periods_in_keys_and_values(engine: Engine, period: str, label: str, value: float) -> None:
    config = parse_config(_config("{id: rev, metric: revenue, target: 100}", period=period))
    [result] = compute_key_results(engine, config, as_of=AS_OF)
    assert result.key == f"obj.rev.{label}" and result.period == label and result.value == value


@pytest.mark.usefixtures("org")
def test_change_target_over_custom_period_uses_same_length_before(engine: Engine) -> None:
    # 2026-11-01..2026-11-30 (30 days); the previous period is 2026-10-02..2026-10-31: no deals there,
    # so an absolute change starts from 0.
    config = parse_config(
        _config("{id: rev, metric: revenue, target: {change: '+100'}}", period="{start: 2026-11-01, end: 2026-11-30}")
    )
    [result] = compute_key_results(engine, config, as_of=AS_OF)
    assert (result.value, result.target) == (750, 100)


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("current_hlf", "did you mean 'current_half'"),
        ("2026-H3", "not a period"),
        ("{start: 2026-12-15, end: 2026-10-01}", "before it starts"),
        ("{start: 2026-10-01, ends: 2026-12-15}", "did you mean 'end'"),
        ("{start: 2026-13-01, end: 2026-12-15}", "'2026-13-01' is not a valid date"),
    ],
)
def test_period_errors(period: str, message: str) -> None:
    issues = _error(_config("{id: rev, metric: revenue, target: 100}", period=period)).errors
    assert issues and all(issue.line == 8 for issue in issues)
    assert any(message in issue.render() for issue in issues)
