"""The allow-list of what rules may touch: entities, their fields, and how each maps to SQL.

Config strings never become SQL text. A field name in a rule is looked up here and replaced by a
SQLAlchemy column or expression; anything not listed is rejected at validation time. Adding an
entity means adding one `EntitySpec` to `ENTITIES` (its table needs `source`, `is_deleted` and,
for breakdowns and `owner.*` fields, an `owner_id`). Custom fields declared in a config's
`custom_fields` section join their entity through `with_custom_fields`, read from the row's
`custom` JSON column where the connector stored them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Date, Float, Table, and_, cast
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from connectors.store import Account, Activity, Campaign, Contact, Deal, Lead, LineItem, Owner, SupportCase

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

    `expr` receives the entity's table; fields with `via` read a related table instead (the
    owner's, or a related entity's such as a deal's account) and make the query join it.
    """

    name: str
    kind: FieldKind
    expr: Expr
    via: str | None = None  # "owner" or a relation of RELATIONS: the query joins that table
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
    return FieldSpec(f"owner.{name}", "text", lambda _table: OWNER_TABLE.c[name], "owner", description, only_from)


OWNER_FIELDS = [
    _owner_field("email", "the owner's email"),
    _owner_field("name", "the owner's name"),
    _owner_field("team", "the owner's team"),
    _owner_field("region", "the owner's region", only_from="salesforce"),
]


def _fields(*specs: FieldSpec, owner: bool = True) -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in (*specs, *(OWNER_FIELDS if owner else ()))}


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


class hours_between(FunctionElement[float]):  # noqa: N801 - SQL function naming
    """Hours from the first timestamp to the second, compiled per dialect (see days_between)."""

    type = Float()
    name = "hours_between"
    inherit_cache = True


@compiles(hours_between)
def _hours_between_default(element: hours_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return (f"(EXTRACT(EPOCH FROM (CAST({compiler.process(end, **kw)} AS TIMESTAMP) - "
            f"CAST({compiler.process(start, **kw)} AS TIMESTAMP))) / 3600.0)")


@compiles(hours_between, "sqlite")
def _hours_between_sqlite(element: hours_between, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"((julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)})) * 24.0)"


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
        _column("kind", "text", "call, email or meeting"),
        _column("direction", "text", "inbound or outbound, where the CRM says"),
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
            description="call or meeting length in minutes",
        ),
    ),
)

ACCOUNT = EntitySpec(
    name="account",
    table=_table(Account),
    default_time="created_date",
    fields=_fields(
        _column("source_id", "text", "the CRM id of the account"),
        _column("name", "text"),
        _column("country", "text"),
        _column("industry", "text"),
        _column("account_type", "text", "Customer or Prospect"),
        _column("owner_id", "text"),
        _column("created_date", "date"),
    ),
)

CONTACT = EntitySpec(
    name="contact",
    table=_table(Contact),
    default_time="created_date",
    fields=_fields(
        _column("source_id", "text", "the CRM id of the contact"),
        _column("name", "text"),
        _column("email", "text"),
        _column("account_id", "text"),
        _column("owner_id", "text"),
        _column("lead_source", "text"),
        _column("lifecycle_stage", "text", "HubSpot lifecycle stage, e.g. Customer", only_from="hubspot"),
        _column("created_date", "date"),
    ),
)

LEAD = EntitySpec(
    name="lead",
    table=_table(Lead),
    default_time="created_date",
    fields=_fields(
        _column("source_id", "text", "the CRM id of the lead"),
        _column("name", "text"),
        _column("email", "text"),
        _column("company", "text"),
        _column("country", "text"),
        _column("owner_id", "text"),
        _column("lead_source", "text"),
        _column("status", "text", "lead status, e.g. Closed - Converted"),
        _column("is_converted", "bool"),
        _column("converted_date", "date"),
        _column("created_date", "date"),
    ),
)

CASE = EntitySpec(
    name="case",
    table=_table(SupportCase),
    default_time="created_date",
    fields=_fields(
        _column("source_id", "text", "the CRM id of the case or ticket"),
        _column("subject", "text"),
        _column("account_id", "text"),
        _column("owner_id", "text"),
        _column("status", "text", "status or ticket pipeline stage label"),
        _column("priority", "text", "High, Medium or Low"),
        _column("origin", "text", "where the case came from, e.g. Phone"),
        _column("is_closed", "bool"),
        _column("created_date", "date"),
        _column("closed_date", "date"),
        FieldSpec(
            "resolution_hours",
            "number",
            lambda table: hours_between(table.c.created_at, table.c.closed_at),
            description="hours from opening to closing (empty while open)",
        ),
    ),
)

CAMPAIGN = EntitySpec(
    name="campaign",
    table=_table(Campaign),
    default_time="start_date",
    fields=_fields(
        _column("source_id", "text", "the CRM id of the campaign"),
        _column("name", "text"),
        _column("campaign_type", "text"),
        _column("status", "text"),
        _column("is_active", "bool"),
        _column("owner_id", "text"),
        _column("start_date", "date"),
        _column("end_date", "date"),
        _column("budgeted_cost", "number"),
        _column("actual_cost", "number"),
        _column("expected_revenue", "number"),
        _column("created_date", "date"),
    ),
)

