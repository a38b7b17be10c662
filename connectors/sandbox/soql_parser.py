"""The SOQL tokenizer and parser of the sandbox: query text in, a syntax tree (`Query`) out.

Subset: ``SELECT f, ... | COUNT() FROM Obj [WHERE expr] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n] [OFFSET n]`` with AND / OR / NOT / parentheses, = != < <= > >=, [NOT] IN, LIKE, the
literals simple_salesforce's ``quote_soql_value`` produces and the date literals of
connectors.sandbox.soql_dates. Split from the compiler (connectors.sandbox.soql) at the syntax
tree, so each half reads on its own. Rejections carry Salesforce's error codes and its
"ERROR at Row:R:Column:C" messages (`located`), which the compiler reuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.sandbox.soql_dates import DATE_LITERALS, N_DATE_LITERALS

KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC",
                      "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL"})
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<nliteral>[A-Za-z_][A-Za-z0-9_]*:\d+)
  | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE | re.DOTALL)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f",
            "%": "\\%", "_": "\\_"}  # \% and \_ stay escaped: they only mean something to LIKE


class SoqlError(Exception):
    """A query Salesforce would reject; `code` is its errorCode (MALFORMED_QUERY, INVALID_FIELD...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- syntax tree ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Name:
    text: str
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | boolean | null | date | datetime | dateliteral ((NAME, n | None))
    value: Any
    pos: int


@dataclass(frozen=True)
class Comparison:
    field: Name
    op: str  # = != < <= > >= LIKE IN NOT IN
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Comparison | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    field: Name
    descending: bool = False
    nulls: str | None = None  # FIRST | LAST


@dataclass(frozen=True)
class Query:
    text: str
    fields: tuple[Name, ...]
    count_only: bool
    sobject: Name
    where: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


def located(text: str, pos: int, detail: str) -> str:
    """Salesforce's error text: the query line, a caret, then 'ERROR at Row:R:Column:C'."""
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start:] if line_end < 0 else text[line_start:line_end]
    column = pos - line_start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{detail}"


# -- parsing -------------------------------------------------------------------------------------
def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SoqlError("MALFORMED_QUERY", located(text, pos, f"unexpected token: {text[pos]}"))
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


def _unquote(token: Token, text: str) -> str:
    out, body, index = [], token.text[1:-1], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in _ESCAPES:
                raise SoqlError("MALFORMED_QUERY", located(text, token.pos, "Invalid string literal "
                                                           f"'{token.text}'. Illegal character sequence "
                                                           f"'\\{escaped}' in string literal."))
            out.append(_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at(self, *keywords: str) -> bool:
        token = self.current
        return token.kind == "name" and token.text.upper() in keywords

    def fail(self, token: Token | None = None) -> SoqlError:
        token = token or self.current
        return SoqlError("MALFORMED_QUERY", located(self.text, token.pos, f"unexpected token: {token.text}"))

    def keyword(self, word: str) -> Token:
        if not self.at(word):
            raise self.fail()
        return self.advance()

    def punct(self, char: str) -> Token:
        if self.current.text != char or self.current.kind != "punct":
            raise self.fail()
        return self.advance()

    def name(self) -> Name:
        token = self.current
        if token.kind != "name" or token.text.upper() in KEYWORDS:
            raise self.fail()
        self.advance()
        return Name(token.text, token.pos)

    def integer(self) -> int:
        token = self.advance()
        if token.kind != "number" or not token.text.isdigit():
            raise self.fail(token)
        return int(token.text)

    def query(self) -> Query:
        self.keyword("SELECT")
        fields: list[Name] = []
        count_only = False
        if self.at("COUNT") and self.tokens[self.index + 1].text == "(":
            self.advance()
            self.punct("(")
            self.punct(")")
            count_only = True
        else:
            fields.append(self.name())
            while self.current.text == ",":
                self.advance()
                fields.append(self.name())
        self.keyword("FROM")
        sobject = self.name()
        where = order_by = limit = offset = None
        if self.at("WHERE"):
            self.advance()
            where = self.expression()
        if self.at("ORDER"):
            self.advance()
            self.keyword("BY")
            order_by = [self.order_item()]
            while self.current.text == ",":
                self.advance()
                order_by.append(self.order_item())
        if self.at("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.at("OFFSET"):
            self.advance()
            offset = self.integer()
        if self.current.kind != "eof":
            raise self.fail()
        return Query(self.text, tuple(fields), count_only, sobject, where, tuple(order_by or ()), limit,
                     offset)

    def order_item(self) -> OrderItem:
        field = self.name()
        descending, nulls = False, None
        if self.at("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        if self.at("NULLS"):
            self.advance()
            if not self.at("FIRST", "LAST"):
                raise self.fail()
            nulls = self.advance().text.upper()
        return OrderItem(field, descending, nulls)

    def expression(self) -> Expr:
        """Terms joined by AND or by OR; SOQL needs parentheses to mix the two, so do we."""
        items = [self.term()]
        joiner: str | None = None
        while self.at("AND", "OR"):
            word = self.current.text.upper()
            if joiner not in (None, word):
                raise self.fail()
            joiner = word
            self.advance()
            items.append(self.term())
        return items[0] if joiner is None else BoolOp(joiner, tuple(items))

    def term(self) -> Expr:
        if self.at("NOT"):
            self.advance()
            return Not(self.term())
        if self.current.text == "(" and self.current.kind == "punct":
            self.advance()
            inner = self.expression()
            self.punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        field = self.name()
        token = self.current
        if token.kind == "op":
            self.advance()
            return Comparison(field, token.text, self.literal())
        if self.at("LIKE"):
            self.advance()
            return Comparison(field, "LIKE", self.literal())
        negated = self.at("NOT")
        if negated:
            self.advance()
        self.keyword("IN")
        self.punct("(")
        values = [self.literal()]
        while self.current.text == ",":
            self.advance()
            values.append(self.literal())
        self.punct(")")
        return Comparison(field, "NOT IN" if negated else "IN", tuple(values))

    def literal(self) -> Literal:
        token = self.advance()
        if token.kind == "string":
            return Literal("string", _unquote(token, self.text), token.pos)
        if token.kind == "number":
            return Literal("number", float(token.text) if "." in token.text else int(token.text), token.pos)
        if token.kind == "date":
            return Literal("date", token.text, token.pos)
        if token.kind == "datetime":
            seconds = datetime.fromisoformat(token.text).timestamp()
            return Literal("datetime", int(seconds) if seconds.is_integer() else seconds, token.pos)
        if token.kind == "nliteral":
            word, _, count = token.text.upper().partition(":")
            if word not in N_DATE_LITERALS:
                raise self.fail(token)
            return Literal("dateliteral", (word, int(count)), token.pos)
        word = token.text.upper() if token.kind == "name" else ""
        if word in DATE_LITERALS:
            return Literal("dateliteral", (word, None), token.pos)
        if word in ("TRUE", "FALSE"):
            return Literal("boolean", word == "TRUE", token.pos)
        if word == "NULL":
            return Literal("null", None, token.pos)
        raise self.fail(token)


def parse(text: str) -> Query:
    """Parse one SOQL statement; raises SoqlError(MALFORMED_QUERY) on syntax errors."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text).query()
