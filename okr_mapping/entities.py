"""The allow-list of what rules may touch: entities, their fields, and how each maps to SQL.

Config strings never become SQL text. A field name in a rule is looked up here and replaced by a
SQLAlchemy column or expression; anything not listed is rejected at validation time. Adding an
entity means adding one `EntitySpec` to `ENTITIES` (its table needs `source`, `is_deleted` and,
for breakdowns and `owner.*` fields, an `owner_id`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Float, Table, and_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from connectors.store import Activity, Deal, Owner

FieldKind = Literal["number", "text", "bool", "date"]

DEAL_TABLE: Table = Deal.__table__  # type: ignore[attr-defined]
ACTIVITY_TABLE: Table = Activity.__table__  # type: ignore[attr-defined]
OWNER_TABLE: Table = Owner.__table__  # type: ignore[attr-defined]


class days_between(FunctionElement[float]):  # noqa: N801 - SQL function naming
    """Whole days from the first date to the second, compiled per dialect.

    SQLite stores dates as ISO text and needs julianday(); PostgreSQL subtracts dates natively.
    Only column expressions from this module are ever passed in, never config text.
    """

    type = Float()
    name = "days_between"
    inherit_cache = True


@compiles(days_between)
def _days_between_default(element: days_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"(CAST({compiler.process(end, **kw)} AS DATE) - CAST({compiler.process(start, **kw)} AS DATE))"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"(julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)}))"


Expr = Callable[[Table], ColumnElement[Any]]


@dataclass(frozen=True)
class FieldSpec:
    """One field a rule may name: its kind (for value checks) and its SQL expression.

    `expr` receives the entity's table; fields with `via_owner` read the owner table instead
    and make the query join it.
    """

    name: str
    kind: FieldKind
    expr: Expr
    via_owner: bool = False
    description: str = ""
    only_from: str | None = None  # the one CRM whose connector fills this field so far


@dataclass(frozen=True)
class EntitySpec:
    """A canonical entity rules can measure, with its default time field."""

    name: str
    table: Table
    fields: dict[str, FieldSpec]
    default_time: str
    has_owner: bool = True

    def field(self, name: str) -> FieldSpec | None:
        return self.fields.get(name)

    def names(self, kind: FieldKind | None = None) -> list[str]:
        return [n for n, spec in self.fields.items() if kind is None or spec.kind == kind]


def _column(name: str, kind: FieldKind, description: str = "", only_from: str | None = None) -> FieldSpec:
    return FieldSpec(name, kind, lambda table: table.c[name], description=description, only_from=only_from)


def _owner_field(name: str, description: str, only_from: str | None = None) -> FieldSpec:
    return FieldSpec(f"owner.{name}", "text", lambda _table: OWNER_TABLE.c[name], True, description, only_from)


OWNER_FIELDS = [
    _owner_field("email", "the owner's email"),
    _owner_field("name", "the owner's name"),
    _owner_field("team", "the owner's team"),
    _owner_field("region", "the owner's region", only_from="salesforce"),
]


def _fields(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in (*specs, *OWNER_FIELDS)}


DEAL = EntitySpec(
    name="deal",
    table=DEAL_TABLE,
    default_time="close_date",
    fields=_fields(
        _column("source_id", "text", "the CRM id of the deal"),
        _column("name", "text"),
        _column("amount", "number", "deal amount in the org currency"),
        _column("probability", "number", "win probability, 0-100"),
        _column("stage", "text", "stage label, e.g. Closed Won"),
        _column("deal_type", "text", "New Business, Renewal or Upsell"),
        _column("is_won", "bool"),
        _column("is_closed", "bool"),
        _column("lead_source", "text"),
        _column("created_date", "date"),
        _column("close_date", "date"),
        _column("owner_id", "text"),
        _column("account_id", "text"),
        FieldSpec(
            "cycle_days",
            "number",
            lambda table: days_between(table.c.created_date, table.c.close_date),
            description="days from created_date to close_date",
        ),
    ),
)

ACTIVITY = EntitySpec(
    name="activity",
    table=ACTIVITY_TABLE,
    default_time="activity_date",
    fields=_fields(
        _column("source_id", "text", "the CRM id of the activity"),
        _column("kind", "text", "call (emails and meetings later)"),
        _column("subject", "text"),
        _column("outcome", "text"),
        _column("owner_id", "text"),
        _column("deal_id", "text"),
        _column("activity_date", "date"),
        _column("duration_seconds", "number"),
        FieldSpec(
            "duration_minutes",
            "number",
            lambda table: table.c.duration_seconds / 60.0,
            description="call length in minutes",
        ),
    ),
)

ENTITIES: dict[str, EntitySpec] = {spec.name: spec for spec in (DEAL, ACTIVITY)}

BREAKDOWNS = ("owner", "team")


def owner_join_condition(table: Table) -> ColumnElement[bool]:
    """How an entity row finds its owner: same CRM, owner_id = owner.source_id."""
    return and_(OWNER_TABLE.c.source == table.c.source, OWNER_TABLE.c.source_id == table.c.owner_id)
