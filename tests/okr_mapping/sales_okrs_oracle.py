"""An independent computation of every metric key result of config/examples/sales-okrs.yaml.

Plain Python over the sandbox's logical tables (`SandboxState.query`), sharing no code with okr_mapping
or the connectors: each key result's YAML rule is written out by hand below, as the README's "Writing
rules" define it, so a bug in extraction, the rule compiler, periods, windows or scoring shows up as a
mismatch with `compute_key_results`.

`RULES` quotes, per key result, its YAML entry (title and comments left out) and every metric it reads
(through ratios and derived formulas): the test compares them with the YAML file, so a rule changed in
the file without changing its Python here fails, as does a metric key result added or removed.

Semantics written out here (README, "Writing rules"):
- one CRM's non-deleted records; a related record (a deal's account, an activity's or line item's
  deal) must exist and be live, else its fields are empty, and a comparison with an empty value is
  false;
- periods are fiscal quarters (fiscal_year_start_month 1: calendar quarters), last day included;
  time zone UTC (the file names none), so "today" is `as_of`;
- windows: `period` (the whole quarter), `to_date` (quarter start .. as_of, against the same number
  of days from the previous quarter's start), `{trailing_days: n}` (the n days up to as_of, against
  the n before them);
- `count_first(f)`: over every matching record at any date, each non-empty value of f counts once, in
  the period of its earliest record;
- a ratio is numerator / denominator x 100 (unit "%"); an average over nothing, a ratio or division
  by 0 and any formula with an undefined operand are undefined and read 0;
- change targets: target = previous value x (1 + change); counts and sums start from baseline 0,
  averages, ratios and derived metrics (a cost per customer, revenue per rep) carry over: baseline =
  the previous value (0 when undefined);
- a milestone with a metric is done when the metric is above 0: value 1 or 0, target 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.sandbox.generator import REGION_OF_COUNTRY  # the data behind Region__c / region
from connectors.sandbox.state import SandboxState

FISCAL_YEAR_START_MONTH = 1  # fiscal_year_start_month: 1
Span = tuple[date, date]
Row = dict[str, Any]
Number = float | None  # None: undefined
# kr key -> (value, baseline, target); None where the YAML fixes the number rather than the data.
Expected = tuple[float, float | None, float | None]


# -- the org, as canonical records --------------------------------------------------------------------

@dataclass
class Org:
    """One CRM's view of the sandbox org: the live records with the fields the rules read."""

    crm: str
    deals: list[Row]
    activities: list[Row]
    line_items: list[Row]
    leads: list[Row]
    cases: list[Row]
    campaigns: list[Row]


def _config_day() -> Callable[[int | None], date | None]:
    """The calendar day of a ms timestamp in the file's time zone (SETTINGS), whatever the org's."""
    zone = ZoneInfo(SETTINGS["time_zone"] or "UTC")
    return lambda ms: None if ms is None else datetime.fromtimestamp(ms / 1000, zone).date()


def load_org(state: SandboxState, crm: str) -> Org:
    _day = _config_day()

    def live(table: str) -> list[Row]:
        return [dict(row) for row in state.query(f"SELECT * FROM {table} WHERE deleted = 0")]

    accounts = {a["id"]: {"id": a["id"], "country": a["country"], "region": REGION_OF_COUNTRY.get(a["country"])}
                for a in live("accounts")}
    deals: dict[int, Row] = {}
    for d in live("deals"):
        created, closed = _day(d["created_ms"]), date.fromisoformat(d["close_date"])
        deals[d["id"]] = {
            "id": d["id"], "amount": d["amount"], "deal_type": d["deal_type"], "lead_source": d["lead_source"],
            "owner_id": d["owner_id"], "account_id": d["account_id"],
            "is_won": d["stage"] == "closed_won", "is_closed": d["stage"] in ("closed_won", "closed_lost"),
            "created_date": created, "close_date": closed, "cycle_days": (closed - created).days,
            "account": accounts.get(d["account_id"]),
        }
    activities = (
        [{"kind": "call", "owner_id": c["owner_id"], "activity_date": _day(c["ts_ms"]),
          "deal": deals.get(c["deal_id"])} for c in live("calls")]
        + [{"kind": "email", "owner_id": e["owner_id"], "activity_date": _day(e["ts_ms"]),
            "deal": deals.get(e["deal_id"])} for e in live("emails")]
        + [{"kind": "meeting", "owner_id": m["owner_id"], "activity_date": _day(m["start_ms"]),
            "deal": deals.get(m["deal_id"])} for m in live("meetings")]
    )
    products = {p["id"]: p for p in live("products")}
    line_items = [{"product_name": products[i["product_id"]]["name"] if i["product_id"] in products else None,
                   "quantity": i["quantity"], "total_price": i["quantity"] * i["unit_price"],
                   "deal": deals.get(i["deal_id"])} for i in live("line_items")]
    leads = [{"created_date": _day(lead["created_ms"]), "is_converted": lead["converted_ms"] is not None}
             for lead in live("leads")]

    def seconds(ms: int) -> float:  # Salesforce serves datetimes at whole seconds
        return ms // 1000 if crm == "salesforce" else ms / 1000

    cases = [{"is_closed": c["status"] == "Closed", "closed_date": _day(c["closed_ms"]),
              "resolution_hours": None if c["closed_ms"] is None
              else (seconds(c["closed_ms"]) - seconds(c["created_ms"])) / 3600}
             for c in live("cases")]
    # HubSpot names an aborted campaign "Paused"; the other labels are the same in both CRMs.
    campaigns = [{"campaign_type": c["campaign_type"],
                  "status": "Paused" if crm == "hubspot" and c["status"] == "Aborted" else c["status"],
                  "start_date": date.fromisoformat(c["start_date"]) if c["start_date"] else None,
                  "actual_cost": c["actual_cost"]} for c in live("campaigns")]
    return Org(crm, list(deals.values()), activities, line_items, leads, cases, campaigns)


