"""`okr-sync report`: the HTML page is parsed and checked for what it shows, not only that it exists."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from connectors.store import Deal, Owner, make_engine
from flows.report import burnup, clamped, objective_tree, render_report, write_report
from flows.report_svg import LEFT, RIGHT, WIDTH, x_of
from okr_mapping import KrResult, ObjectiveResult, compute_key_results, history, parse_config, rollup_objectives
from tests.flows.conftest import okr_sync
from tests.stores import store_url

SCRIPT_TITLE = "Grow <script>alert('x')</script> & revenue"
CONFIG = """\
metrics:
  revenue: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date, unit: USD}
  won_deals: {entity: deal, measure: count, where: {is_won: true}, time: close_date}
  cycle: {entity: deal, measure: avg(cycle_days), where: {is_won: true}, time: close_date, unit: days}
objectives:
  - id: grow
    title: "Grow <script>alert('x')</script> & revenue"
    period: 2026-Q4
    key_results:
      - {id: revenue, title: Close $10k, metric: revenue, target: 10000}
      - {id: rep-revenue, title: Every rep closes $3k, metric: revenue, breakdown: owner, target: {each: 3000}}
  - id: team
    title: Team executes faster
    parent: grow
    period: 2026-Q4
    key_results:
      - {id: deals, title: Win 8 deals, metric: won_deals, target: 8}
      - {id: cycle, title: Shorten the sales cycle, metric: cycle, type: decrease, baseline: 60, target: 30}
"""
CHECKIN_DAYS = [date(2026, 10, 10), date(2026, 10, 25), date(2026, 11, 8)]
TODAY = date(2026, 11, 15)
PERIOD_START, PERIOD_END = date(2026, 10, 1), date(2026, 12, 31)
_ids = itertools.count(1)


def _deal(engine: Engine, owner: str, amount: float, closed: date | None, created: date) -> None:
    row = {"source": "salesforce", "source_id": f"R{next(_ids)}", "owner_id": owner, "deal_type": "New Business",
           "stage": "Closed Won" if closed else "Proposal", "amount": amount, "is_closed": closed is not None,
           "is_won": closed is not None, "probability": 100 if closed else 50, "created_date": created,
           "close_date": closed or date(2026, 12, 15), "is_deleted": False, "custom": {}}
    with engine.begin() as conn:
        conn.execute(insert(Deal.__table__), [row])  # type: ignore[attr-defined]


def fill_store(engine: Engine) -> None:
    """Two reps' deals arriving over the quarter, a check-in recorded on each of three days."""
    with engine.begin() as conn:
        conn.execute(insert(Owner.__table__), [  # type: ignore[attr-defined]
            {"source": "salesforce", "source_id": "u1", "email": "ann@acme.test", "team": "East", "custom": {}},
            {"source": "salesforce", "source_id": "u2", "email": "bob@acme.test", "team": "West", "custom": {}}])
    config = parse_config(CONFIG)
    arrivals = {
        CHECKIN_DAYS[0]: [("u1", 1000, date(2026, 10, 5), date(2026, 9, 1))],
        CHECKIN_DAYS[1]: [("u2", 1500, date(2026, 10, 20), date(2026, 9, 10))],
        CHECKIN_DAYS[2]: [("u1", 2500, date(2026, 11, 3), date(2026, 10, 1))],
        TODAY: [("u2", 500, date(2026, 11, 12), date(2026, 10, 20)), ("u1", 4000, None, date(2026, 11, 1))],
    }
    for day, deals in arrivals.items():
        for owner, amount, closed, created in deals:
            _deal(engine, owner, amount, closed, created)
        if day != TODAY:
            results = compute_key_results(engine, config, "salesforce", day)
            history.record(engine, history.compare(engine, "salesforce", results, day, "r1"))


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    engine = make_engine(store_url(tmp_path))
    fill_store(engine)
    return engine


@dataclass
class Node:
    """A parsed element: enough of a DOM to query the page like a reader would."""

    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.iter()

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [node for node in self.iter() if (tag is None or node.tag == tag)
                and (cls is None or cls in node.attrs.get("class", "").split())]

    def one(self, tag: str | None = None, cls: str | None = None) -> Node:
        [found] = self.all(tag, cls)
        return found

    def text(self) -> str:
        return "".join(self.texts) + "".join(child.text() for child in self.children)

    def points(self) -> list[tuple[float, float]]:
        return [(float(x), float(y)) for x, y in (pair.split(",") for pair in self.attrs["points"].split())]


