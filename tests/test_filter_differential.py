"""Differential test: a filter selects exactly the rows it means; arithmetic is exact or an error.

Hypothesis generates random rows (Int, Float, String and Bool columns with nulls and edge values:
the Int extremes, NaN of both signs, infinities, -0.0, strings holding quotes, backslashes,
newlines, ``--``, ``/*``, NUL and non-ASCII text) and random expressions over them (comparisons,
``& | ~``, negation, ``+ - *``, casts, ``isin``, ``is_null``, literals of the same edge kinds).
Each expression is run through the library: ``where().collect()``, ``where().count()``,
``update(where=)`` and ``delete(where=)`` for filters, ``select()`` and computed columns for
arithmetic. The reference is an evaluator written here in plain Python, independent of the
library's compilers: SQL's three-valued logic, Python's exact integers (a result outside the
64-bit range is an overflow, never a number), IEEE floats compared as Polars compares them (every
NaN equal to NaN and above +inf, -0.0 equal to 0.0), an Int met by a Float compared as a Float.

An overflow must be an error, not a value. Where one row's evaluation overflows, a filter may
raise ``ComputeError`` (the table unchanged), or, since SQL engines may skip the half of an AND
that cannot change the outcome, select exactly the rows the reference finds TRUE.

CI runs a fixed-seed budget of 530 examples (about 20 s); set ``LAKEHOUSE_HYPOTHESIS_EXAMPLES``
(for example to 5000) to run that many examples of the main test and proportionally more of the
others, from a random seed (``pytest --hypothesis-seed=N`` repeats a run).
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
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

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
NEGATIVE_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]
SCHEMA = {"k": lh.Int, "i": lh.Int, "j": lh.Int, "f": lh.Float, "g": lh.Float, "s": lh.String,
          "b": lh.Bool, "u": lh.Int}  # k: the row's key; u: what update() sets

LONG_RUN = os.environ.get("LAKEHOUSE_HYPOTHESIS_EXAMPLES")
MAIN_EXAMPLES = int(LONG_RUN or 300)
SCALE = MAIN_EXAMPLES / 300


def _examples(ci: int) -> int:
    return max(ci, int(ci * SCALE))


def _settings(ci: int) -> settings:
    # CI: a fixed seed; a long run explores new examples each time (pytest prints the seed)
    return settings(max_examples=_examples(ci), derandomize=not LONG_RUN, deadline=None,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# --- values -------------------------------------------------------------------------------------

EDGE_INTS = [INT_MIN, INT_MIN + 1, -(2**32), -5, -1, 0, 1, 2, 5, 2**31, 2**53 + 1, INT_MAX - 1,
             INT_MAX]
EDGE_FLOATS = [0.0, -0.0, math.nan, NEGATIVE_NAN, math.inf, -math.inf, 1.5, -1.5, 0.1, 5e-324,
               1.7976931348623157e308, 2.0**53, 2.0**63, -(2.0**63), 9.2e18]
EDGE_STRINGS = ["", "'", "''", "\\", "\\'", "\n", "--", "/*", "*/", "\x00", "é", "☃", "😀", "`",
                '"', "a'b", "\nTRUE)) OR TRUE --", "' OR '1'='1", "NULL", "TRUE", "%", "_"]

ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-10, 10), st.integers(INT_MIN, INT_MAX))
floats = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(width=64),
                   st.integers(-10, 10).map(float))
strings = st.one_of(st.sampled_from(EDGE_STRINGS),
                    st.text(alphabet="ab'\\\n-/*\x00é😀`\" %_", max_size=6))


def _nullable(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values, values)


ROWS = st.lists(st.fixed_dictionaries({
    "i": _nullable(ints), "j": _nullable(ints), "f": _nullable(floats), "g": _nullable(floats),
    "s": _nullable(strings), "b": _nullable(st.booleans()),
}), max_size=10).map(lambda rows: [{"k": n, **row, "u": None} for n, row in enumerate(rows)])


# --- expressions --------------------------------------------------------------------------------

COMPARE = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


def _binary(op: Callable[[Any, Any], Expr], sides: st.SearchStrategy[Expr],
            others: st.SearchStrategy[Expr] | None = None) -> st.SearchStrategy[Expr]:
    return st.tuples(sides, sides if others is None else others).map(lambda p: op(p[0], p[1]))


def int_exprs(t: lh.Table) -> st.SearchStrategy[Expr]:
    leaves = st.one_of(st.sampled_from([t.i, t.j, t.k]), ints.map(lh.lit),
                       st.sampled_from([t.f, t.g]).map(lambda c: c.astype(lh.Int)))
    return st.recursive(leaves, lambda inner: st.one_of(
        _binary(operator.add, inner), _binary(operator.sub, inner), _binary(operator.mul, inner),
        inner.map(operator.neg)), max_leaves=4)


def float_exprs(t: lh.Table) -> st.SearchStrategy[Expr]:
    leaves = st.one_of(st.sampled_from([t.f, t.g]), floats.map(lh.lit),
                       st.sampled_from([t.i, t.j]).map(lambda c: c.astype(lh.Float)))
    numbers = st.one_of(leaves, int_exprs(t))
    return st.recursive(leaves, lambda inner: st.one_of(
        _binary(operator.add, inner, numbers), _binary(operator.sub, numbers, inner),
        _binary(operator.mul, inner, numbers), inner.map(operator.neg)), max_leaves=4)


def string_exprs(t: lh.Table) -> st.SearchStrategy[Expr]:
    leaves = st.one_of(st.just(t.s), strings.map(lh.lit))
    return st.one_of(leaves, _binary(operator.add, leaves))


def bool_exprs(t: lh.Table) -> st.SearchStrategy[Expr]:
    numbers = st.one_of(int_exprs(t), float_exprs(t))
    compare = st.sampled_from(COMPARE)
    bools = st.one_of(st.just(t.b), st.booleans().map(lh.lit))

    def comparisons(sides: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.tuples(compare, sides, sides).map(lambda p: p[0](p[1], p[2]))

    def with_null(sides: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.tuples(st.sampled_from(COMPARE[2:]), sides).map(
            lambda p: p[0](p[1], lh.lit(None)))

    def isin(sides: st.SearchStrategy[Expr], values: st.SearchStrategy[Any]) -> st.SearchStrategy:
        return st.tuples(sides, st.lists(_nullable(values), max_size=4)).map(
            lambda p: p[0].isin(p[1]))

    atoms = st.one_of(
        bools, comparisons(numbers), comparisons(string_exprs(t)), comparisons(bools),
        with_null(st.one_of(numbers, string_exprs(t))),
        isin(st.sampled_from([t.i, t.j]), st.one_of(ints, floats)),
        isin(st.sampled_from([t.f, t.g]), st.one_of(floats, ints)),
        isin(int_exprs(t), ints), isin(st.just(t.s), strings), isin(st.just(t.b), st.booleans()),
        st.one_of(numbers, string_exprs(t), bools).flatmap(
            lambda e: st.sampled_from([e.is_null(), e.is_not_null()])),
    )
    return st.recursive(atoms, lambda inner: st.one_of(
        _binary(operator.and_, inner), _binary(operator.or_, inner),
        inner.map(operator.invert)), max_leaves=5)


# --- the reference evaluator --------------------------------------------------------------------

class Overflow:
    """The value of an expression whose Int arithmetic left the 64-bit range on this row."""

    def __repr__(self) -> str:
        return "OVERFLOW"


OVERFLOW = Overflow()


@dataclass
class Reference:
    """Evaluates expressions on one row; ``overflowed`` records an overflow anywhere in them,
    whether or not it decided the result."""

    row: dict[str, Any]
    overflowed: bool = field(default=False)

    def __call__(self, expr: Expr) -> Any:
        value = self._value(expr)
        if value is OVERFLOW:
            self.overflowed = True
        return value

    def _value(self, expr: Expr) -> Any:  # noqa: C901 - one branch per node type
        if isinstance(expr, ColumnRef):
            return self.row[expr.name]
        if isinstance(expr, Literal):
            return expr.value
        if isinstance(expr, UnaryOp):
            value = self(expr.operand)
            if value is OVERFLOW or value is None:
                return value
            if expr.op == "not":
                return not value
            return _int(-value) if expr.type.kind == "int" else -value
        if isinstance(expr, BinaryOp):
            return self._binary(expr)
        if isinstance(expr, Cast):
            return self._cast(expr)
        if isinstance(expr, IsNull):
            value = self(expr.operand)
            if value is OVERFLOW:
                return value
            return (value is not None) if expr.negate else (value is None)
        if isinstance(expr, IsIn):
            value = self(expr.operand)
            if value is OVERFLOW or value is None:
                return value
            as_float = expr.operand.type.kind == "float" or \
                any(isinstance(v.value, float) for v in expr.values)
            return any(_compare(operator.eq, value, v.value, as_float)
                       for v in expr.values if v.value is not None)
        raise AssertionError(f"the reference has no rule for {expr!r}")

    def _binary(self, expr: BinaryOp) -> Any:
        left, right = self(expr.left), self(expr.right)
        if expr.op in ("&", "|"):
            return _kleene(expr.op, left, right)
        if OVERFLOW in (left, right):
            return OVERFLOW
        if left is None or right is None:
            return None
        if expr.op in ("+", "-", "*"):
            fn = {"+": operator.add, "-": operator.sub, "*": operator.mul}[expr.op]
            if expr.type.kind == "int":
                return _int(fn(left, right))
            if expr.type.kind == "float":
                return fn(float(left), float(right))
            return fn(left, right)  # strings
        as_float = "float" in (expr.left.type.kind, expr.right.type.kind)
        op = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
              ">": operator.gt, ">=": operator.ge}[expr.op]
        return _compare(op, left, right, as_float)

    def _cast(self, expr: Cast) -> Any:
        value = self(expr.operand)
        if value is OVERFLOW or value is None:
            return value
        if expr.to.kind == "float":
            return float(value)
        assert expr.to.kind == "int" and isinstance(value, float)
        if math.isnan(value):
            return None  # astype: a value that cannot convert becomes null
        return OVERFLOW if math.isinf(value) else _int(math.trunc(value))


def _int(value: int) -> int | Overflow:
    return value if INT_MIN <= value <= INT_MAX else OVERFLOW


def _compare(op: Callable[[Any, Any], bool], left: Any, right: Any, as_float: bool) -> bool:
    if as_float:  # Polars' order: every NaN equal, above +inf; -0.0 == 0.0
        left, right = _float_key(float(left)), _float_key(float(right))
    return op(left, right)


def _float_key(value: float) -> tuple[int, float]:
    return (1, 0.0) if math.isnan(value) else (0, value)


def _kleene(op: str, left: Any, right: Any) -> Any:
    """SQL's AND / OR; an overflow counts as unknown-and-failing unless the other side decides."""
    decisive = op == "|"  # TRUE decides an OR, FALSE an AND
    if decisive in (left, right):
        return decisive
    if OVERFLOW in (left, right):
        return OVERFLOW
    if None in (left, right):
        return None
    return not decisive


