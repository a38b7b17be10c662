from datetime import date
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from okr_mapping.config import RatioMetric, SimpleMetric
from okr_mapping.metrics import MetricValue, build_query, evaluate_metric
from okr_mapping.periods import FiscalCalendar

from .conftest import Adder

Q4 = FiscalCalendar(1).quarter(2026, 4)


def _metric(**spec: Any) -> SimpleMetric:
    return SimpleMetric.model_validate(spec)


def _value(
    engine: Engine, metric: SimpleMetric | RatioMetric, breakdown: str | None = None, **kw: Any
) -> Any:
    with engine.connect() as conn:
        result = evaluate_metric(
            conn, metric, kw.get("source", "salesforce"), kw.get("period", Q4), breakdown
        )
    return result if breakdown else result[None]


@pytest.fixture
def deals(add_deal: Adder) -> None:
    add_deal(amount=1000, created_date=date(2026, 10, 1), close_date=date(2026, 10, 11))  # 10 days
    add_deal(amount=3000, created_date=date(2026, 10, 1), close_date=date(2026, 10, 31))  # 30 days
    add_deal(amount=5000, is_won=False, stage="Closed Lost", owner_id="u2")
    add_deal(amount=8000, is_won=False, is_closed=False, stage="Negotiation", deal_type="Renewal")
    # Never counted: another CRM, deleted, outside the quarter.
    add_deal(amount=99999, source="hubspot")
    add_deal(amount=99999, is_deleted=True)
    add_deal(amount=99999, close_date=date(2026, 9, 30))
    add_deal(amount=99999, close_date=date(2027, 1, 1))


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        ("count", 2),
        ("sum(amount)", 4000),
        ("avg(amount)", 2000),
        ("min(amount)", 1000),
        ("max(amount)", 3000),
        ("count_distinct(owner_id)", 1),
        ("count(amount)", 2),
        ("avg(cycle_days)", 20),
    ],
)
@pytest.mark.usefixtures("deals")
def test_every_measure_over_won_deals(engine: Engine, measure: str, expected: float) -> None:
    value = _value(engine, _metric(entity="deal", measure=measure, where={"is_won": True}))
    assert value.value == pytest.approx(expected)
    assert value.rows == 2
    assert value.defined


@pytest.mark.usefixtures("deals")
def test_source_deleted_and_period_filters(engine: Engine) -> None:
    assert _value(engine, _metric(entity="deal", measure="count")).value == 4
    assert _value(engine, _metric(entity="deal", measure="sum(amount)"), source="hubspot").value == 99999
    q3 = FiscalCalendar(1).quarter(2026, 3)
    assert _value(engine, _metric(entity="deal", measure="count"), period=q3).value == 1


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"stage": "Closed Lost"}, 1),
        ({"stage": {"ne": "Closed Won"}}, 2),
        ({"amount": {"gt": 1000}}, 3),
        ({"amount": {"gte": 3000, "lt": 8000}}, 2),
        ({"amount": {"lte": 3000}}, 2),
        ({"deal_type": {"in": ["Renewal", "Upsell"]}}, 1),
        ({"deal_type": ["Renewal", "Upsell"]}, 1),
        ({"deal_type": {"not_in": ["Renewal"]}}, 3),
        ({"close_date": {"gte": "2026-10-15"}}, 3),
        ({"close_date": {"lt": date(2026, 10, 15)}}, 1),
        ({"is_closed": False}, 1),
        ({"lead_source": None}, 4),
        ({"lead_source": {"ne": None}}, 0),
    ],
)
@pytest.mark.usefixtures("deals")
def test_where_operators(engine: Engine, where: dict[str, Any], expected: int) -> None:
    assert _value(engine, _metric(entity="deal", measure="count", where=where)).value == expected


def test_ne_and_not_in_keep_empty_values(engine: Engine, add_deal: Adder) -> None:
    add_deal(deal_type=None)
    add_deal(deal_type="Renewal")
    metric = _metric(entity="deal", measure="count", where={"deal_type": {"ne": "Renewal"}})
    assert _value(engine, metric).value == 1
    metric = _metric(entity="deal", measure="count", where={"deal_type": {"not_in": ["Renewal"]}})
    assert _value(engine, metric).value == 1