# -- periods and windows ------------------------------------------------------------------------------

def quarter(day: date, offset: int = 0) -> Span:
    """The fiscal quarter holding `day` (`offset` quarters later), first and last day."""
    index = (day.year * 12 + day.month - FISCAL_YEAR_START_MONTH) // 3 + offset
    year, month0 = divmod(index * 3 + FISCAL_YEAR_START_MONTH - 1, 12)
    start = date(year, month0 + 1, 1)
    year, month0 = divmod((index + 1) * 3 + FISCAL_YEAR_START_MONTH - 1, 12)
    return start, date(year, month0 + 1, 1) - timedelta(days=1)


def period_window(as_of: date) -> tuple[Span, Span]:
    """window: period (the default): this quarter, against the previous one."""
    return quarter(as_of), quarter(as_of, -1)


def to_date_window(as_of: date) -> tuple[Span, Span]:
    """window: to_date: quarter start .. as_of, against as many days from the previous quarter's start."""
    start, previous_start = quarter(as_of)[0], quarter(as_of, -1)[0]
    return (start, as_of), (previous_start, previous_start + (as_of - start))


def trailing_window(as_of: date, days: int) -> tuple[Span, Span]:
    """window: {trailing_days: n}: the n days up to as_of, against the n days before them."""
    return ((as_of - timedelta(days=days - 1), as_of),
            (as_of - timedelta(days=2 * days - 1), as_of - timedelta(days=days)))


# -- aggregates ---------------------------------------------------------------------------------------

def _in(day: date | None, span: Span) -> bool:
    return day is not None and span[0] <= day <= span[1]


def _pick(rows: Iterable[Row], where: Callable[[Row], bool], time: Callable[[Row], date | None],
          span: Span) -> list[Row]:
    return [row for row in rows if where(row) and _in(time(row), span)]


def count(rows: Iterable[Row], where: Callable[[Row], bool], time: Callable[[Row], date | None], span: Span) -> float:
    return float(len(_pick(rows, where, time, span)))


def total(rows: Iterable[Row], field: Callable[[Row], Any], where: Callable[[Row], bool],
          time: Callable[[Row], date | None], span: Span) -> float:
    return float(sum(value for row in _pick(rows, where, time, span) if (value := field(row)) is not None))


def average(rows: Iterable[Row], field: Callable[[Row], Any], where: Callable[[Row], bool],
            time: Callable[[Row], date | None], span: Span) -> Number:
    values = [value for row in _pick(rows, where, time, span) if (value := field(row)) is not None]
    return sum(values) / len(values) if values else None


def distinct(rows: Iterable[Row], field: Callable[[Row], Any], where: Callable[[Row], bool],
             time: Callable[[Row], date | None], span: Span) -> float:
    return float(len({value for row in _pick(rows, where, time, span) if (value := field(row)) is not None}))


def first_count(rows: Iterable[Row], field: Callable[[Row], Any], where: Callable[[Row], bool],
                time: Callable[[Row], date | None], span: Span) -> float:
    """count_first: values whose earliest matching record (any date, a date required) lies in `span`."""
    first: dict[Any, date] = {}
    for row in rows:
        value, day = field(row), time(row)
        if where(row) and day is not None and value not in (None, ""):
            first[value] = min(first.get(value, day), day)
    return float(sum(_in(day, span) for day in first.values()))


def percent(numerator: float, denominator: float) -> Number:
    return None if denominator == 0 else 100.0 * numerator / denominator


def divide(left: Number, right: Number) -> Number:
    return None if left is None or right is None or right == 0 else left / right


def _account(deal: Row, field: str) -> Any:
    return deal["account"][field] if deal["account"] else None


