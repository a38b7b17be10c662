"""Objectives in a tree (company -> team -> rep) rolled up with weights; owners matched to CRM users by email."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from okr_mapping import ConfigError, compute_key_results, parse_config, rollup_objectives
from okr_mapping.errors import Issue

from .conftest import Adder

AS_OF = date(2026, 12, 31)  # the period is over: status is about the score alone
CONFIG = """\
metrics:
  won_revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
  won_deals: {entity: deal, measure: count, where: {is_won: true}, time: close_date}
objectives:
  - id: company
    title: Grow the company
    period: 2026-Q4
    key_results:
      - {id: revenue, metric: won_revenue, target: 4000}
  - id: east
    title: East grows
    period: 2026-Q4
    parent: company
    weight: 3
    owner: Ann@Example.com
    key_results:
      - {id: deals, metric: won_deals, target: 4}
      - {id: revenue, metric: won_revenue, target: 1000, weight: 3}
  - id: ann
    title: Ann's own goals
    period: 2026-Q4
    parent: east
    owner: nobody@example.com
    key_results:
      - {id: deals, metric: won_deals, target: 1, owner: ann@example.com}
"""


def _config(text: str = CONFIG):
    return parse_config(text, "rules.yaml")


def test_a_parent_weighs_its_children_like_key_results(engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    add_deal(amount=1000.0)
    add_deal(amount=1000.0)
    config = _config()
    warnings: list[Issue] = []
    results = compute_key_results(engine, config, source="salesforce", as_of=AS_OF, warnings=warnings)
    rolled = {objective.objective_id: objective for objective in rollup_objectives(results, config)}
    # ann: 2 of 1 deals -> score 1.0; east: deals 2/4 = 0.5 (weight 1), revenue 1.0 (weight 3), ann 1.0 (weight 1)
    assert rolled["ann"].score == pytest.approx(1.0)
    assert rolled["east"].score == pytest.approx((0.5 + 3 * 1.0 + 1.0) / 5)
    # company: revenue 2000 / 4000 = 0.5 (weight 1), east (weight 3)
    assert rolled["company"].score == pytest.approx((0.5 + 3 * rolled["east"].score) / 4, abs=1e-4)
    assert (rolled["company"].children, rolled["east"].parent, rolled["east"].children) == (1, "company", 1)


def test_owners_are_matched_to_crm_users_by_email(engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    add_deal()
    warnings: list[Issue] = []
    results = compute_key_results(engine, _config(), source="salesforce", as_of=AS_OF, warnings=warnings)
    owners = {(result.objective_id, result.kr_id): (result.owner, result.owner_id) for result in results}
    assert owners[("east", "deals")] == ("Ann@Example.com", "u1")  # case does not matter
    assert owners[("ann", "deals")] == ("ann@example.com", "u1")
    assert owners[("company", "revenue")] == (None, None)
    (warning,) = [issue for issue in warnings if "nobody@example.com" in issue.message]
    assert warning.line == 23 and "no salesforce user" in warning.message and warning.suggestion is None


def test_a_mistyped_owner_email_gets_a_suggestion(engine: Engine, add_owner: Adder) -> None:
    add_owner("u1", "ann@example.com", "East")
    warnings: list[Issue] = []
    compute_key_results(engine, _config(CONFIG.replace("owner: ann@example.com", "owner: ann@exmaple.com")),
                        source="salesforce", as_of=AS_OF, warnings=warnings)
    (warning,) = [issue for issue in warnings if "ann@exmaple.com" in issue.message]
    assert warning.suggestion == "ann@example.com"


def test_no_owner_warning_before_any_user_was_synced(engine: Engine) -> None:
    warnings: list[Issue] = []
    compute_key_results(engine, _config(), source="salesforce", as_of=AS_OF, warnings=warnings)
    assert not [issue for issue in warnings if "user" in issue.message]


@pytest.mark.parametrize(("old", "new", "message", "suggestion"), [
    ("parent: company", "parent: compnay", "parent 'compnay' is not the id of an objective", "company"),
    ("key_results:\n      - {id: revenue, metric: won_revenue, target: 4000}",
     "parent: ann\n    key_results:\n      - {id: revenue, metric: won_revenue, target: 4000}",
     "rolls up into itself", None),
])
def test_parents_must_exist_and_form_a_tree(old: str, new: str, message: str, suggestion: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(CONFIG.replace(old, new, 1))
    matching = [error for error in caught.value.errors if message in error.message]
    assert matching and matching[0].suggestion == suggestion and matching[0].line is not None


def test_an_objective_without_results_yet_still_passes_its_childrens_scores_up(
        engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    """East's only KR is a breakdown with no group yet (no renewal closed this quarter); Ann's score
    still reaches the company through East."""
    add_owner("u1", "ann@example.com", "East")
    add_deal(amount=1000.0)  # New Business
    text = CONFIG.replace("objectives:", "  renewals: {entity: deal, measure: count, where: {deal_type: Renewal},"
                          " time: close_date}\nobjectives:")
    text = text.replace("      - {id: deals, metric: won_deals, target: 4}\n"
                        "      - {id: revenue, metric: won_revenue, target: 1000, weight: 3}",
                        "      - {id: teams, metric: renewals, breakdown: team, target: {each: 1}}")
    config = _config(text)
    results = compute_key_results(engine, config, source="salesforce", as_of=AS_OF)
    assert not [r for r in results if r.objective_id == "east"]  # no group: no row
    rolled = {objective.objective_id: objective for objective in rollup_objectives(results, config)}
    assert rolled["ann"].score == pytest.approx(1.0)
    assert (rolled["east"].score, rolled["east"].key_results, rolled["east"].children) == (1.0, 0, 1)
    assert rolled["east"].title == "East grows"
    assert rolled["company"].score == pytest.approx((1000 / 4000 + 3 * 1.0) / 4, abs=1e-4)
