"""count_first(field): first-time cohorts such as new customers and new markets entered."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from connectors.store import Account
from okr_mapping import ConfigError, compute_key_results, parse_config
from okr_mapping.config import RatioMetric, SimpleMetric
from okr_mapping.metrics import build_query, evaluate_metric
from okr_mapping.periods import FiscalCalendar
from okr_mapping.rules import MEASURE_HELP, RuleError, parse_measure

from .conftest import Adder

Q4 = FiscalCalendar(1).quarter(2026, 4)  # 2026-10-01 .. 2026-12-31
BEFORE = date(2026, 3, 15)
INSIDE = date(2026, 11, 10)
AFTER = date(2027, 1, 5)

NEW_CUSTOMERS = {"entity": "deal", "measure": "count_first(account_id)", "where": {"is_won": True},
                 "time": "close_date"}
NEW_MARKETS = {**NEW_CUSTOMERS, "measure": "count_first(account.country)"}


def _metric(**spec: Any) -> SimpleMetric:
    return SimpleMetric.model_validate(spec)


def _values(engine: Engine, metric: SimpleMetric | RatioMetric, breakdown: str | None = None) -> Any:
    with engine.connect() as conn:
        result = evaluate_metric(conn, metric, "salesforce", Q4, breakdown)
    return result if breakdown else result[None]


def _add_account(engine: Engine, source_id: str, country: str | None, source: str = "salesforce") -> None:
    with engine.begin() as conn:
        conn.execute(insert(Account.__table__), [  # type: ignore[attr-defined]
            {"source": source, "source_id": source_id, "country": country, "is_deleted": False, "custom": {}}
        ])


# ---------------------------------------------------------------- parsing and validation


def test_parse_count_first() -> None:
    measure = parse_measure("count_first( account.country )")
    assert (measure.func, measure.field, measure.is_first) == ("count_first", "account.country", True)
    assert measure.defined_on_empty  # counts: 0 of nothing, restarts each period
    assert not parse_measure("count_distinct(account_id)").is_first
    assert "count_first(field)" in MEASURE_HELP and "over all history" in MEASURE_HELP


@pytest.mark.parametrize(
    ("text", "message", "suggestion"),
    [
        ("count_first", "count_first needs a field in brackets, e.g. count_first(account_id)", None),
        ("count_first(account_id, 2)", "count_first takes one field only", None),
        ("count_frist(account_id)", "unknown measure 'count_frist'", "count_first"),
    ],
)
def test_bad_count_first(text: str, message: str, suggestion: str | None) -> None:
    with pytest.raises(RuleError) as caught:
        parse_measure(text)
    assert message in caught.value.message
    assert caught.value.suggestion == suggestion


def test_count_first_field_is_checked_with_a_suggestion() -> None:
    text = """\
metrics:
  a: {entity: deal, measure: count_first(acount_id), where: {is_won: true}}
  b: {entity: deal, measure: count_first(account.contry)}
  c: {entity: deal, measure: count_first(account.country)}
objectives:
  - id: o
    title: O
    key_results:
      - {id: a, metric: a, target: 1}
      - {id: b, metric: b, target: 1}
      - {id: c, metric: c, target: 1}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "rules.yaml")
    issues = caught.value.errors
    assert [(i.key_path, i.line, i.suggestion) for i in issues] == [
        ("metrics.a.measure", 2, "account_id"),
        ("metrics.b.measure", 3, "account.country"),
    ]
    assert "'acount_id' is not a field of deal" in issues[0].message


# ---------------------------------------------------------------- semantics on hand-built stores