@dataclass(frozen=True)
class Expected:
    """The reference's verdict on a filter: the keys of the rows where it is TRUE, and whether
    evaluating it overflowed on some row (then raising ComputeError is also right)."""

    keys: set[int]
    may_fail: bool

    @staticmethod
    def of(condition: Expr, rows: list[dict[str, Any]]) -> Expected:
        keys, may_fail = set(), False
        for row in rows:
            reference = Reference(row)
            if reference(condition) is True:
                keys.add(row["k"])
            may_fail = may_fail or reference.overflowed
        return Expected(keys, may_fail)


# --- running it through the library -------------------------------------------------------------

_names = itertools.count()


@pytest.fixture(scope="module")
def local_db(tmp_path_factory: pytest.TempPathFactory) -> lh.Catalog:
    """One local lakehouse for every example; each example makes its own small table."""
    return lh.connect(str(tmp_path_factory.mktemp("differential")))


def _table(db: lh.Catalog, rows: list[dict[str, Any]]) -> lh.Table:
    t = db.create_table(f"t{next(_names)}", SCHEMA)
    if rows:
        t.insert(rows, progress=False)
    return t


def _keys(frame: Any) -> list[int]:
    return sorted(frame.get_column("k").to_list())


def _outcome(run: Callable[[], Any], expected: Expected, what: str) -> Any:
    """``run()``, or None where it raised the ComputeError that an overflow allows."""
    try:
        return run()
    except lh.ComputeError as exc:
        assert expected.may_fail, f"{what} raised {exc}, but nothing overflows"
        return None


