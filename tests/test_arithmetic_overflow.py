"""Computed values are right or an error, never silently wrong: Int arithmetic (``+ - * //``,
negation) and casts from Float to Int that leave the 64-bit range are a per-row ``ComputeError``
honoured by ``on_error``, in computed columns (backfill, insert, update) and in queries.

Expected values are Python's exact integers. Every test runs on both backends.
"""

from __future__ import annotations

import math
import time

import polars as pl
import pytest

import lakehouse as lh

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


@pytest.fixture
def nums(db):
    t = db.create_table("nums", {"k": lh.Int, "n": lh.Int, "f": lh.Float})
    t.insert([{"k": 0, "n": 3, "f": 1.5}, {"k": 1, "n": INT_MAX, "f": 1e19},
              {"k": 2, "n": None, "f": math.nan}, {"k": 3, "n": INT_MIN, "f": -2.5}],
             progress=False)
    return t


def _by_key(q, *exprs, **named) -> dict[int, tuple]:
    """The selected values of each row, by its key ``k`` (``q``: a table or a query)."""
    frame = q.select("k", *exprs, **named).collect()
    return {row[0]: row[1:] for row in frame.iter_rows()}


def test_overflowing_computed_column_aborts_naming_table_column_and_row(nums):
    # the issue's reproduction: m = n * 2 on n = 2**63 - 1 stored -2
    with pytest.raises(lh.ComputeError) as info:
        nums.add_computed_column(m=nums.n * 2, progress=False)
    message = str(info.value)
    for part in ("'nums'", "'m'", "row 1", "integer overflow", "(n * 2)", "nothing was written",
                 "on_error='ignore'"):
        assert part in message, message
    assert nums.count() == 4
    nums.add_computed_column(m=nums.n * 2, on_error="ignore", progress=False)  # m was not added


def test_overflowing_rows_are_null_with_their_error_when_ignored(nums):
    result = nums.add_computed_column(m=nums.n * 2, on_error="ignore", progress=False)
    assert result.rows_with_errors == 2
    got = _by_key(nums, nums.m, nums.m.errortype, nums.m.errormsg)
    assert got[0] == (6, None, None)
    assert got[2] == (None, None, None)  # null in, null out: not an error
    for k in (1, 3):
        value, errortype, errormsg = got[k]
        assert (value, errortype) == (None, "ComputeError")
        assert "integer overflow: (n * 2) is outside the 64-bit Int range" in errormsg
    # rows inserted later are computed and checked the same way
    inserted = nums.insert([{"k": 4, "n": 2**62}, {"k": 5, "n": -(2**62)}], progress=False)
    assert inserted.rows_with_errors == 1
    got = _by_key(nums.where(nums.k >= 4), nums.m, nums.m.errortype)
    assert got == {4: (None, "ComputeError"), 5: (INT_MIN, None)}


