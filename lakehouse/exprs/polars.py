"""Compile an expression tree to one Polars expression, one rule per node type.

Column references compile to ``pl.col(name)`` through a name map (computed columns may have been
renamed since they were defined). Calls with a Polars form compile natively; calls without one
(Python UDFs) must already have been run by the executor, which passes their result columns in
``materialized``: that explicit fallback is the only non-vectorised path.

Integer arithmetic (``+ - * //``, negation) is computed in Int128 and checked against the Int
range, and a cast from Float to Int is checked too, so no value ever wraps around: with a
``checks`` list in the context, an overflowing row gets null and a :class:`Check` records where
(the executor turns it into that row's ``ComputeError``, honouring ``on_error``); without one, an
overflow raises ``ComputeError`` from inside Polars.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from functools import singledispatch

import polars as pl

from lakehouse.errors import (
    ColumnNotFoundError,
    ComputeError,
    TypeMismatchError,
    UnsupportedError,
)
from lakehouse.exprs.nodes import (
    BinaryOp,
    Call,
    Cast,
    ColumnRef,
    Expr,
    IfElse,
    InfoColumn,
    IsIn,
    IsNull,
    JsonPath,
    Literal,
    Similarity,
    UnaryOp,
)
from lakehouse.exprs.registry import resolve

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_CHECKED = ("+", "-", "*", "//")  # Int operators that can leave the Int range


@dataclasses.dataclass(frozen=True)
class Check:
    """An Int operation of the expression that can overflow; ``failed`` is True on the rows
    where it did (and where its result was used: not in the branch an if_else did not take)."""

    node: Expr
    failed: pl.Expr

    def message(self) -> str:
        return (f"integer overflow: {self.node!r} is outside the 64-bit Int range "
                f"[{INT_MIN}, {INT_MAX}]; compute it as Float (.astype(lh.Float)) to keep it")


@dataclasses.dataclass
class Context:
    """Where each referenced column lives in the DataFrame being evaluated, and where overflow
    checks go (``checks``; None: an overflow raises ``ComputeError`` while Polars evaluates).

    >>> ctx = Context(names=t.table_definition.names(), checks=[])
    >>> years = pl.DataFrame({"year": [1979, 2**62]})
    >>> years.select(to_polars(t.year * 4, ctx)).rows()  # 2**64 is not an Int: null
    [(7916,), (None,)]
    >>> years.select(ctx.checks[0].failed).to_series().to_list()
    [False, True]
    """

    names: dict[int, str]  # column id -> DataFrame column name
    info_names: dict[tuple[int, str], str] = dataclasses.field(default_factory=dict)
    materialized: dict[int, str] = dataclasses.field(default_factory=dict)  # id(Call) -> column
    checks: list[Check] | None = None
    guard: pl.Expr | None = None  # the rows where the expression being compiled is used

    def checked(self, node: Expr, value: pl.Expr, failed: pl.Expr) -> pl.Expr:
        """``value`` (null where ``failed``), with its overflow recorded or raised."""
        failed = failed.fill_null(False)
        if self.guard is not None:
            failed = failed & self.guard
        if self.checks is not None:
            self.checks.append(Check(node, failed))
            return value
        check = Check(node, failed)

        def raise_on_overflow(both: pl.Series) -> pl.Series:
            bad = both.struct.field("failed")
            if bad.any():
                raise ComputeError(f"{check.message()} ({bad.sum()} of {len(bad)} rows)")
            return both.struct.field("value")

        return pl.struct(value.alias("value"), failed.alias("failed")).map_batches(
            raise_on_overflow, return_dtype=pl.Int64, is_elementwise=True)

    def within(self, rows: pl.Expr) -> Context:
        """This context for a subexpression used only on ``rows`` (checks are shared)."""
        guard = rows if self.guard is None else self.guard & rows
        return dataclasses.replace(self, guard=guard)


def needs_python(expr: Expr) -> list[Call]:
    """The calls in ``expr`` (children first) that have no Polars form and must run in Python.

    >>> @lh.udf
    ... def shout(text: str) -> str:
    ...     return text + "!"
    >>> needs_python(shout(t.title.str.upper()) == "HEAT!"), needs_python(t.title.str.upper())
    ([shout(str.upper(title))], [])
    """
    return [n for n in expr.walk() if isinstance(n, Call) and resolve(n.fn).polars is None]


def to_polars(expr: Expr, ctx: Context) -> pl.Expr:
    """``expr`` as one Polars expression over a DataFrame whose columns ``ctx`` names.

    >>> ctx = Context(names=t.table_definition.names())
    >>> frame = t.select(t.title, t.year).collect()
    >>> frame.select(to_polars(t.title.str.upper(), ctx), to_polars(t.year * 2, ctx)).rows()
    [('ALIEN', 3958), ('HEAT', 3990), ('UP', 4018)]
    """
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
        raise UnsupportedError(
            f"{expr!r} can only be used in select() and order_by() of a query, not in where() "
            "or a computed column; order by it and limit() to get the k most similar rows")
    return pl.col(name)


@_compile.register
def _(expr: InfoColumn, ctx: Context) -> pl.Expr:
    name = ctx.info_names.get((expr.column.col_id, expr.field))
    if name is None:
        return pl.lit(None, dtype=pl.String)
    return pl.col(name)


@_compile.register
def _(expr: Literal, ctx: Context) -> pl.Expr:
    if expr.value is None:
        return pl.lit(None)
    value = expr.value
    _check_int_literal(value, expr)
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
    left, right = _compile(expr.left, ctx), _compile(expr.right, ctx)
    if expr.op in _CHECKED and expr.type.kind == "int":
        return _int_range(expr, _BINARY[expr.op](left.cast(pl.Int128), right.cast(pl.Int128)),
                          ctx)
    if expr.op in ("+", "-") and expr.type.kind == "float":
        with_zero = _plus_zero(expr, left, right)
        if with_zero is not None:
            return with_zero
    return _BINARY[expr.op](left, right)


def _plus_zero(expr: BinaryOp, left: pl.Expr, right: pl.Expr) -> pl.Expr | None:
    """``x + 0.0``, ``0.0 - x`` and the like as IEEE defines them, or None if no side is a zero
    literal. Polars returns the other side as it is (or negated) there, keeping a -0.0 where IEEE
    gives 0.0; IEEE's sum with a zero ``z`` is the other addend ``p``, except that ``p + 0.0``
    turns -0.0 into 0.0."""
    right_zero, left_zero = _zero(expr.right), _zero(expr.left)
    if right_zero is not None:  # x + z, x - z == x + (-z)
        p, z = left.cast(pl.Float64), right_zero if expr.op == "+" else -right_zero
    elif left_zero is not None:  # z + x, z - x == z + (-x)
        p, z = right.cast(pl.Float64), left_zero
        p = p if expr.op == "+" else -p
    else:
        return None
    if math.copysign(1.0, z) < 0:  # p + (-0.0) is p, zeros included
        return p
    return pl.when(p == 0.0).then(pl.lit(0.0)).otherwise(p)


def _zero(expr: Expr) -> float | None:
    """The value of a zero literal, as a float keeping its sign; None for anything else."""
    if isinstance(expr, Literal) and isinstance(expr.value, int | float) \
            and not isinstance(expr.value, bool) and expr.value == 0:
        return float(expr.value)
    return None


@_compile.register
def _(expr: UnaryOp, ctx: Context) -> pl.Expr:
    inner = _compile(expr.operand, ctx)
    if expr.op == "not":
        return ~inner
    if expr.type.kind == "int":
        return _int_range(expr, pl.lit(0, pl.Int128) - inner.cast(pl.Int128), ctx)  # no i128 neg
    return -inner


def _int_range(expr: Expr, wide: pl.Expr, ctx: Context) -> pl.Expr:
    """An Int128 result back to Int64, checked: null and an overflow where out of range."""
    return ctx.checked(expr, wide.cast(pl.Int64, strict=False),
                       ~wide.is_between(INT_MIN, INT_MAX))


def _check_int_literal(value: object, expr: Expr) -> None:
    if isinstance(value, int) and not isinstance(value, bool) \
            and not INT_MIN <= value <= INT_MAX:
        raise TypeMismatchError(
            f"the literal {value} in {expr!r} is outside the 64-bit Int range "
            f"[{INT_MIN}, {INT_MAX}]; use a float ({float(value)!r}) to compare with it")


@_compile.register
def _(expr: IsNull, ctx: Context) -> pl.Expr:
    inner = _compile(expr.operand, ctx)
    return inner.is_not_null() if expr.negate else inner.is_null()


@_compile.register
def _(expr: IsIn, ctx: Context) -> pl.Expr:
    operand, dtype = _compile(expr.operand, ctx), expr.operand.type.polars_type()
    if expr.operand.type.kind == "int" and any(v.type.kind == "float" for v in expr.values):
        operand, dtype = operand.cast(pl.Float64), pl.Float64  # n.isin([1.5, 2])
    for v in expr.values:
        _check_int_literal(v.value, expr)
    values = pl.Series([v.value for v in expr.values], dtype=dtype)
    found = operand.is_in(values.implode())
    constant = all(isinstance(n, Literal) for n in expr.operand.walk() if not n.children())
    return found.first() if constant else found  # one value, broadcast like a literal


@_compile.register
def _(expr: Cast, ctx: Context) -> pl.Expr:
    inner = _compile(expr.operand, ctx)
    value = inner.cast(expr.to.polars_type(), strict=False)
    if expr.to.kind == "int" and expr.operand.type.kind == "float":  # NaN: null, as documented
        return ctx.checked(expr, value, inner.is_not_nan() & value.is_null())
    return value


@_compile.register
def _(expr: IfElse, ctx: Context) -> pl.Expr:
    condition = _compile(expr.condition, ctx)
    taken = condition.fill_null(False)
    return (
        pl.when(condition)
        .then(_compile(expr.then, ctx.within(taken)))
        .otherwise(_compile(expr.otherwise, ctx.within(~taken)))
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
