"""all / any / not filters, named segments, median and percentile, and the config's JSON Schema."""

from __future__ import annotations

import json
import random
import statistics
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from okr_mapping import ConfigError, compute_key_results, parse_config
from okr_mapping.config import RatioMetric, Segment, SimpleMetric
from okr_mapping.errors import Issue
from okr_mapping.metrics import build_query, evaluate_metric
from okr_mapping.periods import FiscalCalendar
from okr_mapping.rules import RuleError, parse_measure
from okr_mapping.schema import SCHEMA_PATH, config_json_schema, render

from .conftest import Adder

Q4 = FiscalCalendar(1).quarter(2026, 4)
ROOT = Path(__file__).resolve().parents[2]


def _metric(**spec: Any) -> SimpleMetric:
    return SimpleMetric.model_validate(spec)


def _values(
    engine: Engine,
    metric: SimpleMetric | RatioMetric,
    breakdown: str | None = None,
    segments: dict[str, Segment] | None = None,
) -> Any:
    with engine.connect() as conn:
        result = evaluate_metric(conn, metric, "salesforce", Q4, breakdown, segments)
    return result if breakdown else result[None]


def _count(engine: Engine, where: dict[str, Any]) -> float:
    return _values(engine, _metric(entity="deal", measure="count", where=where)).value


def _errors(text: str) -> list[Issue]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "rules.yaml")
    return caught.value.errors


# ---------------------------------------------------------------- filters: all / any / not


@pytest.fixture
def mixed(add_deal: Adder) -> None:
    add_deal(amount=100, deal_type="New Business", stage="Closed Won")
    add_deal(amount=200, deal_type="Renewal", stage="Closed Won")
    add_deal(amount=300, deal_type="Upsell", stage="Closed Lost", is_won=False)
    add_deal(amount=400, deal_type=None, stage="Closed Lost", is_won=False)
    add_deal(amount=500, deal_type="Renewal", stage=None, is_won=False, is_closed=False)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"any": [{"deal_type": "Renewal"}, {"amount": {"gte": 400}}]}, 3),
        ({"all": [{"is_won": True}, {"amount": {"gt": 100}}]}, 1),
        ({"is_won": False, "any": [{"deal_type": "Upsell"}, {"amount": 500}]}, 2),
        ({"not": {"deal_type": "Renewal"}}, 3),  # keeps the deal with no type, like ne
        ({"not": {"deal_type": {"ne": "Renewal"}}}, 2),
        ({"not": {"stage": "Closed Won", "amount": {"lt": 150}}}, 4),
        ({"not": {"any": [{"stage": "Closed Won"}, {"amount": {"gt": 450}}]}}, 2),
        ({"not": {"not": {"deal_type": "Renewal"}}}, 2),
        ({"any": [{"all": [{"is_won": True}, {"deal_type": "Renewal"}]}, {"deal_type": {"in": ["Upsell"]}}]}, 2),
        ({"any": [{"deal_type": "Nothing"}]}, 0),
        ({"not": {"deal_type": {"not_in": ["Renewal", "Upsell"]}}}, 3),
    ],
)
@pytest.mark.usefixtures("mixed")
def test_all_any_not(engine: Engine, where: dict[str, Any], expected: int) -> None:
    assert _count(engine, where) == expected


@pytest.mark.usefixtures("mixed")
def test_not_is_the_exact_complement_even_with_empty_values(engine: Engine) -> None:
    total = _count(engine, {})
    for inner in (
        {"deal_type": "Renewal"},
        {"stage": {"in": ["Closed Won"]}},
        {"any": [{"deal_type": "Upsell"}, {"stage": "Closed Won"}]},
        {"deal_type": {"ne": "Renewal"}, "stage": "Closed Lost"},
    ):
        assert _count(engine, inner) + _count(engine, {"not": inner}) == total, inner


def test_postgres_sql_for_combinators_binds_values() -> None:
    metric = _metric(
        entity="deal",
        measure="count",
        where={"any": [{"stage": "x'; DROP TABLE deal; --"}, {"not": {"owner.team": "East"}}]},
    )
    compiled = build_query(metric, None, "salesforce", Q4).compile(dialect=postgresql.dialect())
    sql = str(compiled)
    assert " OR " in sql and "NOT coalesce(" in sql
    assert "DROP TABLE" not in sql
    assert "x'; DROP TABLE deal; --" in compiled.params.values()
    assert "LEFT OUTER JOIN owner" in sql