def check_query(t: lh.Table, condition: Expr, rows: list[dict[str, Any]]) -> None:
    expected = Expected.of(condition, rows)
    what = f"where({condition!r}) on {rows!r}"
    frame = _outcome(lambda: t.where(condition).collect(), expected, what)
    if frame is not None:
        assert _keys(frame) == sorted(expected.keys), what
        assert frame.columns == list(SCHEMA), what
    count = _outcome(lambda: t.where(condition).count(), expected, what)
    if count is not None:
        assert count == len(expected.keys), what


def check_writes(t: lh.Table, condition: Expr, rows: list[dict[str, Any]]) -> None:
    """update() then delete() with ``condition`` (which does not read ``u``, the updated
    column): each touches exactly the reference's rows, or fails and changes nothing."""
    expected = Expected.of(condition, rows)
    everything = sorted(r["k"] for r in rows)
    what = f"{condition!r} on {rows!r}"
    updated = _outcome(lambda: t.update({"u": 1}, where=condition, progress=False), expected,
                       f"update where {what}")
    marked = _keys(t.where(t.u == 1).select(t.k).collect())
    assert marked == (sorted(expected.keys) if updated is not None else []), f"update where {what}"
    assert t.count() == len(rows), f"update where {what}"
    deleted = _outcome(lambda: t.delete(where=condition), expected, f"delete where {what}")
    left = _keys(t.select(t.k).collect())
    assert left == (sorted(set(everything) - expected.keys) if deleted is not None
                    else everything), f"delete where {what}"