LINE_ITEM = EntitySpec(
    name="line_item",
    table=_table(LineItem),
    default_time="created_date",
    has_owner=False,
    fields=_fields(
        _column("source_id", "text", "the CRM id of the line item"),
        _column("deal_id", "text"),
        _column("product_id", "text"),
        _column("product_name", "text"),
        _column("product_family", "text", only_from="salesforce"),
        _column("quantity", "number"),
        _column("unit_price", "number"),
        _column("total_price", "number"),
        _column("created_date", "date"),
        owner=False,
    ),
)

_OWN_ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec for spec in (DEAL, ACTIVITY, ACCOUNT, CONTACT, LEAD, CASE, CAMPAIGN, LINE_ITEM)
}


class text_as_date(FunctionElement[Any]):  # noqa: N801 - SQL function naming
    """An ISO date held as text, comparable with date parameters: SQLite keeps dates as ISO text
    (a CAST would turn it into a number); PostgreSQL casts it to DATE."""

    type = Date()
    name = "text_as_date"
    inherit_cache = True


@compiles(text_as_date)
def _text_as_date_default(element: text_as_date, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"CAST({compiler.process(value, **kw)} AS DATE)"


@compiles(text_as_date, "sqlite")
def _text_as_date_sqlite(element: text_as_date, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"substr({compiler.process(value, **kw)}, 1, 10)"


@dataclass(frozen=True)
class Relation:
    """A link from an entity's rows to one row of another entity of the same CRM, e.g. deal -> account.

    Rules name the related entity's fields with its name in front (`account.region` on a deal);
    the query joins the related table only when a rule uses one of them.
    """

    name: str  # also the related entity's name
    column: str  # the id column on the entity's own table

    def table(self) -> Table:
        return ENTITIES[self.name].table

    def condition(self, table: Table) -> ColumnElement[bool]:
        """Same CRM, the linked id, and live: a deleted related record's fields read as empty (HubSpot
        drops an archived record's associations, so this is what either CRM can tell)."""
        related = self.table()
        return and_(related.c.source == table.c.source, related.c.source_id == table.c[self.column],
                    related.c.is_deleted.is_(False))


# entity -> its relations (one level: a deal's account, an activity's deal, a line item's deal, ...)
RELATIONS: dict[str, tuple[Relation, ...]] = {
    "deal": (Relation("account", "account_id"),),
    "activity": (Relation("deal", "deal_id"),),
    "line_item": (Relation("deal", "deal_id"),),
    "contact": (Relation("account", "account_id"),),
    "case": (Relation("account", "account_id"),),
}


def relation(entity: str, name: str | None) -> Relation | None:
    """The relation `name` of `entity` (None for the owner join, which is not an entity)."""
    return next((rel for rel in RELATIONS.get(entity, ()) if rel.name == name), None)


def _related_fields(entities: Mapping[str, EntitySpec]) -> dict[str, EntitySpec]:
    """Each entity with `relation.field` for every own field of each related entity (custom ones too)."""
    linked = dict(entities)
    for name, spec in entities.items():
        extra: dict[str, FieldSpec] = {}
        for rel in RELATIONS.get(name, ()):
            target = entities[rel.name]
            for field in target.fields.values():
                if field.via is not None:  # its own owner.* and related fields: one level only
                    continue
                extra[f"{rel.name}.{field.name}"] = FieldSpec(
                    f"{rel.name}.{field.name}", field.kind,
                    lambda _table, field=field, target=target: field.expr(target.table), rel.name,
                    f"the {rel.name}'s {field.description or field.name}", field.only_from)
        linked[name] = replace(spec, fields={**spec.fields, **extra})
    return linked


@dataclass(frozen=True)
class CustomFieldSpec:
    """A custom field as the domain sees it: entity, name, kind, and the CRMs that fill it."""

    entity: str
    name: str
    kind: FieldKind
    sources: tuple[str, ...]
    description: str = ""


def _custom_expr(name: str, kind: FieldKind) -> Expr:
    def expr(table: Table) -> ColumnElement[Any]:
        value = table.c.custom[name]
        if kind == "number":
            return cast(value.as_string(), Float)
        if kind == "bool":
            return value.as_boolean()
        if kind == "date":
            return text_as_date(value.as_string())
        return value.as_string()

    return expr


def with_custom_fields(fields: Mapping[str, list[CustomFieldSpec]] | None) -> dict[str, EntitySpec]:
    """ENTITIES with each entity's custom fields added (the config validated names and collisions)."""
    if not fields:
        return ENTITIES
    entities = dict(_OWN_ENTITIES)
    for name, customs in fields.items():
        base = entities.get(name)
        if base is None:
            continue
        extra = {
            spec.name: FieldSpec(spec.name, spec.kind, _custom_expr(spec.name, spec.kind),
                                 description=spec.description or "custom field",
                                 only_from=spec.sources[0] if len(spec.sources) == 1 else None)
            for spec in customs if spec.name not in base.fields  # a clash is a config error, never an override
        }
        entities[name] = replace(base, fields={**base.fields, **extra})
    return _related_fields(entities)


ENTITIES: dict[str, EntitySpec] = _related_fields(_OWN_ENTITIES)

BREAKDOWNS = ("owner", "team")


def owner_join_condition(table: Table) -> ColumnElement[bool]:
    """How an entity row finds its owner: same CRM, owner_id = owner.source_id."""
    return and_(OWNER_TABLE.c.source == table.c.source, OWNER_TABLE.c.source_id == table.c.owner_id)
