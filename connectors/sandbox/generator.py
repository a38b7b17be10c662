"""A deterministic, streaming generator of a realistic sales org.

The same seed and anchor always yield the same records in the same order, and records are
yielded one at a time (a deal, then its calls), so an org of a million deals never sits in
memory. Records are CRM-neutral: the Salesforce and HubSpot faces of the sandbox render
the same logical rows in their own shapes, which is what makes their KR values comparable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["anchor"] = self.anchor.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrgSpec:
        return cls(**{**data, "anchor": datetime.fromisoformat(data["anchor"])})


def generate_org(spec: OrgSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("owner" | "account" | "deal" | "call", row) in a fixed order; ids start at 1."""
    rng = random.Random(spec.seed)
    anchor = spec.anchor
    today = anchor.date()
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
    for index in range(1, spec.accounts + 1):
        owner = rng.choice(active)
        region = owner["region"]
        created = moment_between(org_start - timedelta(days=300), org_start)
        account_owner[index] = owner
        yield "account", {
            "id": index, "name": f"{rng.choice(LAST_NAMES)} {rng.choice(INDUSTRIES)} {index}",
            "country": rng.choice(COUNTRIES[region]), "industry": rng.choice(INDUSTRIES),
            "account_type": "Customer" if rng.random() < 0.6 else "Prospect", "owner_id": owner["id"],
            "created_ms": to_ms(created), "modified_ms": to_ms(moment_between(created, anchor)),
        }

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
        created = datetime.combine(created_date, time(), UTC) + timedelta(seconds=rng.randrange(86_400))
        created = min(created, anchor)
        last_touch = min(datetime.combine(close_date, time(23, 59), UTC), anchor)
        modified = moment_between(created, max(last_touch, created + timedelta(seconds=1)))
        deal = {
            "id": index, "name": f"{deal_type} - account {account_id} #{index}", "account_id": account_id,
            "owner_id": owner["id"], "deal_type": deal_type, "stage": stage, "amount": amount,
            "probability": STAGES[stage][1], "created_date": created_date.isoformat(),
            "close_date": close_date.isoformat(), "lead_source": rng.choice(LEAD_SOURCES),
            "created_ms": to_ms(created), "modified_ms": to_ms(modified),
        }
        yield "deal", deal

        call_window_end = min(datetime.combine(close_date, time(18), UTC), anchor)
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


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: small means only, which is all calls per deal needs."""
    limit, count, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