FILTER_CONFIG = """\
metrics:
  m:
    entity: deal
    measure: count
    where:
{where}
objectives:
  - id: o
    title: O
    key_results:
      - {{id: a, metric: m, target: 1}}
"""


def _filter_errors(where: str) -> list[tuple[str, int | None, str | None, str]]:
    text = FILTER_CONFIG.format(where="\n".join("      " + line for line in where.splitlines()))
    return [(issue.key_path, issue.line, issue.suggestion, issue.message) for issue in _errors(text)]


def test_filter_errors_point_at_the_line_with_a_suggestion() -> None:
    found = _filter_errors("anyy: [{stage: Won}]\nor: [{stage: Won}]")
    assert [(path, line, hint) for path, line, hint, _msg in found] == [
        ("metrics.m.where.anyy", 6, "any"),
        ("metrics.m.where.or", 7, "any"),
    ]
    found = _filter_errors("any:\n  - {stage: Won}\n  - {stagee: Lost}\n  - not: {amount: {gtt: 3}}")
    assert [(path, line, hint) for path, line, hint, _msg in found] == [
        ("metrics.m.where.any[1].stagee", 8, "stage"),
        ("metrics.m.where.any[2].not.amount.gtt", 9, "gt"),
    ]


@pytest.mark.parametrize(
    ("where", "path", "line", "message"),
    [
        ("all: {stage: Won}", "metrics.m.where.all", 6, "'all' needs a list of filters"),
        ("any: []", "metrics.m.where.any", 6, "'any' needs a list of filters"),
        ("not: Won", "metrics.m.where.not", 6, "expected a filter like"),
        ("any:\n  - {stage: Won}\n  - Lost", "metrics.m.where.any[1]", 8, "expected a filter like"),
        ("not: {}", "metrics.m.where.not", 6, "got an empty filter"),
        ("all: [{amount: {gt: high}}]", "metrics.m.where.all[0].amount.gt", 6, "'amount' is a number"),
    ],
)
def test_filter_shape_errors(where: str, path: str, line: int, message: str) -> None:
    found = _filter_errors(where)
    assert len(found) == 1, found
    assert found[0][0] == path
    assert found[0][1] == line
    assert message in found[0][3]


# ---------------------------------------------------------------- segments

SEGMENT_CONFIG = """\
segments:
  big_deals:
    entity: deal
    where: {{amount: {{gte: 300}}}}
{extra_segments}metrics:
  big_won: {{entity: deal, measure: sum(amount), segment: {segment}, where: {{is_won: true}}}}
  big_share:
    ratio:
      numerator: {{entity: deal, measure: count, segment: big_deals}}
      denominator: {{entity: deal, measure: count}}
objectives:
  - id: o
    title: O
    key_results:
      - {{id: a, metric: big_won, target: 1}}
      - {{id: b, metric: big_share, target: 1}}
"""


def _segment_config(segment: str = "big_deals", extra: str = "") -> str:
    return SEGMENT_CONFIG.format(segment=segment, extra_segments=extra)


def test_segment_filter_is_anded_with_the_metric_where(engine: Engine, add_deal: Adder) -> None:
    add_deal(amount=100)
    add_deal(amount=300)
    add_deal(amount=700)
    add_deal(amount=900, is_won=False)
    config = parse_config(_segment_config())
    assert config.warnings == []
    results = {kr.kr_id: kr for kr in compute_key_results(engine, config, as_of=date(2026, 11, 15))}
    assert results["a"].value == 1000
    assert results["b"].value == pytest.approx(0.75)
    segments = dict(config.segments)
    assert _values(engine, config.metrics["big_won"], "owner", segments)["u1"].value == 1000


def test_unknown_segment_suggests_the_closest(tmp_path: Path) -> None:
    issues = _errors(_segment_config(segment="big_deal"))
    assert [(i.key_path, i.line, i.suggestion) for i in issues] == [("metrics.big_won.segment", 6, "big_deals")]
    assert "unknown segment 'big_deal'" in issues[0].message


def test_segment_over_another_entity_is_refused() -> None:
    extra = "  long_calls: {entity: activity, where: {duration_seconds: {gt: 600}}}\n"
    issues = _errors(_segment_config(segment="long_calls", extra=extra))
    assert [(i.key_path, i.line) for i in issues] == [("metrics.big_won.segment", 7)]
    assert "filters activity records but this measures deal" in issues[0].message


