"""Compile an expression tree to one Polars expression, one rule per node type.

Column references compile to ``pl.col(name)`` through a name map (computed columns may have been
renamed since they were defined). Calls with a Polars form compile natively; calls without one
(Python UDFs) must already have been run by the executor, which passes their result columns in
``materialized``: that explicit fallback is the only non-vectorised path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from functools import singledispatch

import polars as pl

from lakehouse.errors import ColumnNotFoundError, TypeMismatchError
from lakehouse.exprs.nodes import (
    BinaryOp,
    Call,
    Cast,
    ColumnRef,
    ErrorInfo,
    Expr,
    IfElse,
    IsIn,
    IsNull,
    JsonPath,
    Literal,
    Similarity,
    UnaryOp,
)
from lakehouse.functions.registry import resolve


@dataclasses.dataclass
class Context:
    """Where each referenced column lives in the DataFrame being evaluated."""

    names: dict[int, str]  # column id -> DataFrame column name
    info_names: dict[tuple[int, str], str] = dataclasses.field(default_factory=dict)
    materialized: dict[int, str] = dataclasses.field(default_factory=dict)  # id(Call) -> column


def needs_python(expr: Expr) -> list[Call]:
    """The calls in ``expr`` (children first) that have no Polars form and must run in Python."""
    return [n for n in expr.walk() if isinstance(n, Call) and resolve(n.fn).polars is None]


def to_polars(expr: Expr, ctx: Context) -> pl.Expr:
    return _compile(expr, ctx)


@singledispatch
def _compile(expr: Expr, ctx: Context) -> pl.Expr:
    raise TypeMismatchError(f"cannot compile {type(expr).__name__} {expr!r} to Polars")


@_compile.register
def _(expr: ColumnRef, ctx: Context) -> pl.Expr:
    name = ctx.names.get(expr.col_id)
    if name is None:
        raise ColumnNotFoundError(f"column {expr.name!r} is not available here")
    return pl.col(name)


@_compile.register
def _(expr: Similarity, ctx: Context) -> pl.Expr:
    name = ctx.materialized.get(id(expr))
    if name is None:
        raise TypeMismatchError(
            f"{expr!r} can only be used in select() and order_by() of a query, not in where() "
            "or a computed column; order by it and limit() to get the k most similar rows")
    return pl.col(name)


@_compile.register
def _(expr: ErrorInfo, ctx: Context) -> pl.Expr:
    name = ctx.info_names.get((expr.column.col_id, expr.field))
    if name is None:
        return pl.lit(None, dtype=pl.String)
    return pl.col(name)


@_compile.register
def _(expr: Literal, ctx: Context) -> pl.Expr:
    if expr.value is None:
        return pl.lit(None)
    value = expr.value
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC)  # Polars refuses other zones for a UTC dtype
    return pl.lit(value, dtype=expr.type.polars_type())


_BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a.cast(pl.Float64) / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
}


@_compile.register
def _(expr: BinaryOp, ctx: Context) -> pl.Expr:
    return _BINARY[expr.op](_compile(expr.left, ctx), _compile(expr.right, ctx))


@_compile.register
def _(expr: UnaryOp, ctx: Context) -> pl.Expr:
    inner = _compile(expr.operand, ctx)
    return ~inner if expr.op == "not" else -inner


@_compile.register
def _(expr: IsNull, ctx: Context) -> pl.Expr:
    inner = _compile(expr.operand, ctx)
    return inner.is_not_null() if expr.negate else inner.is_null()


@_compile.register
def _(expr: IsIn, ctx: Context) -> pl.Expr:
    operand, dtype = _compile(expr.operand, ctx), expr.operand.type.polars_type()
    if expr.operand.type.kind == "int" and any(v.type.kind == "float" for v in expr.values):
        operand, dtype = operand.cast(pl.Float64), pl.Float64  # n.isin([1.5, 2])
    values = pl.Series([v.value for v in expr.values], dtype=dtype)
    return operand.is_in(values.implode())


@_compile.register
def _(expr: Cast, ctx: Context) -> pl.Expr:
    return _compile(expr.operand, ctx).cast(expr.to.polars_type(), strict=False)


@_compile.register
def _(expr: IfElse, ctx: Context) -> pl.Expr:
    return (
        pl.when(_compile(expr.condition, ctx))
        .then(_compile(expr.then, ctx))
        .otherwise(_compile(expr.otherwise, ctx))
    )


@_compile.register
def _(expr: JsonPath, ctx: Context) -> pl.Expr:
    return _compile(expr.operand, ctx).str.json_path_match(expr.jsonpath())


@_compile.register
def _(expr: Call, ctx: Context) -> pl.Expr:
    done = ctx.materialized.get(id(expr))
    if done is not None:
        return pl.col(done)
    fn = resolve(expr.fn)
    if fn.polars is None:
        raise TypeMismatchError(f"{expr!r} runs in Python and was not evaluated first")
    args = [_compile(a, ctx) for a in expr.args]
    return fn.polars(*args, *[v for _, v in expr.kwargs])
