"""What the canonical store must hold for every stream, computed straight from the sandbox's tables.

Shares no code with the connectors' mapping: plain Python over the logical org's rows, spelled
the way each CRM face serves them (connectors/sandbox) and the store keeps them (connectors/store).
Rows are keyed by (table, the sandbox's integer id) and compared as tuples of canonical values;
a deleted record only has to be flagged deleted (what changed just before its deletion may not
be visible any more: HubSpot's archive list carries no associations, for one). A deleted HubSpot
campaign (no archived list: it just leaves the campaigns list) is flagged deleted if it was stored
before, and absent if the connector never saw it (GONE).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.sandbox.generator import COUNTRIES, LIFECYCLE_STAGES, STAGES
from connectors.sandbox.hubspot_campaigns import campaign_guid
from connectors.sandbox.ids import EMAIL_TASK_OFFSET, hs_number, sf_number
from connectors.sandbox.state import SandboxState
from connectors.store import RECORD_MODELS

Rows = dict[tuple[str, int], tuple[Any, ...]]
DELETED = ("deleted",)
GONE = ("deleted", "or never stored")  # expected: flagged deleted, or absent
REGION_OF = {country: region for region, countries in COUNTRIES.items() for country in countries}
TICKET_STAGES = {"New": "New", "Working": "Waiting on contact", "Escalated": "Waiting on us", "Closed": "Closed"}
TICKET_SOURCES = {"Phone": "Phone", "Email": "Email", "Web": "Web form"}
HS_DEAL_TYPES = {"New Business": "New Business", "Renewal": "Renewal", "Upsell": "Upsell"}
# Lead status -> the HubSpot lead pipeline stage label; campaign status -> HubSpot's label.
HS_LEAD_STAGES = {"Open - Not Contacted": "New", "Working - Contacted": "Attempting",
                  "Closed - Converted": "Qualified", "Closed - Not Converted": "Disqualified"}
HS_CAMPAIGN_STATUSES = {"Planned": "Planned", "In Progress": "In Progress", "Completed": "Completed",
                        "Aborted": "Paused"}
# canonical table -> HubSpot object type of its ids (activities and the rest are resolved per row)
HS_TYPES = {"owner": "owners", "account": "companies", "deal": "deals", "contact": "contacts",
            "case": "tickets", "line_item": "line_items", "lead": "leads", "campaign": "campaigns"}
HS_ACTIVITY_TYPES = {"call": "calls", "email": "emails", "meeting": "meetings"}


def _day(zone: ZoneInfo) -> Callable[[int | None], date | None]:
    """The org's calendar day of a ms timestamp, as its users (and the configured time zone) see it."""
    return lambda ms: None if ms is None else datetime.fromtimestamp(ms / 1000, zone).date()