def _deal(row: Row, field: str) -> Any:
    return row["deal"][field] if row["deal"] else None


def _close(deal: Row) -> date | None:
    return deal["close_date"]


def _created(row: Row) -> date | None:
    return row["created_date"]


def _activity_date(activity: Row) -> date | None:
    return activity["activity_date"]


def _start(campaign: Row) -> date | None:
    return campaign["start_date"]


# -- the metrics of sales-okrs.yaml, each over one span ---------------------------------------------------

def closed_won_revenue(org: Org, span: Span) -> Number:
    # {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
    return total(org.deals, lambda d: d["amount"], lambda d: d["is_won"], _close, span)


def new_business_won(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count, where: {is_won: true, deal_type: New Business}, time: close_date}
    return count(org.deals, lambda d: d["is_won"] and d["deal_type"] == "New Business", _close, span)


def avg_deal_size(org: Org, span: Span) -> Number:
    # {entity: deal, measure: avg(amount), where: {is_won: true}, time: close_date}
    return average(org.deals, lambda d: d["amount"], lambda d: d["is_won"], _close, span)


def renewal_rate(org: Org, span: Span) -> Number:
    # ratio: count {deal_type: Renewal, is_won: true} / count {deal_type: Renewal, is_closed: true}, time close_date
    return percent(count(org.deals, lambda d: d["deal_type"] == "Renewal" and d["is_won"], _close, span),
                   count(org.deals, lambda d: d["deal_type"] == "Renewal" and d["is_closed"], _close, span))


def renewal_churn_rate(org: Org, span: Span) -> Number:
    # ratio: count {deal_type: Renewal, is_won: false, is_closed: true} / count {deal_type: Renewal,
    # is_closed: true}, time close_date
    return percent(
        count(org.deals, lambda d: d["deal_type"] == "Renewal" and not d["is_won"] and d["is_closed"], _close, span),
        count(org.deals, lambda d: d["deal_type"] == "Renewal" and d["is_closed"], _close, span))


def emea_new_customers(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count_first(account_id), where: {is_won: true, account.region: EMEA}, time: close_date}
    return first_count(org.deals, lambda d: d["account_id"],
                       lambda d: d["is_won"] and _account(d, "region") == "EMEA", _close, span)


def campaigns_launched(org: Org, span: Span) -> Number:
    # {entity: campaign, measure: count, where: {status: [Planned, In Progress, Completed]}, time: start_date}
    return count(org.campaigns, lambda c: c["status"] in ("Planned", "In Progress", "Completed"), _start, span)


def call_volume(org: Org, span: Span) -> Number:
    # {entity: activity, measure: count, where: {kind: call}, time: activity_date}
    return count(org.activities, lambda a: a["kind"] == "call", _activity_date, span)


def avg_sales_cycle_days(org: Org, span: Span) -> Number:
    # {entity: deal, measure: avg(cycle_days), where: {is_won: true}, time: close_date}
    return average(org.deals, lambda d: d["cycle_days"], lambda d: d["is_won"], _close, span)


def reps_logging_activity(org: Org, span: Span) -> Number:
    # {entity: activity, measure: count_distinct(owner_id), time: activity_date}
    return distinct(org.activities, lambda a: a["owner_id"], lambda a: True, _activity_date, span)


def crm_adoption(org: Org, span: Span) -> Number:
    # derived: reps_logging_activity / 38 * 100
    share = divide(reps_logging_activity(org, span), 38)
    return None if share is None else share * 100


def platform_pro_revenue(org: Org, span: Span) -> Number:
    # {entity: line_item, measure: sum(total_price), where: {product_name: Platform Pro, deal.is_won: true},
    #  time: deal.close_date}
    return total(org.line_items, lambda i: i["total_price"],
                 lambda i: i["product_name"] == "Platform Pro" and _deal(i, "is_won") is True,
                 lambda i: _deal(i, "close_date"), span)


def platform_pro_sell_through(org: Org, span: Span) -> Number:
    # ratio: sum(quantity) {product_name: Platform Pro, deal.is_won: true} / sum(quantity) {product_name:
    # Platform Pro, deal.is_closed: true}, time deal.close_date
    return percent(
        total(org.line_items, lambda i: i["quantity"],
              lambda i: i["product_name"] == "Platform Pro" and _deal(i, "is_won") is True,
              lambda i: _deal(i, "close_date"), span),
        total(org.line_items, lambda i: i["quantity"],
              lambda i: i["product_name"] == "Platform Pro" and _deal(i, "is_closed") is True,
              lambda i: _deal(i, "close_date"), span))


def new_leads(org: Org, span: Span) -> Number:
    # {entity: lead, measure: count, time: created_date}
    return count(org.leads, lambda lead: True, _created, span)


