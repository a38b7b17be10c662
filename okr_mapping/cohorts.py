"""First-time cohorts: `count_first(field)`, e.g. new customers or new markets entered.

    new_customers: {entity: deal, measure: count_first(account_id), where: {is_won: true}, time: close_date}
    new_markets:   {entity: deal, measure: count_first(account.country), where: {is_won: true}, time: close_date}

Semantics: take ALL records of the source that match the filters, at any date (history before the
period included; deleted records and records with no time-field date left out). Group them by the
field's value, skipping empty values (NULL, and '' for text). A value counts when its earliest date
lies within the period: an account whose first won deal closed last year is not a new customer,
however many deals it wins now.

With a breakdown (owner, team or a text field), a value belongs to the group of its first record:
the one with the earliest date, ties broken by the smallest `source_id` (so the choice is
deterministic and the same on SQLite and PostgreSQL). `row_count` is the number of values counted.

Portable SQL: an inner query over all time ranks each value's records with
row_number() OVER (PARTITION BY value ORDER BY time, source_id) — or, without a breakdown, simply
takes min(time) per value — and the outer query counts the first records inside the period.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from okr_mapping.entities import EntitySpec
from okr_mapping.periods import Period
from okr_mapping.rules import Measure


def first_time_query(
    entity: EntitySpec,
    measure: Measure,
    from_clause: Any,
    scope: tuple[ColumnElement[bool], ...],
    time_column: ColumnElement[Any],
    period: Period,
    group: ColumnElement[Any] | None,
) -> Select[Any]:
    """SELECT [group_key,] count AS metric_value, count AS row_count of values first seen in `period`.

    `scope`: the source, not-deleted and `where` filters, without any period filter.
    """
    spec = entity.fields[measure.field or ""]
    value = spec.expr(entity.table)
    present = [value.is_not(None), time_column.is_not(None)]
    if spec.kind == "text":
        present.append(value != "")
    if group is None:
        firsts = (
            select(value.label("value"), func.min(time_column).label("first_date"))
            .select_from(from_clause)
            .where(*scope, *present)
            .group_by(value)
            .subquery("firsts")
        )
        first_date = firsts.c.first_date
        in_period = (first_date >= period.start, first_date <= period.end)
        count = func.count()
        return select(count.label("metric_value"), count.label("row_count")).select_from(firsts).where(*in_period)

    rank = func.row_number().over(partition_by=value, order_by=(time_column, entity.table.c.source_id))
    ranked = (
        select(group.label("group_key"), time_column.label("first_date"), rank.label("n"))
        .select_from(from_clause)
        .where(*scope, *present)
        .subquery("ranked")
    )
    first_date = ranked.c.first_date
    count = func.count()
    return (
        select(ranked.c.group_key, count.label("metric_value"), count.label("row_count"))
        .select_from(ranked)
        .where(ranked.c.n == 1, first_date >= period.start, first_date <= period.end)
        .group_by(ranked.c.group_key)
    )