def _moment(ms: int | None, crm: str) -> datetime | None:
    """A datetime as the store gives it back (naive UTC); Salesforce serves whole seconds."""
    if ms is None:
        return None
    if crm == "salesforce":
        ms = ms // 1000 * 1000
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def _naive(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment and moment.tzinfo else moment


def _name(row: Any) -> str:
    return " ".join(part for part in (row["first_name"], row["last_name"]) if part)


def expected_rows(state: SandboxState, crm: str, custom: bool = False) -> Rows:
    """Every canonical row `crm`'s streams must have stored, keyed by (table, sandbox id).

    `custom`: the sync ran with account.region mapped (Region__c / region), so accounts carry it.
    """
    sf = crm == "salesforce"
    rows: Rows = {}
    _date = _day(state.zone)

    def put(table: str, number: int, deleted: Any, values: Callable[[], tuple[Any, ...]]) -> None:
        rows[(table, number)] = DELETED if deleted else values()

    for o in state.query("SELECT * FROM owners"):
        rows[("owner", o["id"])] = (o["email"], _name(o), o["team"], o["region"] if sf else None,
                                    bool(o["is_active"]))
    for a in state.query("SELECT * FROM accounts"):
        extra = {"region": REGION_OF[a["country"]]} if custom else {}
        put("account", a["id"], a["deleted"], lambda a=a, extra=extra: (
            a["name"], a["owner_id"], a["country"], a["industry"], a["account_type"], _date(a["created_ms"]),
            extra))
    for d in state.query("SELECT * FROM deals"):
        label, _probability, closed, won = STAGES[d["stage"]]
        put("deal", d["id"], d["deleted"], lambda d=d, label=label, closed=closed, won=won: (
            d["name"], d["owner_id"], d["account_id"], d["deal_type"], label, d["amount"], closed, won,
            date.fromisoformat(d["close_date"]), d["lead_source"], _date(d["created_ms"])))
    products = {p["id"]: p for p in state.query("SELECT * FROM products")}
    for item in state.query("SELECT * FROM line_items"):
        product = products.get(item["product_id"])
        put("line_item", item["id"], item["deleted"], lambda item=item, product=product: (
            item["deal_id"], item["product_id"], product["name"] if product else None,
            (product["family"] if product else None) if sf else None, item["quantity"], item["unit_price"],
            round(item["quantity"] * item["unit_price"], 2), _date(item["created_ms"])))
    for c in state.query("SELECT * FROM calls"):
        put("call", c["id"], c["deleted"], lambda c=c: (
            "call", c["subject"], c["owner_id"], c["deal_id"], _date(c["ts_ms"]), c["duration_s"], c["outcome"],
            c["direction"].lower()))
    for e in state.query("SELECT * FROM emails"):
        put("email", e["id"], e["deleted"], lambda e=e: (
            "email", e["subject"], e["owner_id"], e["deal_id"], _date(e["ts_ms"]), None, None,
            None if sf else e["direction"].lower()))
    for m in state.query("SELECT * FROM meetings"):
        put("meeting", m["id"], m["deleted"], lambda m=m: (
            "meeting", m["subject"], m["owner_id"], m["deal_id"], _date(m["start_ms"]),
            (m["end_ms"] - m["start_ms"]) // 1000, None if sf else m["outcome"], None))
    for lead in state.query("SELECT * FROM leads"):
        converted = lead["converted_ms"] is not None
        if sf:
            put("lead", lead["id"], lead["deleted"], lambda lead=lead, converted=converted: (
                _name(lead), lead["email"], lead["company"], lead["country"], lead["owner_id"], lead["lead_source"],
                lead["status"], converted, _date(lead["converted_ms"]), lead["account_id"],
                lead["id"] if converted else None, _date(lead["created_ms"])))
            if converted:
                put("contact", lead["id"], lead["deleted"], lambda lead=lead: (
                    _name(lead), lead["email"], lead["account_id"], lead["owner_id"], lead["lead_source"], None,
                    _date(lead["converted_ms"])))
        else:
            put("contact", lead["id"], lead["deleted"], lambda lead=lead: (
                _name(lead), lead["email"], lead["account_id"], lead["owner_id"], lead["lead_source"],
                LIFECYCLE_STAGES[lead["lifecycle"]], _date(lead["created_ms"])))
            put("lead", lead["id"], lead["deleted"], lambda lead=lead, converted=converted: (
                _name(lead), lead["email"], lead["company"], lead["country"], lead["owner_id"], lead["lead_source"],
                HS_LEAD_STAGES[lead["status"]], converted, _date(lead["converted_ms"]), lead["account_id"], None,
                _date(lead["created_ms"])))
    for case in state.query("SELECT * FROM cases"):
        put("case", case["id"], case["deleted"], lambda case=case: (
            case["subject"], case["account_id"], case["owner_id"],
            case["status"] if sf else TICKET_STAGES[case["status"]], case["priority"],
            case["origin"] if sf else TICKET_SOURCES[case["origin"]], case["status"] == "Closed",
            _moment(case["created_ms"], crm), _moment(case["closed_ms"], crm), _date(case["created_ms"]),
            _date(case["closed_ms"])))
    for c in state.query("SELECT * FROM campaigns"):
        if c["deleted"] and not sf:
            rows[("campaign", c["id"])] = GONE
            continue
        put("campaign", c["id"], c["deleted"], lambda c=c: (
            c["name"], c["campaign_type"], c["status"] if sf else HS_CAMPAIGN_STATUSES[c["status"]],
            c["status"] in ("Planned", "In Progress"), c["owner_id"], date.fromisoformat(c["start_date"]),
            date.fromisoformat(c["end_date"]), c["budgeted_cost"], c["actual_cost"], c["expected_revenue"],
            _date(c["created_ms"])))
    return rows


_CAMPAIGN_NUMBERS: dict[str, int] = {}  # HubSpot campaign GUID -> campaigns row id, filled as needed


def _campaign_number(guid: str, limit: int = 1_000_000) -> int:
    """The campaigns row behind a HubSpot campaign GUID (the sandbox's uuid5 rule, searched upwards)."""
    number = len(_CAMPAIGN_NUMBERS)
    while guid not in _CAMPAIGN_NUMBERS:
        number += 1
        if number > limit:
            raise ValueError(f"not a sandbox campaign id: {guid!r}")
        _CAMPAIGN_NUMBERS[campaign_guid(number)] = number
    return _CAMPAIGN_NUMBERS[guid]


def _number(crm: str, hs_type: str, record_id: str | None) -> int | None:
    if record_id is None:
        return None
    if crm == "salesforce":
        return sf_number(record_id)[1]
    if hs_type == "campaigns":
        return _campaign_number(record_id)
    return hs_number(hs_type, record_id)


def stored_rows(engine: Engine, crm: str, custom: bool = False) -> Rows:
    """The store's rows of `crm` in the oracle's form (ids turned back into sandbox numbers)."""
    rows: Rows = {}

    def num(hs_type: str, record_id: str | None) -> int | None:
        return _number(crm, hs_type, record_id)

    def key(table: str, hs_type: str, record: Any) -> tuple[str, int]:
        number = num(hs_type, record.source_id)
        assert number is not None
        if table == "email" and crm == "salesforce":
            number -= EMAIL_TASK_OFFSET
        return table, number

    def put(table: str, hs_type: str, record: Any, values: Callable[[], tuple[Any, ...]]) -> None:
        where = key(table, hs_type, record)
        assert where not in rows, f"{where} stored twice"
        rows[where] = DELETED if getattr(record, "is_deleted", False) else values()

    with Session(engine) as session:
        def every(table: str) -> list[Any]:
            model = RECORD_MODELS[table]
            return list(session.exec(select(model).where(model.source == crm)))  # type: ignore[attr-defined]

        for o in every("owner"):
            rows[key("owner", "owners", o)] = (o.email, o.name, o.team, o.region, o.is_active)
        for a in every("account"):
            put("account", "companies", a, lambda a=a: (
                a.name, num("owners", a.owner_id), a.country, a.industry, a.account_type, a.created_date,
                a.custom if custom else {}))
        for d in every("deal"):
            put("deal", "deals", d, lambda d=d: (
                d.name, num("owners", d.owner_id), num("companies", d.account_id), d.deal_type, d.stage, d.amount,
                d.is_closed, d.is_won, d.close_date, d.lead_source, d.created_date))
        for item in every("line_item"):
            put("line_item", "line_items", item, lambda item=item: (
                num("deals", item.deal_id), num("products", item.product_id), item.product_name,
                item.product_family, item.quantity, item.unit_price,
                None if item.total_price is None else round(item.total_price, 2), item.created_date))
        for act in every("activity"):
            hs_type = HS_ACTIVITY_TYPES[act.kind]
            put(act.kind, hs_type, act, lambda act=act: (
                act.kind, act.subject, num("owners", act.owner_id), num("deals", act.deal_id), act.activity_date,
                act.duration_seconds, act.outcome, act.direction))
        for lead in every("lead"):
            put("lead", "leads", lead, lambda lead=lead: (
                lead.name, lead.email, lead.company, lead.country, num("owners", lead.owner_id), lead.lead_source,
                lead.status, lead.is_converted, lead.converted_date, num("companies", lead.converted_account_id),
                num("contacts", lead.converted_contact_id), lead.created_date))
        for c in every("contact"):
            put("contact", "contacts", c, lambda c=c: (
                c.name, c.email, num("companies", c.account_id), num("owners", c.owner_id), c.lead_source,
                c.lifecycle_stage, c.created_date))
        for case in every("case"):
            put("case", "tickets", case, lambda case=case: (
                case.subject, num("companies", case.account_id), num("owners", case.owner_id), case.status,
                case.priority, case.origin, case.is_closed, _naive(case.created_at), _naive(case.closed_at),
                case.created_date, case.closed_date))
        for c in every("campaign"):
            put("campaign", "campaigns", c, lambda c=c: (
                c.name, c.campaign_type, c.status, c.is_active, num("owners", c.owner_id), c.start_date, c.end_date,
                c.budgeted_cost, c.actual_cost, c.expected_revenue, c.created_date))
    return rows


def differences(stored: Rows, expected: Rows, limit: int = 8) -> list[tuple[tuple[str, int], Any, Any]]:
    """(key, stored, expected) of the first rows that differ, missing or extra, in key order."""
    def same(key: tuple[str, int]) -> bool:
        got, wanted = stored.get(key), expected.get(key)
        return got == wanted or (wanted == GONE and got in (None, DELETED))

    keys = sorted(key for key in stored.keys() | expected.keys() if not same(key))
    return [(key, stored.get(key), expected.get(key)) for key in keys[:limit]]


def tables(rows: Rows) -> dict[str, int]:
    """How many rows per table: a quick check that every stream delivered."""
    counts: dict[str, int] = {}
    for table, _number in rows:
        counts[table] = counts.get(table, 0) + 1
    return counts