def test_segment_where_is_checked_and_unused_segments_warn() -> None:
    extra = "  calls: {entity: activty, where: {kind: call}}\n  bad: {entity: deal, where: {stge: Won}}\n"
    issues = _errors(_segment_config(extra=extra))
    assert [(i.key_path, i.line, i.suggestion) for i in issues] == [
        ("segments.calls.entity", 5, "activity"),
        ("segments.bad.where.stge", 6, "stage"),
    ]
    extra = "  unused_one: {entity: deal, where: {any: [{is_won: true}, {amount: {gt: 5}}]}}\n"
    config = parse_config(_segment_config(extra=extra), "rules.yaml")
    assert [(w.level, w.key_path, w.line) for w in config.warnings] == [("warning", "segments.unused_one", 5)]
    assert "no metric uses it" in config.warnings[0].message


def test_unknown_key_in_a_segment_is_a_schema_error() -> None:
    extra = "  oops: {entity: deal, wehre: {is_won: true}}\n"
    issues = _errors(_segment_config(extra=extra))
    assert ("segments.oops.wehre", "where") in [(i.key_path, i.suggestion) for i in issues]


# ---------------------------------------------------------------- median and percentile


def _percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), written out."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * p / 100
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def test_reference_percentile_agrees_with_statistics() -> None:
    rng = random.Random(1)
    for n in range(1, 12):
        values = [rng.uniform(0, 100) for _ in range(n)]
        assert _percentile(values, 50) == pytest.approx(statistics.median(values))
        if n > 1:
            quartiles = statistics.quantiles(values, n=4, method="inclusive")
            assert _percentile(values, 25) == pytest.approx(quartiles[0])
            assert _percentile(values, 75) == pytest.approx(quartiles[2])


@pytest.mark.parametrize("seed", range(6))
def test_median_and_percentiles_match_python_per_group(
    engine: Engine, add_deal: Adder, add_owner: Adder, seed: int
) -> None:
    rng = random.Random(seed)
    add_owner("u1", "ann@acme.test", "East")
    add_owner("u2", "bob@acme.test", "West")
    add_owner("u3", "cy@acme.test", "West")
    by_owner: dict[str, list[float]] = {}
    for _ in range(rng.randint(1, 25)):
        owner = rng.choice(["u1", "u2", "u3", "u9"])
        amount = rng.choice([float(rng.randint(1, 50)), round(rng.uniform(0, 1000), 2)])
        add_deal(owner_id=owner, amount=amount)
        by_owner.setdefault(owner, []).append(amount)
    add_deal(owner_id="u1", amount=None)  # an empty amount is not a value (counted as a row, like avg)
    add_deal(owner_id="u2", amount=10**6, is_deleted=True)
    add_deal(owner_id="u2", amount=10**6, close_date=date(2027, 1, 5))
    everything = [value for values in by_owner.values() for value in values]
    emails = {"u1": "ann@acme.test", "u2": "bob@acme.test", "u3": "cy@acme.test", "u9": "u9"}
    for measure, p in (("median(amount)", 50), ("percentile(amount, 90)", 90), ("percentile(amount, 12.5)", 12.5)):
        metric = _metric(entity="deal", measure=measure)
        whole = _values(engine, metric)
        assert whole.value == pytest.approx(_percentile(everything, p))
        assert whole.rows == len(everything) + 1
        assert whole.defined
        groups = _values(engine, metric, "owner")
        expected = {emails[owner]: _percentile(values, p) for owner, values in by_owner.items()}
        if "u1" not in by_owner:
            assert not groups["ann@acme.test"].defined  # only the empty amount
            del groups["ann@acme.test"]
        assert {key: value.value for key, value in groups.items()} == pytest.approx(expected)
        teams: dict[str | None, list[float]] = {}
        for owner, values in by_owner.items():
            teams.setdefault({"u1": "East", "u9": None}.get(owner, "West"), []).extend(values)
        by_team = {key: value.value for key, value in _values(engine, metric, "team").items() if value.defined}
        assert by_team == pytest.approx({team: _percentile(values, p) for team, values in teams.items()})
    assert _values(engine, _metric(entity="deal", measure="median(amount)")).value == pytest.approx(
        statistics.median(everything)
    )


def test_median_of_nothing_is_undefined_and_respects_filters(engine: Engine, add_deal: Adder) -> None:
    metric = _metric(entity="deal", measure="median(amount)", where={"is_won": True})
    empty = _values(engine, metric)
    assert (empty.value, empty.rows, empty.defined) == (0.0, 0, False)
    for amount in (5, 1, 9, 7):
        add_deal(amount=amount)
    add_deal(amount=1000, is_won=False)
    assert _values(engine, metric).value == pytest.approx(6.0)
    cycle = _metric(entity="deal", measure="percentile(cycle_days, 50)")
    assert _values(engine, cycle).value == pytest.approx(40.0)  # 2026-10-01 to 2026-11-10