class _Parser(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].texts.append(data)


def parse(page: str) -> Node:
    parser = _Parser()
    parser.feed(page)
    parser.close()
    assert parser.stack == [parser.root], "every element is closed"
    return parser.root


def _render(engine: Engine, day: date = TODAY) -> tuple[str, list[KrResult]]:
    config = parse_config(CONFIG)
    results = compute_key_results(engine, config, "salesforce", day)
    path = write_report(engine, config, "salesforce", day, Path(str(engine.url.database)).with_name("report.html"),
                        config_name="okrs <q4>.yaml")
    return path.read_text(encoding="utf-8"), results


def _articles(doc: Node) -> dict[str, Node]:
    return {node.attrs["data-key"]: node for node in doc.all("article", "kr")}


def test_every_objective_and_kr_is_shown_in_config_order_children_under_parents(store: Engine) -> None:
    page, results = _render(store)
    doc = parse(page)
    meta = doc.one("p", "report-meta").text()
    assert "okrs <q4>.yaml" in meta and "salesforce" in meta and TODAY.isoformat() in meta
    sections = doc.all("section", "objective")
    assert [node.one("h2").text() for node in sections] == [SCRIPT_TITLE, "Team executes faster"]
    assert [node.attrs["style"] for node in sections] == ["margin-left: 0em", "margin-left: 2em"]
    rolled = {o.objective_id: o for o in rollup_objectives(results, parse_config(CONFIG))}
    for node in sections:
        objective = rolled[node.attrs["data-objective"]]
        assert node.one("strong", "objective-score").text() == f"{objective.score:.2f}"
    titles = [node.one("h3").text() for node in doc.all("article", "kr")]
    assert titles == ["Close $10k", "Every rep closes $3k", "Win 8 deals", "Shorten the sales cycle"]


def test_progress_bars_are_the_clamped_progress_coloured_by_status(store: Engine) -> None:
    page, results = _render(store)
    articles = _articles(parse(page))
    revenue = next(r for r in results if r.kr_id == "revenue")
    assert revenue.value == 5500 and revenue.progress == 0.55
    bars = 0
    for result in results:
        if result.group is None:
            fill = articles[result.key].one("div", "fill")
        else:
            [row] = [row for row in articles[f"{result.objective_id}.{result.kr_id}"].all("tr", "group-row")
                     if row.one("td", "group").text() == result.group]
            fill = row.one("div", "fill")
        style = dict(part.strip().split(": ") for part in fill.attrs["style"].split(";"))
        assert float(style["width"].rstrip("%")) == pytest.approx(clamped(result.progress) * 100, abs=0.05)
        assert style["background"] == {"achieved": "#1a7f37", "on_track": "#2da44e", "at_risk": "#bf8700",
                                        "off_track": "#cf222e"}[result.status]
        bars += 1
    assert bars == len(results) == 5
    over = next(r for r in results if r.group == "ann@acme.test")
    assert over.progress > 1 and "width: 100.0%" in page  # over target: a full bar, the ratio kept in the text


