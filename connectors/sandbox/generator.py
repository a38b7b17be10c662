"""A deterministic, streaming generator of a realistic sales org.

The same seed and anchor always yield the same records in the same order, and records are
yielded one at a time (a deal, then its calls, line items, emails and meetings), so an org of a
million deals never sits in memory. Each kind added after the first version (products, line items,
emails, meetings, leads, cases, campaigns) draws from a random stream of its own, so adding them left
the owners, accounts, deals and calls of every seed exactly as they were. Records are CRM-neutral:
the Salesforce and HubSpot faces of the sandbox render the same logical rows in their own shapes,
which is what makes their KR values comparable.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from connectors.local_dates import local_midnight, zone_of

TEAMS = ("Enterprise", "Mid-Market", "SMB", "Partners")
REGIONS = ("AMER", "EMEA", "APAC")
COUNTRIES = {
    "AMER": ("United States", "Canada", "Brazil", "Mexico"),
    "EMEA": ("Germany", "France", "United Kingdom", "Netherlands", "Spain"),
    "APAC": ("Japan", "Australia", "Singapore", "India"),
}
INDUSTRIES = ("Software", "Manufacturing", "Retail", "Healthcare", "Finance", "Education")
FIRST_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
               "Kemi", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq")
LAST_NAMES = ("Adams", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hughes", "Ito",
              "Jensen", "Kowalski", "Lopez", "Murphy", "Nakamura", "Okafor", "Patel", "Rossi", "Silva")
DEAL_TYPES = ("New Business", "Renewal", "Upsell")
LEAD_SOURCES = ("Web", "Partner Referral", "Trade Show", "Outbound", "Advertisement")
CALL_OUTCOMES = ("Connected", "Left voicemail", "No answer", "Busy")
GENERATOR_VERSION = 2  # bump when the generated org changes: sandboxes seeded by another version regenerate

REGION_OF_COUNTRY = {country: region for region, countries in COUNTRIES.items() for country in countries}
PRODUCT_FAMILIES = ("Platform", "Add-on", "Services")
PRODUCT_TIERS = ("Pro", "Starter", "Enterprise", "Analytics", "Security", "Integration", "Insights",
                 "Onboarding", "Premier", "Training")
LINE_QUANTITIES = (1, 2, 4, 5, 10)  # divisors of 100: a line total in whole hundreds keeps its unit price exact
EMAIL_DIRECTIONS = ("Outbound", "Inbound")
EMAIL_SUBJECTS = ("Re: {deal}", "Proposal for {deal}", "Follow-up: {deal}", "Pricing for {deal}",
                  "Next steps on {deal}")
MEETING_OUTCOMES = ("Scheduled", "Completed", "No show", "Canceled", "Rescheduled")
PAST_MEETING_WEIGHTS = (0, 70, 10, 10, 10)  # a meeting that has ended is no longer "Scheduled"
MEETING_SUBJECTS = ("Discovery call", "Demo", "Proposal review", "Negotiation", "Kick-off")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
LIFECYCLE_STAGES = {"lead": "Lead", "marketingqualifiedlead": "Marketing Qualified Lead",
                    "salesqualifiedlead": "Sales Qualified Lead", "opportunity": "Opportunity",
                    "customer": "Customer"}
UNCONVERTED_LIFECYCLES = ("lead", "marketingqualifiedlead", "salesqualifiedlead")
COMPANY_SUFFIXES = ("Labs", "Group", "Systems", "Partners", "Holdings", "Studio", "Logistics", "Foods")
CASE_STATUSES = ("New", "Working", "Escalated", "Closed")
CASE_PRIORITIES = ("High", "Medium", "Low")
CASE_ORIGINS = ("Phone", "Email", "Web")
CASE_SUBJECTS = ("Cannot log in", "Invoice question", "Data export fails", "Feature request",
                 "Integration error", "Slow dashboard", "License upgrade", "Password reset")
CAMPAIGN_TYPES = ("Webinar", "Conference", "Email", "Advertisement", "Partners")
CAMPAIGN_STATUSES = ("Planned", "In Progress", "Completed", "Aborted")
CAMPAIGN_THEMES = ("Platform launch", "Customer summit", "Renewal drive", "Partner spotlight", "Analytics week")

# Stage key -> (label, default probability %, is_closed, is_won); shared by both CRM faces.
STAGES: dict[str, tuple[str, int, bool, bool]] = {
    "prospecting": ("Prospecting", 10, False, False),
    "qualification": ("Qualification", 20, False, False),
    "proposal": ("Proposal/Price Quote", 50, False, False),
    "negotiation": ("Negotiation/Review", 80, False, False),
    "closed_won": ("Closed Won", 100, True, True),
    "closed_lost": ("Closed Lost", 0, True, False),
}
OPEN_STAGES = ("prospecting", "qualification", "proposal", "negotiation")
WIN_RATE = {"New Business": 0.25, "Renewal": 0.75, "Upsell": 0.45}
AMOUNT_RANGE = {"New Business": (5_000, 150_000), "Renewal": (10_000, 120_000), "Upsell": (2_000, 60_000)}
CYCLE_DAYS = {"New Business": (20, 150), "Renewal": (10, 60), "Upsell": (10, 90)}


def quarter_start(day: date) -> date:
    """First day of the calendar quarter holding `day` (the sandbox org uses calendar fiscal years)."""
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def add_quarters(start: date, quarters: int) -> date:
    months = start.year * 12 + (start.month - 1) + 3 * quarters
    return date(months // 12, months % 12 + 1, 1)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class OrgSpec:
    """What org to generate. `anchor` is the org's "now": nothing is modified after it."""

    seed: int = 42
    deals: int = 3000
    owners: int = 40
    accounts: int = 600
    calls_per_deal: float = 3.0
    anchor: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    products: int = 30
    emails_per_deal: float = 2.0
    meetings_per_deal: float = 1.0
    leads_per_deal: float = 0.5  # leads in the org = round(deals * this)
    cases_per_account: float = 1.5  # cases in the org = round(accounts * this)
    campaigns: int = 24
    time_zone: str = "UTC"  # the org's (its users') time zone: the calendar of its date fields

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["anchor"] = self.anchor.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrgSpec:
        """Read a stored spec; a spec stored before a field existed takes that field's default."""
        known = {spec_field.name for spec_field in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        return cls(**{**values, "anchor": datetime.fromisoformat(data["anchor"])})


def generate_org(spec: OrgSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (kind, row) in a fixed order; ids start at 1 per kind.

    Kinds: "owner", "account", "product", then per deal "deal", its "call", "line_item", "email" and
    "meeting" rows, then "lead", "case", "campaign". Only owners, accounts, deals and calls draw from
    `rng`; every other kind has a stream of its own (see the module docstring).
    """
    rng = random.Random(spec.seed)
    streams = {kind: random.Random(f"{spec.seed}-{kind}")
               for kind in ("products", "line-items", "emails", "meetings", "leads", "cases", "campaigns")}
    anchor = spec.anchor
    zone = zone_of(spec.time_zone)
    today = anchor.astimezone(zone).date()
    first_day = add_quarters(quarter_start(today), -1)
    last_day = add_quarters(quarter_start(today), 2) - timedelta(days=1)
    org_start = datetime.combine(first_day - timedelta(days=200), time(), UTC)

    def moment_between(start: datetime, end: datetime) -> datetime:
        span = max(int((end - start).total_seconds()), 1)
        return start + timedelta(seconds=rng.randrange(span))

    owners: list[dict[str, Any]] = []
    for index in range(1, spec.owners + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        created = moment_between(org_start - timedelta(days=400), org_start)
        owner = {
            "id": index, "first_name": first, "last_name": last,
            "email": f"{first.lower()}.{last.lower()}.{index}@example.com",
            "team": TEAMS[(index - 1) % len(TEAMS)], "region": REGIONS[(index - 1) % len(REGIONS)],
            "is_active": index % 17 != 0,
            "created_ms": to_ms(created), "modified_ms": to_ms(moment_between(created, org_start)),
        }
        owners.append(owner)
        yield "owner", owner

    active = [owner for owner in owners if owner["is_active"]] or owners
    account_owner: dict[int, dict[str, Any]] = {}
    accounts: list[tuple[str, str, str, int]] = []  # (name, country, type, owner id) of account id - 1
    for index in range(1, spec.accounts + 1):
        owner = rng.choice(active)
        region = owner["region"]
        created = moment_between(org_start - timedelta(days=300), org_start)
        account_owner[index] = owner
        account = {
            "id": index, "name": f"{rng.choice(LAST_NAMES)} {rng.choice(INDUSTRIES)} {index}",
            "country": rng.choice(COUNTRIES[region]), "industry": rng.choice(INDUSTRIES),
            "account_type": "Customer" if rng.random() < 0.6 else "Prospect", "owner_id": owner["id"],
            "created_ms": to_ms(created), "modified_ms": to_ms(moment_between(created, anchor)),
        }
        accounts.append((account["name"], account["country"], account["account_type"], owner["id"]))
        yield "account", account

    products = list(_products(streams["products"], spec.products, org_start, anchor))
    yield from (("product", product) for product in products)
    sellable = [product["id"] for product in products if product["is_active"]] or [None]
    ids = {kind: itertools.count(1) for kind in ("line_item", "email", "meeting")}

    call_id = 0
    span_days = (last_day - first_day).days
    for index in range(1, spec.deals + 1):
        account_id = rng.randint(1, spec.accounts)
        owner = account_owner[account_id] if rng.random() < 0.8 else rng.choice(active)
        deal_type = rng.choices(DEAL_TYPES, weights=(5, 3, 2))[0]
        close_date = first_day + timedelta(days=rng.randint(0, span_days))
        low, high = CYCLE_DAYS[deal_type]
        created_date = close_date - timedelta(days=rng.randint(low, high))
        if created_date > today:  # next quarter's pipeline: opened over the last two months
            created_date = today - timedelta(days=rng.randint(0, 60))
        if close_date < today:
            stage = "closed_won" if rng.random() < WIN_RATE[deal_type] else "closed_lost"
        else:
            stage = rng.choice(OPEN_STAGES)
        low_amount, high_amount = AMOUNT_RANGE[deal_type]
        amount = float(round(rng.uniform(low_amount, high_amount), -2))
        day_start = local_midnight(created_date, zone)  # created within its local day (23 to 25 hours)
        day_seconds = int((local_midnight(created_date + timedelta(days=1), zone) - day_start).total_seconds())
        created = min(day_start + timedelta(seconds=rng.randrange(day_seconds)), anchor)
        last_touch = min(datetime.combine(close_date, time(23, 59), zone), anchor)
        modified = moment_between(created, max(last_touch, created + timedelta(seconds=1)))
        deal = {
            "id": index, "name": f"{deal_type} - account {account_id} #{index}", "account_id": account_id,
            "owner_id": owner["id"], "deal_type": deal_type, "stage": stage, "amount": amount,
            "probability": STAGES[stage][1], "created_date": created_date.isoformat(),
            "close_date": close_date.isoformat(), "lead_source": rng.choice(LEAD_SOURCES),
            "created_ms": to_ms(created), "modified_ms": to_ms(modified),
        }
        yield "deal", deal

        call_window_end = min(datetime.combine(close_date, time(18), zone), anchor)
        # Calls accrue over a deal's life: an open deal has had only its elapsed share of them.
        lifetime = max((close_date - created_date).days, 1)
        elapsed = min(max((min(close_date, today) - created_date).days, 0) / lifetime, 1.0)
        for _ in range(_poisson(rng, spec.calls_per_deal * elapsed)):
            call_id += 1
            when = moment_between(created, max(call_window_end, created + timedelta(seconds=1)))
            yield "call", {
                "id": call_id, "owner_id": owner["id"], "deal_id": index,
                "subject": f"Call about {deal['name']}", "ts_ms": to_ms(when),
                "duration_s": rng.randint(30, 2400), "direction": rng.choice(("Outbound", "Inbound")),
                "outcome": rng.choice(CALL_OUTCOMES), "created_ms": to_ms(when),
                "modified_ms": to_ms(moment_between(when, max(when + timedelta(seconds=1),
                                                               min(when + timedelta(days=2), anchor)))),
            }
        yield from _line_items(streams["line-items"], deal, sellable, ids["line_item"])
        window = (created, max(call_window_end, created + timedelta(seconds=1)))
        yield from _emails(streams["emails"], deal, window, spec.emails_per_deal * elapsed, ids["email"])
        yield from _meetings(streams["meetings"], deal, window, spec.meetings_per_deal * elapsed, anchor,
                             ids["meeting"])

    active_ids = [owner["id"] for owner in active]
    yield from _leads(streams["leads"], spec, accounts, active_ids, org_start)
    yield from _cases(streams["cases"], spec, accounts, org_start)
    yield from _campaigns(streams["campaigns"], spec.campaigns, active_ids, anchor)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: small means only, which is all calls per deal needs."""
    limit, count, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A whole second in [start, end) (start itself when the span is under a second)."""
    span = max(int((end - start).total_seconds()), 1)
    return start + timedelta(seconds=rng.randrange(span))


def _products(rng: random.Random, count: int, org_start: datetime, anchor: datetime) -> Iterator[dict[str, Any]]:
    """The price book: families in turn, named "<family> <tier>" (e.g. "Platform Pro")."""
    for index in range(1, count + 1):
        family = PRODUCT_FAMILIES[(index - 1) % len(PRODUCT_FAMILIES)]
        tier_index = (index - 1) // len(PRODUCT_FAMILIES)
        name = f"{family} {PRODUCT_TIERS[tier_index % len(PRODUCT_TIERS)]}"
        if tier_index >= len(PRODUCT_TIERS):
            name += f" {tier_index // len(PRODUCT_TIERS) + 1}"
        created = _moment(rng, org_start - timedelta(days=500), org_start)
        yield {"id": index, "name": name, "family": family, "list_price": float(rng.randrange(5, 200) * 100),
               "is_active": int(index % 11 != 0), "created_ms": to_ms(created),
               "modified_ms": to_ms(_moment(rng, created, anchor))}


def split_amount(rng: random.Random, amount: float, parts: int) -> list[tuple[float, float]]:
    """(quantity, unit price) of up to `parts` lines whose totals sum exactly to `amount`.

    Line totals are whole hundreds and quantities divide 100, so unit prices are whole numbers and
    every product and sum is exact in floating point. An amount that is not whole hundreds (one
    typed in through an API) becomes a single line of quantity 1.
    """
    hundreds = round(amount / 100)
    if hundreds < 1 or hundreds * 100 != amount:
        return [(1.0, float(amount))]
    parts = max(1, min(parts, hundreds))
    cuts = sorted(rng.sample(range(1, hundreds), parts - 1))
    lines = []
    for low, high in zip([0, *cuts], [*cuts, hundreds], strict=True):
        quantity = rng.choice(LINE_QUANTITIES)
        lines.append((float(quantity), (high - low) * 100 / quantity))
    return lines


def deal_line_items(rng: random.Random, deal: dict[str, Any], products: list[int | None],
                    ids: Iterator[int], created_ms: int, modified_ms: int) -> list[dict[str, Any]]:
    """1-3 line items of distinct products whose totals sum to the deal's amount."""
    lines = split_amount(rng, deal["amount"], rng.choices((1, 2, 3), weights=(4, 4, 2))[0])
    picked = rng.sample(products, len(lines)) if len(products) >= len(lines) else [rng.choice(products)
                                                                                 for _ in lines]
    return [{"id": next(ids), "deal_id": deal["id"], "product_id": product_id, "quantity": quantity,
             "unit_price": unit_price, "created_ms": created_ms, "modified_ms": modified_ms}
            for product_id, (quantity, unit_price) in zip(picked, lines, strict=True)]


def _line_items(rng: random.Random, deal: dict[str, Any], products: list[int | None],
                ids: Iterator[int]) -> Iterator[tuple[str, dict[str, Any]]]:
    span = max(deal["modified_ms"] - deal["created_ms"], 0)
    modified_ms = deal["created_ms"] + 1000 * (rng.randrange(span // 1000 + 1))
    for line in deal_line_items(rng, deal, products, ids, deal["created_ms"], modified_ms):
        yield "line_item", line


def _emails(rng: random.Random, deal: dict[str, Any], window: tuple[datetime, datetime], mean: float,
            ids: Iterator[int]) -> Iterator[tuple[str, dict[str, Any]]]:
    for _ in range(_poisson(rng, mean)):
        when = to_ms(_moment(rng, *window))
        yield "email", {
            "id": next(ids), "owner_id": deal["owner_id"], "deal_id": deal["id"],
            "subject": rng.choice(EMAIL_SUBJECTS).format(deal=deal["name"]), "ts_ms": when,
            "direction": rng.choices(EMAIL_DIRECTIONS, weights=(3, 2))[0], "created_ms": when, "modified_ms": when,
        }


def meeting_slot(rng: random.Random, earliest: datetime) -> tuple[datetime, datetime]:
    """(start, end): the first quarter hour at or after `earliest`, 15-120 minutes long."""
    start = datetime.fromtimestamp(math.ceil(earliest.timestamp() / 900) * 900, UTC)
    return start, start + timedelta(minutes=15 * rng.randint(1, 8))


def _meetings(rng: random.Random, deal: dict[str, Any], window: tuple[datetime, datetime], mean: float,
              anchor: datetime, ids: Iterator[int]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Past meetings over the deal's life; an open deal may also have one booked ahead of the anchor."""
    created = window[0]
    slots = [meeting_slot(rng, _moment(rng, *window)) for _ in range(_poisson(rng, mean))]
    if not STAGES[deal["stage"]][2] and rng.random() < 0.5:
        slots.append(meeting_slot(rng, anchor + timedelta(seconds=rng.randrange(3_600, 14 * 86_400))))
    for start, end in slots:
        booked = _moment(rng, created, min(start, anchor))
        if end <= anchor:
            outcome = rng.choices(MEETING_OUTCOMES, weights=PAST_MEETING_WEIGHTS)[0]
            modified = _moment(rng, end, max(end + timedelta(seconds=1), min(end + timedelta(days=2), anchor)))
        else:
            outcome, modified = "Scheduled", booked
        yield "meeting", {
            "id": next(ids), "owner_id": deal["owner_id"], "deal_id": deal["id"],
            "subject": f"{rng.choice(MEETING_SUBJECTS)}: {deal['name']}", "start_ms": to_ms(start),
            "end_ms": to_ms(end), "outcome": outcome, "created_ms": to_ms(booked), "modified_ms": to_ms(modified),
        }


def person_name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def free_company(rng: random.Random) -> tuple[str, str]:
    """(company, country) of a lead not (yet) tied to an account."""
    region = rng.choice(REGIONS)
    return f"{rng.choice(LAST_NAMES)} {rng.choice(COMPANY_SUFFIXES)}", rng.choice(COUNTRIES[region])


def _leads(rng: random.Random, spec: OrgSpec, accounts: list[tuple[str, str, str, int]], owners: list[int],
           org_start: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    """Leads over the org's life; about a third of those older than a week converted into an account."""
    anchor = spec.anchor
    for index in range(1, round(spec.deals * spec.leads_per_deal) + 1):
        first, last = person_name(rng)
        created = _moment(rng, org_start, anchor)
        company, country = free_company(rng)
        account_id = converted = None
        if accounts and created < anchor - timedelta(days=7) and rng.random() < 0.35:
            account_id = rng.randint(1, len(accounts))
            company, country, account_type, _ = accounts[account_id - 1]
            converted = _moment(rng, created + timedelta(days=1), anchor)
            status, lifecycle = LEAD_STATUSES[2], "customer" if account_type == "Customer" else "opportunity"
        else:
            status = rng.choices((LEAD_STATUSES[0], LEAD_STATUSES[1], LEAD_STATUSES[3]), weights=(3, 4, 3))[0]
            lifecycle = rng.choice(UNCONVERTED_LIFECYCLES[:2] if status == LEAD_STATUSES[0]
                                   else UNCONVERTED_LIFECYCLES)
        last_change = converted or created
        yield "lead", {
            "id": index, "first_name": first, "last_name": last,
            "email": f"{first}.{last}.{index}@example.org".lower(), "company": company, "country": country,
            "owner_id": rng.choice(owners) if owners else None, "lead_source": rng.choice(LEAD_SOURCES),
            "status": status, "lifecycle": lifecycle, "account_id": account_id,
            "converted_ms": to_ms(converted) if converted else None, "created_ms": to_ms(created),
            "modified_ms": to_ms(_moment(rng, last_change, min(last_change + timedelta(days=20), anchor))),
        }


def _cases(rng: random.Random, spec: OrgSpec, accounts: list[tuple[str, str, str, int]],
           org_start: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    """Support cases; about 40% are resolved within 24 hours, most of the rest within three weeks."""
    anchor = spec.anchor
    for index in range(1, round(len(accounts) * spec.cases_per_account) + 1):
        account_id = rng.randint(1, len(accounts))
        created = _moment(rng, org_start, anchor)
        if rng.random() < 0.4:
            closed = created + timedelta(seconds=rng.randrange(600, 86_000))
        else:
            closed = created + timedelta(seconds=rng.randrange(86_400, 21 * 86_400))
        if closed <= anchor and rng.random() < 0.95:
            status, modified = "Closed", closed
        else:
            closed = None
            status = rng.choices(CASE_STATUSES[:3], weights=(3, 5, 2))[0]
            modified = _moment(rng, created, anchor)
        yield "case", {
            "id": index, "account_id": account_id, "owner_id": accounts[account_id - 1][3],
            "subject": rng.choice(CASE_SUBJECTS), "status": status,
            "priority": rng.choices(CASE_PRIORITIES, weights=(2, 5, 3))[0],
            "origin": rng.choices(CASE_ORIGINS, weights=(3, 4, 3))[0], "created_ms": to_ms(created),
            "closed_ms": to_ms(closed) if closed else None, "modified_ms": to_ms(modified),
        }


def campaign_status(rng: random.Random, start: date, end: date, today: date) -> str:
    if end < today:
        return "Completed" if rng.random() < 0.9 else "Aborted"
    return "Planned" if start > today else "In Progress"


def _campaigns(rng: random.Random, count: int, owners: list[int],
               anchor: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    """Campaigns in turn over the previous, current and next quarter."""
    today = anchor.date()
    for index in range(1, count + 1):
        first = add_quarters(quarter_start(today), (index - 1) % 3 - 1)
        start = first + timedelta(days=rng.randint(0, 75))
        end = start + timedelta(days=rng.randint(1, 45))
        status = campaign_status(rng, start, end, today)
        budget = float(rng.randrange(5, 100) * 1000)
        done = min(max((today - start).days / max((end - start).days, 1), 0.0), 1.0)
        spent = 0.0 if status == "Planned" else float(round(budget * done * rng.uniform(0.7, 1.15)))
        created = min(datetime.combine(start, time(9), UTC) - timedelta(days=rng.randint(20, 90)), anchor)
        campaign_type = rng.choice(CAMPAIGN_TYPES)
        yield "campaign", {
            "id": index, "name": f"{rng.choice(CAMPAIGN_THEMES)} {campaign_type} {start.year}-Q"
                                 f"{(start.month - 1) // 3 + 1} #{index}",
            "campaign_type": campaign_type, "status": status, "start_date": start.isoformat(),
            "end_date": end.isoformat(), "budgeted_cost": budget, "actual_cost": spent,
            "expected_revenue": budget * rng.randint(3, 12), "owner_id": rng.choice(owners) if owners else None,
            "created_ms": to_ms(created), "modified_ms": to_ms(_moment(rng, created, anchor)),
        }