def lead_conversion(org: Org, span: Span) -> Number:
    # ratio: count {is_converted: true} / count, time created_date
    return percent(count(org.leads, lambda lead: lead["is_converted"], _created, span),
                   count(org.leads, lambda lead: True, _created, span))


def nurture_campaigns_live(org: Org, span: Span) -> Number:
    # {entity: campaign, measure: count, where: {campaign_type: Email, status: [In Progress, Completed]},
    #  time: start_date}
    return count(org.campaigns, lambda c: c["campaign_type"] == "Email" and c["status"] in ("In Progress", "Completed"),
                 _start, span)


def customer_meetings(org: Org, span: Span) -> Number:
    # {entity: activity, measure: count, where: {kind: meeting, deal.deal_type: [Renewal, Upsell]},
    #  time: activity_date}
    return count(org.activities, lambda a: a["kind"] == "meeting" and _deal(a, "deal_type") in ("Renewal", "Upsell"),
                 _activity_date, span)


def cases_resolved_in_24h(org: Org, span: Span) -> Number:
    # ratio: count {is_closed: true, resolution_hours: {lte: 24}} / count {is_closed: true}, time closed_date
    def closed_date(case: Row) -> date | None:
        return case["closed_date"]

    return percent(count(org.cases, lambda c: c["is_closed"] and c["resolution_hours"] is not None
                         and c["resolution_hours"] <= 24, closed_date, span),
                   count(org.cases, lambda c: c["is_closed"], closed_date, span))


def reps_with_wins(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count_distinct(owner_id), where: {is_won: true}, time: close_date}
    return distinct(org.deals, lambda d: d["owner_id"], lambda d: d["is_won"], _close, span)


def revenue_per_rep(org: Org, span: Span) -> Number:
    # derived: closed_won_revenue / reps_with_wins
    return divide(closed_won_revenue(org, span), reps_with_wins(org, span))


def upsell_opportunities(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count, where: {deal_type: Upsell}, time: created_date}
    return count(org.deals, lambda d: d["deal_type"] == "Upsell", _created, span)


def upsell_revenue(org: Org, span: Span) -> Number:
    # {entity: deal, measure: sum(amount), where: {is_won: true, deal_type: Upsell}, time: close_date}
    return total(org.deals, lambda d: d["amount"], lambda d: d["is_won"] and d["deal_type"] == "Upsell", _close, span)


def activities_logged(org: Org, span: Span) -> Number:
    # {entity: activity, measure: count, where: {kind: [call, email, meeting]}, time: activity_date}
    return count(org.activities, lambda a: a["kind"] in ("call", "email", "meeting"), _activity_date, span)


def revenue_per_activity(org: Org, span: Span) -> Number:
    # derived: closed_won_revenue / activities_logged
    return divide(closed_won_revenue(org, span), activities_logged(org, span))