def check_arithmetic(t: lh.Table, expr: Expr, rows: list[dict[str, Any]]) -> None:
    """select() of ``expr`` equals Python's exact result on every row, or raises ComputeError
    when some row overflows; a computed column with on_error='ignore' keeps each overflowing
    row as null with a ComputeError, and with 'abort' writes nothing."""
    values = {r["k"]: Reference(r)(expr) for r in rows}
    overflows = {k for k, v in values.items() if v is OVERFLOW}
    what = f"{expr!r} on {rows!r}"
    if overflows:
        with pytest.raises(lh.ComputeError, match="integer overflow"):
            t.select(t.k, v=expr).collect()
        with pytest.raises(lh.ComputeError, match="nothing was written"):
            t.add_computed_column(v=expr, progress=False)  # then adding it below must work
    else:
        got = dict(t.select(t.k, v=expr).collect().iter_rows())
        assert _same_values(got, values), what
    t.add_computed_column(v=expr, on_error="ignore", progress=False)
    stored = {k: (v, e) for k, v, e in t.select(t.k, t.v, t.v.errortype).collect().iter_rows()}
    assert {k for k, (_, e) in stored.items() if e is not None} == overflows, what
    assert all(e == "ComputeError" and v is None for k, (v, e) in stored.items()
               if k in overflows), what
    kept = {k: v for k, (v, _) in stored.items() if k not in overflows}
    assert _same_values(kept, {k: v for k, v in values.items() if k not in overflows}), what


def _same_values(got: dict[int, Any], want: dict[int, Any]) -> bool:
    if got.keys() != want.keys():
        return False
    for k, value in want.items():
        other = got[k]
        if isinstance(value, float) and isinstance(other, float):
            same = (math.isnan(value) and math.isnan(other)) or \
                (value == other and math.copysign(1, value) == math.copysign(1, other))
        else:
            same = type(value) is type(other) and value == other
        if not same:
            return False
    return True


# --- the tests ----------------------------------------------------------------------------------

@_settings(ci=300)
@given(rows=ROWS, data=st.data())
def test_where_and_count_select_the_reference_rows(local_db: lh.Catalog,
                                                   rows: list[dict[str, Any]],
                                                   data: st.DataObject) -> None:
    t = _table(local_db, rows)
    for condition in data.draw(st.lists(bool_exprs(t), min_size=1, max_size=3)):
        check_query(t, condition, rows)


@_settings(ci=100)
@given(rows=ROWS, data=st.data())
def test_update_and_delete_touch_the_reference_rows(local_db: lh.Catalog,
                                                    rows: list[dict[str, Any]],
                                                    data: st.DataObject) -> None:
    t = _table(local_db, rows)
    check_writes(t, data.draw(bool_exprs(t)), rows)


@_settings(ci=100)
@given(rows=ROWS, data=st.data())
def test_arithmetic_is_exact_or_an_overflow_error(local_db: lh.Catalog,
                                                  rows: list[dict[str, Any]],
                                                  data: st.DataObject) -> None:
    t = _table(local_db, rows)
    check_arithmetic(t, data.draw(st.one_of(int_exprs(t), float_exprs(t))), rows)


@_settings(ci=15)
@given(rows=ROWS, data=st.data())
def test_filters_on_each_backend_touch_the_reference_rows(db: lh.Catalog,
                                                          rows: list[dict[str, Any]],
                                                          data: st.DataObject) -> None:
    t = _table(db, rows)
    condition = data.draw(bool_exprs(t))
    check_query(t, condition, rows)
    check_writes(t, condition, rows)