def test_new_customers_count_accounts_whose_first_won_deal_is_in_the_period(
    engine: Engine, add_deal: Adder
) -> None:
    add_deal(account_id="A", close_date=BEFORE)  # customer since March: not new
    add_deal(account_id="A", close_date=INSIDE)
    add_deal(account_id="B", close_date=date(2026, 10, 1))  # new, twice in the quarter: counted once
    add_deal(account_id="B", close_date=date(2026, 12, 31))
    add_deal(account_id="C", close_date=BEFORE, is_won=False)  # lost before: the filter applies to history
    add_deal(account_id="C", close_date=INSIDE)
    add_deal(account_id="D", close_date=AFTER)  # first won next quarter
    add_deal(account_id="E", close_date=BEFORE, is_deleted=True)  # a deleted deal is no history
    add_deal(account_id="E", close_date=date(2026, 12, 31))  # the period's last day is inside
    add_deal(account_id="F", close_date=INSIDE, is_deleted=True)
    add_deal(account_id="G", close_date=BEFORE, source="hubspot")  # the other CRM neither hides
    add_deal(account_id="G", close_date=INSIDE)
    add_deal(account_id="H", close_date=INSIDE, source="hubspot")  # nor adds
    add_deal(account_id=None, close_date=INSIDE)  # empty values are no customer
    add_deal(account_id="", close_date=INSIDE)
    add_deal(account_id="I", close_date=None)  # no date: never first
    add_deal(account_id="I", close_date=BEFORE)
    add_deal(account_id="J", close_date=None)

    value = _values(engine, _metric(**NEW_CUSTOMERS))
    assert (value.value, value.rows, value.defined) == (4, 4, True)  # B, C, E, G
    before = _metric(**NEW_CUSTOMERS)
    with engine.connect() as conn:
        q1 = evaluate_metric(conn, before, "salesforce", FiscalCalendar(1).quarter(2026, 1))[None]
    assert (q1.value, q1.defined) == (2, True)  # A and I in March (G's March deal is HubSpot's)
    unfiltered = _values(engine, _metric(entity="deal", measure="count_first(account_id)"))
    assert unfiltered.value == 3  # B, E, G: C's lost March deal was its first
    empty = _values(engine, _metric(entity="deal", measure="count_first(account_id)", where={"amount": -1}))
    assert (empty.value, empty.rows, empty.defined) == (0, 0, True)


def test_new_markets_read_the_related_account_country(engine: Engine, add_deal: Adder) -> None:
    for account, country in (("A1", "Germany"), ("A2", "Germany"), ("A3", "France"), ("A4", "France"),
                             ("A5", None), ("A6", "Spain"), ("A7", "Italy")):
        _add_account(engine, account, country)
    _add_account(engine, "A8", "Portugal", source="hubspot")
    add_deal(account_id="A1", close_date=BEFORE)  # Germany entered in March
    add_deal(account_id="A2", close_date=INSIDE)  # a new German customer is no new market
    add_deal(account_id="A3", close_date=INSIDE)  # France: new this quarter
    add_deal(account_id="A4", close_date=date(2026, 12, 1))
    add_deal(account_id="A5", close_date=INSIDE)  # no country
    add_deal(account_id="A6", close_date=INSIDE, is_won=False)  # Spain: lost only
    add_deal(account_id="A7", close_date=INSIDE)  # Italy: new
    add_deal(account_id="A8", close_date=INSIDE)  # its account is in the other CRM: no country here
    add_deal(account_id="A9", close_date=INSIDE)  # no account record at all
    assert _values(engine, _metric(**NEW_MARKETS)).value == 2  # France, Italy
    germany = _metric(**{**NEW_MARKETS, "where": {"is_won": True, "account.country": {"ne": "Italy"}}})
    assert _values(engine, germany).value == 1