@pytest.mark.parametrize(("label", "build", "want"), [
    ("n + 1", lambda t: t.n + 1, {0: 4, 1: "overflow", 2: None, 3: INT_MIN + 1}),
    ("n - 1", lambda t: t.n - 1, {0: 2, 1: INT_MAX - 1, 2: None, 3: "overflow"}),
    ("1 - n", lambda t: 1 - t.n, {0: -2, 1: INT_MIN + 2, 2: None, 3: "overflow"}),
    ("n * -1", lambda t: t.n * -1, {0: -3, 1: -INT_MAX, 2: None, 3: "overflow"}),
    ("-n", lambda t: -t.n, {0: -3, 1: -INT_MAX, 2: None, 3: "overflow"}),
    ("n // -1", lambda t: t.n // -1, {0: -3, 1: -INT_MAX, 2: None, 3: "overflow"}),
    ("f.astype(Int)", lambda t: t.f.astype(lh.Int), {0: 1, 1: "overflow", 2: None, 3: -2}),
    ("if_else, overflow in the branch not taken",
     lambda t: lh.if_else(t.n < 100, t.n * 2, t.n), {0: 6, 1: INT_MAX, 2: None, 3: "overflow"}),
    ("is_null of an overflow", lambda t: (t.n + 1).is_null(),
     {0: False, 1: "overflow", 2: True, 3: False}),
])
def test_each_int_operation_is_checked(nums, label, build, want):
    expr = build(nums)
    overflows = {k for k, v in want.items() if v == "overflow"}
    with pytest.raises(lh.ComputeError, match="integer overflow"):
        nums.select(v=expr).collect()
    nums.add_computed_column(v=expr, on_error="ignore", progress=False)
    got = _by_key(nums, nums.v, nums.v.errortype)
    assert {k for k, (_, e) in got.items() if e is not None} == overflows, label
    assert {k: v for k, (v, _) in got.items() if k not in overflows} == \
        {k: v for k, v in want.items() if k not in overflows}, label
    assert all(got[k][0] is None for k in overflows), label


def test_values_in_range_are_exact_at_the_edges(nums):
    got = _by_key(nums.where(nums.k != 1), v=(nums.n + 1) - 1, w=nums.n // 1)
    assert got == {0: (3, 3), 2: (None, None), 3: (INT_MIN, INT_MIN)}
    assert _by_key(nums.where(nums.k == 3), v=-(nums.n + 1))[3] == (INT_MAX,)
    assert _by_key(nums.where(nums.k == 2), v=nums.f.astype(lh.Int))[2] == (None,)  # NaN: null


def test_queries_report_overflow_instead_of_wrapping(nums):
    for query in (nums.select(m=nums.n * 2), nums.where(nums.n * 2 > 0),
                  nums.order_by(nums.n + 1)):
        with pytest.raises(lh.ComputeError, match=r"'nums'.*integer overflow"):
            query.collect()
    with pytest.raises(lh.ComputeError, match="integer overflow"):
        nums.where(nums.n * 2 > 0).count()
    with pytest.raises(lh.ComputeError, match="integer overflow"):
        nums.select(m=nums.n * 2).scan().collect()
    # rows filtered out first are never evaluated
    assert _by_key(nums.where(nums.k == 0), m=nums.n * 2) == {0: (6,)}


def test_update_that_overflows_changes_nothing(nums):
    with pytest.raises(lh.ComputeError, match=r"integer overflow: \(n \+ 1\)"):
        nums.update({"n": nums.n + 1}, progress=False)
    assert _by_key(nums, nums.n)[1] == (INT_MAX,)
    # a dependent computed column that overflows for the updated row: abort writes nothing
    nums.delete(where=nums.k != 0)
    nums.add_computed_column(half=nums.n // 2, progress=False)
    nums.add_computed_column(dbl=nums.half * 4, progress=False)
    with pytest.raises(lh.ComputeError, match=r"'dbl'.*integer overflow"):
        nums.update({"n": INT_MAX}, where=nums.k == 0, progress=False)
    assert _by_key(nums.where(nums.k == 0), nums.n, nums.dbl) == {0: (3, 4)}


def test_update_recomputes_an_ignoring_column_with_its_error(nums):
    nums.add_computed_column(m=nums.n * 2, on_error="ignore", progress=False)
    result = nums.update({"n": 2**62}, where=nums.k == 0, progress=False)
    assert result.rows_with_errors == 1
    assert _by_key(nums.where(nums.k == 0), nums.m, nums.m.errortype) == \
        {0: (None, "ComputeError")}
    nums.update({"n": 5}, where=nums.k == 0, progress=False)
    assert _by_key(nums.where(nums.k == 0), nums.m, nums.m.errortype) == {0: (10, None)}


def test_insert_into_aborting_column_that_overflows_writes_nothing(nums):
    nums.add_computed_column(m=nums.n + 1, on_error="ignore", progress=False)
    nums.add_computed_column(p=nums.k * 1000, progress=False)
    with pytest.raises(lh.ComputeError, match=r"'p'.*row 1.*integer overflow"):
        nums.insert([{"k": 7}, {"k": INT_MAX}], progress=False)
    assert nums.count() == 4


def test_literal_outside_the_int_range_is_refused(nums):
    with pytest.raises(lh.Error, match="outside the 64-bit Int range"):
        nums.select(v=nums.n + 2**63).collect()
    with pytest.raises(lh.Error, match="outside the 64-bit Int range"):
        nums.where(nums.n.isin([2**64])).collect()


def test_checked_arithmetic_stays_vectorised(db):
    # the overflow check runs in Polars (Int128): a million rows take well under a second,
    # where one Python call per row would take several
    t = db.create_table("big", {"n": lh.Int})
    t.insert(pl.DataFrame({"n": pl.int_range(0, 1_000_000, eager=True)}), progress=False)
    start = time.perf_counter()
    frame = t.select(m=t.n * 3 + 1, s=-t.n - 1).collect()
    elapsed = time.perf_counter() - start
    assert frame.get_column("m").sum() == sum(range(1_000_000)) * 3 + 1_000_000
    assert elapsed < 2.0, f"{elapsed:.2f} s for a million rows"


def test_adding_a_zero_keeps_ieee_signed_zeros(db):
    # Polars returns x for x + 0.0 and -x for 0.0 - x, keeping a -0.0 where IEEE gives 0.0
    # (visible through 1 / x); the compiled expression gives IEEE's zero
    t = db.create_table("zeros", {"k": lh.Int, "f": lh.Float})
    t.insert([{"k": 0, "f": 0.0}, {"k": 1, "f": -0.0}, {"k": 2, "f": 2.5}, {"k": 3}],
             progress=False)
    cases = {
        "f + 0.0": (t.f + 0.0, lambda f: f + 0.0), "0.0 + f": (0.0 + t.f, lambda f: 0.0 + f),
        "0.0 - f": (0.0 - t.f, lambda f: 0.0 - f), "f - -0.0": (t.f - -0.0, lambda f: f - -0.0),
        "f - 0": (t.f - 0, lambda f: f - 0.0), "-0.0 - f": (-0.0 - t.f, lambda f: -0.0 - f),
    }
    for label, (expr, python) in cases.items():
        got = _by_key(t, v=expr)
        for k, f in enumerate([0.0, -0.0, 2.5]):
            (value,) = got[k]
            assert math.copysign(1.0, value) == math.copysign(1.0, python(f)), (label, f)
            assert value == python(f), (label, f)
        assert got[3] == (None,), label
