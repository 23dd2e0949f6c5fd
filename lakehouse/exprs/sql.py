"""Compile a filter expression to a Lance SQL string, so the scan itself skips rows.

A condition is pushed down only as SQL that Lance (DataFusion) evaluates exactly as Polars
evaluates the expression: Lance keeps (and ``delete`` removes) the rows where it is TRUE under
SQL's three-valued logic, the rows Polars keeps. Where no such SQL is known the rule raises
:class:`NotPushable`, and the query evaluates that part in Polars. The rules, each checked against
Lance by ``tests/test_filter_differential.py``:

- Every value reaches SQL through :func:`quote_literal`. Strings go in single quotes with quotes
  doubled; Lance reads backslashes, newlines, ``--``, ``/*`` and NUL inside them as themselves.
  Negative numbers go in parentheses (``(-5)``, so a minus before them never makes ``--``, a
  comment), the Int minimum as ``(-9223372036854775807 - 1)`` (its digits alone do not parse),
  infinities and NaN as casts of their names. Identifiers are quoted with backticks.
- Integer arithmetic is never pushed: Lance wraps on overflow where the executor reports an
  error. A subtree of literals is folded here with Python's exact integers, so ``-lit(-5)``
  pushes as ``5``; a fold that leaves the Int range is left to Polars, which reports it.
- Lance orders floats by IEEE total order where Polars does not: a NaN with its sign bit set
  sorts below -inf (Polars puts every NaN above +inf), and between two expressions -0.0 sorts
  below 0.0 (Polars: equal). So a comparison involving a Float is pushed only as a column against
  a literal that is not NaN, with ``isnan`` added to put NaNs on Polars' side; float arithmetic
  and comparisons of two float expressions stay in Polars.
- ``isin`` leaves out null values (Polars never matches them, where SQL would turn a miss into
  NULL); an empty list or one holding NaN stays in Polars.
- Lance's simplifier rewrites some conditions as if no value were null: it merges IN lists on one
  column (and ORs of equalities, which it turns into IN lists), and an empty merge becomes FALSE,
  or TRUE for NOT IN, on a null value too. A FALSE for a NULL changes nothing in a condition
  without NOT, where both leave the row out. So ``~`` is pushed down to the leaves (``~(a < b)``
  is ``a >= b``, ``~(p & q)`` is ``~p | ~q``), the SQL has no NOT above AND or OR, and a negated
  ``isin`` (the one leaf that can turn into TRUE) also requires a non-null value.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable, Iterable
from typing import Any

from lakehouse.exprs.nodes import (
    COMPARISON,
    BinaryOp,
    Cast,
    ColumnRef,
    Expr,
    IsIn,
    IsNull,
    Literal,
    UnaryOp,
)
from lakehouse.names import ROW_ID

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class NotPushable(Exception):
    """This expression has no Lance SQL form that means exactly what Polars computes."""


def to_sql(expr: Expr, names: dict[int, str]) -> str:
    """``expr`` as a Lance SQL condition, TRUE on exactly the rows where Polars finds it TRUE;
    ``names`` maps column ids to stored names. Raises :class:`NotPushable` where none is known.

    >>> to_sql((t.year > 1990) & t.title.isin(["Up"]), t.table_definition.names())
    "((`year` > 1990) AND (`title` IN ('Up')))"
    """
    rule = _RULES.get(type(expr))
    if rule is None:
        raise NotPushable(expr)
    return rule(expr, names)


def quote_identifier(name: str) -> str:
    if "`" in name:
        raise NotPushable(name)
    return f"`{name}`"


def quote_literal(value: object) -> str:
    """``value`` as a SQL literal that Lance reads back as exactly this value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise NotPushable(value)
        if value == INT_MIN:
            return f"({INT_MIN + 1} - 1)"
        return f"({value})" if value < 0 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('NaN' AS DOUBLE)"
        if math.isinf(value):
            return f"CAST('{'' if value > 0 else '-'}Infinity' AS DOUBLE)"
        return f"(-{-value!r})" if math.copysign(1.0, value) < 0 else repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    raise NotPushable(value)


def rowid_filter(row_ids: Iterable[int]) -> str:
    """A Lance filter matching exactly the rows with these stable row ids (``false`` for none):
    how deletes, updates and prefiltered searches name rows they found by other means.

    >>> rowid_filter([3, 1])
    '_rowid IN (3, 1)'
    """
    ids = [quote_literal(int(i)) for i in row_ids]
    return f"{ROW_ID} IN ({', '.join(ids)})" if ids else "false"


_Rule = Callable[[Any, dict[int, str]], str]

#: the SQL rule of each kind of node, by its exact class (a lookup per node: a filter is
#: rendered on every query)
_RULES: dict[type, _Rule] = {}


def _rule(kind: type) -> Callable[[_Rule], _Rule]:
    def register(rule: _Rule) -> _Rule:
        _RULES[kind] = rule
        return rule
    return register


@_rule(ColumnRef)
def _(expr: ColumnRef, names: dict[int, str]) -> str:
    if expr.type.kind not in ("string", "int", "float", "bool", "date", "timestamp"):
        raise NotPushable(expr)
    return quote_identifier(names[expr.col_id])


@_rule(Literal)
def _(expr: Literal, names: dict[int, str]) -> str:
    return quote_literal(expr.value)


_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "&": "AND", "|": "OR"}
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_FOLDED: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul}


@_rule(BinaryOp)
def _(expr: BinaryOp, names: dict[int, str]) -> str:
    if expr.op in COMPARISON:
        return _comparison(expr, names)
    if expr.op in ("&", "|"):
        return f"({to_sql(expr.left, names)} {_OPS[expr.op]} {to_sql(expr.right, names)})"
    folded = _fold(expr)
    if folded is expr:
        raise NotPushable(expr)
    return to_sql(folded, names)