def test_breakdown_gives_each_value_to_the_group_of_its_first_record(
    engine: Engine, add_deal: Adder, add_owner: Adder
) -> None:
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u2", "bob@acme.test", "West")
    add_owner("u3", "cy@acme.test", "West")
    add_deal(source_id="X1", account_id="A", owner_id="u1", close_date=BEFORE, deal_type="Renewal")
    add_deal(source_id="X2", account_id="A", owner_id="u2", close_date=INSIDE)  # A is not new, not even for bob
    add_deal(source_id="X4", account_id="B", owner_id="u2", close_date=date(2026, 10, 5))
    add_deal(source_id="X3", account_id="B", owner_id="u1", close_date=date(2026, 10, 20))  # B is bob's
    add_deal(source_id="X6", account_id="C", owner_id="u3", close_date=INSIDE, deal_type="Upsell")
    add_deal(source_id="X5", account_id="C", owner_id="u1", close_date=INSIDE)  # same day: smaller id wins
    add_deal(source_id="X7", account_id="D", owner_id="u9", close_date=INSIDE)  # an owner not in the table
    add_deal(source_id="X8", account_id="E", owner_id=None, close_date=INSIDE)  # no owner at all
    metric = _metric(**NEW_CUSTOMERS)
    by_owner = {key: value.value for key, value in _values(engine, metric, "owner").items()}
    assert by_owner == {"bob@acme.test": 1, "ann@acme.test": 1, "u9": 1, None: 1}
    by_team = {key: value.value for key, value in _values(engine, metric, "team").items()}
    assert by_team == {"West": 1, "East": 1, None: 2}
    by_type = {key: value.value for key, value in _values(engine, metric, "deal_type").items()}
    assert by_type == {"New Business": 4}  # C's first record is X5 (New Business), not X6 (Upsell)
    assert sum(by_owner.values()) == _values(engine, metric).value


def test_ratio_with_count_first_on_one_side(engine: Engine, add_deal: Adder) -> None:
    add_deal(account_id="A", close_date=BEFORE)
    add_deal(account_id="A", close_date=INSIDE)
    add_deal(account_id="B", close_date=INSIDE)
    add_deal(account_id="C", close_date=INSIDE)
    add_deal(account_id="D", close_date=INSIDE, is_won=False)
    ratio = RatioMetric.model_validate({
        "ratio": {
            "numerator": {"entity": "deal", "measure": "count_first(account_id)", "where": {"is_won": True}},
            "denominator": {"entity": "deal", "measure": "count_distinct(account_id)", "where": {"is_won": True}},
        },
        "time": "close_date",
        "unit": "%",
    })
    value = _values(engine, ratio)
    assert value.value == pytest.approx(200 / 3)  # B and C of A, B, C
    assert value.defined


def test_key_results_treat_count_first_as_a_count(engine: Engine, add_deal: Adder) -> None:
    add_deal(account_id="A", close_date=date(2026, 8, 1))  # new last quarter
    add_deal(account_id="B", close_date=date(2026, 9, 1))
    add_deal(account_id="B", close_date=INSIDE)
    add_deal(account_id="C", close_date=INSIDE)
    add_deal(account_id="D", close_date=INSIDE)
    add_deal(account_id="E", close_date=INSIDE)
    text = """\
metrics:
  new_customers: {entity: deal, measure: count_first(account_id), where: {is_won: true}, time: close_date}
objectives:
  - id: o
    title: O
    period: 2026-Q4
    key_results:
      - {id: more, metric: new_customers, target: {change: "+100%", vs: previous_period}}
      - {id: fixed, metric: new_customers, target: 6}
"""
    config = parse_config(text, "rules.yaml")
    assert config.warnings == []
    results = {kr.kr_id: kr for kr in compute_key_results(engine, config, as_of=date(2026, 12, 31))}
    more = results["more"]
    assert (more.value, more.baseline, more.target) == (3, 0, 4)  # progress from 0, like a count
    assert results["fixed"].value == 3


# ---------------------------------------------------------------- PostgreSQL