def test_each_chart_has_a_point_per_checkin_plus_today_and_pace_target_forecast_lines(store: Engine) -> None:
    page, results = _render(store)
    articles = _articles(parse(page))
    singles = [r for r in results if r.group is None]
    assert len(singles) == 3
    end_x = float(WIDTH - RIGHT)
    for result in singles:
        svg = articles[result.key].one("svg", "burnup")
        values = svg.one("polyline", "value-line").points()
        assert len(values) == len(CHECKIN_DAYS) + 1 == len(svg.all("circle", "value-point"))
        assert [x for x, _ in values] == sorted(x for x, _ in values) and values[0][0] > LEFT
        pace = svg.one("polyline", "pace-line").points()  # from the period's start to its end
        assert [x for x, _ in pace] == [float(LEFT), *(x for x, _ in values), end_x]
        target = svg.one("line", "target-line").attrs
        assert (float(target["x1"]), float(target["x2"])) == (LEFT, end_x) and target["y1"] == target["y2"]
        dates = [node.text() for node in svg.all("text") if "x-label" in node.attrs.get("class", "")]
        assert dates[0] == PERIOD_START.isoformat() and dates[-1] == PERIOD_END.isoformat()
        forecasts = svg.all("line", "forecast-line")
        if result.forecast is None or result.forecast_method == "final":
            assert not forecasts
            continue
        [forecast] = forecasts
        assert (float(forecast.attrs["x1"]), float(forecast.attrs["y1"])) == values[-1]  # from today's value
        assert float(forecast.attrs["x2"]) == end_x > values[-1][0]  # to the period's last day
    revenue = next(r for r in singles if r.kr_id == "revenue")
    assert revenue.forecast_method == "pipeline" and revenue.forecast == 7500  # 5500 won + 4000 x 50%
    assert articles[revenue.key].all("line", "forecast-line")
    assert "$7,500 (" in articles[revenue.key].one("dd", "forecast").text()  # the confidence, in percent
    # pace rises towards an increase KR's target and falls towards a decrease KR's (y grows downwards)
    ys = {r.kr_id: [y for _, y in articles[r.key].one("polyline", "pace-line").points()] for r in singles}
    assert ys["revenue"] == sorted(ys["revenue"], reverse=True) and ys["cycle"] == sorted(ys["cycle"])


def test_the_series_are_the_checkins_of_the_period_and_the_pace_formula(store: Engine) -> None:
    config = parse_config(CONFIG)
    [cycle] = [r for r in compute_key_results(store, config, "salesforce", TODAY) if r.kr_id == "cycle"]
    snapshots = history.snapshots(store, "salesforce", cycle.key)
    chart = burnup(cycle, snapshots, TODAY)
    assert [day for day, _ in chart.values] == [*CHECKIN_DAYS, TODAY]
    assert chart.values[-1][1] == cycle.value and [v for _, v in chart.values[:-1]] == [s.value for s in snapshots]
    assert [v for _, v in chart.pace] == pytest.approx(
        [60] + [60 + (30 - 60) * s.expected_progress for s in snapshots] + [60 + (30 - 60) * cycle.expected_progress]
        + [30])
    assert [day for day, _ in chart.pace] == [PERIOD_START, *CHECKIN_DAYS, TODAY, PERIOD_END]
    assert x_of(chart, PERIOD_END) == WIDTH - RIGHT
    # as of the last check-in's own day, that day's point is today's value (no duplicate)
    earlier = burnup(cycle, snapshots, CHECKIN_DAYS[-1])
    assert [day for day, _ in earlier.values] == CHECKIN_DAYS


def test_a_breakdown_is_a_table_of_its_groups_not_a_chart_per_group(store: Engine) -> None:
    page, results = _render(store)
    article = _articles(parse(page))["grow.rep-revenue"]
    groups = {r.group: r for r in results if r.kr_id == "rep-revenue"}
    rows = article.all("tr", "group-row")
    assert sorted(row.one("td", "group").text() for row in rows) == sorted(groups) == ["ann@acme.test",
                                                                                       "bob@acme.test"]
    for row in rows:
        cells = [cell.text() for cell in row.all("td")]
        result = groups[cells[0]]
        assert cells[1] == f"${result.value:,.0f}" and cells[2] == "$3,000"
        assert cells[4] == {"achieved": "achieved", "on_track": "on track", "at_risk": "at risk",
                            "off_track": "off track"}[result.status]
    assert not article.all("svg") and len(page.split('class="burnup"')) - 1 == 3


def test_text_from_the_config_is_escaped_and_the_page_loads_nothing(store: Engine) -> None:
    page, _ = _render(store)
    doc = parse(page)
    assert "<script" not in page and not doc.all("script")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; revenue" in page
    assert doc.all("h2")[0].text() == SCRIPT_TITLE  # shown as the text it is
    lowered = page.lower()
    for reference in ("http:", "https:", "src=", "<link", "url(", "@import", "<iframe", "<object", "<embed"):
        assert reference not in lowered, reference
    assert all(not node.attrs.get("href") for node in doc.iter())
    assert doc.one("style") and {"charset": "utf-8"} in [node.attrs for node in doc.all("meta")]


