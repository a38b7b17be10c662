"""Custom fields: declared once per entity, checked like any rule field, read from the `custom` JSON."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from connectors.store import Account, Deal
from okr_mapping import ConfigError, compute_key_results, parse_config
from okr_mapping.errors import Issue
from okr_mapping.metrics import build_query
from okr_mapping.periods import FiscalCalendar

Q4 = FiscalCalendar(1).quarter(2026, 4)

CONFIG = """\
custom_fields:
  account:
    region: {salesforce: Region__c, hubspot: region}
    employees: {salesforce: NumberOfEmployees, type: number}
  deal:
    signed_on: {hubspot: contract_signed, type: date}
metrics:
  emea_accounts:
    entity: account
    measure: count
    where: {region: EMEA}
    time: created_date
  big_account_staff:
    entity: account
    measure: sum(employees)
    where: {employees: {gte: 100}}
    time: created_date
  signed_in_november:
    entity: deal
    measure: count
    where: {signed_on: {gte: 2026-11-01}}
objectives:
  - id: reach
    title: Grow our reach
    period: 2026-Q4
    key_results:
      - {id: emea, metric: emea_accounts, target: 10}
      - {id: staff, metric: big_account_staff, target: 1000}
      - {id: signed, metric: signed_in_november, target: 5}
"""


def _errors(text: str) -> list[Issue]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "rules.yaml")
    return caught.value.errors


def _add(engine: Engine, model: Any, **row: Any) -> None:
    with engine.begin() as conn:
        conn.execute(insert(model.__table__), [{"source": "salesforce", "is_deleted": False, **row}])


def test_each_crm_gets_only_the_fields_it_fills() -> None:
    config = parse_config(CONFIG, "rules.yaml")
    assert config.crm_custom_fields("salesforce") == {
        "account": {"region": "Region__c", "employees": "NumberOfEmployees"}}
    assert config.crm_custom_fields("hubspot") == {
        "account": {"region": "region"}, "deal": {"signed_on": "contract_signed"}}
    assert {"region", "employees"} <= set(config.entities["account"].fields)
    assert config.entities["deal"].fields["signed_on"].only_from == "hubspot"
    assert config.entities["account"].fields["region"].only_from is None


def test_rules_filter_and_sum_on_custom_fields(engine: Engine) -> None:
    created = date(2026, 10, 5)
    _add(engine, Account, source_id="A1", created_date=created, custom={"region": "EMEA", "employees": 250})
    _add(engine, Account, source_id="A2", created_date=created, custom={"region": "EMEA", "employees": 40})
    _add(engine, Account, source_id="A3", created_date=created, custom={"region": "AMER", "employees": 900})
    _add(engine, Account, source_id="A4", created_date=created, custom={})  # not filled: matches nothing
    _add(engine, Account, source_id="A5", created_date=date(2026, 7, 1), custom={"region": "EMEA"})  # Q3
    _add(engine, Deal, source="hubspot", source_id="D1", close_date=date(2026, 11, 20),
         custom={"signed_on": "2026-11-03"})
    _add(engine, Deal, source="hubspot", source_id="D2", close_date=date(2026, 11, 20),
         custom={"signed_on": "2026-10-30"})
    config = parse_config(CONFIG, "rules.yaml")
    salesforce = {result.kr_id: result.value for result in
                  compute_key_results(engine, config, source="salesforce", as_of=date(2026, 11, 25))}
    assert salesforce["emea"] == 2 and salesforce["staff"] == 250 + 900
    hubspot = {result.kr_id: result.value for result in
               compute_key_results(engine, config, source="hubspot", as_of=date(2026, 11, 25))}
    assert hubspot["signed"] == 1


def test_custom_fields_compile_to_json_access_on_postgresql() -> None:
    config = parse_config(CONFIG, "rules.yaml")
    metric = config.metrics["big_account_staff"]
    sql = str(build_query(metric, None, "salesforce", Q4, entities=config.entities).compile(
        dialect=postgresql.dialect()))
    assert "account.custom" in sql and "CAST" in sql


@pytest.mark.parametrize(("block", "expected"), [
    ("  acount:\n    region: {salesforce: Region__c}\n", "unknown entity 'acount'"),
    ("  account:\n    country: {salesforce: BillingCountry}\n", "'country' is already a field of account"),
    ("  account:\n    Region: {salesforce: Region__c}\n", "lower-case letters"),
    ("  account:\n    region: {description: no crm}\n", "at least one CRM"),
    ("  account:\n    region: {salesforce: \"Region__c, Name FROM User --\"}\n", "is not a salesforce field name"),
    ("  account:\n    region: {hubspot: Region}\n", "is not a hubspot field name"),
])
def test_bad_custom_fields_are_named_with_their_line(block: str, expected: str) -> None:
    text = "custom_fields:\n" + block + "metrics:" + CONFIG.split("metrics:", 1)[1]
    errors = [error for error in _errors(text) if expected in error.message]
    assert errors, [error.message for error in _errors(text)]
    assert errors[0].file == "rules.yaml" and errors[0].line in (2, 3)


def test_an_unknown_type_is_a_schema_error() -> None:
    text = CONFIG.replace("type: number", "type: integer")
    assert any("type" in error.key_path for error in _errors(text))


def test_a_rule_on_a_field_one_crm_fills_warns() -> None:
    config = parse_config(CONFIG, "rules.yaml")
    assert any("signed_on" in warning.message and "hubspot" in warning.message for warning in config.warnings)