def test_empty_period(engine: Engine) -> None:
    assert _value(engine, _metric(entity="deal", measure="sum(amount)")) == MetricValue(0.0, 0, True)
    assert _value(engine, _metric(entity="deal", measure="avg(amount)")) == MetricValue(0.0, 0, False)


def test_activity_count_and_minutes(engine: Engine, add_call: Adder) -> None:
    add_call(duration_seconds=120)
    add_call(duration_seconds=240)
    add_call(kind="email", duration_seconds=0)
    calls = _metric(entity="activity", measure="count", where={"kind": "call"})
    assert _value(engine, calls).value == 2
    minutes = _metric(entity="activity", measure="avg(duration_minutes)", where={"kind": "call"})
    assert _value(engine, minutes).value == pytest.approx(3.0)


def test_owner_fields_join_on_source(engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u1", "someone@else.test", "West", source="hubspot")  # same CRM id in the other CRM
    add_owner("u2", "bob@acme.test", "West")
    add_deal(owner_id="u1", amount=100)
    add_deal(owner_id="u2", amount=200)
    add_deal(owner_id=None, amount=400)
    west = _metric(entity="deal", measure="sum(amount)", where={"owner.team": "West"})
    assert _value(engine, west).value == 200
    everyone = _metric(entity="deal", measure="sum(amount)", where={"owner.team": {"ne": "West"}})
    assert _value(engine, everyone).value == 500


def test_breakdown_by_owner_and_team(engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u2", None, "East")  # no email: falls back to the CRM owner id
    add_owner("u3", "cy@acme.test", "West")
    add_deal(owner_id="u1", amount=100)
    add_deal(owner_id="u1", amount=50)
    add_deal(owner_id="u2", amount=200)
    add_deal(owner_id="u3", amount=400)
    add_deal(owner_id="u9", amount=800)  # owner not synced: no team
    revenue = _metric(entity="deal", measure="sum(amount)")
    by_owner = _value(engine, revenue, "owner")
    assert {key: value.value for key, value in by_owner.items()} == {
        "ann@acme.test": 150,
        "u2": 200,
        "cy@acme.test": 400,
        "u9": 800,
    }
    by_team = _value(engine, revenue, "team")
    assert {key: value.value for key, value in by_team.items()} == {"East": 350, "West": 400, None: 800}


def test_ratio_as_percent_and_zero_denominator(engine: Engine, add_deal: Adder, add_owner: Adder) -> None:
    ratio = RatioMetric.model_validate(
        {
            "ratio": {
                "numerator": {"entity": "deal", "measure": "count", "where": {"is_won": True}},
                "denominator": {"entity": "deal", "measure": "count", "where": {"is_closed": True}},
            },
            "unit": "%",
        }
    )
    assert _value(engine, ratio) == MetricValue(0.0, 0, defined=False)
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u2", "bob@acme.test", "West")
    add_deal(owner_id="u1")
    add_deal(owner_id="u1", is_won=False)
    add_deal(owner_id="u1", is_won=False)
    add_deal(owner_id="u1", is_won=False, is_closed=False)
    add_deal(owner_id="u2", is_won=False)
    value = _value(engine, ratio)
    assert value.value == pytest.approx(25.0)
    assert value.rows == 4
    by_team = _value(engine, ratio, "team")
    assert by_team["East"].value == pytest.approx(100 / 3)
    assert by_team["West"] == MetricValue(0.0, 1, True)
    plain = ratio.model_copy(update={"unit": None})
    assert _value(engine, plain).value == pytest.approx(0.25)


def test_postgres_sql_uses_date_subtraction_and_bound_parameters() -> None:
    metric = _metric(entity="deal", measure="avg(cycle_days)", where={"stage": "x'; DROP TABLE deal; --"})
    compiled = build_query(metric, None, "salesforce", Q4, "owner").compile(dialect=postgresql.dialect())
    sql = str(compiled)
    assert "CAST(deal.close_date AS DATE) - CAST(deal.created_date AS DATE)" in sql
    assert "julianday" not in sql
    assert "DROP TABLE" not in sql
    assert "x'; DROP TABLE deal; --" in compiled.params.values()
    assert "LEFT OUTER JOIN owner" in sql