def apac_new_markets(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count_first(account.country), where: {is_won: true, account.region: APAC},
    #  time: close_date}
    return first_count(org.deals, lambda d: _account(d, "country"),
                       lambda d: d["is_won"] and _account(d, "region") == "APAC", _close, span)


def apac_new_customers(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count_first(account_id), where: {is_won: true, account.region: APAC}, time: close_date}
    return first_count(org.deals, lambda d: d["account_id"],
                       lambda d: d["is_won"] and _account(d, "region") == "APAC", _close, span)


def apac_revenue(org: Org, span: Span) -> Number:
    # {entity: deal, measure: sum(amount), where: {is_won: true, account.region: APAC}, time: close_date}
    return total(org.deals, lambda d: d["amount"], lambda d: d["is_won"] and _account(d, "region") == "APAC",
                 _close, span)


def online_revenue(org: Org, span: Span) -> Number:
    # {entity: deal, measure: sum(amount), where: {is_won: true, lead_source: Web}, time: close_date}
    return total(org.deals, lambda d: d["amount"], lambda d: d["is_won"] and d["lead_source"] == "Web", _close, span)


def digital_campaigns(org: Org, span: Span) -> Number:
    # {entity: campaign, measure: count, where: {campaign_type: [Email, Advertisement],
    #  status: [Planned, In Progress, Completed]}, time: start_date}
    return count(org.campaigns, lambda c: c["campaign_type"] in ("Email", "Advertisement")
                 and c["status"] in ("Planned", "In Progress", "Completed"), _start, span)


def campaign_spend(org: Org, span: Span) -> Number:
    # {entity: campaign, measure: sum(actual_cost), time: start_date}
    return total(org.campaigns, lambda c: c["actual_cost"], lambda c: True, _start, span)


def new_customers(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count_first(account_id), where: {is_won: true}, time: close_date}
    return first_count(org.deals, lambda d: d["account_id"], lambda d: d["is_won"], _close, span)


def customer_acquisition_cost(org: Org, span: Span) -> Number:
    # derived: campaign_spend / new_customers
    return divide(campaign_spend(org, span), new_customers(org, span))


def referral_deals(org: Org, span: Span) -> Number:
    # {entity: deal, measure: count, where: {lead_source: Partner Referral}, time: created_date}
    return count(org.deals, lambda d: d["lead_source"] == "Partner Referral", _created, span)


def low_cost_source_share(org: Org, span: Span) -> Number:
    # ratio: count {deal_type: New Business, lead_source: [Web, Partner Referral]} / count {deal_type:
    # New Business}, time created_date
    return percent(count(org.deals, lambda d: d["deal_type"] == "New Business"
                         and d["lead_source"] in ("Web", "Partner Referral"), _created, span),
                   count(org.deals, lambda d: d["deal_type"] == "New Business", _created, span))


# -- key results -------------------------------------------------------------------------------------------

def _zero(value: Number) -> float:
    return 0.0 if value is None else float(value)


def fixed(metric: Callable[[Org, Span], Number], window: Callable[[date], tuple[Span, Span]] = period_window,
          ) -> Callable[[Org, date], Expected]:
    """Value over the window; baseline and target are numbers written in the YAML."""
    return lambda org, as_of: (_zero(metric(org, window(as_of)[0])), None, None)


def change(metric: Callable[[Org, Span], Number], by: float, carries_over: bool,
           window: Callable[[date], tuple[Span, Span]] = period_window) -> Callable[[Org, date], Expected]:
    """target: {change: by, vs: previous_period}: a count or sum starts at 0, anything else at its previous value."""
    def evaluate(org: Org, as_of: date) -> Expected:
        now, before = window(as_of)
        previous = _zero(metric(org, before))
        return _zero(metric(org, now)), previous if carries_over else 0.0, previous * (1 + by)
    return evaluate


def done(metric: Callable[[Org, Span], Number]) -> Callable[[Org, date], Expected]:
    """type: milestone with a metric: done (value 1) when the metric is above 0; target 1."""
    return lambda org, as_of: (1.0 if _zero(metric(org, quarter(as_of))) > 0 else 0.0, None, 1.0)


def _trailing_7(as_of: date) -> tuple[Span, Span]:
    return trailing_window(as_of, 7)


# kr key -> how its value (and data-given baseline / target) is computed; every objective has `period: current`.
ORACLE: dict[str, Callable[[Org, date], Expected]] = {
    # {id: revenue, metric: closed_won_revenue, target: 28000000}
    "increase-revenue.revenue": fixed(closed_won_revenue),
    # {id: new-deals, metric: new_business_won, target: 130}
    "increase-revenue.new-deals": fixed(new_business_won),
    # {id: deal-size, metric: avg_deal_size, target: {change: "+10%", vs: previous_period}}
    "increase-revenue.deal-size": change(avg_deal_size, +0.10, carries_over=True),
    # {id: renewal-rate, metric: renewal_rate, baseline: 75, target: 85}
    "improve-retention.renewal-rate": fixed(renewal_rate),
    # {id: churn, metric: renewal_churn_rate, type: decrease, target: {change: "-5%", vs: previous_period}}
    "improve-retention.churn": change(renewal_churn_rate, -0.05, carries_over=True),
    # {id: emea-new-customers, metric: emea_new_customers, target: 45}
    "grow-market-share.emea-new-customers": fixed(emea_new_customers),
    # {id: campaigns, metric: campaigns_launched, target: 10}
    "grow-market-share.campaigns": fixed(campaigns_launched),
    # {id: call-volume, metric: call_volume, target: {change: "+20%", vs: previous_period}}
    "sales-productivity.call-volume": change(call_volume, +0.20, carries_over=False),
    # {id: sales-cycle, metric: avg_sales_cycle_days, type: decrease, target: {change: "-15%", vs: previous_period}}
    "sales-productivity.sales-cycle": change(avg_sales_cycle_days, -0.15, carries_over=True),
    # {id: crm-adoption, metric: crm_adoption, type: stay_above, target: 90, window: {trailing_days: 7}}
    "sales-productivity.crm-adoption": fixed(crm_adoption, _trailing_7),
    # {id: product-revenue, metric: platform_pro_revenue, target: {change: "+25%", vs: previous_period}}
    "product-sales.product-revenue": change(platform_pro_revenue, +0.25, carries_over=False),
    # {id: sell-through, metric: platform_pro_sell_through, baseline: 35, target: 50}
    "product-sales.sell-through": fixed(platform_pro_sell_through),
    # {id: new-leads, metric: new_leads, target: 450}
    "lead-generation.new-leads": fixed(new_leads),
    # {id: lead-conversion, metric: lead_conversion, baseline: 30, target: 40}
    "lead-generation.lead-conversion": fixed(lead_conversion),
    # {id: nurture-campaign, type: milestone, metric: nurture_campaigns_live}
    "lead-generation.nurture-campaign": done(nurture_campaigns_live),
    # {id: customer-interviews, metric: customer_meetings, target: 650, window: to_date}
    "customer-relationships.customer-interviews": fixed(customer_meetings, to_date_window),
    # {id: complaints-24h, metric: cases_resolved_in_24h, baseline: 40, target: 50}
    "customer-relationships.complaints-24h": fixed(cases_resolved_in_24h),
    # {id: performance, metric: revenue_per_rep, target: {change: "+15%", vs: previous_period}, window: to_date}
    "sales-training.performance": change(revenue_per_rep, +0.15, carries_over=True, window=to_date_window),
    # {id: cross-sell-opportunities, metric: upsell_opportunities, target: 450}
    "cross-sell-upsell.cross-sell-opportunities": fixed(upsell_opportunities),
    # {id: upsell-revenue, metric: upsell_revenue, target: {change: "+20%", vs: previous_period}}
    "cross-sell-upsell.upsell-revenue": change(upsell_revenue, +0.20, carries_over=False),
    # {id: efficiency, metric: revenue_per_activity, target: {change: "+30%", vs: previous_period}, window: to_date}
    "sales-process.efficiency": change(revenue_per_activity, +0.30, carries_over=True, window=to_date_window),
    # {id: new-markets, metric: apac_new_markets, target: 3}
    "new-regions.new-markets": fixed(apac_new_markets),
    # {id: new-customers, metric: apac_new_customers, target: 70}
    "new-regions.new-customers": fixed(apac_new_customers),
    # {id: revenue, metric: apac_revenue, target: 10000000}
    "new-regions.revenue": fixed(apac_revenue),
    # {id: online-revenue, metric: online_revenue, target: {change: "+40%", vs: previous_period}}
    "digital-sales.online-revenue": change(online_revenue, +0.40, carries_over=False),
    # {id: digital-campaigns, metric: digital_campaigns, target: 3}
    "digital-sales.digital-campaigns": fixed(digital_campaigns),
    # {id: cac, metric: customer_acquisition_cost, type: decrease, target: {change: "-10%", vs: previous_period}}
    "acquisition-cost.cac": change(customer_acquisition_cost, -0.10, carries_over=True),
    # {id: referral-participation, metric: referral_deals, target: {change: "+30%", vs: previous_period}}
    "acquisition-cost.referral-participation": change(referral_deals, +0.30, carries_over=False),
    # {id: cost-effective-sources, metric: low_cost_source_share, baseline: 40, target: 45}
    "acquisition-cost.cost-effective-sources": fixed(low_cost_source_share),
}


def expected_values(state: SandboxState, crm: str, as_of: date) -> dict[str, Expected]:
    """kr key -> (value, baseline or None, target or None) of every metric key result, from `crm`'s face."""
    org = load_org(state, crm)
    return {key: evaluate(org, as_of) for key, evaluate in ORACLE.items()}


# -- the rules the functions above mirror, as the YAML file has them (titles and comments left out) ---------

_CHANGE = "previous_period"
_STATUSES = ["Planned", "In Progress", "Completed"]
METRIC_RULES: dict[str, dict[str, Any]] = {
    "closed_won_revenue": {"entity": "deal", "measure": "sum(amount)", "where": {"is_won": True},
                           "time": "close_date", "unit": "USD"},
    "new_business_won": {"entity": "deal", "measure": "count", "where": {"is_won": True, "deal_type": "New Business"},
                         "time": "close_date", "unit": "deals"},
    "avg_deal_size": {"entity": "deal", "measure": "avg(amount)", "where": {"is_won": True}, "time": "close_date",
                      "unit": "USD"},
    "renewal_rate": {"ratio": {
        "numerator": {"entity": "deal", "measure": "count", "where": {"deal_type": "Renewal", "is_won": True}},
        "denominator": {"entity": "deal", "measure": "count", "where": {"deal_type": "Renewal", "is_closed": True}}},
        "time": "close_date", "unit": "%"},
    "renewal_churn_rate": {"ratio": {
        "numerator": {"entity": "deal", "measure": "count",
                      "where": {"deal_type": "Renewal", "is_won": False, "is_closed": True}},
        "denominator": {"entity": "deal", "measure": "count", "where": {"deal_type": "Renewal", "is_closed": True}}},
        "time": "close_date", "unit": "%"},
    "emea_new_customers": {"entity": "deal", "measure": "count_first(account_id)",
                           "where": {"is_won": True, "account.region": "EMEA"}, "time": "close_date",
                           "unit": "customers"},
    "campaigns_launched": {"entity": "campaign", "measure": "count", "where": {"status": _STATUSES},
                           "time": "start_date", "unit": "campaigns"},
    "call_volume": {"entity": "activity", "measure": "count", "where": {"kind": "call"}, "time": "activity_date",
                    "unit": "calls"},
    "avg_sales_cycle_days": {"entity": "deal", "measure": "avg(cycle_days)", "where": {"is_won": True},
                             "time": "close_date", "unit": "days"},
    "reps_logging_activity": {"entity": "activity", "measure": "count_distinct(owner_id)", "time": "activity_date",
                              "unit": "reps"},
    "crm_adoption": {"derived": "reps_logging_activity / 38 * 100", "unit": "%"},
    "platform_pro_revenue": {"entity": "line_item", "measure": "sum(total_price)",
                             "where": {"product_name": "Platform Pro", "deal.is_won": True}, "time": "deal.close_date",
                             "unit": "USD"},
    "platform_pro_sell_through": {"ratio": {
        "numerator": {"entity": "line_item", "measure": "sum(quantity)",
                      "where": {"product_name": "Platform Pro", "deal.is_won": True}},
        "denominator": {"entity": "line_item", "measure": "sum(quantity)",
                        "where": {"product_name": "Platform Pro", "deal.is_closed": True}}},
        "time": "deal.close_date", "unit": "%"},
    "new_leads": {"entity": "lead", "measure": "count", "time": "created_date", "unit": "leads"},
    "lead_conversion": {"ratio": {
        "numerator": {"entity": "lead", "measure": "count", "where": {"is_converted": True}},
        "denominator": {"entity": "lead", "measure": "count"}}, "time": "created_date", "unit": "%"},
    "nurture_campaigns_live": {"entity": "campaign", "measure": "count",
                               "where": {"campaign_type": "Email", "status": ["In Progress", "Completed"]},
                               "time": "start_date", "unit": "campaigns"},
    "customer_meetings": {"entity": "activity", "measure": "count",
                          "where": {"kind": "meeting", "deal.deal_type": ["Renewal", "Upsell"]},
                          "time": "activity_date", "unit": "meetings"},
    "cases_resolved_in_24h": {"ratio": {
        "numerator": {"entity": "case", "measure": "count",
                      "where": {"is_closed": True, "resolution_hours": {"lte": 24}}},
        "denominator": {"entity": "case", "measure": "count", "where": {"is_closed": True}}},
        "time": "closed_date", "unit": "%"},
    "reps_with_wins": {"entity": "deal", "measure": "count_distinct(owner_id)", "where": {"is_won": True},
                       "time": "close_date", "unit": "reps"},
    "revenue_per_rep": {"derived": "closed_won_revenue / reps_with_wins", "unit": "USD"},
    "upsell_opportunities": {"entity": "deal", "measure": "count", "where": {"deal_type": "Upsell"},
                             "time": "created_date", "unit": "deals"},
    "upsell_revenue": {"entity": "deal", "measure": "sum(amount)", "where": {"is_won": True, "deal_type": "Upsell"},
                       "time": "close_date", "unit": "USD"},
    "activities_logged": {"entity": "activity", "measure": "count", "where": {"kind": ["call", "email", "meeting"]},
                          "time": "activity_date", "unit": "activities"},
    "revenue_per_activity": {"derived": "closed_won_revenue / activities_logged", "unit": "USD"},
    "apac_new_markets": {"entity": "deal", "measure": "count_first(account.country)",
                         "where": {"is_won": True, "account.region": "APAC"}, "time": "close_date",
                         "unit": "countries"},
    "apac_new_customers": {"entity": "deal", "measure": "count_first(account_id)",
                           "where": {"is_won": True, "account.region": "APAC"}, "time": "close_date",
                           "unit": "customers"},
    "apac_revenue": {"entity": "deal", "measure": "sum(amount)", "where": {"is_won": True, "account.region": "APAC"},
                     "time": "close_date", "unit": "USD"},
    "online_revenue": {"entity": "deal", "measure": "sum(amount)", "where": {"is_won": True, "lead_source": "Web"},
                       "time": "close_date", "unit": "USD"},
    "digital_campaigns": {"entity": "campaign", "measure": "count",
                          "where": {"campaign_type": ["Email", "Advertisement"], "status": _STATUSES},
                          "time": "start_date", "unit": "campaigns"},
    "campaign_spend": {"entity": "campaign", "measure": "sum(actual_cost)", "time": "start_date", "unit": "USD"},
    "new_customers": {"entity": "deal", "measure": "count_first(account_id)", "where": {"is_won": True},
                      "time": "close_date", "unit": "customers"},
    "customer_acquisition_cost": {"derived": "campaign_spend / new_customers", "unit": "USD"},
    "referral_deals": {"entity": "deal", "measure": "count", "where": {"lead_source": "Partner Referral"},
                       "time": "created_date", "unit": "deals"},
    "low_cost_source_share": {"ratio": {
        "numerator": {"entity": "deal", "measure": "count",
                      "where": {"deal_type": "New Business", "lead_source": ["Web", "Partner Referral"]}},
        "denominator": {"entity": "deal", "measure": "count", "where": {"deal_type": "New Business"}}},
        "time": "created_date", "unit": "%"},
}

# kr key -> its YAML entry without the title; every objective of these has `period: current`.
KR_RULES: dict[str, dict[str, Any]] = {
    "increase-revenue.revenue": {"id": "revenue", "metric": "closed_won_revenue", "target": 28000000},
    "increase-revenue.new-deals": {"id": "new-deals", "metric": "new_business_won", "target": 130},
    "increase-revenue.deal-size": {"id": "deal-size", "metric": "avg_deal_size",
                                   "target": {"change": "+10%", "vs": _CHANGE}},
    "improve-retention.renewal-rate": {"id": "renewal-rate", "metric": "renewal_rate", "baseline": 75, "target": 85},
    "improve-retention.churn": {"id": "churn", "metric": "renewal_churn_rate", "type": "decrease",
                                "target": {"change": "-5%", "vs": _CHANGE}},
    "grow-market-share.emea-new-customers": {"id": "emea-new-customers", "metric": "emea_new_customers",
                                             "target": 45},
    "grow-market-share.campaigns": {"id": "campaigns", "metric": "campaigns_launched", "target": 10},
    "sales-productivity.call-volume": {"id": "call-volume", "metric": "call_volume",
                                       "target": {"change": "+20%", "vs": _CHANGE}},
    "sales-productivity.sales-cycle": {"id": "sales-cycle", "metric": "avg_sales_cycle_days", "type": "decrease",
                                       "target": {"change": "-15%", "vs": _CHANGE}},
    "sales-productivity.crm-adoption": {"id": "crm-adoption", "metric": "crm_adoption", "type": "stay_above",
                                        "target": 90, "window": {"trailing_days": 7}},
    "product-sales.product-revenue": {"id": "product-revenue", "metric": "platform_pro_revenue",
                                      "target": {"change": "+25%", "vs": _CHANGE}},
    "product-sales.sell-through": {"id": "sell-through", "metric": "platform_pro_sell_through", "baseline": 35,
                                   "target": 50},
    "lead-generation.new-leads": {"id": "new-leads", "metric": "new_leads", "target": 450},
    "lead-generation.lead-conversion": {"id": "lead-conversion", "metric": "lead_conversion", "baseline": 30,
                                       "target": 40},
    "lead-generation.nurture-campaign": {"id": "nurture-campaign", "type": "milestone",
                                         "metric": "nurture_campaigns_live"},
    "customer-relationships.customer-interviews": {"id": "customer-interviews", "metric": "customer_meetings",
                                                   "target": 650, "window": "to_date"},
    "customer-relationships.complaints-24h": {"id": "complaints-24h", "metric": "cases_resolved_in_24h",
                                              "baseline": 40, "target": 50},
    "sales-training.performance": {"id": "performance", "metric": "revenue_per_rep",
                                   "target": {"change": "+15%", "vs": _CHANGE}, "window": "to_date"},
    "cross-sell-upsell.cross-sell-opportunities": {"id": "cross-sell-opportunities", "metric": "upsell_opportunities",
                                                   "target": 450},
    "cross-sell-upsell.upsell-revenue": {"id": "upsell-revenue", "metric": "upsell_revenue",
                                         "target": {"change": "+20%", "vs": _CHANGE}},
    "sales-process.efficiency": {"id": "efficiency", "metric": "revenue_per_activity",
                                 "target": {"change": "+30%", "vs": _CHANGE}, "window": "to_date"},
    "new-regions.new-markets": {"id": "new-markets", "metric": "apac_new_markets", "target": 3},
    "new-regions.new-customers": {"id": "new-customers", "metric": "apac_new_customers", "target": 70},
    "new-regions.revenue": {"id": "revenue", "metric": "apac_revenue", "target": 10000000},
    "digital-sales.online-revenue": {"id": "online-revenue", "metric": "online_revenue",
                                     "target": {"change": "+40%", "vs": _CHANGE}},
    "digital-sales.digital-campaigns": {"id": "digital-campaigns", "metric": "digital_campaigns", "target": 3},
    "acquisition-cost.cac": {"id": "cac", "metric": "customer_acquisition_cost", "type": "decrease",
                             "target": {"change": "-10%", "vs": _CHANGE}},
    "acquisition-cost.referral-participation": {"id": "referral-participation", "metric": "referral_deals",
                                                "target": {"change": "+30%", "vs": _CHANGE}},
    "acquisition-cost.cost-effective-sources": {"id": "cost-effective-sources", "metric": "low_cost_source_share",
                                                "baseline": 40, "target": 45},
}
# The file-wide settings the functions above assume.
SETTINGS = {"fiscal_year_start_month": FISCAL_YEAR_START_MONTH, "time_zone": "America/New_York",
            "reporting_lag_days": None, "period": "current"}
