"""Compile a filter expression to a Lance SQL string, so the scan itself skips rows.

Identifiers are quoted with backticks and string literals with doubled single quotes, so no value
can break out of its literal. Nodes with no SQL rule raise :class:`NotPushable`; the query then
splits the filter and evaluates the rest in Polars.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import singledispatch

from lakehouse.exprs.nodes import (
    BinaryOp,
    Cast,
    ColumnRef,
    Expr,
    IsIn,
    IsNull,
    Literal,
    UnaryOp,
)


class NotPushable(Exception):
    """This expression has no Lance SQL form."""


def to_sql(expr: Expr, names: dict[int, str]) -> str:
    return _sql(expr, names)


def quote_identifier(name: str) -> str:
    if "`" in name:
        raise NotPushable(name)
    return f"`{name}`"


def quote_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise NotPushable(value)
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise NotPushable(value)
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    raise NotPushable(value)


@singledispatch
def _sql(expr: Expr, names: dict[int, str]) -> str:
    raise NotPushable(expr)


@_sql.register
def _(expr: ColumnRef, names: dict[int, str]) -> str:
    if expr.type.kind not in ("string", "int", "float", "bool", "date", "timestamp"):
        raise NotPushable(expr)
    return quote_identifier(names[expr.col_id])


@_sql.register
def _(expr: Literal, names: dict[int, str]) -> str:
    return quote_literal(expr.value)


_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "&": "AND", "|": "OR",
        "+": "+", "-": "-", "*": "*"}


@_sql.register
def _(expr: BinaryOp, names: dict[int, str]) -> str:
    op = _OPS.get(expr.op)
    if op is None or (expr.op == "+" and expr.type.kind == "string"):
        raise NotPushable(expr)
    left = _numeric(expr.left, expr.right, names=names)
    right = _numeric(expr.right, expr.left, names=names)
    return f"({left} {op} {right})"


def _numeric(expr: Expr, *others: Expr, names: dict[int, str]) -> str:
    """``expr`` as SQL, cast to DOUBLE where it is an Int met by a Float: Lance refuses to
    compare an Int64 column with a float literal (``n > 1.5``)."""
    sql = _sql(expr, names)
    if expr.type.kind == "int" and any(o.type.kind == "float" for o in others):
        return f"CAST({sql} AS DOUBLE)"
    return sql


@_sql.register
def _(expr: UnaryOp, names: dict[int, str]) -> str:
    inner = _sql(expr.operand, names)
    return f"(NOT {inner})" if expr.op == "not" else f"(-{inner})"


@_sql.register
def _(expr: IsNull, names: dict[int, str]) -> str:
    return f"({_sql(expr.operand, names)} IS {'NOT ' if expr.negate else ''}NULL)"


@_sql.register
def _(expr: IsIn, names: dict[int, str]) -> str:
    if not expr.values:
        return "FALSE"
    values = ", ".join(_sql(v, names) for v in expr.values)
    return f"({_numeric(expr.operand, *expr.values, names=names)} IN ({values}))"


@_sql.register
def _(expr: Cast, names: dict[int, str]) -> str:
    if expr.to.kind == "float" and expr.operand.type.kind == "int":
        return f"CAST({_sql(expr.operand, names)} AS DOUBLE)"
    raise NotPushable(expr)
