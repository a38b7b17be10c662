"""Fields of related records in rules: a deal's account, an activity's or a line item's deal."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from connectors.store import Account, Activity, Deal, LineItem
from okr_mapping import ConfigError, compute_key_results, parse_config
from okr_mapping.config import SimpleMetric
from okr_mapping.metrics import build_query, evaluate_metric
from okr_mapping.periods import FiscalCalendar

Q4 = FiscalCalendar(1).quarter(2026, 4)
AS_OF = date(2026, 11, 25)


def _add(engine: Engine, model: Any, source: str = "salesforce", **row: Any) -> None:
    with engine.begin() as conn:
        conn.execute(insert(model.__table__), [{"source": source, "is_deleted": False, **row}])


@pytest.fixture
def org(engine: Engine) -> Engine:
    """Two accounts (Germany / EMEA, Japan / APAC), three deals, calls and line items on them."""
    for source in ("salesforce", "hubspot"):  # the same rows in both CRMs: rules keep to one of them
        _add(engine, Account, source, source_id="A1", country="Germany", custom={"region": "EMEA"})
        _add(engine, Account, source, source_id="A2", country="Japan", custom={"region": "APAC"})
        won = {"is_won": True, "is_closed": True, "close_date": date(2026, 11, 2)}
        _add(engine, Deal, source, source_id="D1", account_id="A1", amount=100.0, **won)
        _add(engine, Deal, source, source_id="D2", account_id="A2", amount=200.0, **won)
        _add(engine, Deal, source, source_id="D3", account_id="A1", amount=400.0, is_won=False, is_closed=False,
             close_date=date(2026, 12, 20))
        _add(engine, Deal, source, source_id="D4", account_id="A-gone", amount=800.0, **won)  # account not synced
        for number, deal in enumerate(("D1", "D1", "D2", "D3")):
            _add(engine, Activity, source, source_id=f"C{number}", kind="call", deal_id=deal,
                 activity_date=date(2026, 10, 20))
        _add(engine, LineItem, source, source_id="L1", deal_id="D1", product_family="Platform", total_price=60.0,
             created_date=date(2026, 10, 1))
        _add(engine, LineItem, source, source_id="L2", deal_id="D1", product_family="Services", total_price=40.0,
             created_date=date(2026, 10, 1))
        _add(engine, LineItem, source, source_id="L3", deal_id="D3", product_family="Platform", total_price=400.0,
             created_date=date(2026, 10, 1))
    return engine


def _value(engine: Engine, **spec: Any) -> float:
    with engine.connect() as conn:
        return evaluate_metric(conn, SimpleMetric.model_validate(spec), "salesforce", Q4)[None].value


def test_deals_filtered_by_their_accounts_country(org: Engine) -> None:
    assert _value(org, entity="deal", measure="sum(amount)", where={"account.country": "Germany"}) == 500
    assert _value(org, entity="deal", measure="count", where={"not": {"account.country": "Germany"}}) == 2


def test_calls_on_won_deals_and_line_items_by_their_deals_close_date(org: Engine) -> None:
    assert _value(org, entity="activity", measure="count", where={"deal.is_won": True}) == 3
    spec = {"entity": "line_item", "measure": "sum(total_price)", "time": "deal.close_date",
            "where": {"product_family": "Platform"}}
    assert _value(org, **spec) == 460  # both deals close in Q4
    assert _value(org, **{**spec, "where": {"product_family": "Platform", "deal.is_won": True}}) == 60


CONFIG = """\
custom_fields:
  account:
    region: {salesforce: Region__c, hubspot: region}
metrics:
  emea_revenue:
    entity: deal
    measure: sum(amount)
    where: {is_won: true, account.region: EMEA}
    time: close_date
objectives:
  - id: regions
    title: Grow in EMEA
    period: 2026-Q4
    key_results:
      - {id: emea, metric: emea_revenue, target: 1000}
"""


def test_a_custom_field_of_the_related_account(org: Engine) -> None:
    config = parse_config(CONFIG, "rules.yaml")
    for source in ("salesforce", "hubspot"):
        (result,) = compute_key_results(org, config, source=source, as_of=AS_OF)
        assert result.value == 100


def test_a_misspelt_related_field_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace("account.region: EMEA", "account.contry: EMEA"), "rules.yaml")
    (error,) = [issue for issue in caught.value.errors if "account.contry" in issue.message]
    assert error.line == 8 and error.suggestion == "account.country"


def test_related_fields_join_only_when_used() -> None:
    plain = SimpleMetric.model_validate({"entity": "deal", "measure": "count"})
    related = SimpleMetric.model_validate({"entity": "deal", "measure": "count", "where": {"account.country": "Japan"}})
    assert "JOIN" not in str(build_query(plain, None, "salesforce", Q4).compile(dialect=postgresql.dialect()))
    sql = str(build_query(related, None, "salesforce", Q4).compile(dialect=postgresql.dialect()))
    assert "LEFT OUTER JOIN account ON account.source = deal.source AND account.source_id = deal.account_id" in sql


BY_REGION = CONFIG.replace("where: {is_won: true, account.region: EMEA}", "where: {is_won: true}").replace(
    "      - {id: emea, metric: emea_revenue, target: 1000}",
    "      - {id: by-region, metric: emea_revenue, breakdown: account.region, target: {each: 150}}\n"
    "      - {id: by-type, metric: emea_revenue, breakdown: deal_type, target: {each: 150}}")


def test_one_key_result_per_value_of_a_field_of_the_related_account(org: Engine) -> None:
    config = parse_config(BY_REGION, "rules.yaml")
    results = compute_key_results(org, config, source="salesforce", as_of=AS_OF)
    by_region = {result.group: result.value for result in results if result.kr_id == "by-region"}
    assert by_region["EMEA"] == 100 and by_region["APAC"] == 200
    # the deal whose account was never synced has a group of its own
    assert len(by_region) == 3 and sum(by_region.values()) == 1100


@pytest.mark.parametrize(("breakdown", "message", "suggestion"), [
    ("account.regoin", "'account.regoin' is not a field of deal", "account.region"),
    ("amount", "'amount' is a number, not a text field of deal", None),
    ("temas", "'temas' is not a field of deal", "team"),
])
def test_a_breakdown_must_be_owner_team_or_a_text_field(breakdown: str, message: str, suggestion: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BY_REGION.replace("breakdown: account.region", f"breakdown: {breakdown}"), "rules.yaml")
    (error,) = [issue for issue in caught.value.errors if message in issue.message]
    assert error.line == 15 and error.suggestion == suggestion