def test_percentile_compiles_for_postgres_with_window_functions() -> None:
    metric = _metric(entity="deal", measure="percentile(cycle_days, 90)", where={"owner.team": "East"})
    compiled = build_query(metric, None, "salesforce", Q4, "team").compile(dialect=postgresql.dialect())
    sql = str(compiled)
    assert "row_number() OVER (PARTITION BY owner.team" in sql
    assert "count(CAST((CAST(deal.close_date AS DATE) - CAST(deal.created_date AS DATE)) AS FLOAT))" in sql
    assert "GROUP BY ranked.group_key" in sql
    assert "julianday" not in sql
    assert pytest.approx(0.9) in compiled.params.values()


@pytest.mark.parametrize(
    ("text", "func", "field", "percent"),
    [
        ("median(amount)", "median", "amount", 50.0),
        ("percentile(amount, 90)", "percentile", "amount", 90.0),
        ("percentile( cycle_days ,2.5 )", "percentile", "cycle_days", 2.5),
    ],
)
def test_parse_quantile_measures(text: str, func: str, field: str, percent: float) -> None:
    measure = parse_measure(text)
    assert (measure.func, measure.field, measure.percent) == (func, field, percent)
    assert not measure.defined_on_empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("percentile(amount)", "percentile needs a field and a percent"),
        ("percentile(amount, 100)", "between 0 and 100"),
        ("percentile(amount, 0)", "between 0 and 100"),
        ("percentile(amount, ninety)", "between 0 and 100"),
        ("median(amount, 50)", "median takes one field only"),
        ("sum(amount, 2)", "sum takes one field only"),
        ("percentile", "percentile needs a field in brackets, e.g. percentile(amount, 90)"),
    ],
)
def test_bad_quantile_measures(text: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_measure(text)
    assert message in caught.value.message


def test_quantile_measure_errors_in_a_config() -> None:
    text = """\
metrics:
  a: {entity: deal, measure: median(stage)}
  b: {entity: deal, measure: 'percentile(amount, 150)'}
  c: {entity: deal, measure: medain(amount)}
objectives:
  - id: o
    title: O
    key_results:
      - {id: a, metric: a, target: 1}
      - {id: b, metric: b, target: 1}
      - {id: c, metric: c, target: 1}
"""
    issues = _errors(text)
    assert [(i.key_path, i.line, i.suggestion) for i in issues] == [
        ("metrics.a.measure", 2, None),
        ("metrics.b.measure", 3, None),
        ("metrics.c.measure", 4, "median"),
    ]
    assert issues[0].message.startswith("median() needs a number field and 'stage' is text")


# ---------------------------------------------------------------- JSON Schema


def test_committed_schema_is_up_to_date() -> None:
    assert SCHEMA_PATH == ROOT / "config" / "okr-config.schema.json"
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert json.loads(committed) == config_json_schema(), "run: python -m okr_mapping.schema"
    assert committed == render()


def test_schema_describes_the_rule_language() -> None:
    schema = config_json_schema()
    assert set(schema["properties"]) >= {"segments", "metrics", "objectives", "source"}
    defs = schema["$defs"]
    assert defs["MeasureSource"]["properties"]["where"]["anyOf"][0] == {"$ref": "#/$defs/Where"}
    assert set(defs["Where"]["properties"]) == {"all", "any", "not"}
    assert defs["Segment"]["additionalProperties"] is False
    assert "x-okr" not in json.dumps(schema)


def test_schema_accepts_the_demo_and_rejects_typos() -> None:
    import jsonschema
    validator = jsonschema.Draft202012Validator(config_json_schema())
    demo = yaml.safe_load((ROOT / "config" / "examples" / "demo.yaml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(demo)) == []
    rich = yaml.safe_load(_segment_config())
    rich["metrics"]["p90"] = {
        "entity": "deal",
        "measure": "percentile(amount, 90)",
        "where": {"not": {"any": [{"stage": {"in": ["Closed Lost"]}}, {"amount": None}]}},
    }
    assert list(validator.iter_errors(rich)) == []
    rich["metrics"]["p90"]["where"]["not"]["any"][0]["stage"] = {"inn": ["x"]}
    rich["segments"]["big_deals"]["wehre"] = {}
    assert len(list(validator.iter_errors(rich))) == 2
