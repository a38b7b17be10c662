"""The sandbox's SOQL parser and compiler, run against a real (tiny) sandbox database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from simple_salesforce import format_soql
from simple_salesforce.format import quote_soql_value

from connectors.sandbox import soql
from connectors.sandbox.ids import sf_id
from connectors.sandbox.salesforce_schema import SCHEMAS
from connectors.sandbox.state import SandboxState

MS_2026_10_22 = int(datetime(2026, 10, 22, 21, 3, 23, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> SandboxState:
    """Five hand-made deals: enough to check what each compiled filter selects."""
    state = SandboxState(Path(tmp_path_factory.mktemp("soql")))
    rows = [
        (1, "Acme renewal", "Renewal", "closed_won", 1000.0, "2026-11-16", MS_2026_10_22, 0),
        (2, "O'Brien \\ Co", "New Business", "proposal", 250.5, "2026-12-01", MS_2026_10_22, 0),
        (3, "50% off deal", "Upsell", "closed_lost", None, "2026-10-01", MS_2026_10_22 + 1500, 0),
        (4, "acme upsell", None, "prospecting", 75.0, "2027-01-15", MS_2026_10_22 + 60_000, 0),
        (5, "Deleted deal", "Renewal", "closed_won", 10.0, "2026-11-20", MS_2026_10_22, 1),
    ]
    with state.transaction() as conn:
        conn.executemany("INSERT INTO deals (id, name, deal_type, stage, amount, close_date, modified_ms,"
                         " deleted, created_ms, owner_id, account_id)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 1, 1)", rows)
    return state


def ids(state: SandboxState, text: str, include_deleted: bool = False) -> list[int]:
    sql, params = soql.compile_soql(text, SCHEMAS, include_deleted).select()
    return [row[0] for row in state.query(sql, params)]


def test_parse_builds_the_tree() -> None:
    query = soql.parse("SELECT Id, Name FROM Opportunity"
                       " WHERE (Amount > 10 AND IsWon = true) OR Name LIKE 'A%'"
                       " ORDER BY CloseDate DESC NULLS LAST, Id LIMIT 5 OFFSET 2")
    assert [name.text for name in query.fields] == ["Id", "Name"]
    assert query.sobject.text == "Opportunity" and query.limit == 5 and query.offset == 2
    assert isinstance(query.where, soql.BoolOp) and query.where.op == "OR"
    first = query.order_by[0]
    assert (first.field.text, first.descending, first.nulls) == ("CloseDate", True, "LAST")


def test_values_are_bound_parameters_never_sql_text() -> None:
    compiled = soql.compile_soql("SELECT Id FROM Opportunity WHERE Name = 'Acme' AND Amount >= 99.5", SCHEMAS)
    sql, params = compiled.select()
    assert "Acme" not in sql and "99.5" not in sql
    assert params[:2] == ["Acme", 99.5]


def test_filters_select_the_expected_rows(state: SandboxState) -> None:
    assert ids(state, "SELECT Id FROM Opportunity") == [1, 2, 3, 4]
    assert ids(state, "SELECT Id FROM Opportunity", include_deleted=True) == [1, 2, 3, 4, 5]
    assert ids(state, "SELECT Id FROM Opportunity WHERE Name = 'ACME RENEWAL'") == [1]  # case-insensitive
    assert ids(state, "SELECT Id FROM Opportunity WHERE StageName IN ('Closed Won', 'Closed Lost')") == [1, 3]
    assert ids(state, "SELECT Id FROM Opportunity WHERE IsWon = false AND NOT (Amount < 100)") == [2]
    by_close = "SELECT Id FROM Opportunity WHERE CloseDate >= 2026-11-16 ORDER BY CloseDate DESC"
    assert ids(state, by_close) == [4, 2, 1]
    assert ids(state, "SELECT Id FROM Opportunity WHERE Name LIKE 'acme%' ORDER BY Name") == [1, 4]
    assert ids(state, "SELECT Id FROM Opportunity ORDER BY Amount DESC NULLS LAST LIMIT 2") == [1, 2]
    assert ids(state, "SELECT Id FROM Opportunity WHERE FiscalQuarter = 4 AND FiscalYear = 2026") == [1, 2, 3]


def test_not_equal_and_not_in_match_null_values_as_soql_does(state: SandboxState) -> None:
    assert ids(state, "SELECT Id FROM Opportunity WHERE Type != 'Renewal'") == [2, 3, 4]
    assert ids(state, "SELECT Id FROM Opportunity WHERE Type NOT IN ('Renewal', 'Upsell')") == [2, 4]
    assert ids(state, "SELECT Id FROM Opportunity WHERE Amount = null") == [3]
    assert ids(state, "SELECT Id FROM Opportunity WHERE Amount != null ORDER BY Amount") == [4, 2, 1]


@pytest.mark.parametrize("literal", ["2026-10-22T21:03:23Z", "2026-10-22T21:03:23.000+0000",
                                     "2026-10-22T21:03:23+00:00", "2026-10-22T23:03:23+02:00"])
def test_datetime_literal_forms_compare_on_whole_seconds(state: SandboxState, literal: str) -> None:
    # row 3 is 1.5 s later: it shares the second 21:03:24 only after truncation, so it is "greater"
    assert ids(state, f"SELECT Id FROM Opportunity WHERE SystemModstamp = {literal}") == [1, 2]
    assert ids(state, f"SELECT Id FROM Opportunity WHERE SystemModstamp > {literal}") == [3, 4]


def test_format_soql_values_stay_literals(state: SandboxState) -> None:
    hostile = "x' OR Name != '"
    text = format_soql("SELECT Id FROM Opportunity WHERE Name = {name}", name=hostile)
    assert ids(state, text) == []
    by_name = "SELECT Id FROM Opportunity WHERE Name = {name}"
    assert ids(state, format_soql(by_name, name="O'Brien \\ Co")) == [2]
    like = "SELECT Id FROM Opportunity WHERE Name LIKE '{part:like}%'"
    assert ids(state, format_soql(like, part="50%")) == [3]
    tricky = "tab\there\nquote\"'\\"
    literal = soql.parse(f"SELECT Id FROM Opportunity WHERE Name = {quote_soql_value(tricky)}").where
    assert isinstance(literal, soql.Comparison) and isinstance(literal.value, soql.Literal)
    assert literal.value.value == tricky


def test_datetime_values_from_format_soql_are_understood(state: SandboxState) -> None:
    moment = datetime(2026, 10, 22, 21, 3, 23, 456_000, tzinfo=UTC)
    text = format_soql("SELECT Id FROM Opportunity WHERE SystemModstamp = {t}", t=moment)
    assert ids(state, text) == [1, 2]


def test_id_literals_compare_in_salesforce_id_order(state: SandboxState) -> None:
    second = sf_id("Opportunity", 2)
    assert ids(state, f"SELECT Id FROM Opportunity WHERE Id > '{second}'") == [3, 4]
    assert ids(state, f"SELECT Id FROM Opportunity WHERE Id = '{second[:15]}'") == [2]
    assert ids(state, f"SELECT Id FROM Opportunity WHERE Id > '{sf_id('Account', 9)}'") == [1, 2, 3, 4]
    assert ids(state, f"SELECT Id FROM Opportunity WHERE Id IN ('{sf_id('User', 1)}')") == []


def test_count_query(state: SandboxState) -> None:
    sql, params = soql.compile_soql("SELECT COUNT() FROM Opportunity WHERE IsClosed = true", SCHEMAS).count()
    assert state.query(sql, params)[0][0] == 2


@pytest.mark.parametrize(("text", "code", "detail"), [
    ("SELECT Id, Foo__c FROM Opportunity", "INVALID_FIELD",
     "ERROR at Row:1:Column:12\nNo such column 'Foo__c' on entity 'Opportunity'"),
    ("SELECT Id FROM Opportunity WHERE Bar = 1", "INVALID_FIELD", "No such column 'Bar'"),
    ("SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported"),
    ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
    ("SELECT Id FROM Opportunity WHERE Amount > 1 AND Amount < 5 OR IsWon = true", "MALFORMED_QUERY",
     "unexpected token: OR"),
    ("SELECT Id FROM Opportunity WHERE Name = 'unterminated", "MALFORMED_QUERY", "unexpected token"),
    ("SELECT Id, Id FROM Opportunity", "MALFORMED_QUERY", "duplicate field selected: Id"),
    ("SELECT Id FROM Opportunity WHERE Amount > '5'", "INVALID_QUERY_FILTER_OPERATOR",
     "must be of type currency and should not be enclosed in quotes"),
    ("SELECT Id FROM Opportunity WHERE CreatedDate > 2026-01-01", "INVALID_QUERY_FILTER_OPERATOR",
     "must be of type datetime"),
    ("SELECT Id FROM Opportunity WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR",
     "invalid ID field: nope"),
    ("", "MALFORMED_QUERY", "A query string has to be specified"),
    ("SELECT Product2.IsActive FROM OpportunityLineItem", "INVALID_FIELD",
     "No such column 'IsActive' on entity 'Product2'"),
    ("SELECT Product2.Name.Family FROM OpportunityLineItem", "INVALID_FIELD", "Didn't understand relationship"),
    ("SELECT Owner.Name FROM Opportunity", "INVALID_FIELD", "Didn't understand relationship 'Owner'"),
    ("SELECT Id FROM OpportunityLineItem ORDER BY Product2.Name", "INVALID_FIELD", "Didn't understand"),
    ("SELECT Product2.Name, product2.NAME FROM OpportunityLineItem", "MALFORMED_QUERY",
     "duplicate field selected: product2.NAME"),
])
def test_rejections_carry_salesforce_codes(text: str, code: str, detail: str) -> None:
    with pytest.raises(soql.SoqlError) as caught:
        soql.compile_soql(text, SCHEMAS)
    assert caught.value.code == code
    assert detail in caught.value.message


@pytest.fixture(scope="module")
def sales(tmp_path_factory: pytest.TempPathFactory) -> SandboxState:
    """Two products, three line items (one without a product), two calls and two emails."""
    state = SandboxState(Path(tmp_path_factory.mktemp("soql-sales")))
    with state.transaction() as conn:
        conn.executemany("INSERT INTO products (id, name, family, is_active, created_ms, modified_ms)"
                         " VALUES (?, ?, ?, 1, 0, 0)", [(1, "Platform Pro", "Platform"), (2, "Care", "Services")])
        conn.executemany("INSERT INTO line_items (id, deal_id, product_id, quantity, unit_price, created_ms,"
                         " modified_ms) VALUES (?, 1, ?, ?, 10.0, 0, ?)",
                         [(1, 2, 2.0, MS_2026_10_22), (2, None, 1.0, MS_2026_10_22), (3, 1, 0.5, 0)])
        conn.executemany("INSERT INTO calls (id, subject, direction, created_ms, modified_ms, deleted)"
                         " VALUES (?, 'call', 'Inbound', 0, ?, ?)", [(1, MS_2026_10_22, 0), (2, 0, 1)])
        conn.executemany("INSERT INTO emails (id, subject, direction, created_ms, modified_ms, deleted)"
                         " VALUES (?, 'mail', 'Outbound', 0, ?, 0)", [(1, MS_2026_10_22), (2, 0)])
    return state


def test_relationship_fields_are_parent_subqueries_with_the_parent_id_last(sales: SandboxState) -> None:
    compiled = soql.compile_soql("SELECT Id, product2.name, Quantity, Product2.Family FROM OpportunityLineItem"
                                 " ORDER BY SystemModstamp DESC, Id", SCHEMAS)
    assert [spec.name for spec in compiled.fields] == ["Id", "Product2.Name", "Quantity", "Product2.Family"]
    assert [spec.relationship for spec in compiled.fields] == [None, "Product2", None, "Product2"]
    assert [rel[:2] for rel in compiled.relationships] == [("Product2", "Product2")]
    sql, params = compiled.select()
    rows = [tuple(row) for row in sales.query(sql, params)]
    assert rows == [(1, 1, "Care", 2.0, "Services", 2), (2, 2, None, 1.0, None, None),
                    (3, 3, "Platform Pro", 0.5, "Platform", 1)]
    plain = soql.compile_soql("SELECT Id FROM OpportunityLineItem", SCHEMAS)
    assert plain.relationships == () and len(sales.query(*plain.select())[0]) == 2


def test_tasks_are_calls_and_emails_with_offset_ids(sales: SandboxState) -> None:
    def ids(text: str, include_deleted: bool = False) -> list[int]:
        sql, params = soql.compile_soql(text, SCHEMAS, include_deleted).select()
        return [row[0] for row in sales.query(sql, params)]

    assert ids("SELECT Id FROM Task ORDER BY SystemModstamp, Id") == [1_000_000_002, 1, 1_000_000_001]
    assert ids("SELECT Id FROM Task", include_deleted=True) == [1, 2, 1_000_000_001, 1_000_000_002]
    assert ids("SELECT Id FROM Task WHERE TaskSubtype = 'email'") == [1_000_000_001, 1_000_000_002]
    assert ids("SELECT Id FROM Task WHERE TaskSubtype = 'Call' AND CallType = 'Inbound'") == [1]
    assert ids(f"SELECT Id FROM Task WHERE Id > '{sf_id('Task', 1)}' LIMIT 1") == [1_000_000_001]