def test_count_first_compiles_for_postgres() -> None:
    compiled = build_query(_metric(**NEW_MARKETS), "close_date", "salesforce", Q4, "team").compile(
        dialect=postgresql.dialect()
    )
    sql = str(compiled)
    assert "row_number() OVER (PARTITION BY account.country ORDER BY deal.close_date, deal.source_id)" in sql
    assert "LEFT OUTER JOIN account ON account.source = deal.source" in sql
    assert "LEFT OUTER JOIN owner" in sql
    assert "ranked.n = " in sql and "GROUP BY ranked.group_key" in sql
    assert sql.count("ranked.first_date >= ") == 1 and sql.count("deal.close_date >= ") == 0  # all history inside
    assert {Q4.start, Q4.end, "salesforce", ""} <= set(compiled.params.values())
    whole = str(build_query(_metric(**NEW_CUSTOMERS), None, "salesforce", Q4).compile(dialect=postgresql.dialect()))
    assert "min(deal.close_date) AS first_date" in whole and "GROUP BY deal.account_id" in whole
    assert "julianday" not in sql + whole


# ---------------------------------------------------------------- brute force


@pytest.mark.parametrize("seed", range(5))
def test_count_first_matches_python_on_a_random_store(
    engine: Engine, add_deal: Adder, add_owner: Adder, seed: int
) -> None:
    rng = random.Random(seed)
    teams = {"u1": "East", "u2": "West", "u3": "West"}
    emails = {"u1": "ann@acme.test", "u2": "bob@acme.test", "u3": "cy@acme.test"}
    for owner, team in teams.items():
        add_owner(owner, emails[owner], team)
    countries = {f"A{i}": rng.choice(["DE", "FR", "ES", "IT", None]) for i in range(12)}
    for account, country in countries.items():
        _add_account(engine, account, country)
    rows: list[dict[str, Any]] = []
    days = (date(2027, 3, 31) - date(2025, 6, 1)).days
    for index in range(rng.randint(0, 60)):
        row = {
            "source_id": f"R{rng.randint(0, 999):03d}-{index}",
            "account_id": rng.choice([*countries, "A99", None, ""]),
            "owner_id": rng.choice(["u1", "u2", "u3", "u9", None]),
            "close_date": rng.choice([None, *[date(2025, 6, 1) + timedelta(days=rng.randint(0, days))] * 8]),
            "is_won": rng.random() < 0.7,
            "is_deleted": rng.random() < 0.1,
            "source": rng.choice(["salesforce"] * 5 + ["hubspot"]),
            "deal_type": rng.choice(["New Business", "Renewal", None]),
        }
        if rng.random() < 0.3 and rows:  # same-day ties
            row["close_date"] = rng.choice(rows)["close_date"]
        add_deal(**row)
        rows.append(row)

    def owner_key(row: dict[str, Any]) -> str | None:
        return emails.get(row["owner_id"], row["owner_id"])

    def team_key(row: dict[str, Any]) -> str | None:
        return teams.get(row["owner_id"] or "")

    keys = {
        "account_id": lambda row: row["account_id"],
        "account.country": lambda row: countries.get(row["account_id"] or ""),
    }
    for field, value_of in keys.items():
        firsts: dict[str, dict[str, Any]] = {}
        for row in rows:
            value = value_of(row)
            if (row["source"] != "salesforce" or row["is_deleted"] or not row["is_won"]
                    or row["close_date"] is None or value in (None, "")):
                continue
            best = firsts.get(value)
            if best is None or (row["close_date"], row["source_id"]) < (best["close_date"], best["source_id"]):
                firsts[value] = row
        new = [row for row in firsts.values() if Q4.start <= row["close_date"] <= Q4.end]
        metric = _metric(**{**NEW_CUSTOMERS, "measure": f"count_first({field})"})
        assert _values(engine, metric).value == len(new), field
        for breakdown, group_of in (("owner", owner_key), ("team", team_key), ("deal_type", lambda r: r["deal_type"])):
            expected: dict[str | None, float] = {}
            for row in new:
                expected[group_of(row)] = expected.get(group_of(row), 0) + 1
            found = {key: value.value for key, value in _values(engine, metric, breakdown).items()}
            assert found == expected, (field, breakdown)
