"""Meaning checks, seen the way a config author sees them: through parse_config."""

import pytest

from okr_mapping import ConfigError, parse_config
from okr_mapping.errors import Issue

HEADER = """\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}}
  calls: {entity: activity, measure: count}
objectives:
  - id: grow
    title: Grow
    key_results:
"""


def _issues(*key_results: str, metrics: str = "") -> list[Issue]:
    text = HEADER.replace("metrics:\n", "metrics:\n" + metrics)
    text += "".join(f"      - {kr}\n" for kr in key_results)
    text += "      - {id: keep-calls-used, metric: calls, target: 1}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.yaml")
    return caught.value.errors  # warnings (e.g. a metric left unused by the test) are not the point


def _only(*key_results: str, metrics: str = "") -> Issue:
    issues = _issues(*key_results, metrics=metrics)
    assert len(issues) == 1, issues
    return issues[0]


def test_unknown_entity_and_field_suggestions() -> None:
    issue = _only("{id: a, metric: m, target: 1}", metrics="  m: {entity: deals, measure: count}\n")
    assert issue.key_path == "metrics.m.entity"
    assert issue.suggestion == "deal"
    issue = _only("{id: a, metric: m, target: 1}", metrics="  m: {entity: deal, measure: sum(amout)}\n")
    assert issue.suggestion == "amount"
    assert issue.key_path == "metrics.m.measure"


def test_where_field_and_operator_checks() -> None:
    metric = "  m: {entity: deal, measure: count, where: {deal_typ: Renewal, amount: {gtt: 5}}}\n"
    issues = _issues("{id: a, metric: m, target: 1}", metrics=metric)
    assert [(issue.key_path, issue.suggestion) for issue in issues] == [
        ("metrics.m.where.deal_typ", "deal_type"),
        ("metrics.m.where.amount.gtt", "gt"),
    ]


def test_where_value_types_are_checked() -> None:
    where = "{is_won: 'yes', close_date: {gte: soon}, stage: 3}"
    metric = f"  m: {{entity: deal, measure: count, where: {where}}}\n"
    messages = [issue.message for issue in _issues("{id: a, metric: m, target: 1}", metrics=metric)]
    assert messages == [
        "'is_won' is true or false, got 'yes'",
        "'close_date' is a date; write it like 2026-01-31, or period_start / period_end, got 'soon'",
        "'stage' is text; put the value in quotes (got 3)",
    ]


def test_order_operators_need_numbers_or_dates() -> None:
    metric = "  m: {entity: deal, measure: count, where: {stage: {gt: B}}}\n"
    assert "compares numbers or dates" in _only("{id: a, metric: m, target: 1}", metrics=metric).message


def test_sum_needs_a_number_field_and_time_must_be_a_date() -> None:
    metric = "  m: {entity: deal, measure: avg(stage), time: amount}\n"
    messages = [issue.message for issue in _issues("{id: a, metric: m, target: 1}", metrics=metric)]
    assert messages[0].startswith("avg() needs a number field and 'stage' is text")
    assert messages[1].startswith("'amount' is not a date field of deal")


def test_bad_measure_syntax() -> None:
    issue = _only("{id: a, metric: m, target: 1}", metrics="  m: {entity: deal, measure: 'sum amount'}\n")
    assert "is not a measure" in issue.message
    issue = _only("{id: a, metric: m, target: 1}", metrics="  m: {entity: deal, measure: avg}\n")
    assert "avg needs a field" in issue.message


def test_ratio_sides_are_checked_separately() -> None:
    metric = (
        "  m:\n    ratio:\n      numerator: {entity: deal, measure: count}\n"
        "      denominator: {entity: deal, measure: count, where: {is_clsed: true}}\n"
    )
    issue = _only("{id: a, metric: m, target: 1}", metrics=metric)
    assert issue.key_path == "metrics.m.ratio.denominator.where.is_clsed"
    assert issue.suggestion == "is_closed"


def test_target_shape_rules() -> None:
    cases = {
        "{id: a, metric: revenue, target: {each: 5}}": "needs a breakdown",
        "{id: a, metric: revenue, target: 5, breakdown: owner}": "give the target per group",
        "{id: a, metric: revenue, baseline: 3, target: {change: '+5%'}}": "remove the baseline",
        "{id: a, metric: revenue, type: decrease, target: {change: '+5%'}}": "negative change",
    }
    for key_result, message in cases.items():
        assert message in _only(key_result).message
    issue = _only("{id: a, metric: revenue, target: {change: '-5%'}}")
    assert issue.key_path.endswith("target.change")
    assert "positive change" in issue.message


def test_baseline_rules() -> None:
    assert "needs a baseline" in _only("{id: a, metric: revenue, type: decrease, target: 5}").message
    assert "below the baseline" in _only("{id: a, metric: revenue, baseline: 10, target: 5}").message
    issue = _only("{id: a, metric: revenue, type: decrease, baseline: 10, target: 50}")
    assert "above the baseline" in issue.message


def test_duplicate_and_malformed_ids() -> None:
    issues = _issues("{id: a, metric: revenue, target: 1}", "{id: a, metric: revenue, target: 2}")
    assert [issue.message for issue in issues] == ["key result id 'a' is used twice; ids must be unique"]
    assert "no spaces or dots" in _only("{id: 'a.b', metric: revenue, target: 1}").message


def test_bad_period() -> None:
    text = HEADER.replace("    title: Grow\n", "    title: Grow\n    period: Q4\n")
    text += "      - {id: a, metric: revenue, target: 1}\n      - {id: b, metric: calls, target: 1}\n"
    with pytest.raises(ConfigError, match="'Q4' is not a period"):
        parse_config(text)


def test_change_accepts_plain_numbers_and_rejects_words() -> None:
    text = HEADER + "      - {id: a, metric: revenue, target: {change: 20000}}\n"
    text += "      - {id: b, metric: calls, target: {change: lots}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [issue.key_path for issue in caught.value.issues] == ["objectives[0].key_results[1].target.change"]


def test_a_field_only_one_crm_fills_is_a_warning_at_its_line() -> None:
    text = HEADER.replace("metrics:\n", "metrics:\n  emea: {entity: deal, measure: count_distinct(account_id),"
                          " where: {owner.region: EMEA}}\n")
    text += "      - {id: r, metric: revenue, target: 1}\n      - {id: c, metric: calls, target: 1}\n"
    text += "      - {id: e, metric: emea, target: 1}\n"
    config = parse_config(text, "x.yaml")  # a warning, not an error: the config loads
    warned = [(issue.line, issue.message) for issue in config.warnings]
    assert [line for line, _ in warned] == [2]  # account_id comes from both CRMs: no warning
    assert "'owner.region' is filled only from salesforce" in warned[0][1]