def _comparison(expr: BinaryOp, names: dict[int, str]) -> str:
    """A comparison, the literal side (if any) on the right."""
    left, right, op = expr.left, expr.right, expr.op
    if type(left) in _FOLDABLE:  # a column or a literal is as it is
        left = _fold(left)
    if type(right) in _FOLDABLE:
        right = _fold(right)
    if isinstance(left, Literal) and not isinstance(right, Literal):
        left, right, op = right, left, _MIRRORED[op]
    if (isinstance(right, Literal) and right.value is None) \
            or "float" not in (left.type.kind, right.type.kind):
        return f"({to_sql(left, names)} {_OPS[op]} {to_sql(right, names)})"
    if not isinstance(right, Literal) or _is_nan(right.value):
        raise NotPushable(expr)
    column, may_be_nan = _float_column(left, names)
    sql = f"({column} {_OPS[op]} {quote_literal(right.value)})"
    if may_be_nan and op in ("<", "<="):  # Polars: a NaN is greater than any number
        return f"({sql} AND (NOT isnan({column})))"
    if may_be_nan and op in (">", ">="):
        return f"({sql} OR isnan({column}))"
    return sql


def _float_column(expr: Expr, names: dict[int, str]) -> tuple[str, bool]:
    """A column compared as a Float, and whether it may hold NaN (an Int column cannot)."""
    if isinstance(expr, Cast) and expr.to.kind == "float":
        expr = expr.operand
    if not isinstance(expr, ColumnRef) or expr.type.kind not in ("int", "float"):
        raise NotPushable(expr)
    if expr.type.kind == "int":
        return f"CAST({to_sql(expr, names)} AS DOUBLE)", False
    return to_sql(expr, names), True


_FOLDABLE = (UnaryOp, BinaryOp)


def _fold(expr: Expr) -> Expr:
    """``expr`` as one Literal if it is arithmetic on literals whose every step stays in range
    (exact integers, IEEE floats as in Polars); else ``expr`` itself."""
    if isinstance(expr, UnaryOp) and expr.op == "neg":
        inner = _fold(expr.operand)
        if isinstance(inner, Literal) and inner.value is not None:
            return _in_range(-inner.value, expr)
    if isinstance(expr, BinaryOp) and expr.op in _FOLDED:
        left, right = _fold(expr.left), _fold(expr.right)
        if isinstance(left, Literal) and isinstance(right, Literal) \
                and isinstance(left.value, int | float) and isinstance(right.value, int | float):
            if expr.type.kind == "float":
                return Literal(_FOLDED[expr.op](float(left.value), float(right.value)), expr.type)
            return _in_range(_FOLDED[expr.op](left.value, right.value), expr)
    return expr


def _in_range(value: float, expr: Expr) -> Expr:
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        return expr  # overflow: Polars evaluates it and reports the error
    return Literal(value, expr.type)


@_rule(UnaryOp)
def _(expr: UnaryOp, names: dict[int, str]) -> str:
    if expr.op == "not":
        return _negated(expr.operand, names)
    folded = _fold(expr)
    if folded is expr:
        raise NotPushable(expr)
    return to_sql(folded, names)


_COMPLEMENT = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def _negated(expr: Expr, names: dict[int, str]) -> str:
    """NOT ``expr``, with the negation pushed down to the leaves (see the module docstring).
    Each rewrite holds in three-valued logic, and for floats in Polars' total order."""
    if isinstance(expr, BinaryOp) and expr.op in ("&", "|"):
        op = "OR" if expr.op == "&" else "AND"
        return f"({_negated(expr.left, names)} {op} {_negated(expr.right, names)})"
    if isinstance(expr, BinaryOp) and expr.op in COMPARISON:
        return _comparison(BinaryOp(_COMPLEMENT[expr.op], expr.left, expr.right), names)
    if isinstance(expr, UnaryOp) and expr.op == "not":
        return to_sql(expr.operand, names)
    if isinstance(expr, IsNull):
        return to_sql(IsNull(expr.operand, negate=not expr.negate), names)
    if isinstance(expr, IsIn):
        return _isin(expr, names, negate=True)
    if isinstance(expr, Literal) and isinstance(expr.value, bool):
        return quote_literal(not expr.value)
    return f"(NOT {to_sql(expr, names)})"  # a Bool column


@_rule(IsNull)
def _(expr: IsNull, names: dict[int, str]) -> str:
    return f"({to_sql(expr.operand, names)} IS {'NOT ' if expr.negate else ''}NULL)"


@_rule(IsIn)
def _(expr: IsIn, names: dict[int, str]) -> str:
    return _isin(expr, names)


def _isin(expr: IsIn, names: dict[int, str], *, negate: bool = False) -> str:
    values = [v.value for v in expr.values if v.value is not None]
    if not values or any(_is_nan(v) for v in values):
        raise NotPushable(expr)
    floats = expr.operand.type.kind == "float" or any(isinstance(v, float) for v in values)
    operand = _float_column(expr.operand, names)[0] if floats else to_sql(expr.operand, names)
    listed = ", ".join(quote_literal(v) for v in values)
    if negate:
        return f"(({operand} IS NOT NULL) AND ({operand} NOT IN ({listed})))"
    return f"({operand} IN ({listed}))"


@_rule(Cast)
def _(expr: Cast, names: dict[int, str]) -> str:
    if expr.to.kind == "float" and expr.operand.type.kind == "int":
        return f"CAST({to_sql(expr.operand, names)} AS DOUBLE)"
    raise NotPushable(expr)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
