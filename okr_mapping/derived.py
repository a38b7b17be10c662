"""Derived metrics: arithmetic over other metrics, e.g. `closed_won_revenue / active_reps`.

The formula is parsed with Python's own parser (`ast`, never `eval`) and then walked against an
allow-list: metric names, numbers, + - * /, unary minus and parentheses. Anything else — calls,
attributes, comparisons, strings — is refused with the column it starts at, so a formula in a
config is data, never code.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from okr_mapping.errors import KeyPath, did_you_mean
from okr_mapping.findings import Finding

_OPERATORS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
HELP = "metric names, numbers, + - * / and parentheses, e.g. closed_won_revenue / won_deals"


class FormulaError(ValueError):
    """A formula that is not allowed; `column` is 1-based within the formula text (None if unknown)."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Formula:
    """A parsed, allow-listed formula; `names` are the metrics it reads."""

    text: str
    tree: ast.expr
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, float]) -> float | None:
        """The formula over `values` (every name must be there); None on a division by zero."""
        try:
            return _evaluate(self.tree, values)
        except ZeroDivisionError:
            return None


def parse_formula(text: str) -> Formula:
    """Parse and check `text`; FormulaError says what is not allowed and where."""
    if not text.strip():
        raise FormulaError(f"the formula is empty; write {HELP}")
    indent = len(text) - len(text.lstrip())  # columns count from the text as written
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise FormulaError(f"cannot read the formula: {error.msg}; write {HELP}",
                           None if error.offset is None else error.offset + indent) from None
    try:
        names = _checked_names(tree)
    except FormulaError as error:
        if error.column is not None:
            error.column += indent
        raise
    return Formula(text, tree, frozenset(names))


def _checked_names(tree: ast.expr) -> set[str]:
    """The metric names of an allow-listed tree; FormulaError (column within the stripped text) otherwise."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _OPERATORS:
                raise FormulaError(f"only + - * / are allowed between metrics; write {HELP}", node.col_offset + 1)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd):
                raise FormulaError(f"only a minus sign may stand before a value; write {HELP}", node.col_offset + 1)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise FormulaError(f"only numbers may appear besides metric names, got {node.value!r}",
                                   node.col_offset + 1)
            try:
                finite = math.isfinite(float(node.value))
            except OverflowError:
                finite = False
            if not finite:
                raise FormulaError("that number is too large for a formula", node.col_offset + 1)
        elif not isinstance(node, ast.operator | ast.unaryop | ast.Load):
            raise FormulaError(f"'{ast.unparse(node)}' is not allowed in a formula; write {HELP}",
                               getattr(node, "col_offset", -1) + 1 or None)
    return names


def restarts_at_zero(formula: Formula) -> bool:
    """Whether the formula is 0 when every metric it reads is 0 and grows with them: sums and
    differences of metrics, each maybe scaled by a number (won_revenue / 4, a - b), but not a
    ratio of metrics or a constant added (won_revenue / won_deals, a + 1000)."""
    return _homogeneous(formula.tree)


def _homogeneous(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.UnaryOp):
        return _homogeneous(node.operand)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add | ast.Sub):
            return _homogeneous(node.left) and _homogeneous(node.right)
        if isinstance(node.op, ast.Mult):
            return (_constant(node.left) and _homogeneous(node.right)) or (
                _constant(node.right) and _homogeneous(node.left))
        if isinstance(node.op, ast.Div):
            return _constant(node.right) and _homogeneous(node.left)
    return False


def _constant(node: ast.expr) -> bool:
    return not any(isinstance(child, ast.Name) for child in ast.walk(node))


def _evaluate(node: ast.expr, values: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values), _evaluate(node.right, values)
        symbol = _OPERATORS[type(node.op)]
        if symbol == "+":
            return left + right
        if symbol == "-":
            return left - right
        if symbol == "*":
            return left * right
        return left / right
    raise FormulaError(f"'{ast.unparse(node)}' is not allowed in a formula")  # parse_formula refused it already


def formula_names(metric: object) -> frozenset[str]:
    """The metrics a derived metric reads (none for another metric, or a formula that does not parse)."""
    text = getattr(metric, "derived", None)
    if not isinstance(text, str):
        return frozenset()
    try:
        return parse_formula(text).names
    except FormulaError:
        return frozenset()


def base_metrics(name: str, metrics: Mapping[str, object]) -> list[str]:
    """`name` itself, or for a derived metric every non-derived metric it reads, directly or not."""
    found: list[str] = []
    stack, seen = [name], set()
    while stack:
        current = stack.pop()
        if current in seen or current not in metrics:
            continue
        seen.add(current)
        names = formula_names(metrics[current])
        if names:
            stack.extend(sorted(names))
        elif getattr(metrics[current], "derived", None) is None:
            found.append(current)
    return found


def check_derived(name: str, metric: object, metrics: Mapping[str, object],
                  metric_names: set[str]) -> Iterator[Finding]:
    """A derived metric's formula: allowed, naming known metrics, and not reading itself (even
    through another derived metric)."""
    path: KeyPath = ("metrics", name, "derived")
    text = str(getattr(metric, "derived", ""))
    try:
        formula = parse_formula(text)
    except FormulaError as error:
        where = f" (at character {error.column})" if error.column else ""
        yield Finding("error", path, f"{error}{where}")
        return
    known = sorted(metric_names)
    for unknown in sorted(formula.names - metric_names):
        yield Finding("error", path, f"the formula reads metric '{unknown}', which is not defined",
                      did_you_mean(unknown, known))
    if _reads_itself(name, metrics):
        yield Finding("error", path, f"metric '{name}' reads itself through its formula; a derived metric "
                      "can only use other metrics")


def _reads_itself(name: str, metrics: Mapping[str, object]) -> bool:
    stack, seen = sorted(formula_names(metrics.get(name))), set()
    while stack:
        current = stack.pop()
        if current == name:
            return True
        if current in seen:
            continue
        seen.add(current)
        stack.extend(formula_names(metrics.get(current)))
    return False