def test_an_empty_result_still_renders_a_page() -> None:
    page = render_report([], [], {}, source="hubspot", as_of=TODAY, today=TODAY)
    doc = parse(page)
    assert "No key result" in doc.one("body").text() and "hubspot" in doc.one("title").text()


def test_cli_writes_the_report_from_the_store_and_exits_2_or_1_on_bad_input(
        tmp_path: Path, store: Engine, cli_env: dict[str, str]) -> None:
    config = tmp_path / "okrs.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    url = str(store.url)
    output = tmp_path / "out" / "report.html"
    done = okr_sync(cli_env, "report", "--config", str(config), "--as-of", TODAY.isoformat(), "--database-url", url,
                    "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert str(output) in done.stdout.replace("\n", "")
    doc = parse(output.read_text(encoding="utf-8"))
    assert len(doc.all("svg", "burnup")) == 3 and len(doc.all("tr", "group-row")) == 2
    missing = okr_sync(cli_env, "report", "--config", str(tmp_path / "nope.yaml"), "--database-url", url)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    other = okr_sync(cli_env, "report", "--config", str(config), "--source", "hubspot", "--database-url", url,
                     "--output", str(tmp_path / "hubspot.html"))
    assert other.returncode == 1 and "no hubspot records" in other.stderr
    assert not (tmp_path / "hubspot.html").exists()
    absent = okr_sync(cli_env, "report", "--config", str(config), "--database-url",
                      f"sqlite:///{tmp_path / 'absent.db'}")
    assert absent.returncode == 1 and not (tmp_path / "absent.db").exists()


def test_children_sit_under_their_parent_whatever_the_config_order() -> None:
    def objective(objective_id: str, parent: str | None = None) -> ObjectiveResult:
        return ObjectiveResult(key=f"{objective_id}.Q", objective_id=objective_id, title=objective_id, period="Q",
                               period_start=PERIOD_START, period_end=PERIOD_END, score=0.5, expected_progress=0.5,
                               status="on_track", key_results=1, parent=parent)

    tree = objective_tree([objective("rep", "team"), objective("company"), objective("team", "company"),
                           objective("orphan", "gone")])
    assert [(o.objective_id, depth) for o, depth in tree] == [("company", 0), ("team", 1), ("rep", 2), ("orphan", 0)]


def test_a_store_never_computed_reports_no_records_instead_of_a_missing_table(
        tmp_path: Path, cli_env: dict[str, str]) -> None:
    config = tmp_path / "okrs.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    url = store_url(tmp_path, "never-computed")
    make_engine(url).dispose()  # the store's own tables only: no run has made the history tables yet
    done = okr_sync(cli_env, "report", "--config", str(config), "--database-url", url,
                    "--output", str(tmp_path / "page.html"))
    assert done.returncode == 1 and "no salesforce records" in done.stderr, done.stderr


def test_this_week_shows_what_moved_turned_at_risk_or_was_achieved_per_team_and_owner(store: Engine) -> None:
    page, _ = _render(store, CHECKIN_DAYS[2])  # the week to 11-08: its check-in against the one of 10-25
    week = parse(page).one("section", "digest")
    assert week.one("h2").text() == "This week"
    groups = {group.one("h4").text(): {kind: [item.one("span").text() for item in group.all("li", kind)]
                                       for kind in ("moved", "at_risk", "achieved")}
              for group in week.all("div", "digest-group")}
    assert list(groups) == ["(no team)", "East", "(no owner)", "ann@acme.test"]  # teams, then owners
    rep = "Every rep closes $3k [ann@acme.test] (2026-Q4): 1,000 → 3,500, progress 33% → 117%, on track → achieved"
    assert groups["East"] == groups["ann@acme.test"] == {"moved": [rep], "at_risk": [], "achieved": [rep]}
    assert "Close $10k (2026-Q4): 2,500 → 5,000, progress 25% → 50%, at risk → on track" in \
        groups["(no team)"]["moved"]  # the KRs without an owner (bob closed nothing that week: no West)


def test_this_week_says_so_when_nothing_moved(store: Engine) -> None:
    page, _ = _render(store)  # no check-in from 11-09 to 11-15
    assert "Nothing moved this week" in parse(page).one("section", "digest").text()
